"""The fused stacked-RNN op: the public wrapper and its registered gradient.

Split of work between the op and Python: the op does everything that runs once per (layer, time step) - the
wavefront of fused cells forward, the reverse wavefront backward, and the weight-gradient products over all steps -
because those are what per-op dispatch makes slow. Python only checks arguments, stacks the initial states into one
[L, B, H] tensor and splits the final states back into a list.
"""
import tensorflow as tf

from deeprnn_fast import _library, _validate, reference

__all__ = ["stacked_rnn", "build_info", "SecondOrderGradientError"]


class SecondOrderGradientError(NotImplementedError, LookupError):
    """Differentiating the fused ops' gradients (second-order gradients, or forward-mode autodiff, which TensorFlow
    builds from them). A LookupError as well, as TensorFlow's own error for an op without a gradient, so that code
    catching that still catches this."""

    # Inside tf.function, AutoGraph re-raises an error as its own type only where that type's __init__ is
    # Exception's (else it becomes a StagingError); the inherited one is the same function in effect.
    __init__ = Exception.__init__


def no_second_order_gradient(op_name, reference_function):
    """A gradient function for the gradient op of `op_name` that says what is missing and what to use instead."""
    def gradient(op, *grads):
        raise SecondOrderGradientError(
            f"second-order gradients (and forward-mode autodiff) of the fused {op_name} op are not implemented: its "
            f"gradient op {op.type} has no gradient; use {reference_function}, the same maths in plain TensorFlow, "
            "where they are needed")
    return gradient


def build_info():
    """How the compiled library was built: the TensorFlow version, whether CUDA kernels were built and for which
    targets, and whether the library can be loaded in this process (with the reason when it cannot)."""
    info = _library.read_build_info()
    result = {
        "built": info is not None,
        "tensorflow_version": info.get("tensorflow_version") if info else None,
        "running_tensorflow_version": tf.__version__,
        "cuda": bool(info and info.get("cuda")),
        "cuda_archs": list(info.get("cuda_archs", [])) if info else [],
        "library_path": _library.LIBRARY_PATH,
    }
    try:
        _library.library()
        result["loadable"], result["error"] = True, None
    except _library.LibraryUnavailable as e:
        result["loadable"], result["error"] = False, str(e)
    return result


def stacked_rnn(inputs, kernels, recurrent_kernels, biases, initial_states=None, activation="tanh"):
    """Fused stacked RNN: H_t^(l) = phi(H_t^(l-1) W_x^(l) + H_{t-1}^(l) W_h^(l) + b^(l)).

    Args:
      inputs: [B, T, D] float32 or float64 tensor (batch major, as in Keras).
      kernels: list of L tensors, [D, H] for the first layer and [H, H] for the others.
      recurrent_kernels: list of L tensors [H, H].
      biases: list of L tensors [H].
      initial_states: None (zeros) or a list of L tensors [B, H].
      activation: "tanh" or "relu".

    Returns:
      (outputs, final_states): the top layer's sequence [B, T, H] and a list of L final states [B, H].
      Differentiable with respect to every tensor argument.

    Falls back to `deeprnn_fast.reference.stacked_rnn`, with one warning, when the compiled library is unavailable.
    """
    lib = _library.library_or_warn()
    if lib is None:
        return reference.stacked_rnn(inputs, kernels, recurrent_kernels, biases, initial_states, activation)
    args = _validate.stacked_rnn_args(inputs, kernels, recurrent_kernels, biases, initial_states, activation)
    outputs, final_states, _ = lib.deeprnn_fast_stacked_rnn(
        args.inputs, args.kernels, args.recurrent_kernels, args.biases, tf.stack(args.initial_states),
        activation=args.activation)
    return outputs, tf.unstack(final_states, num=args.layers)


@tf.RegisterGradient("DeeprnnFast>StackedRnn")
def _stacked_rnn_grad(op, grad_outputs, grad_final_states, _grad_activations):
    """One fused backward op. The activations output exists for this function only; its gradient is ignored."""
    n = op.get_attr("N")
    inputs = op.inputs[0]
    kernels = list(op.inputs[1:1 + n])
    recurrent_kernels = list(op.inputs[1 + n:1 + 2 * n])
    initial_states = op.inputs[1 + 3 * n]
    grads = _library.library().deeprnn_fast_stacked_rnn_grad(
        inputs, kernels, recurrent_kernels, initial_states, op.outputs[2], grad_outputs, grad_final_states,
        activation=op.get_attr("activation"))
    grad_inputs, grad_kernels, grad_recurrent, grad_biases, grad_initial = grads
    return [grad_inputs] + list(grad_kernels) + list(grad_recurrent) + list(grad_biases) + [grad_initial]


tf.RegisterGradient("DeeprnnFast>StackedRnnGrad")(
    no_second_order_gradient("DeeprnnFast>StackedRnn", "deeprnn_fast.reference.stacked_rnn"))
