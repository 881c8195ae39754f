"""Peak memory of one training step per configuration x implementation, each measured in a fresh process by
peak_memory.py (see there for the method).

The figures go to the benchmark's extra_info (baseline_mib, step_peak_mib, step_peak_growth_mib, step_peak_growths_mib,
first_step_peak_growth_mib, built_mib), which report.py reads; the time pytest-benchmark records for these cases is
the subprocess's wall time (TensorFlow's import included) and is no speed figure.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import train_steps

PEAK_MEMORY_SCRIPT = Path(__file__).resolve().with_name("peak_memory.py")
TIMEOUT_S = 900


def measure_in_subprocess(config, implementation):
    # The child imports what this process imports (deeprnn_fast from the checkout under `python -m pytest`).
    path = [str(Path(p).resolve()) for p in sys.path]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    completed = subprocess.run([sys.executable, str(PEAK_MEMORY_SCRIPT), config.name, implementation.name],
                               capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    if completed.returncode != 0:
        raise RuntimeError(f"{PEAK_MEMORY_SCRIPT.name} {config.name} {implementation.name} failed with exit status "
                           f"{completed.returncode}:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_peak_memory(benchmark, case, record_case):
    config, implementation = case
    try:
        implementation.check_available()  # a case that would skip starts no process
    except train_steps.Unavailable as e:
        pytest.skip(str(e))
    record_case("peak_memory")
    result = benchmark.pedantic(measure_in_subprocess, args=(config, implementation), rounds=1, iterations=1)
    if "skipped" in result:
        pytest.skip(result["skipped"])
    benchmark.extra_info.update({k: v for k, v in result.items() if k.endswith("_mib") or k in ("note", "torch")})
    assert result["first_step_peak_growth_mib"] > 0, "a step that allocates nothing was not measured"
