"""Markdown tables of a benchmark run, for benchmarks/README.md.

    .venv/bin/python benchmarks/report.py RESULTS.json [MORE.json ...] [--before OLD.json ...] [--write README.md]

Reads the files pytest-benchmark writes with --benchmark-json (results.py says which records it uses) and prints:
the machine, its measured FMA peak per instruction set and the set the project's kernels ran on; per configuration,
every implementation's median time of a training step, its GFLOP/s (its own cell's FLOPs) and fraction of the peak,
the speed-up of its cell's project implementation over it, and peak memory; the project against the fastest peer of
each cell; thread scaling, when runs at several thread counts are given (e.g. DEEPRNN_FAST_BENCH_THREADS=1 and =2);
the book's experiment per epoch; with --before, the project's times against an earlier run (e.g. today's AVX2 kernels
against tomorrow's run with DEEPRNN_FAST_CPU_ISA=avx2); the masked and dropout steps against Keras' and against the
project's plain step, with their targets (modifier_results.py reads those records); then the issue's targets. With
--write FILE it replaces the text between the markers BEGIN_MARKER and END_MARKER of FILE instead of printing. Needs
neither TensorFlow nor pytest.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import modifier_results  # noqa: E402
from modifier_steps import DROPOUT_VARIANT, KERAS_IMPL, MASKED_VARIANTS, PLAIN, PROJECT_IMPL, VARIANTS  # noqa: E402
import results as results_module  # noqa: E402
from results import CELL_NAMES, CELLS  # noqa: E402

BEGIN_MARKER = "<!-- report.py: begin -->"
END_MARKER = "<!-- report.py: end -->"

# The targets (CPU). Training step, both cells: the project at least this many times as fast as the fastest
# peer of its cell, and at least PEAK_FRACTION of the measured FMA peak; thread scaling (time at 1 thread / time at
# every core) at least SCALING; the book's epoch at least EPOCH_SPEEDUP times as fast as Keras' and PyTorch's; a
# step's peak memory no higher than the Keras stack's of the same cell.
SPEEDUP_OVER_FASTEST_PEER = {"seed": 2.0, "small": 1.3, "wide": 1.3}
PEAK_FRACTION, PEAK_FRACTION_CONFIGS = 0.65, ("small", "wide")
SCALING, SCALING_CONFIGS = 1.8, ("small", "wide")
EPOCH_SPEEDUP, EPOCH_PEERS = 2.5, ("keras", "torch")
TARGET_CELLS = ("tanh", "gru")  # the LSTM joins the targets once it is timed
KERAS_STACK = {"tanh": "keras_simplernn", "gru": "keras_gru", "lstm": "keras_lstm"}
# Masks and dropout (issue 13): the project's masked and dropout steps at least this many times as fast as the Keras
# stack's on these configurations, and its step with a mask or dropout no more than 15 % slower than its plain one.
MODIFIER_SPEEDUP, MODIFIER_SPEEDUP_CONFIGS = 5.0, ("seed", "small")
MODIFIED_OVER_PLAIN = 1.15
MODIFIER_TARGET_CELLS = ("tanh", "gru")  # the "both cells"; the LSTM's rows join where it was timed


def fmt(value, digits=1, suffix=""):
    return "—" if value is None else f"{value:.{digits}f}{suffix}"


def percent(fraction):
    return fmt(None if fraction is None else 100 * fraction, 0, " %")


def ratio(numerator, denominator):
    return None if numerator is None or denominator is None or denominator == 0 else numerator / denominator


def table(header, rows):
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)] + \
        ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def median_s(row, threads):
    timing = row and row.timings.get(threads)
    return timing.median_s if timing else None


def fraction_of_peak(results, row, threads):
    """The row's FLOP rate over the peak of the set the project's kernels ran on, at the same thread count."""
    peak = results.peak(row.kernel_isa, threads) if row.kernel_isa else None
    seconds = median_s(row, threads)
    return None if peak is None or seconds is None else row.flops / seconds / (peak * 1e9)


def fastest_peer(config, cell, threads):
    timed = [r for r in config.cell_rows(cell) if not r.is_project and median_s(r, threads) is not None]
    return min(timed, key=lambda r: median_s(r, threads)) if timed else None


# ----------------------------------------------------------------------------------------------------------------
# Sections.

def machine_section(results):
    threads = results.main_threads()
    lines = ["### Machine and FMA peak", ""]
    if len(results.cpu_models) > 1:
        lines += [f"**Warning: these files come from different CPUs ({', '.join(results.cpu_models)}); ratios "
                  "between them mean little.**", ""]
    isas = results.kernel_isas()
    kernel = ", ".join(isas) if isas else "unknown (no record names it: run with the compiled library built)"
    lines.append(f"The project's CPU kernels ran on **{kernel}** (`deeprnn_fast._kernels.cpu_isa()`); "
                 "\"% of peak\" below is a case's FLOP rate over that set's measured peak at the same thread count "
                 "(`fma_peak.py`: independent multiply-add chains in registers, float32, 2 FLOPs per lane each).")
    lines.append("")
    if not results.peaks and not results.peak_skipped:
        return lines + ["No FMA-peak record in these files (`benchmarks/test_bench_peak.py` makes one): no "
                        "fraction of peak.", ""]
    counts = sorted({t for measured in results.peaks.values() for t in measured} | ({threads} if threads else set()))
    rows = []
    for isa in ("avx512f", "avx2+fma", "sse2"):
        name = f"**{isa}** (project kernels)" if isa in isas else isa
        if isa in results.peaks:
            rows.append([name] + [fmt(results.peak(isa, t)) for t in counts])
        elif isa in results.peak_skipped:
            rows.append([name] + [f"skipped: {results.peak_skipped[isa]}"] + ["—"] * (len(counts) - 1))
    lines += table(["instruction set"] + [f"GFLOP/s, {t} thread{'s' if t > 1 else ''}" for t in counts], rows)
    best = max(results.peaks, key=lambda isa: results.peak(isa, threads) or 0.0, default=None)
    kernel_peak = max((results.peak(isa, threads) or 0.0 for isa in isas), default=0.0)
    if best is not None and best not in isas and kernel_peak and threads:
        lines += ["", f"The machine's widest set, {best}, peaks at {results.peak(best, threads):.0f} GFLOP/s on "
                      f"{threads} threads: kernels on {', '.join(isas)} can use at most "
                      f"{kernel_peak / results.peak(best, threads):.0%} of it."]
    return lines + [""]


def config_section(results, config, threads):
    s = config.shape
    lines = [f"### {config.name}: B={s['batch']}, T={s['time']}, D={s['features']}, H={s['hidden']}, "
             f"L={s['layers']}, {threads} thread{'s' if threads > 1 else ''}", ""]
    rows = []
    for cell in CELLS:
        project = config.project(cell)
        for row in config.cell_rows(cell):
            seconds = median_s(row, threads)
            timing = row.timings.get(threads)
            name = f"**{row.implementation}**" if row.is_project else row.implementation
            rows.append([
                CELL_NAMES[cell], name, fmt(seconds and seconds * 1e3), fmt(timing and timing.min_s * 1e3),
                f"{row.flops / 1e9:.2f}", fmt(seconds and row.flops / seconds / 1e9),
                percent(fraction_of_peak(results, row, threads)),
                fmt(ratio(seconds, median_s(project, threads)), 2, "x"),
                fmt(row.step_peak_mib), fmt(ratio(row.step_peak_mib, project and project.step_peak_mib), 2, "x"),
                fmt(row.first_step_peak_mib)])
    lines += table(["cell", "implementation", "median ms", "min ms", "GFLOP", "GFLOP/s", "% of peak",
                    "project speed-up", "step peak MiB", "memory / project", "first-step peak MiB"], rows)
    return lines + [""]


def fastest_peer_section(results, threads):
    rows = []
    for config in results.configs.values():
        for cell in CELLS:
            project, peer = config.project(cell), fastest_peer(config, cell, threads)
            if project is None or median_s(project, threads) is None:
                continue
            project_s = median_s(project, threads)
            rows.append([config.name, CELL_NAMES[cell], project.implementation, fmt(project_s * 1e3),
                         percent(fraction_of_peak(results, project, threads)),
                         peer.implementation if peer else "—", fmt(peer and median_s(peer, threads) * 1e3),
                         fmt(ratio(median_s(peer, threads), project_s), 2, "x")])
    if not rows:
        return []
    return ["### The project against the fastest peer of its cell", ""] + table(
        ["config", "cell", "project", "median ms", "% of peak", "fastest peer", "its median ms", "speed-up"],
        rows) + [""]


def scaling_section(results):
    counts = results.thread_counts()
    if len(counts) < 2:
        return ["Thread scaling: one thread count in these files; merge a `DEEPRNN_FAST_BENCH_THREADS=1` run "
                "with a run on every core to see it.", ""]
    low, high = counts[0], counts[-1]
    rows = []
    for config in results.configs.values():
        for cell in CELLS:
            for row in config.cell_rows(cell):
                a, b = median_s(row, low), median_s(row, high)
                if a is None and b is None:
                    continue
                name = f"**{row.implementation}**" if row.is_project else row.implementation
                rows.append([config.name, CELL_NAMES[cell], name, fmt(a and a * 1e3), fmt(b and b * 1e3),
                             fmt(ratio(a, b), 2, "x")])
    return [f"### Thread scaling: {low} against {high} threads", "",
            f"Scaling = median time at {low} thread{'s' if low > 1 else ''} / at {high}; {high / low:g}x would be "
            "perfect.", ""] + table(["config", "cell", "implementation", f"ms, {low} thread{'s' if low > 1 else ''}",
                                     f"ms, {high} threads", "scaling"], rows) + [""]


def epoch_section(results):
    if not results.epochs:
        return []
    rows = []
    for (cell, implementation), row in results.epochs.items():
        project = results.epochs.get((cell, "fused"))
        name = f"**{implementation}**" if row.role == "project" else implementation
        rows.append([CELL_NAMES.get(cell, cell), name, f"{row.median_s:.3f}", row.epochs - 1,
                     f"{row.train_ppl[-1]:.2f}", f"{row.val_ppl[-1]:.2f} / {min(row.val_ppl):.2f}",
                     fmt(ratio(row.median_s, project and project.median_s), 2, "x")])
    sources = sorted({row.data for row in results.epochs.values()})
    return ["### The book's experiment: seconds per epoch", "",
            "`deeprnn-fast train` defaults (2 layers, 32 hidden, batch 1024, SGD lr 2, clipping 1, 10 training + 5 "
            "validation batches an epoch), a few epochs per case: median seconds of an epoch (training and "
            "validation) over all but the first, which traces. PyTorch: the same model with `nn.RNN` / `nn.GRU` "
            f"(`benchmarks/book_epochs.py`). Text: {'; '.join(sources)}. Perplexities after these few epochs only "
            "show that each model learns (the 100-epoch figures are in the top-level README).", ""] + table(
        ["cell", "implementation", "s / epoch (median)", "epochs timed", "train ppl (last)", "val ppl (last / best)",
         "fused speed-up"], rows) + [""]


def before_section(results, before, threads):
    rows = []
    for config in results.configs.values():
        old_config = before.configs.get(config.name)
        for row in config.rows.values():
            old = old_config and old_config.rows.get(row.implementation)
            if not row.is_project or old is None:
                continue
            for t in sorted(set(row.timings) & set(old.timings)):
                rows.append([config.name, row.implementation, t, old.kernel_isa or "?", row.kernel_isa or "?",
                             fmt(median_s(old, t) * 1e3), fmt(median_s(row, t) * 1e3),
                             fmt(ratio(median_s(old, t), median_s(row, t)), 2, "x")])
    lines = ["### Before and after", "", "Runs before: " + "; ".join(before.runs) + ".", "",
             "Speed-up = median before / median after: 1.00x or more is no slower."]
    return lines + [""] + table(["config", "implementation", "threads", "kernels before", "kernels after",
                                 "ms before", "ms after", "speed-up"], rows) + [""]


def _modifier_ms(row, threads):
    seconds = row and row.median_s.get(threads)
    return seconds and seconds * 1e3


def modifier_section(modifiers):
    """Per configuration and cell: each variant's project and Keras medians, Keras / project, and the project's
    time over its plain (no mask, no dropout) step; then the section's targets."""
    threads = modifier_results.main_threads(modifiers)
    if threads is None:
        return []
    lines = ["### Masks and dropout", "",
             "Training step as above, with `mask=` (bool [B, T]: \"lengths\" = random lengths in [T/2, T], "
             "right-padded; \"holes\" = about 20 % of the steps off anywhere) and y times the mask in the loss, or "
             "with `dropout=0.2, recurrent_dropout=0.2, training=True`; \"plain\" = the project's step with neither. "
             "Keras = `keras.layers.RNN([SimpleRNNCell | GRUCell | LSTMCell] * L)` with the same rates. "
             f"{threads} thread{'s' if threads > 1 else ''}. A project time marked (fallback) was taken while the "
             "layer ran its step-by-step loop instead of the fused op (`benchmarks/test_bench_modifiers.py`).", ""]
    for config in modifiers.values():
        s = config.shape
        for cell in config.cells():
            plain = config.get(cell, PLAIN, PROJECT_IMPL)
            rows = []
            for variant in VARIANTS:
                project, keras = config.get(cell, variant, PROJECT_IMPL), config.get(cell, variant, KERAS_IMPL)
                if project is None and keras is None:
                    continue
                project_ms = _modifier_ms(project, threads)
                note = " (fallback)" if project and project.fallbacks else ""
                rows.append([variant, fmt(project_ms) + (note if project_ms is not None else ""),
                             fmt(_modifier_ms(keras, threads)),
                             fmt(ratio(_modifier_ms(keras, threads), project_ms), 2, "x"),
                             fmt(ratio(project_ms, _modifier_ms(plain, threads)), 2, "x")])
            lines += [f"#### {config.name}, {CELL_NAMES.get(cell, cell)}: B={s['batch']}, T={s['time']}, "
                      f"D={s['features']}, H={s['hidden']}, L={s['layers']}", ""]
            lines += table(["variant", "project median ms", "Keras median ms", "Keras / project",
                            "project / plain project"], rows) + [""]
    lines += ["#### Targets (masks and dropout)", ""]
    return lines + table(["target", "measured", "verdict"], modifier_target_rows(modifiers, threads)) + [""]


