"""Peak memory of one implementation's training step, measured in a fresh process: prints one JSON object.

    .venv/bin/python benchmarks/peak_memory.py CONFIG IMPLEMENTATION      e.g. seed keras_simplernn

TensorFlow's get_memory_info does not work on the CPU, and Python-level tracers do not see its allocations, so this
reads the resident set size (RSS) the kernel keeps for the process:
- built_mib: RSS once TensorFlow, the inputs, the weights and the compiled step (traced, run twice) exist.
- step_peak_growth_mib (the headline figure): how far a training step raises RSS above what it was before the step,
  the largest over MEASURED_STEPS steps after two warm-up calls. The peak-RSS mark (VmHWM) is reset just before each
  step through /proc/self/clear_refs, so it covers that step alone. glibc's malloc would otherwise serve a step from
  memory an earlier step freed but kept, hiding its size (measured: 0.5 MiB instead of ~12 MiB for the seed's Keras
  SimpleRNN); the process therefore runs with a fixed MALLOC_MMAP_THRESHOLD_, which makes every allocation of
  128 KiB or more (every tensor that matters) its own mapping, returned to the system when freed.
- first_step_peak_growth_mib: the same for the very first call, tracing and graph optimisation included. Where
  clear_refs cannot be written, it comes from getrusage's lifetime peak (then an underestimate if TensorFlow's
  import peaked higher) and step_peak_growth_mib is null.
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


def measure(config_name, implementation_name):
    import machine
    import train_steps
    import workloads

    machine.apply_to_tensorflow()  # before TensorFlow runs anything

    config = workloads.CONFIGS[config_name]
    implementation = train_steps.IMPLEMENTATIONS[implementation_name]
    inputs = workloads.make_inputs(config)
    result = {"config": config_name, "implementation": implementation_name, "role": implementation.role}

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
        result["step_peak_growth_mib"] = None
        result["note"] = "/proc/self/clear_refs is not writable: only the first step's growth is measured"
        return result
    # The peak varies by a few MiB from step to step (the order in which the thread pools run independent ops decides
    # which buffers are alive together): measure several steps and keep the largest, since a peak is what must fit.
    growths = []
    for _ in range(MEASURED_STEPS):
        gc.collect()
        before_step_kib = _status_kib("VmRSS")
        _reset_peak()
        step()
        growths.append(_mib(_status_kib("VmHWM") - before_step_kib))
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
