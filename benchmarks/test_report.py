"""report.py's arithmetic on hand-made records (no timing): the fraction of peak, the speed-ups over the fastest
peer, thread scaling and the epoch ratios come out of the numbers put in, and files merge by thread count.
Runs with the benchmarks (pytest benchmarks/...), in milliseconds."""
import json

import numpy as np
import pytest

import report
import results as results_module
import workloads


def train_step(config, implementation, role, cell, threads, median_s, kernel_isa="avx2+fma"):
    c = workloads.CONFIGS[config]
    return {"name": f"test_train_step[{config}-{implementation}]",
            "stats": {"median": median_s, "min": median_s * 0.9, "rounds": 5},
            "extra_info": {"kind": "train_step", "config": config, "implementation": implementation, "role": role,
                           "cell": cell, "threads": threads, "kernel_isa": kernel_isa,
                           "train_step_flops": c.train_step_flops(cell),
                           "shape": {"batch": c.batch, "time": c.time, "features": c.features, "hidden": c.hidden,
                                     "layers": c.layers}}}


def write(path, benchmarks):
    path.write_text(json.dumps({"datetime": "2026-12-01T00:00:00", "benchmarks": benchmarks}))
    return str(path)


@pytest.fixture
def numbers():
    rng = np.random.default_rng()
    return {"project_2": rng.uniform(0.05, 0.1), "project_1": rng.uniform(0.15, 0.2),
            "peer_fast": rng.uniform(0.2, 0.3), "peer_slow": rng.uniform(0.4, 0.5), "peak_2": rng.uniform(150, 250), "peak_1": rng.uniform(80, 120),
            "epoch_fused": rng.uniform(0.1, 0.2), "epoch_keras": rng.uniform(0.3, 0.6)}


def test_report_arithmetic(tmp_path, numbers):
    n = numbers
    two = write(tmp_path / "two.json", [
        train_step("small", "keras_gru", "peer", "gru", 2, n["peer_slow"]),
        train_step("small", "torch_gru", "peer", "gru", 2, n["peer_fast"]),
        train_step("small", "deeprnn_fast_gru", "project", "gru", 2, n["project_2"]),
        {"name": "test_fma_peak", "stats": {}, "extra_info": {"kind": "fma_peak", "isas": {
            "avx512f": {"skipped": "the CPU does not support avx512f"},
            "avx2+fma": {"gflops": {"1": n["peak_1"], "2": n["peak_2"]}}}}},
        *[{"name": f"test_epoch[gru-{impl}]", "stats": {}, "extra_info": {
            "kind": "epoch", "cell": "gru", "implementation": impl, "role": role, "epochs": 3,
            "seconds_per_epoch_median": seconds, "train_ppl": [20.0, 15.0, 12.0], "val_ppl": [21.0, 16.0, 17.0]}}
          for impl, role, seconds in (("fused", "project", n["epoch_fused"]), ("keras", "peer", n["epoch_keras"]))],
    ])
    one = write(tmp_path / "one.json", [train_step("small", "deeprnn_fast_gru", "project", "gru", 1, n["project_1"])])
    results = results_module.load([two, one])

    config = results.configs["small"]
    project = config.project("gru")
    assert results.thread_counts() == [1, 2] and results.main_threads() == 2
    assert set(project.timings) == {1, 2}
    flops = workloads.CONFIGS["small"].train_step_flops("gru")
    assert flops == 3 * workloads.CONFIGS["small"].train_step_flops("tanh")
    assert report.fraction_of_peak(results, project, 2) == pytest.approx(flops / n["project_2"] / (n["peak_2"] * 1e9))
    assert report.fraction_of_peak(results, project, 1) == pytest.approx(flops / n["project_1"] / (n["peak_1"] * 1e9))
    assert report.fastest_peer(config, "gru", 2).implementation == "torch_gru"

    rows = {row[0]: row[1:] for row in report.target_rows(results, 2)}
    speedup = rows["small, GRU: >= 1.3x the fastest peer (torch_gru)"]
    assert speedup[0] == f"{n['peer_fast'] / n['project_2']:.2f}x" and speedup[1] == "met"
    scaling = rows["small, GRU: thread scaling >= 1.8x"]
    assert scaling[0] == f"{n['project_1'] / n['project_2']:.2f}x"
    assert scaling[1] == ("met" if n["project_1"] / n["project_2"] >= 1.8 else "**not met**")
    epoch = rows["book's epoch, GRU: fused >= 2.5x keras"]
    assert epoch[0] == f"{n['epoch_keras'] / n['epoch_fused']:.2f}x"
    assert rows["book's epoch, GRU: fused >= 2.5x torch"] == ["—", "not run"]
    assert rows["wide, GRU: >= 65% of the FMA peak"] == ["—", "not run"]

    text = report.report(results)
    assert "skipped: the CPU does not support avx512f" in text
    assert "PyTorch peers" not in text  # a torch row is present: no note that PyTorch was skipped
    assert f"| small | GRU | **deeprnn_fast_gru** | {n['project_1'] * 1e3:.1f} | {n['project_2'] * 1e3:.1f} |" in text