def modifier_target_rows(modifiers, threads):
    """(target, measured, verdict) rows: >= MODIFIER_SPEEDUP x Keras for every variant on MODIFIER_SPEEDUP_CONFIGS,
    and every masked and dropout project step <= MODIFIED_OVER_PLAIN x the plain one on every configuration run."""
    timed_cells = {cell for c in modifiers.values() for cell in c.cells()}
    cells = MODIFIER_TARGET_CELLS + tuple(c for c in CELLS if c not in MODIFIER_TARGET_CELLS and c in timed_cells)
    rows = []
    for name in MODIFIER_SPEEDUP_CONFIGS:
        config = modifiers.get(name)
        for cell in cells:
            for variant in MASKED_VARIANTS + (DROPOUT_VARIANT,):
                project = config and config.get(cell, variant, PROJECT_IMPL)
                keras = config and config.get(cell, variant, KERAS_IMPL)
                value = ratio(_modifier_ms(keras, threads), _modifier_ms(project, threads))
                rows.append([f"{name}, {CELL_NAMES[cell]}, {variant}: >= {MODIFIER_SPEEDUP:g}x Keras",
                             *_verdict(value, MODIFIER_SPEEDUP)])
    for name in dict.fromkeys(MODIFIER_SPEEDUP_CONFIGS + tuple(modifiers)):
        config = modifiers.get(name)
        for cell in cells:
            for variant in MASKED_VARIANTS + (DROPOUT_VARIANT,):
                project = config and config.get(cell, variant, PROJECT_IMPL)
                plain = config and config.get(cell, PLAIN, PROJECT_IMPL)
                value = ratio(_modifier_ms(project, threads), _modifier_ms(plain, threads))
                rows.append([f"{name}, {CELL_NAMES[cell]}, {variant}: project <= {MODIFIED_OVER_PLAIN:g}x "
                             "plain project", *_verdict(value, MODIFIED_OVER_PLAIN, at_most=True)])
    return rows


