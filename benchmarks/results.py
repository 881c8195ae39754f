"""The records of one or more pytest-benchmark JSON files (--benchmark-json), gathered for report.py.

Four kinds of record, told apart by extra_info["kind"]: "train_step" (test_bench_train_step.py), "peak_memory"
(test_bench_memory.py), "fma_peak" (test_bench_peak.py) and "epoch" (test_bench_epoch.py). Train steps are kept per
thread count (extra_info["threads"]), so that a 1-thread and a 2-thread run merge into one set of rows with both
timings. Files written before the records named their cell and threads still load: the cell is read from the
implementation's name and the threads are taken to be every core (TensorFlow's default pools). Needs neither
TensorFlow nor pytest.
"""
import json
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from fma_peak import isa_of_kernels

TRAIN_STEP, PEAK_MEMORY, FMA_PEAK, EPOCH = "train_step", "peak_memory", "fma_peak", "epoch"
PROJECT = "project"
CELLS = ("tanh", "gru", "lstm")
CELL_NAMES = {"tanh": "tanh RNN", "gru": "GRU", "lstm": "LSTM"}


def cell_of(info):
    if info.get("cell"):
        return info["cell"]
    name = info.get("implementation", "")
    return "gru" if "gru" in name else "lstm" if "lstm" in name else "tanh"


def threads_of(info):
    return info.get("threads") or info.get("cpu_count") or 1


@dataclass
class Timing:
    median_s: float
    min_s: float
    rounds: int


@dataclass
class Row:
    implementation: str
    role: str
    cell: str
    flops: int
    kernel_isa: Optional[str] = None  # the probe's name of the set the project's kernels ran on in that run
    timings: Dict[int, Timing] = field(default_factory=dict)  # threads -> timing
    step_peak_mib: Optional[float] = None
    first_step_peak_mib: Optional[float] = None

    @property
    def is_project(self):
        return self.role == PROJECT


@dataclass
class ConfigResults:
    name: str
    shape: dict
    rows: Dict[str, Row] = field(default_factory=dict)  # implementation -> Row, in run order

    def cell_rows(self, cell):
        return [r for r in self.rows.values() if r.cell == cell]

    def project(self, cell):
        return next((r for r in self.cell_rows(cell) if r.is_project), None)


@dataclass
class EpochRow:
    cell: str
    implementation: str
    role: str
    median_s: float
    epochs: int
    train_ppl: List[float]
    val_ppl: List[float]
    data: str


@dataclass
class Results:
    configs: Dict[str, ConfigResults] = field(default_factory=dict)
    runs: List[str] = field(default_factory=list)           # one description per file
    peaks: Dict[str, Dict[int, float]] = field(default_factory=dict)  # probe ISA -> threads -> best GFLOP/s
    peak_skipped: Dict[str, str] = field(default_factory=dict)        # probe ISA -> why it was not measured
    cpu_models: List[str] = field(default_factory=list)
    epochs: Dict[tuple, EpochRow] = field(default_factory=dict)       # (cell, implementation) -> row

    def thread_counts(self):
        return sorted({t for c in self.configs.values() for r in c.rows.values() for t in r.timings})

    def main_threads(self):
        """The thread count the main tables show: the largest timed (normally every core)."""
        counts = self.thread_counts()
        return counts[-1] if counts else None

    def peak(self, isa, threads):
        return self.peaks.get(isa, {}).get(threads)

    def kernel_isas(self):
        return sorted({r.kernel_isa for c in self.configs.values() for r in c.rows.values() if r.kernel_isa})


def _warn(text):
    print(f"warning: {text}", file=sys.stderr)


