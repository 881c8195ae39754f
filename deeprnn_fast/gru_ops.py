"""The fused stacked-GRU op: the public wrapper and its registered gradient (the GRU counterpart of ops.py).

As for the tanh RNN, the op does everything that runs once per (layer, time step) - the wavefront of fused GRU cells
forward, the reverse wavefront backward, the weight-gradient products - and Python only checks arguments, stacks the
initial states into one [L, B, H] tensor and splits the final states back into a list.
"""
import tensorflow as tf

from deeprnn_fast import _library, _validate, reference
from deeprnn_fast.ops import no_second_order_gradient

__all__ = ["stacked_gru"]


def stacked_gru(inputs, kernels, recurrent_kernels, biases, initial_states=None):
    """Fused stacked GRU: Keras' GRUCell with reset_after=True (its default, the cuDNN-compatible form), per layer

        z = sigmoid(x Wx_z + bx_z + h Wh_z + bh_z),  r = sigmoid(x Wx_r + bx_r + h Wh_r + bh_r),
        n = tanh(x Wx_n + bx_n + r * (h Wh_n + bh_n)),  h' = z * h + (1 - z) * n.

    Args:
      inputs: [B, T, D] float32 or float64 tensor (batch major, as in Keras).
      kernels: list of L tensors, [D, 3H] for the first layer and [H, 3H] for the others: Keras' `kernel`, the
        gates' columns side by side in the order z, r, n.
      recurrent_kernels: list of L tensors [H, 3H]: Keras' `recurrent_kernel`.
      biases: list of L tensors [2, 3H]: Keras' `bias`, the input bias in row 0 and the recurrent bias in row 1.
      initial_states: None (zeros) or a list of L tensors [B, H].

    Returns:
      (outputs, final_states): the top layer's sequence [B, T, H] and a list of L final states [B, H].
      Differentiable with respect to every tensor argument.

    Falls back to `deeprnn_fast.reference.stacked_gru`, with one warning, when the compiled library is unavailable.
    """
    lib = _library.library_or_warn()
    if lib is None:
        return reference.stacked_gru(inputs, kernels, recurrent_kernels, biases, initial_states)
    args = _validate.stacked_gru_args(inputs, kernels, recurrent_kernels, biases, initial_states)
    outputs, final_states, _, _ = lib.deeprnn_fast_stacked_gru(
        args.inputs, args.kernels, args.recurrent_kernels, args.biases, tf.stack(args.initial_states))
    return outputs, tf.unstack(final_states, num=args.layers)


@tf.RegisterGradient("DeeprnnFast>StackedGru")
def _stacked_gru_grad(op, grad_outputs, grad_final_states, _grad_activations, _grad_gates):
    """One fused backward op. The activations and gates outputs exist for this function only; their gradients are
    ignored."""
    n = op.get_attr("N")
    inputs = op.inputs[0]
    kernels = list(op.inputs[1:1 + n])
    recurrent_kernels = list(op.inputs[1 + n:1 + 2 * n])
    initial_states = op.inputs[1 + 3 * n]
    grads = _library.library().deeprnn_fast_stacked_gru_grad(
        inputs, kernels, recurrent_kernels, initial_states, op.outputs[2], op.outputs[3], grad_outputs,
        grad_final_states)
    grad_inputs, grad_kernels, grad_recurrent, grad_biases, grad_initial = grads
    return [grad_inputs] + list(grad_kernels) + list(grad_recurrent) + list(grad_biases) + [grad_initial]


tf.RegisterGradient("DeeprnnFast>StackedGruGrad")(
    no_second_order_gradient("DeeprnnFast>StackedGru", "deeprnn_fast.reference.stacked_gru"))
