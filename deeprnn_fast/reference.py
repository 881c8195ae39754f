"""Plain-TensorFlow reference of the stacked RNN: the maths of d2l's StackedRNNScratch, one cell at a time.

It is the "Python fallback" of every fused op in this package: `deeprnn_fast.stacked_rnn` runs it when the compiled
library is unavailable, and the tests check the fused forward and gradient against it (its gradient is TensorFlow's
own autodiff through these ops). It favours obviously-correct over fast: a Python loop over layers and time steps.
"""
import tensorflow as tf

from deeprnn_fast import _validate

__all__ = ["stacked_rnn"]


def _phi(name):
    return {"tanh": tf.tanh, "relu": tf.nn.relu}[name]


def stacked_rnn(inputs, kernels, recurrent_kernels, biases, initial_states=None, activation="tanh"):
    """Stacked RNN on plain TensorFlow ops; same signature and results as `deeprnn_fast.stacked_rnn`.

    Args:
      inputs: [B, T, D] float tensor.
      kernels: list of L tensors, [D, H] for the first layer and [H, H] for the others.
      recurrent_kernels: list of L tensors [H, H].
      biases: list of L tensors [H].
      initial_states: None (zeros) or a list of L tensors [B, H].
      activation: "tanh" or "relu".

    Returns:
      (outputs [B, T, H], final_states: list of L tensors [B, H]).
    """
    args = _validate.stacked_rnn_args(inputs, kernels, recurrent_kernels, biases, initial_states, activation)
    if args.time is None:
        raise ValueError("the reference needs a statically known number of time steps (inputs.shape[1]); "
                         f"got inputs of shape {args.inputs.shape}")
    phi = _phi(args.activation)
    layer_inputs = tf.unstack(args.inputs, num=args.time, axis=1) if args.time else []
    final_states = []
    for l in range(args.layers):
        h = args.initial_states[l]
        outs = []
        for x in layer_inputs:
            h = phi(tf.matmul(x, args.kernels[l]) + tf.matmul(h, args.recurrent_kernels[l]) + args.biases[l])
            outs.append(h)
        final_states.append(h)
        layer_inputs = outs
    if args.time:
        outputs = tf.stack(layer_inputs, axis=1)
    else:
        outputs = tf.zeros([args.batch, 0, args.hidden], args.dtype)
    return outputs, final_states