# ----------------------------------------------------------------------------------------------------------------
# Targets: each returns (target, measured, verdict) rows.

def _verdict(value, threshold, at_most=False):
    """(measured text, verdict) of a ratio that must be at least (at most) threshold."""
    if value is None:
        return "—", "not run"
    met = value <= threshold if at_most else value >= threshold
    return f"{value:.2f}x", "met" if met else "**not met**"


def target_rows(results, threads, before=None):
    rows = []
    cells = TARGET_CELLS + tuple(c for c in CELLS if c not in TARGET_CELLS and any(
        config.project(c) and config.project(c).timings for config in results.configs.values()))
    for name, factor in SPEEDUP_OVER_FASTEST_PEER.items():
        config = results.configs.get(name)
        for cell in cells:
            project = config and config.project(cell)
            peer = config and fastest_peer(config, cell, threads)
            value = ratio(median_s(peer, threads), median_s(project, threads)) if project and peer else None
            who = f" ({peer.implementation})" if peer else ""
            rows.append([f"{name}, {CELL_NAMES[cell]}: >= {factor:g}x the fastest peer{who}",
                         *_verdict(value, factor)])
    for name in PEAK_FRACTION_CONFIGS:
        config = results.configs.get(name)
        for cell in cells:
            project = config and config.project(cell)
            fraction = fraction_of_peak(results, project, threads) if project else None
            rows.append([f"{name}, {CELL_NAMES[cell]}: >= {PEAK_FRACTION:.0%} of the FMA peak",
                         percent(fraction),
                         "not run" if fraction is None else "met" if fraction >= PEAK_FRACTION else "**not met**"])
    counts = results.thread_counts()
    for name in SCALING_CONFIGS:
        config = results.configs.get(name)
        for cell in cells:
            project = config and config.project(cell)
            value = ratio(median_s(project, counts[0]), median_s(project, counts[-1])) \
                if project and len(counts) > 1 else None
            rows.append([f"{name}, {CELL_NAMES[cell]}: thread scaling >= {SCALING:g}x", *_verdict(value, SCALING)])
    for cell in TARGET_CELLS:
        project = results.epochs.get((cell, "fused"))
        for peer_name in EPOCH_PEERS:
            peer = results.epochs.get((cell, peer_name))
            value = ratio(peer and peer.median_s, project and project.median_s)
            rows.append([f"book's epoch, {CELL_NAMES[cell]}: fused >= {EPOCH_SPEEDUP:g}x {peer_name}",
                         *_verdict(value, EPOCH_SPEEDUP)])
    for config in results.configs.values():
        for cell in cells:
            project, keras = config.project(cell), config.rows.get(KERAS_STACK[cell])
            value = ratio(project and project.step_peak_mib, keras and keras.step_peak_mib)
            rows.append([f"{config.name}, {CELL_NAMES[cell]}: step peak memory <= {KERAS_STACK[cell]}'s",
                         *_verdict(value, 1.0, at_most=True)])
    if before is not None:
        for config in results.configs.values():
            for row in config.rows.values():
                old = before.configs.get(config.name) and before.configs[config.name].rows.get(row.implementation)
                if row.is_project and old is not None:
                    value = ratio(median_s(old, threads), median_s(row, threads))
                    rows.append([f"{config.name}, {row.implementation}: no slower than before", *_verdict(value, 1.0)])
    return rows


