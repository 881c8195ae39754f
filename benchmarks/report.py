"""Markdown tables of a benchmark run, for benchmarks/README.md.

    .venv/bin/python benchmarks/report.py RESULTS.json [MORE.json ...] [--baseline NAME ...] [--write README.md]

Reads the files pytest-benchmark writes with --benchmark-json (from test_bench_train_step.py and
test_bench_memory.py, one run or several), and prints per configuration the median time of a training step and the
peak memory of each implementation, with ratios peer / baseline (by default: against every implementation whose
role is "project", i.e. deeprnn_fast), then the issue's targets. With --write FILE it replaces the text between the
markers BEGIN_MARKER and END_MARKER of FILE (benchmarks/README.md) instead of printing. Needs neither TensorFlow nor
pytest.
"""
import argparse
import json
import sys
from dataclasses import dataclass, field

BEGIN_MARKER = "<!-- report.py: begin -->"
END_MARKER = "<!-- report.py: end -->"
TRAIN_STEP = "train_step"
PEAK_MEMORY = "peak_memory"


@dataclass(frozen=True)
class Target:
    """`project` at least `factor` times better than `peer` on `metric` ("time" or "memory") for `config`.
    peer FASTEST_PEER means the fastest implementation of role "peer" in the run."""
    config: str
    project: str
    peer: str
    factor: float
    metric: str


FASTEST_PEER = "fastest peer"
# Issue 2 (CPU, 2 cores): >= 3x Keras' stacked SimpleRNN on seed and small, >= 1.5x the fastest peer on wide, and no
# more peak memory than Keras (its stacked SimpleRNN, the same model; the GRU stack is listed but does more work).
TARGETS = [Target("seed", "deeprnn_fast", "keras_simplernn", 3.0, "time"),
           Target("small", "deeprnn_fast", "keras_simplernn", 3.0, "time"),
           Target("wide", "deeprnn_fast", FASTEST_PEER, 1.5, "time")] + \
          [Target(c, "deeprnn_fast", "keras_simplernn", 1.0, "memory") for c in ("seed", "small", "wide")]


@dataclass
class Row:
    implementation: str
    role: str
    median_s: float = None
    min_s: float = None
    rounds: int = None
    step_peak_mib: float = None
    first_step_peak_mib: float = None


@dataclass
class ConfigResults:
    name: str
    shape: dict
    train_step_flops: int
    rows: dict = field(default_factory=dict)  # implementation -> Row, in run order


def load(paths):
    """Returns ({config name: ConfigResults} in run order, [run descriptions])."""
    configs, runs = {}, []
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        runs.append(describe_run(path, data))
        for bench in data.get("benchmarks", []):
            info = bench.get("extra_info", {})
            if info.get("kind") not in (TRAIN_STEP, PEAK_MEMORY):
                continue
            results = configs.setdefault(info["config"], ConfigResults(info["config"], info["shape"],
                                                                       info["train_step_flops"]))
            row = results.rows.setdefault(info["implementation"], Row(info["implementation"], info["role"]))
            if info["kind"] == TRAIN_STEP:
                if row.median_s is not None:
                    print(f"warning: {bench['name']} appears more than once; keeping the last ({path})",
                          file=sys.stderr)
                row.median_s, row.min_s = bench["stats"]["median"], bench["stats"]["min"]
                row.rounds = bench["stats"]["rounds"]
            else:
                row.step_peak_mib = info.get("step_peak_growth_mib")
                row.first_step_peak_mib = info.get("first_step_peak_growth_mib")
    return configs, runs


def describe_run(path, data):
    machine = data.get("machine_info", {})
    cpu = machine.get("cpu", {})
    versions = next((b["extra_info"] for b in data.get("benchmarks", []) if "tensorflow" in b.get("extra_info", {})),
                    {})
    parts = [f"`{path}`", data.get("datetime", "unknown date"),
             f"{cpu.get('brand_raw', machine.get('processor', 'unknown CPU'))}, {cpu.get('count', '?')} cores",
             f"Python {machine.get('python_version', '?')}",
             f"TensorFlow {versions.get('tensorflow', '?')}, Keras {versions.get('keras', '?')}"]
    commit = data.get("commit_info", {})
    if all(c in "0123456789abcdef" for c in commit.get("id") or "x"):  # not "unversioned" or "unknown"
        parts.append(f"commit {commit['id'][:10]}{' (dirty)' if commit.get('dirty') else ''}")
    return ", ".join(parts)


def fmt(value, digits=1, suffix=""):
    return "—" if value is None else f"{value:.{digits}f}{suffix}"


def ratio(peer, base):
    return None if peer is None or base is None or base == 0 else peer / base


