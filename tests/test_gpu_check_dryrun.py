"""The GPU check script works before a GPU ever runs it: its dry run (the whole correctness part on the CPU backend
of deeprnn_fast._kernels, every cell, dense and token inputs; the planner's choices; the report format) runs through
benchmarks/gpu/check.sh."""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("deeprnn_fast._kernels", reason="deeprnn_fast._kernels is not built")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_check_script_dry_run(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path))
    proc = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu", "check.sh"), "--dry-run", "--quick"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "gpu_check: PASSED" in proc.stdout
    assert "planner's choices" in proc.stdout and "x floor" in proc.stdout
    assert "gru B=256 H=1024 L=8" in proc.stdout and "fused GRU vs cuDNN" in proc.stdout
    assert "lstm B=256 H=1024 L=8" in proc.stdout and "fused LSTM vs cuDNN nn.LSTM" in proc.stdout
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    records = result["correctness"]
    # Every quick shape x 3 input kinds (dense float32 / float64, tokens float32) x 4 cells (tanh, relu, GRU, LSTM)
    # ran on the CPU backend and matched the oracle.
    assert len(records) == 8 * 3 * 4
    assert sum(r["activation"] == "gru" for r in records) == 8 * 3
    assert sum(r["activation"] == "lstm" for r in records) == 8 * 3
    assert sum(r["inputs"] == "tokens" for r in records) == 8 * 4
    assert all(r["status"] == "ok" for r in records), [r for r in records if r["status"] != "ok"]
    assert all(r["worst"] <= (1e-4 if r["dtype"] == "float32" else 1e-9) for r in records)
    assert (tmp_path / "gpu_check.log").read_text().count("\n") > 30


def test_dry_run_refuses_the_cuda_backend():
    from deeprnn_fast.testing import gpu_check
    with pytest.raises(SystemExit, match="dry-run"):
        gpu_check.main(["--dry-run", "--backend", "cuda"])


def test_a_second_build_of_the_module_is_refused_in_one_process(tmp_path):
    """CPython would silently hand back the module already imported under the same name."""
    import deeprnn_fast._kernels  # noqa: F401
    from deeprnn_fast.testing import gpu_check
    with pytest.raises(SystemExit, match="already imported"):
        gpu_check.load_kernels(str(tmp_path / "_kernels.so"))
