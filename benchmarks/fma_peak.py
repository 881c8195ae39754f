"""The machine's float32 peak per instruction set, measured: the yardstick of the reports' "% of peak".

    .venv/bin/python benchmarks/fma_peak.py [--seconds 0.2]     prints the probe's results as JSON

fma_peak.c (beside this file) is compiled with `gcc -O2` into build/fma_peak/ at the repository root, once per
version of the source, and called through ctypes. For each instruction set (AVX-512F 512-bit FMAs, AVX2+FMA 256-bit
FMAs, baseline SSE2 multiply + add) it runs a loop of independent accumulator chains on one thread and on every
core this process may use, all at once, and reports GFLOP/s (2 flops per lane per multiply-add). A set the CPU
lacks is reported as skipped, with the reason. Each figure is the best of a few repeats: a peak, not a typical
speed. Needs neither TensorFlow nor pytest.
"""
import argparse
import ctypes
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import usable_cores  # noqa: E402  (the cores this process may run on: "all cores" here)

SOURCE = Path(__file__).resolve().with_name("fma_peak.c")
BUILD_DIR = Path(__file__).resolve().parent.parent / "build" / "fma_peak"

# The instruction sets in fma_peak.c's numbering, with the lanes of one float32 register.
ISAS = {"avx512f": (0, 16), "avx2+fma": (1, 8), "sse2": (2, 4)}
DESCRIPTIONS = {"avx512f": "512-bit FMA", "avx2+fma": "256-bit FMA", "sse2": "128-bit multiply + add"}
SECONDS_ENV = "DEEPRNN_FAST_PEAK_SECONDS"
DEFAULT_SECONDS = 0.2   # per timed repeat; the whole probe takes ~10x this per instruction set
REPEATS = 3


class ProbeError(Exception):
    """The probe cannot be built or run here; the message says why."""


def _compile():
    """Path of the compiled probe, built on first use; a new source gets a new file, never a stale one."""
    source = SOURCE.read_bytes()
    target = BUILD_DIR / f"fma_peak-{hashlib.sha1(source).hexdigest()[:12]}.so"
    if target.is_file():
        return target
    compiler = shutil.which(os.environ.get("CC", "gcc"))
    if compiler is None:
        raise ProbeError(f"no C compiler to build {SOURCE.name} (looked for {os.environ.get('CC', 'gcc')!r}; set CC)")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    # Compile next to the target and rename: a concurrent or interrupted build never leaves a half-written library.
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=BUILD_DIR)
    os.close(fd)
    try:
        done = subprocess.run([compiler, "-O2", "-pthread", "-shared", "-fPIC", str(SOURCE), "-o", partial],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise ProbeError(f"{compiler} could not build {SOURCE.name}: {done.stderr.strip()[-2000:]}")
        os.replace(partial, target)
    finally:
        Path(partial).unlink(missing_ok=True)
    return target


def load_library():
    library = ctypes.CDLL(str(_compile()))
    library.fma_peak_supported.argtypes = [ctypes.c_int]
    library.fma_peak_supported.restype = ctypes.c_int
    library.fma_peak_flops_per_iteration.argtypes = [ctypes.c_int]
    library.fma_peak_flops_per_iteration.restype = ctypes.c_int
    library.fma_peak_run.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.POINTER(ctypes.c_double)]
    library.fma_peak_run.restype = ctypes.c_double
    return library


def _run(library, isa, threads, iterations):
    checksum = ctypes.c_double()
    seconds = library.fma_peak_run(isa, threads, iterations, ctypes.byref(checksum))
    if seconds < 0:
        raise ProbeError(f"fma_peak_run(isa={isa}, threads={threads}) failed with code {seconds:g}")
    return seconds


def _iterations_for(library, isa, seconds):
    """Loop iterations that take about `seconds` on one thread (doubling from a short run that warms the core up)."""
    iterations = 1 << 16
    while True:
        elapsed = _run(library, isa, 1, iterations)
        if elapsed >= seconds / 4 or iterations >= 1 << 40:
            return max(1, int(iterations * seconds / max(elapsed, 1e-9)))
        iterations *= 2


def measure_isa(library, name, thread_counts, seconds):
    number, lanes = ISAS[name]
    result = {"description": DESCRIPTIONS[name], "lanes": lanes,
              "flops_per_iteration": library.fma_peak_flops_per_iteration(number)}
    if not library.fma_peak_supported(number):
        return {**result, "skipped": f"the CPU does not support {name} (__builtin_cpu_supports)"}
    result["chains"] = result["flops_per_iteration"] // (2 * lanes)
    iterations = _iterations_for(library, number, seconds)
    gflops = {}
    for threads in thread_counts:
        best = min(_run(library, number, threads, iterations) for _ in range(REPEATS))
        gflops[str(threads)] = round(threads * iterations * result["flops_per_iteration"] / best / 1e9, 2)
    return {**result, "gflops": gflops}


def probe(seconds=None, thread_counts=None):
    """{"seconds_per_repeat", "thread_counts", "isas": {name: {"gflops": {"1": ..., "<all cores>": ...}, ...} or
    {"skipped": reason}}}; raises ProbeError where the probe cannot be built."""
    seconds = float(os.environ.get(SECONDS_ENV, DEFAULT_SECONDS)) if seconds is None else seconds
    if not seconds > 0:
        raise ProbeError(f"{SECONDS_ENV} must be a positive number of seconds; got {seconds!r}")
    thread_counts = sorted(set(thread_counts or (1, usable_cores())))
    library = load_library()
    return {"seconds_per_repeat": seconds, "thread_counts": thread_counts,
            "isas": {name: measure_isa(library, name, thread_counts, seconds) for name in ISAS}}


def isa_of_kernels(name):
    """The probe's instruction set for a name deeprnn_fast._kernels.cpu_isa() returns ("avx2+fma", "generic",
    later "avx512" or the like); None for a name it does not know."""
    text = (name or "").lower().replace("-", "").replace("_", "")
    if "512" in text:
        return "avx512f"
    if "avx2" in text or "fma" in text:
        return "avx2+fma"
    if text in ("generic", "baseline", "sse2", "sse", "x8664", "scalar"):
        return "sse2"
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=None,
                        help=f"length of one timed repeat (default ${SECONDS_ENV} or {DEFAULT_SECONDS})")
    parser.add_argument("--threads", type=int, action="append",
                        help="thread count to measure (repeatable; default 1 and all usable cores)")
    args = parser.parse_args(argv)
    if args.threads and min(args.threads) < 1:
        parser.error("--threads must be a positive integer")
    try:
        print(json.dumps(probe(args.seconds, args.threads), indent=2))
    except ProbeError as e:
        raise SystemExit(f"{Path(__file__).name}: {e}")


if __name__ == "__main__":
    sys.exit(main())
