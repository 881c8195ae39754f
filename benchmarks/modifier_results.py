"""The masked and dropout training-step records (extra_info["kind"] == "modifier_step", test_bench_modifiers.py) of
one or more pytest-benchmark JSON files, gathered for report.py's "Masks and dropout" section. Kept apart from
results.py because these cases are keyed by variant as well as implementation. Needs neither TensorFlow nor pytest.
"""
import sys
from dataclasses import dataclass, field
from typing import Dict, List

from results import read_benchmark_file

MODIFIER_STEP = "modifier_step"


@dataclass
class ModifierRow:
    cell: str
    variant: str
    implementation: str
    role: str
    median_s: Dict[int, float] = field(default_factory=dict)  # threads -> median seconds of a step
    fallbacks: List[str] = field(default_factory=list)         # the layer's fallback warnings while tracing


@dataclass
class ModifierConfig:
    name: str
    shape: dict
    rows: Dict[tuple, ModifierRow] = field(default_factory=dict)  # (cell, variant, implementation) -> row

    def get(self, cell, variant, implementation):
        return self.rows.get((cell, variant, implementation))

    def cells(self):
        return list(dict.fromkeys(cell for cell, _, _ in self.rows))


def load(paths):
    """{config name: ModifierConfig} of every modifier_step record in `paths`, in run order."""
    configs = {}
    for path in paths:
        _, benchmarks = read_benchmark_file(path)
        for bench in benchmarks:
            info = bench.get("extra_info", {})
            if info.get("kind") != MODIFIER_STEP:
                continue
            try:
                _add(configs, path, bench, info)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise SystemExit(f"{path}: the {MODIFIER_STEP} record {bench.get('name', '?')!r} is incomplete or "
                                 f"damaged ({type(e).__name__}: {e}); expected one written by "
                                 "benchmarks/test_bench_modifiers.py") from None
    return configs


def _add(configs, path, bench, info):
    config = configs.setdefault(info["config"], ModifierConfig(info["config"], dict(info["shape"])))
    key = (info["cell"], info["variant"], info["implementation"])
    row = config.rows.setdefault(key, ModifierRow(*key, role=info["role"]))
    threads = info.get("threads") or info.get("cpu_count") or 1
    if threads in row.median_s:
        print(f"warning: {bench['name']} at {threads} thread(s) appears more than once; keeping the last ({path})",
              file=sys.stderr)
    row.median_s[threads] = float(bench["stats"]["median"])
    row.fallbacks = list(info.get("fallbacks") or row.fallbacks)


def main_threads(configs):
    """The largest thread count timed (normally every core), or None when there is no record."""
    counts = {t for c in configs.values() for r in c.rows.values() for t in r.median_s}
    return max(counts) if counts else None
