"""The GPU check script works before a GPU ever runs it: its dry run goes through benchmarks/gpu/check.sh's every
step but the GPU calls - each phase in its own process under `timeout` (the correctness part on the CPU backend of
deeprnn_fast._kernels, every cell, dense and token inputs, with masks and dropout too; the planner's choices for the timing configurations; the
sanitizer commands; the report) - writing its results as JSON lines as they come, into at most 8 files. The CUDA
compile of the dry run (nvcc for sm_90) costs minutes on two cores: test_check_script_dry_run_with_the_cuda_compile
runs it where DEEPRNN_FAST_DRY_RUN_COMPILE=1 asks for it."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from deeprnn_fast.testing.gpu_check import CELLS, MODIFIER_VARIANTS, TIMED_CELLS, TIMING_CONFIGS, read_results

pytest.importorskip("deeprnn_fast._kernels", reason="deeprnn_fast._kernels is not built")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _dry_run(tmp_path, compile_cuda):
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path / "out"),
               DEEPRNN_GPU_CHECK_BUILD=str(tmp_path / "build"),
               DEEPRNN_GPU_CHECK_DRY_COMPILE="1" if compile_cuda else "0")
    proc = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu", "check.sh"), "--dry-run", "--quick"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900 if compile_cuda else 300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, tmp_path / "out"


def _assert_dry_run_report(proc, out):
    assert "gpu_check: PASSED" in proc.stdout
    for phase in ("timing", "correctness", "sanitizers", "report"):
        assert f"== check.sh: {phase}" in proc.stdout or phase == "report"
    assert "planner's choices" in proc.stdout and "x floor" in proc.stdout
    assert "gru B=256 H=1024 L=4" in proc.stdout and "fused GRU vs cuDNN nn.GRU" in proc.stdout
    assert "lstm B=256 H=1024 L=4" in proc.stdout and "fused LSTM vs cuDNN nn.LSTM" in proc.stdout
    # At most 8 files come back from the GPU machine.
    assert len(os.listdir(out)) <= 8, sorted(os.listdir(out))
    result = json.loads((out / "gpu_check.json").read_text())
    records = result["correctness"]
    # Every quick shape x 3 input kinds (dense float32 / float64, tokens float32) x 4 cells (tanh, relu, GRU, LSTM)
    # ran on the CPU backend and matched the oracle.
    assert len(records) == 8 * 3 * 4
    assert sum(r["activation"] == "gru" for r in records) == 8 * 3
    assert sum(r["activation"] == "lstm" for r in records) == 8 * 3
    assert sum(r["inputs"] == "tokens" for r in records) == 8 * 4
    assert all(r["status"] == "ok" for r in records), [r for r in records if r["status"] != "ok"]
    assert all(r["worst"] <= (1e-4 if r["dtype"] == "float32" else 1e-9) for r in records)
    # Masks and dropout: every cell x variant through the CPU entry points, against their float64 oracle.
    modified = result["modifiers"]
    assert len(modified) == len(CELLS) * len(MODIFIER_VARIANTS)
    assert all(r["status"] == "ok" for r in modified), [r for r in modified if r["status"] != "ok"]
    assert {(r["activation"], r["modifiers"]) for r in modified} == {(c, v[0]) for c in CELLS
                                                                     for v in MODIFIER_VARIANTS}
    assert {r["inputs"] for r in modified} == {"dense", "tokens"}
    # The JSON lines hold the same records, and one (planned) timing row per configuration and cell, first.
    lines = (out / "results.jsonl").read_text().splitlines()
    kinds = [json.loads(line)["kind"] for line in lines]
    assert kinds.index("timing") < kinds.index("correctness")
    got = read_results(str(out))
    assert len(got["correctness"]) == len(records) and len(got["modifiers"]) == len(modified)
    assert len(got["timing"]) == len(TIMING_CONFIGS) * len(TIMED_CELLS)
    assert all(r["plan_fwd"] and r["plan_bwd"] and r["T"] == 128 for r in got["timing"])
    assert (out / "gpu_check.log").read_text().count("\n") > 30


def test_check_script_dry_run(tmp_path):
    proc, out = _dry_run(tmp_path, compile_cuda=False)
    _assert_dry_run_report(proc, out)
    assert "would run" not in proc.stdout  # no self-check binary without the build: nothing for the sanitizers


@pytest.mark.skipif(os.environ.get("DEEPRNN_FAST_DRY_RUN_COMPILE") != "1",
                    reason="the dry run's CUDA compile takes minutes on two cores (DEEPRNN_FAST_DRY_RUN_COMPILE=1)")
@pytest.mark.skipif(shutil.which("nvcc") is None and not os.path.exists("/usr/local/cuda/bin/nvcc"),
                    reason="no nvcc")
def test_check_script_dry_run_with_the_cuda_compile(tmp_path):
    proc, out = _dry_run(tmp_path, compile_cuda=True)
    _assert_dry_run_report(proc, out)
    assert (out / "ptxas.txt").exists() and "registers" in (out / "ptxas.txt").read_text()
    assert "sanitizer racecheck: would run" in proc.stdout and "--sanitize" in proc.stdout


def test_a_kill_loses_no_written_result(tmp_path):
    """A torn last line (a kill in the middle of a write) is skipped; every complete record before it is kept."""
    from deeprnn_fast.testing.gpu_check import Results
    sink = Results(str(tmp_path))
    sink("timing", {"cell": "gru", "B": 1, "ours_fwd_ms": 0.5})
    sink("correctness", {"status": "ok", "worst": 1e-7})
    with open(tmp_path / "results.jsonl", "a") as f:
        f.write('{"kind": "timing", "cell": "ls')
    got = read_results(str(tmp_path))
    assert got == {"timing": [{"cell": "gru", "B": 1, "ours_fwd_ms": 0.5}],
                   "correctness": [{"status": "ok", "worst": 1e-7}]}


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
