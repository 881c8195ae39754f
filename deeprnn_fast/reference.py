"""Plain-TensorFlow references: the stacked RNN (the maths of d2l's StackedRNNScratch) and the stacked GRU (Keras'
GRUCell), one cell at a time.

It is the "Python fallback" of every fused op in this package: `deeprnn_fast.stacked_rnn` runs it when the compiled
library is unavailable, and the tests check the fused forward and gradient against it (its gradient is TensorFlow's
own autodiff through these ops). It favours obviously-correct over fast: a Python loop over layers and time steps.
"""
import tensorflow as tf

from deeprnn_fast import _validate

__all__ = ["stacked_rnn", "stacked_gru"]


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


def stacked_gru(inputs, kernels, recurrent_kernels, biases, initial_states=None):
    """Stacked GRU on plain TensorFlow ops, Keras' GRUCell (reset_after=True) one cell at a time; same signature and
    results as `deeprnn_fast.stacked_gru`.

    Args:
      inputs: [B, T, D] float tensor.
      kernels: list of L tensors, [D, 3H] for the first layer and [H, 3H] for the others (gates z | r | n).
      recurrent_kernels: list of L tensors [H, 3H].
      biases: list of L tensors [2, 3H]: the input bias in row 0, the recurrent bias in row 1.
      initial_states: None (zeros) or a list of L tensors [B, H].

    Returns:
      (outputs [B, T, H], final_states: list of L tensors [B, H]).
    """
    args = _validate.stacked_gru_args(inputs, kernels, recurrent_kernels, biases, initial_states)
    if args.time is None:
        raise ValueError("the reference needs a statically known number of time steps (inputs.shape[1]); "
                         f"got inputs of shape {args.inputs.shape}")
    layer_inputs = tf.unstack(args.inputs, num=args.time, axis=1) if args.time else []
    final_states = []
    for l in range(args.layers):
        h = args.initial_states[l]
        input_bias, recurrent_bias = args.biases[l][0], args.biases[l][1]
        outs = []
        for x in layer_inputs:
            # The operations, and their order, of keras.layers.GRUCell.call (implementation 2, reset_after=True).
            x_z, x_r, x_n = tf.split(tf.matmul(x, args.kernels[l]) + input_bias, 3, axis=-1)
            h_z, h_r, h_n = tf.split(tf.matmul(h, args.recurrent_kernels[l]) + recurrent_bias, 3, axis=-1)
            z = tf.sigmoid(x_z + h_z)
            r = tf.sigmoid(x_r + h_r)
            n = tf.tanh(x_n + r * h_n)
            h = z * h + (1 - z) * n
            outs.append(h)
        final_states.append(h)
        layer_inputs = outs
    if args.time:
        outputs = tf.stack(layer_inputs, axis=1)
    else:
        outputs = tf.zeros([args.batch, 0, args.hidden], args.dtype)
    return outputs, final_states