def test_write_between_markers_keeps_the_rest(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"head\n{report.BEGIN_MARKER}\nold table\n{report.END_MARKER}\ntail\n")
    report.write_between_markers(str(readme), "new table")
    assert readme.read_text() == f"head\n{report.BEGIN_MARKER}\nnew table\n{report.END_MARKER}\ntail\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]  # no partial file left behind


def modifier_step(config, cell, variant, implementation, median_s, threads=2, fallbacks=()):
    c = workloads.CONFIGS[config]
    return {"name": f"test_modifier_step[{config}-{cell}-{variant}-{implementation}]",
            "stats": {"median": median_s, "min": median_s * 0.9, "rounds": 5},
            "extra_info": {"kind": "modifier_step", "config": config, "cell": cell, "variant": variant,
                           "implementation": implementation,
                           "role": "project" if implementation == "deeprnn_fast" else "peer", "threads": threads,
                           "train_step_flops": c.train_step_flops(cell), "fallbacks": list(fallbacks),
                           "shape": {"batch": c.batch, "time": c.time, "features": c.features, "hidden": c.hidden,
                                     "layers": c.layers}}}


def test_report_masks_and_dropout(tmp_path):
    rng = np.random.default_rng()
    plain = rng.uniform(0.01, 0.02)
    # lengths: faster than plain and > 5x Keras; holes: over 15 % slower than plain and < 5x Keras; dropout: > 5x
    # Keras and under 15 % slower than plain.
    project = {"lengths": plain * rng.uniform(0.6, 0.9), "holes": plain * rng.uniform(1.2, 1.5),
               "dropout": plain * rng.uniform(1.0, 1.1)}
    keras = {"lengths": project["lengths"] * rng.uniform(6, 9), "holes": project["holes"] * rng.uniform(2, 4),
             "dropout": project["dropout"] * rng.uniform(5.5, 8)}
    path = write(tmp_path / "modifiers.json", [
        modifier_step("seed", "gru", "plain", "deeprnn_fast", plain),
        *[modifier_step("seed", "gru", v, "deeprnn_fast", s, fallbacks=["StackedGRU: ... instead"] if v == "holes"
                        else ()) for v, s in project.items()],
        *[modifier_step("seed", "gru", v, "keras", s) for v, s in keras.items()],
        # a 1-thread record of the same case: the tables show the largest thread count, not this one
        modifier_step("seed", "gru", "plain", "deeprnn_fast", plain * 50, threads=1),
    ])
    modifiers = report.modifier_results.load([path])
    assert report.modifier_results.main_threads(modifiers) == 2

    rows = {row[0]: row[1:] for row in report.modifier_target_rows(modifiers, 2)}
    lengths = rows["seed, GRU, lengths: >= 5x Keras"]
    assert lengths == [f"{keras['lengths'] / project['lengths']:.2f}x", "met"]
    assert rows["seed, GRU, holes: >= 5x Keras"] == [f"{keras['holes'] / project['holes']:.2f}x", "**not met**"]
    assert rows["seed, GRU, dropout: >= 5x Keras"][1] == "met"
    assert rows["seed, GRU, lengths: project <= 1.15x plain project"] == \
        [f"{project['lengths'] / plain:.2f}x", "met"]
    assert rows["seed, GRU, holes: project <= 1.15x plain project"] == \
        [f"{project['holes'] / plain:.2f}x", "**not met**"]
    assert rows["seed, GRU, dropout: project <= 1.15x plain project"] == \
        [f"{project['dropout'] / plain:.2f}x", "met"]
    assert rows["small, GRU, lengths: >= 5x Keras"] == ["—", "not run"]
    assert rows["seed, tanh RNN, holes: project <= 1.15x plain project"] == ["—", "not run"]
    assert not any("LSTM" in target for target in rows)  # no LSTM record: no LSTM target

    text = report.report(results_module.load([path]), modifiers=modifiers)
    assert "### Masks and dropout" in text and "#### Targets (masks and dropout)" in text
    assert (f"| holes | {project['holes'] * 1e3:.1f} (fallback) | {keras['holes'] * 1e3:.1f} | "
            f"{keras['holes'] / project['holes']:.2f}x | {project['holes'] / plain:.2f}x |") in text
    assert f"| plain | {plain * 1e3:.1f} | — | — | 1.00x |" in text