def report(results, before=None, modifiers=None):
    threads = results.main_threads()
    lines = ["Runs: " + "; ".join(results.runs) + ".", "",
             "Training step = forward + backward, loss = sum(y^2) over the top layer's output sequence, gradients "
             "w.r.t. all weights (not the inputs); float32; TensorFlow cases inside one `tf.function`, PyTorch "
             "eager. Time = median over the timed rounds. GFLOP = the step's matrix-product work for its cell "
             "(GRU 3x, LSTM 4x the tanh RNN's). Project speed-up = this row's time / its cell's project's (above 1: "
             "the project is faster). Step peak = a training step's peak RSS above the process's before the case "
             "built anything (libraries imported, inputs made; fresh process per case, "
             "`benchmarks/peak_memory.py`): weights, compiled step, the step's tensors and what allocators keep "
             "pooled; first-step peak = RSS growth during the first call, tracing included.", ""]
    if not any(r.implementation.startswith("torch") for c in results.configs.values() for r in c.rows.values()):
        lines += ["PyTorch peers: not in these files (skipped: torch not installed, `pip install .[bench]` / "
                  "`torch==2.13.0`; or deselected).", ""]
    lines += machine_section(results)
    if threads is not None:
        for config in results.configs.values():
            lines += config_section(results, config, threads)
        lines += fastest_peer_section(results, threads)
        lines += scaling_section(results)
    lines += epoch_section(results)
    if before is not None and threads is not None:
        lines += before_section(results, before, threads)
    if modifiers:
        lines += modifier_section(modifiers)
    lines += ["### Targets", ""] + table(["target", "measured", "verdict"], target_rows(results, threads, before))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="pytest-benchmark JSON files (--benchmark-json)")
    parser.add_argument("--before", action="append", metavar="JSON",
                        help="an earlier run to compare the project's times with (repeatable)")
    parser.add_argument("--write", metavar="FILE",
                        help=f"replace the text between {BEGIN_MARKER} and {END_MARKER} in FILE instead of printing")
    args = parser.parse_args(argv)
    results = results_module.load(args.results)
    modifiers = modifier_results.load(args.results)
    if not results.configs and not results.epochs and not modifiers:
        raise SystemExit(f"no benchmark records of kind train_step, peak_memory, epoch or modifier_step in "
                         f"{args.results}")
    before = results_module.load(args.before) if args.before else None
    text = report(results, before, modifiers)
    if args.write:
        write_between_markers(args.write, text)
    else:
        print(text)


def write_between_markers(path, text):
    try:
        with open(path) as f:
            content = f.read()
    except OSError as e:
        raise SystemExit(f"cannot read {path}: {e.strerror or e}") from None
    begin, end = content.find(BEGIN_MARKER), content.find(END_MARKER)
    if begin < 0 or end < begin:
        raise SystemExit(f"{path} must contain the lines {BEGIN_MARKER} and then {END_MARKER}; the report goes "
                         "between them")
    head = content[:begin + len(BEGIN_MARKER)]
    # Written beside the file and renamed over it, so that a failure never leaves a half-written README.
    partial = Path(f"{path}.partial")
    partial.write_text(f"{head}\n{text}\n{content[end:]}")
    partial.replace(path)


if __name__ == "__main__":
    main()
