"""What a benchmark record must say about the machine and the run's threads: the CPU's model name and instruction
set flags, the instruction set the project's kernels run on, and the thread count ($DEEPRNN_FAST_BENCH_THREADS).

The project's machines change processor from one day to the next (AVX2 only one day, AVX-512 the next:
../shared/notes/performance.md), so every record states what it ran on. Plain module, no pytest: the conftest, the
memory subprocess (peak_memory.py) and the epoch benchmark share it.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

THREADS_ENV = "DEEPRNN_FAST_BENCH_THREADS"  # threads for TensorFlow (intra- and inter-op) and PyTorch; unset: all
FORCED_ISA_ENV = "DEEPRNN_FAST_CPU_ISA"     # read by the project's kernels (e.g. "generic")
ISA_FLAGS = ("avx512f", "avx2", "fma")


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def requested_threads():
    """The thread count $DEEPRNN_FAST_BENCH_THREADS asks for, or None when it is unset (the libraries' defaults)."""
    text = os.environ.get(THREADS_ENV, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{THREADS_ENV} must be a positive integer (threads per library); got {text!r}")
    return int(text)


def threads():
    """Threads the run computes on: the requested count, else every usable core (TensorFlow's default pools)."""
    return requested_threads() or usable_cores()


def apply_to_tensorflow():
    """Sizes TensorFlow's intra- and inter-op pools to $DEEPRNN_FAST_BENCH_THREADS. It must run before TensorFlow
    executes anything: the pools are created with the first operation and cannot be resized afterwards."""
    count = requested_threads()
    if count is None:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(count)
        tf.config.threading.set_inter_op_parallelism_threads(count)
    except RuntimeError as e:
        raise RuntimeError(f"{THREADS_ENV}={count} came too late: TensorFlow has already run operations ({e})") \
            from None


def apply_to_torch(torch):
    """The same thread count for PyTorch (whose default is every physical core)."""
    torch.set_num_threads(threads())
    try:
        torch.set_num_interop_threads(threads())
    except RuntimeError:  # allowed once, before any inter-op work: a second builder finds it set already
        pass


def _lscpu():
    try:
        return subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _cpuinfo():
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_model_name():
    """lscpu's "Model name" (e.g. "AMD EPYC"), else /proc/cpuinfo's, else None."""
    for text, pattern in ((_lscpu(), r"^Model name:\s*(.+)$"), (_cpuinfo(), r"^model name\s*:\s*(.+)$")):
        match = re.search(pattern, text, re.MULTILINE)
        if match:
            return match.group(1).strip()
    return None


def isa_flags():
    """{"avx512f": bool, "avx2": bool, "fma": bool} as the kernel reports them (/proc/cpuinfo, else lscpu): what
    the operating system enables, which is what code can use. None where neither can be read."""
    match = re.search(r"^flags\s*:\s*(.*)$", _cpuinfo(), re.MULTILINE) or \
        re.search(r"^Flags:\s*(.*)$", _lscpu(), re.MULTILINE)
    if not match:
        return None
    present = set(match.group(1).split())
    return {flag: flag in present for flag in ISA_FLAGS}


def kernel_isa():
    """The instruction set the project's CPU kernels run on (deeprnn_fast._kernels.cpu_isa()), or None when the
    module does not load."""
    try:
        from deeprnn_fast import _kernels
    except Exception:  # not built, or the package does not import: the records say None
        return None
    return _kernels.cpu_isa()


_machine = None


def describe():
    """The fields every benchmark record carries (computed once per process: lscpu is not free)."""
    global _machine
    if _machine is None:
        _machine = {"cpu_model": cpu_model_name(), "isa_flags": isa_flags(), "kernel_isa": kernel_isa(),
                    "usable_cores": usable_cores()}
    return {**_machine, "forced_isa": os.environ.get(FORCED_ISA_ENV) or None, "threads": threads(),
            "threads_requested": requested_threads()}


def record(**fields):
    """`fields` and what every benchmark record carries besides its own figures: the machine (describe()) and the
    versions of the libraries loaded (PyTorch's only where it was)."""
    versions = {"cpu_count": os.cpu_count()}
    for name in ("tensorflow", "keras", "torch"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", None)
    return {**fields, **describe(), **versions}
