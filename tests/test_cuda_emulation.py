"""The CUDA kernels (every cell: tanh / relu RNN, GRU, LSTM; dense and token inputs), run on the CPU: the CUDA sources
(csrc/engine/cuda, csrc/cells/*/cuda_*.cu) compiled as C++ against the CPU emulation of the CUDA runtime in
tests/cuda_emulation/ (every CUDA thread a fiber, real barriers, blocks of ordinary launches in shuffled order),
then checked against the CPU library (C++ self-check) and, through the pybind11 module's CUDA entry points, against
the float64 oracle; masks and the three dropouts likewise (the self-check's modifier cases, and gpu_check's against
the float64 oracle of them, deeprnn_fast/testing/masked_oracle.py).

Opt-in, because the build takes minutes on a 2-core machine (the runs themselves, seconds):
    DEEPRNN_FAST_EMULATION_TESTS=1 pytest tests/test_cuda_emulation.py
(add DEEPRNN_FAST_EMULATION_ASAN=1 to build the self-check with AddressSanitizer and UBSan, which also catches
out-of-bounds shared-memory accesses: each emulated block's shared memory is its own exactly-sized heap buffer).
The build is cached in build/cuda_emulation/<hash of the sources>."""
import glob
import hashlib
import json
import os
import subprocess
import sys

import pytest

from build_lock import exclusive
from deeprnn_fast.testing import gpu_check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(os.environ.get("DEEPRNN_FAST_EMULATION_TESTS") != "1",
                                reason="opt-in (minutes of CPU for the build): set DEEPRNN_FAST_EMULATION_TESTS=1")


def _build():
    asan = os.environ.get("DEEPRNN_FAST_EMULATION_ASAN") == "1"
    sources = sorted(p for p in glob.glob(f"{ROOT}/csrc/**/*", recursive=True) + glob.glob(f"{ROOT}/tests/cuda_emulation/*")
                     + [f"{ROOT}/benchmarks/gpu/build_kernels.py"] if os.path.isfile(p) and "__pycache__" not in p)
    digest = hashlib.sha256(str(asan).encode())
    for path in sources:
        with open(path, "rb") as f:
            digest.update(path.encode() + f.read())
    out = os.path.join(ROOT, "build", "cuda_emulation", digest.hexdigest()[:16])
    # Test processes running side by side (pytest -n) share the build: one builds while the others wait.
    with exclusive(out + ".lock"):
        if not glob.glob(os.path.join(out, "_kernels*.so")):
            cmd = [sys.executable, f"{ROOT}/benchmarks/gpu/build_kernels.py", "--cuda", "emulate", "--out", out]
            subprocess.run(cmd + (["--asan"] if asan else []), check=True, cwd=ROOT)
    return out


@pytest.fixture(scope="module")
def build_dir():
    return _build()


