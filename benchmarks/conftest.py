"""Shared set-up of the benchmarks: the cases (configuration x implementation), their data, and a guard that keeps
them out of runs that did not ask for them.

Every test that takes a `case` argument runs once per configuration in $DEEPRNN_FAST_BENCH_CONFIGS (default: all,
see workloads.py) and per implementation in train_steps.IMPLEMENTATIONS, with ids "<config>-<implementation>"
(select with -k, e.g. -k "seed and keras"). Timed rounds: $DEEPRNN_FAST_BENCH_ROUNDS (default 5). Threads:
$DEEPRNN_FAST_BENCH_THREADS (default: the libraries' own, every core), applied to TensorFlow here, before it runs
anything, and to PyTorch by its builders (machine.py).
"""
import os
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))  # workloads, train_steps: plain modules the memory subprocess shares

import machine  # noqa: E402
import train_steps  # noqa: E402
import workloads  # noqa: E402

# TensorFlow's thread pools are sized when it runs its first operation: now, while nothing has run yet.
machine.apply_to_tensorflow()

ROUNDS_ENV = "DEEPRNN_FAST_BENCH_ROUNDS"


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        cases = train_steps.cases(workloads.selected_configs())
        metafunc.parametrize("case", [(config, implementation) for _, config, implementation in cases],
                             ids=[case_id for case_id, _, _ in cases])


def _names_benchmarks(arg):
    path = Path(str(arg).split("::")[0]).resolve()
    return path == BENCHMARKS or BENCHMARKS in path.parents


def pytest_collection_modifyitems(config, items):
    # The benchmarks take minutes: run them only when benchmarks/ (or a file in it) is on the command line, never
    # as part of a plain `pytest` from the repository root.
    if any(_names_benchmarks(arg) for arg in config.args):
        return
    skip = pytest.mark.skip(reason="benchmarks run only when benchmarks/ is named on the command line")
    for item in items:
        if BENCHMARKS in Path(item.path).resolve().parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def rounds():
    text = os.environ.get(ROUNDS_ENV, "5")
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{ROUNDS_ENV} must be a positive integer; got {text!r}")
    return int(text)


@pytest.fixture
def inputs(case):
    """Inputs [B, T, D] float32 of the case's configuration, from a fixed seed."""
    config, _ = case
    return workloads.make_inputs(config)


@pytest.fixture
def record_case(benchmark, case):
    """Returns record(kind): names the benchmark's group and stores in extra_info what report.py needs to rebuild
    the tables from a --benchmark-json file alone. Call it after the case is built, so that a PyTorch case records
    torch's version."""
    config, implementation = case

    def record(kind):
        benchmark.group = f"{kind} {config.name} ({config.describe()})"
        benchmark.extra_info.update(machine.record(
            kind=kind,
            config=config.name,
            shape={"batch": config.batch, "time": config.time, "features": config.features,
                   "hidden": config.hidden, "layers": config.layers},
            implementation=implementation.name,
            role=implementation.role,
            cell=implementation.cell,
            framework=implementation.framework,
            train_step_flops=config.train_step_flops(implementation.cell),
        ))

    return record
