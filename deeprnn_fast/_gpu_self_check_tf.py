"""The GPU self-check (deeprnn_fast/gpu_self_check.py) wired into the TF ops: which device a call runs on, and the
two sides of the check as TF computations on that device.

Only a call that will run on a GPU pays: with no GPU visible to TensorFlow, or a call placed on the CPU, `use_fused`
answers at once without running anything. On a GPU, the first call per (device, cell, dtype) runs the check
eagerly, on a fresh thread outside any graph being traced (tf.function, Keras fit), so the user's graph gets nothing
of it, and then the answer is cached for the process.

Cost, estimated rather than timed (no GPU here, and no timings on shared machines): the problem is
gpu_self_check.PROBLEM_SIZE (B=3, T=5, D=7, H=33, L=3: 15 cells). The fused side is one forward and one backward
op on kilobytes of data (microseconds of GPU work, well under a millisecond of launches). The reference side is the
plain-TF Python loop over the 15 cells (some 20 eager ops each for the GRU) and its tape's backward (about twice
that): under a thousand small eager ops at 10-50 us each, so some 10-50 ms; plus copying a few hundred kilobytes of
results to the host and one thread start. Well under a second per key, paid once per process per (device, cell,
dtype) a program uses; TensorFlow's own first-use costs on a GPU (context, cuBLAS) come with the first op anyway.
"""
import threading

import tensorflow as tf
from tensorflow.python.eager import context

from deeprnn_fast import gpu_self_check

# The fused op follows TensorFlow's TF32 switch (csrc/tf/gpu_launch_helpers.h), so the check's tolerance does too.
_CHECKS = gpu_self_check.SelfCheck(tf32=tf.config.experimental.tensor_float_32_execution_enabled)


def visible_gpus():
    """The GPUs TensorFlow can place ops on in this process (the logical devices; none on a CPU-only build)."""
    return tf.config.list_logical_devices("GPU")


def _requested_device():
    """The device scope the call is made under ("" when none): the eager context's in eager mode; in a graph, the
    device a new op would get (a throwaway no_op, which nothing consumes, so graph pruning drops it)."""
    if tf.executing_eagerly():
        return context.context().device_name or ""
    return tf.no_op(name="deeprnn_fast_device_probe").device or ""


def gpu_device_for_call():
    """"/GPU:k" when this call will run on GPU k, else None. A call under no device scope (or one that names no
    device type) is placed on GPU:0 by TensorFlow when a GPU is visible and the op has a GPU kernel, as ours do."""
    if not visible_gpus():
        return None
    spec = tf.DeviceSpec.from_string(_requested_device())
    if spec.device_type is None:
        return "/GPU:0"
    if spec.device_type.upper() != "GPU":
        return None
    return f"/GPU:{spec.device_index or 0}"


def _tf_runner(function, device):
    """A gpu_self_check runner: `function` (the fused op's or the reference's stacked_* signature, with the
    problem's modifiers as keyword arguments) forward on `device`, then a tape's gradient of <outputs, grad_outputs> + <final states, grad_final_states> with
    respect to every input, weight and initial state, as NumPy arrays. Eager: call it where no graph is being
    built (see _outside_any_graph)."""

    def run(problem):
        lstm = problem.cell == "lstm"
        L = len(problem.kernels)
        with tf.device(device):
            inputs = tf.constant(problem.inputs)
            kernels = [tf.constant(w) for w in problem.kernels]
            recurrent = [tf.constant(w) for w in problem.recurrent_kernels]
            biases = [tf.constant(b) for b in problem.biases]
            flat_states = [tf.constant(s) for s in tf.nest.flatten(problem.initial_states)]
            states = [tuple(flat_states[2 * l:2 * l + 2]) for l in range(L)] if lstm else flat_states
            sources = [inputs] + kernels + recurrent + biases + flat_states
            with tf.GradientTape() as tape:
                tape.watch(sources)
                outputs, finals = function(inputs, kernels, recurrent, biases, states, **problem.modifiers)
                loss = tf.reduce_sum(outputs * problem.grad_outputs)
                for got, cotangent in zip(tf.nest.flatten(finals), tf.nest.flatten(problem.grad_final_states)):
                    loss += tf.reduce_sum(got * cotangent)
            grads = [g.numpy() for g in tape.gradient(loss, sources)]
        g_inputs, g_kernels, g_recurrent = grads[0], grads[1:1 + L], grads[1 + L:1 + 2 * L]
        g_biases, g_states = grads[1 + 2 * L:1 + 3 * L], grads[1 + 3 * L:]
        if lstm:
            g_states = [tuple(g_states[2 * l:2 * l + 2]) for l in range(L)]
        return gpu_self_check.named_results(outputs.numpy(), tf.nest.map_structure(lambda t: t.numpy(), finals),
                                            g_inputs, g_kernels, g_recurrent, g_biases, g_states)

    return run


def _outside_any_graph(work):
    """work() on a fresh thread, waited for: there TensorFlow is eager, with no graph being traced, no device
    scope, no control dependencies and no paused tape. That is what tf.init_scope() gives the calling thread,
    except that init_scope also pauses every GradientTape on it, which the check needs; a thread's tape state is
    its own. The caller blocks for the check's duration only (once per key)."""
    outcome = {}

    def target():
        try:
            outcome["value"] = work()
        except BaseException as e:  # re-raised on the calling thread
            outcome["error"] = e

    thread = threading.Thread(target=target, name="deeprnn_fast_gpu_self_check", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def use_fused(cell, dtype, fused, reference):
    """Whether the fused op may run for this call: True off the GPU (no check), else the (cached) verdict of the
    self-check on this call's GPU. `fused` and `reference` take (inputs, kernels, recurrent_kernels, biases,
    initial_states) and return (outputs, final_states)."""
    device = gpu_device_for_call()
    if device is None or not gpu_self_check.enabled():
        return True
    dtype = tf.as_dtype(dtype).name
    cached = _CHECKS.result(device, cell, dtype)
    if cached is not None:
        return cached.passed
    # stacklevel: the warning points at the user's call of deeprnn_fast.stacked_* (through ops._fused).
    return _CHECKS.use_fused(device, cell, dtype, _tf_runner(fused, device), _tf_runner(reference, device),
                             executor=_outside_any_graph, stacklevel=4)