def test_selfcheck_against_cpu_library(build_dir):
    proc = subprocess.run([os.path.join(build_dir, "stacked_rnn_selfcheck"), "--quick"], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "PASSED" in proc.stdout and " FAIL" not in proc.stdout


@pytest.mark.parametrize("mode", ["exact", "tf32"])
def test_tensor_core_tile_against_cpu_library(build_dir, mode):
    """The tensor-core tile (TF32 allowed; csrc/engine/cuda/tensor_core_tile.cuh), forward and backward, every cell,
    against the CPU library. 'exact': the emulated tensor cores compute fp32 (DEEPRNN_EMULATION_TF32=exact), so the
    float32 tolerance (2e-5 / 5e-5 relative, the norm of the whole tensor) catches a wrong index or a lost partial
    sum, on B in {1, 5, 17, 32}, H that pads the slices and fragments, L in {1, 3}; 'tf32': TF32 rounding as on the
    hardware, 3e-3 relative (seen: 1e-4 - 6e-4), on B = 32, L = 3."""
    env = dict(os.environ, DEEPRNN_EMULATION_SMS="8", DEEPRNN_EMULATION_TF32=mode)
    proc = subprocess.run([os.path.join(build_dir, "stacked_rnn_selfcheck"), "--tensor-cores"], capture_output=True,
                          text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "PASSED" in proc.stdout and " FAIL" not in proc.stdout
    cases = [line for line in proc.stdout.splitlines() if " tf32 " in line]
    # Exact: 4 shapes for tanh, 3 for the GRU and the LSTM, the relu RNN once; TF32: one per cell but relu. Every
    # one on the tensor-core tile, forward and backward.
    assert len(cases) == (11 if mode == "exact" else 3)
    assert all("fwd persistent+tc tile 6" in c and "bwd persistent+tc tile 6" in c for c in cases)
    for cell, n in (("tanh", 4), ("gru", 3), ("lstm", 3), ("relu", 1)):
        assert sum(c.startswith(cell) for c in cases) == (n if mode == "exact" else int(cell != "relu"))


def test_cuda_entry_points_against_oracle(build_dir, tmp_path):
    # In a fresh process: this one may already hold the in-place deeprnn_fast._kernels under the same name.
    module = glob.glob(os.path.join(build_dir, "_kernels*.so"))[0]
    cmd = [sys.executable, "-m", "deeprnn_fast.testing.gpu_check", "--backend", "emulated", "--kernels", module,
           "--shapes", "3,4,5,17,3;1,3,2,9,2;2,0,3,4,2", "--out", str(tmp_path), "--budget-s", "850"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    records = json.loads((tmp_path / "gpu_check.json").read_text())["correctness"]
    ran = [r for r in records if r["status"] != "n/a"]
    # 3 shapes x 3 input kinds (dense float32 / float64, tokens float32) x 4 cells (tanh, relu, GRU, LSTM) x 4
    # schedules.
    assert len(records) == 3 * 3 * 4 * 4 and all(r["status"] == "ok" for r in ran)
    # Both persistent variants really ran (the emulated device is small but these shapes fit), for every cell and
    # for token inputs too, and every cell's grad slots were compared (the CUDA pass exports all of them).
    for cell in ("tanh", "relu", "gru", "lstm"):
        for inputs in ("dense", "tokens"):
            mine = [r for r in ran if r["activation"] == cell and r["inputs"] == inputs]
            assert any("+chip" in r.get("ran", "") for r in mine)
            assert any(r.get("ran") == "persistent/persistent" for r in mine)
    assert all("grad_preactivations" in r["errors"] for r in ran if r["shape"][1] > 0)
    # Token inputs have no grad_inputs; dense ones do.
    assert all(("grad_inputs" in r["errors"]) == (r["inputs"] == "dense") for r in ran if r["shape"][1] > 0)
    # Masks and dropout against their float64 oracle: every cell with every variant (each mask pattern, each
    # dropout alone, all together with one mask and with one per gate), dense and token inputs, one schedule in
    # turn, every schedule met, and the multi-tile shape for every cell.
    modified = json.loads((tmp_path / "gpu_check.json").read_text())["modifiers"]
    variants = {v[0] for v in gpu_check.MODIFIER_VARIANTS}
    assert len(modified) == 4 * len(variants) and all(r["status"] == "ok" for r in modified), modified
    for cell in ("tanh", "relu", "gru", "lstm"):
        mine = [r for r in modified if r["activation"] == cell]
        assert {r["modifiers"] for r in mine} == variants
        assert {r["inputs"] for r in mine} == {"dense", "tokens"}
        assert any(r["shape"][0] > 64 and r["shape"][3] > 32 for r in mine)
        assert all(r["worst"] <= (1e-4 if r["dtype"] == "float32" else 1e-9) for r in mine)
    assert {r["schedule"] for r in modified} == set(gpu_check.SCHEDULES)
    assert all({"outputs", "final_states", "grad_kernels", "grad_initial_states"} <= set(r["errors"]) for r in modified)


@pytest.fixture(scope="module")
def fiber_selftest():
    """The emulation's own check (tests/cuda_emulation/fiber_selftest.cc), built once per version of its sources."""
    sources = [f"{ROOT}/tests/cuda_emulation/{name}" for name in ("fiber_selftest.cc", "fibers.h", "cuda_runtime.h",
                                                                   "cooperative_groups.h")]
    digest = hashlib.sha256(b"".join(open(p, "rb").read() for p in sources)).hexdigest()[:16]
    out = os.path.join(ROOT, "build", "cuda_emulation", "fiber_selftest_" + digest)
    with exclusive(out + ".lock"):
        if not os.path.exists(out):
            subprocess.run(["g++", "-O1", "-std=c++20", "-DDEEPRNN_CUDA_EMULATION=1",
                            f"-I{ROOT}/tests/cuda_emulation", f"-I{ROOT}/csrc", "-x", "c++", sources[0],
                            "-o", out + ".tmp"], check=True)
            os.replace(out + ".tmp", out)
    return out


def test_emulation_orders_barriers_and_shows_missing_ones(fiber_selftest):
    proc = subprocess.run([fiber_selftest, "ok"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "PASSED" in proc.stdout, proc.stdout + proc.stderr


def test_emulation_reports_a_deadlock_instead_of_hanging(fiber_selftest):
    proc = subprocess.run([fiber_selftest, "deadlock"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "deadlock" in proc.stderr, proc.stdout + proc.stderr
    assert "returned" not in proc.stdout