def read_benchmark_file(path):
    """(the whole JSON, its 'benchmarks' list) of a pytest-benchmark file; a one-line SystemExit otherwise."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit(f"cannot read {path} as a pytest-benchmark JSON file: {e}") from None
    benchmarks = data.get("benchmarks") if isinstance(data, dict) else None
    if not isinstance(benchmarks, list):
        raise SystemExit(f"{path} is not a pytest-benchmark JSON file (no 'benchmarks' list)")
    return data, benchmarks


def load(paths):
    results = Results()
    for path in paths:
        data, benchmarks = read_benchmark_file(path)
        results.runs.append(describe_run(path, data))
        for bench in benchmarks:
            info = bench.get("extra_info", {})
            if info.get("cpu_model") and info["cpu_model"] not in results.cpu_models:
                results.cpu_models.append(info["cpu_model"])
            kind = info.get("kind")
            try:
                if kind in (TRAIN_STEP, PEAK_MEMORY):
                    _add_case(results, path, bench, info)
                elif kind == FMA_PEAK:
                    _add_peak(results, info)
                elif kind == EPOCH:
                    _add_epoch(results, path, info)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise SystemExit(f"{path}: the {kind} record {bench.get('name', '?')!r} is incomplete or damaged "
                                 f"({type(e).__name__}: {e}); expected one written by benchmarks/test_bench_*.py") \
                    from None
    return results


def _add_case(results, path, bench, info):
    config = results.configs.setdefault(info["config"], ConfigResults(info["config"], info["shape"]))
    cell = cell_of(info)
    # Older records counted the tanh RNN's FLOPs for every cell; the factors are workloads.CELL_FLOP_FACTORS.
    flops = info["train_step_flops"] if info.get("cell") else info["train_step_flops"] * {"tanh": 1, "gru": 3,
                                                                                          "lstm": 4}[cell]
    row = config.rows.setdefault(info["implementation"], Row(info["implementation"], info["role"], cell, flops))
    if info["kind"] == TRAIN_STEP:
        # The set the timed kernels ran on (a memory record from another machine, read with them, does not say).
        row.kernel_isa = isa_of_kernels(info.get("kernel_isa")) or row.kernel_isa
        threads = threads_of(info)
        if threads in row.timings:
            _warn(f"{bench['name']} at {threads} thread(s) appears more than once; keeping the last ({path})")
        stats = bench["stats"]
        row.timings[threads] = Timing(stats["median"], stats["min"], stats["rounds"])
    else:
        # Records before 2026-12-02 have only the growth over the step's start, which misses pooled memory
        # (peak_memory.py): they give no step peak rather than that figure under its name.
        row.step_peak_mib = info.get("step_peak_mib")
        row.first_step_peak_mib = info.get("first_step_peak_growth_mib")


def _add_peak(results, info):
    """Several probes (one per file) merge into the best figure per set and thread count: a peak is a maximum."""
    for isa, measured in info.get("isas", {}).items():
        if "gflops" not in measured:
            results.peak_skipped.setdefault(isa, measured.get("skipped", "not measured"))
            continue
        best = results.peaks.setdefault(isa, {})
        for threads, gflops in measured["gflops"].items():
            best[int(threads)] = max(best.get(int(threads), 0.0), gflops)
        results.peak_skipped.pop(isa, None)


def _add_epoch(results, path, info):
    key = (info["cell"], info["implementation"])
    if key in results.epochs:
        _warn(f"the epoch case {key} appears more than once; keeping the last ({path})")
    results.epochs[key] = EpochRow(info["cell"], info["implementation"], info["role"],
                                   info["seconds_per_epoch_median"], info["epochs"], info["train_ppl"],
                                   info["val_ppl"], info.get("data", "?"))


def describe_run(path, data):
    machine = data.get("machine_info", {})
    cpu = machine.get("cpu", {})
    records = [b.get("extra_info", {}) for b in data.get("benchmarks", [])]
    first = next((r for r in records if "tensorflow" in r), {})
    model = first.get("cpu_model") or cpu.get("brand_raw") or machine.get("processor") or "unknown CPU"
    parts = [f"`{path}`", data.get("datetime", "unknown date"), f"{model}, {cpu.get('count', '?')} cores"]
    flags = first.get("isa_flags")
    if flags:
        parts.append("flags " + " ".join(f"{name}:{'yes' if present else 'no'}" for name, present in flags.items()))
    if first.get("kernel_isa"):
        forced = f" ({first['forced_isa']} forced)" if first.get("forced_isa") else ""
        parts.append(f"project kernels {first['kernel_isa']}{forced}")
    threads = sorted({threads_of(r) for r in records if r.get("kind") == TRAIN_STEP})
    if threads:
        parts.append(f"{'/'.join(map(str, threads))} thread(s)")
    parts.append(f"Python {machine.get('python_version', '?')}")
    versions = f"TensorFlow {first.get('tensorflow', '?')}, Keras {first.get('keras', '?')}"
    torch = next((r["torch"] for r in records if r.get("torch")), None)
    parts.append(versions + (f", PyTorch {torch}" if torch else ", no PyTorch"))
    commit = data.get("commit_info", {})
    if all(c in "0123456789abcdef" for c in commit.get("id") or "x"):  # not "unversioned" or "unknown"
        parts.append(f"commit {commit['id'][:10]}{' (dirty)' if commit.get('dirty') else ''}")
    return ", ".join(parts)