def config_table(results, baselines):
    s = results.shape
    gflop = results.train_step_flops / 1e9
    lines = [f"### {results.name}: B={s['batch']}, T={s['time']}, D={s['features']}, H={s['hidden']}, "
             f"L={s['layers']} (tanh-RNN training step: {gflop:.2f} GFLOP)", ""]
    bases = [results.rows.get(b) for b in baselines]
    header = ["implementation", "median ms", "min ms", "GFLOP/s"]
    header += [f"time / {b}" for b in baselines]
    header += ["step peak MiB"] + [f"memory / {b}" for b in baselines] + ["first-step peak MiB"]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in results.rows.values():
        name = f"**{row.implementation}**" if row.role == "project" else row.implementation
        cells = [name, fmt(row.median_s and row.median_s * 1e3), fmt(row.min_s and row.min_s * 1e3),
                 fmt(row.median_s and gflop / row.median_s)]
        cells += [fmt(ratio(row.median_s, b and b.median_s), 2, "x") for b in bases]
        cells += [fmt(row.step_peak_mib)]
        cells += [fmt(ratio(row.step_peak_mib, b and b.step_peak_mib), 2, "x") for b in bases]
        cells += [fmt(row.first_step_peak_mib)]
        lines.append("| " + " | ".join(cells) + " |")
    missing = [b for b, row in zip(baselines, bases) if row is None or row.median_s is None]
    if missing:
        lines += ["", f"Not timed in this run (skipped, or deselected): {', '.join(missing)}."]
    return lines


def check_target(target, configs):
    """Returns (description, measured text, verdict)."""
    results = configs.get(target.config)
    attr = "median_s" if target.metric == "time" else "step_peak_mib"
    word = "faster than" if target.metric == "time" else "less peak memory than"
    if target.metric == "memory":
        text = f"{target.project} peak memory <= {target.peer}"
    else:
        text = f"{target.project} >= {target.factor:g}x {word} {target.peer}"
    if results is None:
        return text, "—", "not run"
    peer = target.peer
    if peer == FASTEST_PEER:
        timed = [r for r in results.rows.values() if r.role == "peer" and getattr(r, attr) is not None]
        if not timed:
            return text, "—", "not run"
        peer = min(timed, key=lambda r: getattr(r, attr)).implementation
        text = f"{text} ({peer})"
    project, other = results.rows.get(target.project), results.rows.get(peer)
    value = ratio(other and getattr(other, attr), project and getattr(project, attr))
    if value is None:
        return text, "—", "not run"
    return text, f"{value:.2f}x", "met" if value >= target.factor else "**not met**"


def report(configs, runs, baselines):
    lines = ["Runs: " + "; ".join(runs) + ".", "",
             "Training step = forward + backward inside one `tf.function`, loss = sum(y^2) over the top layer's "
             "output sequence, gradients w.r.t. all weights (not the inputs); float32; time = median over the timed "
             "rounds. Step peak = largest RSS growth during one training step (fresh process per case, see "
             "`benchmarks/peak_memory.py`); first-step peak includes tracing. Ratios are peer / baseline: above 1 "
             "means the baseline is faster (time) or needs less memory. GFLOP/s counts the tanh RNN's work for "
             "every implementation (a GRU does about 3x more).", ""]
    for results in configs.values():
        lines += config_table(results, baselines) + [""]
    lines += ["### Targets (issue 2)", "", "| config | target | measured | verdict |", "| --- | --- | --- | --- |"]
    for target in TARGETS:
        text, measured, verdict = check_target(target, configs)
        lines.append(f"| {target.config} | {text} | {measured} | {verdict} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="pytest-benchmark JSON files (--benchmark-json)")
    parser.add_argument("--baseline", action="append",
                        help="implementation to compute ratios against (repeatable; default: every implementation "
                             "of role 'project' in the results, else deeprnn_fast)")
    parser.add_argument("--write", metavar="FILE",
                        help=f"replace the text between {BEGIN_MARKER} and {END_MARKER} in FILE instead of printing")
    args = parser.parse_args(argv)
    configs, runs = load(args.results)
    if not configs:
        raise SystemExit(f"no benchmarks of kind {TRAIN_STEP!r} or {PEAK_MEMORY!r} in {args.results}")
    baselines = args.baseline or list(dict.fromkeys(
        r.implementation for c in configs.values() for r in c.rows.values() if r.role == "project")) \
        or ["deeprnn_fast"]
    text = report(configs, runs, baselines)
    if args.write:
        write_between_markers(args.write, text)
    else:
        print(text)


def write_between_markers(path, text):
    with open(path) as f:
        content = f.read()
    begin, end = content.find(BEGIN_MARKER), content.find(END_MARKER)
    if begin < 0 or end < begin:
        raise SystemExit(f"{path} must contain the lines {BEGIN_MARKER} and then {END_MARKER}; the report goes "
                         "between them")
    head = content[:begin + len(BEGIN_MARKER)]
    with open(path, "w") as f:
        f.write(f"{head}\n{text}\n{content[end:]}")


if __name__ == "__main__":
    main()
