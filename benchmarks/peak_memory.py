"""Peak memory of one implementation's training step, measured in a fresh process: prints one JSON object.

    .venv/bin/python benchmarks/peak_memory.py CONFIG IMPLEMENTATION      e.g. seed keras_simplernn

TensorFlow's get_memory_info does not work on the CPU, and Python-level tracers do not see its allocations, so this
reads the resident set size (RSS) the kernel keeps for the process:
- baseline_mib: RSS once the libraries every case may use are imported (TensorFlow, Keras, deeprnn_fast, and
  PyTorch for its cases) and the inputs exist, before the case builds anything.
- step_peak_mib (the headline figure): the peak RSS (VmHWM, reset just before each step through
  /proc/self/clear_refs) of a training step, the largest over MEASURED_STEPS steps after two warm-up calls, minus
  the baseline. It counts what the step holds at its peak: the weights, the compiled step, the tensors the step
  allocates, and what allocators keep from earlier steps. The last matters: TensorFlow's oneDNN builds serve the
  CPU's tensors from a pool that never shrinks, so a step whose buffers the pool already holds raises RSS by next
  to nothing while holding them all (measured 2026-12-02: 8.7 MiB "growth" for wide's Keras SimpleRNN, which must
  keep the 32 MiB of states its backward reads, over 951 MiB built against the project's 765).
- step_peak_growth_mib: how far a step raises RSS above what it was just before the step (what this script
  reported as its headline until 2026-12-02; kept as a second view, blind to pooled memory as above). glibc's
  malloc would hide freed-and-kept memory the same way, so the process runs with a fixed MALLOC_MMAP_THRESHOLD_,
  which makes every allocation of 128 KiB or more its own mapping, returned to the system when freed.
- first_step_peak_growth_mib: the same growth for the very first call, tracing and graph optimisation included.
Where clear_refs cannot be written, only first_step_peak_growth_mib is measured (from getrusage's lifetime peak,
then an underestimate if the import peaked higher) and the step figures are null.
The process uses the thread count of the timed benchmarks ($DEEPRNN_FAST_BENCH_THREADS, else the libraries'
default pools), which it inherits from the parent's environment.
"""
import gc
import json
import os
import re
import resource
import sys
from pathlib import Path

MMAP_THRESHOLD_ENV = "MALLOC_MMAP_THRESHOLD_"
MMAP_THRESHOLD_BYTES = 128 * 1024
MEASURED_STEPS = 3

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))


def _status_kib(field):
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    return int(match.group(1)) if match else None


def _reset_peak():
    """Resets VmHWM to the current RSS (Linux >= 4.0); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _mib(kib):
    return None if kib is None else round(kib / 1024.0, 2)


def _import_libraries(implementation):
    """Imports what any case may load, so that the baseline holds every library's code and static data and a case's
    figure is what its model and step add. PyTorch only for its own cases: it would otherwise be counted in none."""
    import keras  # noqa: F401
    import tensorflow  # noqa: F401
    try:
        import deeprnn_fast  # noqa: F401
    except Exception:  # the case then skips in build(), which says why
        pass
    if implementation.framework == "torch":
        try:
            import torch  # noqa: F401
        except ImportError:
            pass


def measure(config_name, implementation_name):
    import machine
    import train_steps
    import workloads

    machine.apply_to_tensorflow()  # before TensorFlow runs anything

    config = workloads.CONFIGS[config_name]
    implementation = train_steps.IMPLEMENTATIONS[implementation_name]
    _import_libraries(implementation)
    inputs = workloads.make_inputs(config)
    result = {"config": config_name, "implementation": implementation_name, "role": implementation.role}
    gc.collect()
    baseline_kib = _status_kib("VmRSS")
    result["baseline_mib"] = _mib(baseline_kib)

    # The weights and the tf.function exist before any figure is taken: they are the model, not the step.
    try:
        step = implementation.build(config, inputs)
    except train_steps.Unavailable as e:
        return {**result, "skipped": str(e)}
    if "torch" in sys.modules:
        result["torch"] = sys.modules["torch"].__version__
    gc.collect()
    can_reset = _reset_peak()
    before_first_kib = _status_kib("VmRSS")
    step()  # the first call traces and optimises the graph, then runs it
    first_peak_kib = _status_kib("VmHWM") if can_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["first_step_peak_growth_mib"] = _mib(first_peak_kib - before_first_kib)
    step()  # a warm-up call: lazily created kernels and thread-pool state are not the step's memory
    gc.collect()
    result["built_mib"] = _mib(_status_kib("VmRSS"))

    if not can_reset:
        result["step_peak_mib"] = None
        result["step_peak_growth_mib"] = None
        result["note"] = "/proc/self/clear_refs is not writable: only the first step's growth is measured"
        return result
    # The peak varies by a few MiB from step to step (the order in which the thread pools run independent ops decides
    # which buffers are alive together): measure several steps and keep the largest, since a peak is what must fit.
    growths, peaks = [], []
    for _ in range(MEASURED_STEPS):
        gc.collect()
        before_step_kib = _status_kib("VmRSS")
        _reset_peak()
        step()
        peak_kib = _status_kib("VmHWM")
        growths.append(_mib(peak_kib - before_step_kib))
        peaks.append(_mib(peak_kib - baseline_kib))
    result["step_peak_mib"] = max(peaks)
    result["step_peak_mibs"] = peaks
    result["step_peak_growth_mib"] = max(growths)
    result["step_peak_growths_mib"] = growths
    return result


def main(argv):
    if len(argv) != 2:
        raise SystemExit(f"usage: {Path(__file__).name} CONFIG IMPLEMENTATION")
    if os.environ.get(MMAP_THRESHOLD_ENV) != str(MMAP_THRESHOLD_BYTES):
        # glibc reads the variable at start-up only: start again with it set.
        env = {**os.environ, MMAP_THRESHOLD_ENV: str(MMAP_THRESHOLD_BYTES)}
        os.execve(sys.executable, [sys.executable, str(Path(__file__).resolve()), *argv], env)
    import workloads
    import train_steps
    if argv[0] not in workloads.CONFIGS:
        raise SystemExit(f"unknown configuration {argv[0]!r}; expected one of {list(workloads.CONFIGS)}")
    if argv[1] not in train_steps.IMPLEMENTATIONS:
        raise SystemExit(f"unknown implementation {argv[1]!r}; expected one of {list(train_steps.IMPLEMENTATIONS)}")
    print(json.dumps(measure(*argv)))


if __name__ == "__main__":
    main(sys.argv[1:])
