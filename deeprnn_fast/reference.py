"""Plain-TensorFlow references: the stacked RNN (the maths of d2l's StackedRNNScratch), the stacked GRU (Keras'
GRUCell) and the stacked LSTM (Keras' LSTMCell), one cell at a time.

It is the "Python fallback" of every fused op in this package: `deeprnn_fast.stacked_rnn` runs it when the compiled
library is unavailable, and the tests check the fused forward and gradient against it (its gradient is TensorFlow's
own autodiff through these ops). It favours obviously-correct over fast: a Python loop over layers and time steps.
"""
import tensorflow as tf

from deeprnn_fast import _validate

__all__ = ["stacked_rnn", "stacked_gru", "stacked_lstm"]


def _phi(name):
    return {"tanh": tf.tanh, "relu": tf.nn.relu}[name]


def _checked(cell, inputs, kernels, recurrent_kernels, biases, initial_states):
    args = _validate.stacked_args(cell, inputs, kernels, recurrent_kernels, biases, initial_states)
    if args.time is None:
        raise ValueError("the reference needs a statically known number of time steps (inputs.shape[1]); "
                         f"got inputs of shape {(args.inputs if args.inputs is not None else args.tokens).shape}")
    return args


def _layer_inputs(args):
    """Layer 0's input at every step, and the product with its kernel: x_t W_x for dense inputs, the rows of W_x for
    token inputs (what a one-hot x_t computes)."""
    if args.tokens is not None:
        steps = tf.unstack(args.tokens, num=args.time, axis=1) if args.time else []
        return [tf.gather(args.kernels[0], t) for t in steps]
    steps = tf.unstack(args.inputs, num=args.time, axis=1) if args.time else []
    return [tf.matmul(x, args.kernels[0]) for x in steps]


def _outputs(args, top):
    if args.time:
        return tf.stack(top, axis=1)
    return tf.zeros([args.batch, 0, args.hidden], args.dtype)


def stacked_rnn(inputs, kernels, recurrent_kernels, biases, initial_states=None, activation="tanh"):
    """Stacked RNN on plain TensorFlow ops; same signature and results as `deeprnn_fast.stacked_rnn`.

    Args:
      inputs: [B, T, D] float tensor, or [B, T] integer token ids (one-hot inputs of kernels[0]'s rows).
      kernels: list of L tensors, [D, H] for the first layer and [H, H] for the others.
      recurrent_kernels: list of L tensors [H, H].
      biases: list of L tensors [H].
      initial_states: None (zeros) or a list of L tensors [B, H].
      activation: "tanh" or "relu".

    Returns:
      (outputs [B, T, H], final_states: list of L tensors [B, H]).
    """
    args = _checked(_validate.rnn_activation(activation), inputs, kernels, recurrent_kernels, biases, initial_states)
    phi = _phi(args.cell)
    projected = _layer_inputs(args)
    final_states = []
    for l in range(args.layers):
        h = args.initial_states[l]
        outs = []
        for x_w in projected:
            h = phi(x_w + tf.matmul(h, args.recurrent_kernels[l]) + args.biases[l])
            outs.append(h)
        final_states.append(h)
        if l + 1 < args.layers:
            projected = [tf.matmul(x, args.kernels[l + 1]) for x in outs]
        top = outs
    return _outputs(args, top if args.time else []), final_states


def stacked_gru(inputs, kernels, recurrent_kernels, biases, initial_states=None):
    """Stacked GRU on plain TensorFlow ops, Keras' GRUCell (reset_after=True) one cell at a time; same signature and
    results as `deeprnn_fast.stacked_gru`.

    Args:
      inputs: [B, T, D] float tensor, or [B, T] integer token ids (one-hot inputs of kernels[0]'s rows).
      kernels: list of L tensors, [D, 3H] for the first layer and [H, 3H] for the others (gates z | r | n).
      recurrent_kernels: list of L tensors [H, 3H].
      biases: list of L tensors [2, 3H]: the input bias in row 0, the recurrent bias in row 1.
      initial_states: None (zeros) or a list of L tensors [B, H].

    Returns:
      (outputs [B, T, H], final_states: list of L tensors [B, H]).
    """
    args = _checked("gru", inputs, kernels, recurrent_kernels, biases, initial_states)
    projected = _layer_inputs(args)
    final_states = []
    for l in range(args.layers):
        h = args.initial_states[l]
        input_bias, recurrent_bias = args.biases[l][0], args.biases[l][1]
        outs = []
        for x_w in projected:
            # The operations, and their order, of keras.layers.GRUCell.call (implementation 2, reset_after=True).
            x_z, x_r, x_n = tf.split(x_w + input_bias, 3, axis=-1)
            h_z, h_r, h_n = tf.split(tf.matmul(h, args.recurrent_kernels[l]) + recurrent_bias, 3, axis=-1)
            z = tf.sigmoid(x_z + h_z)
            r = tf.sigmoid(x_r + h_r)
            n = tf.tanh(x_n + r * h_n)
            h = z * h + (1 - z) * n
            outs.append(h)
        final_states.append(h)
        if l + 1 < args.layers:
            projected = [tf.matmul(x, args.kernels[l + 1]) for x in outs]
        top = outs
    return _outputs(args, top if args.time else []), final_states


def stacked_lstm(inputs, kernels, recurrent_kernels, biases, initial_states=None):
    """Stacked LSTM on plain TensorFlow ops, Keras' LSTMCell one cell at a time; same signature and results as
    `deeprnn_fast.stacked_lstm`.

    Args:
      inputs: [B, T, D] float tensor, or [B, T] integer token ids (one-hot inputs of kernels[0]'s rows).
      kernels: list of L tensors, [D, 4H] for the first layer and [H, 4H] for the others (gates i | f | c | o).
      recurrent_kernels: list of L tensors [H, 4H].
      biases: list of L tensors [4H].
      initial_states: None (zeros) or a list of L pairs (h, c) of [B, H] tensors.

    Returns:
      (outputs [B, T, H], final_states: list of L pairs (h, c) of [B, H]).
    """
    args = _checked("lstm", inputs, kernels, recurrent_kernels, biases, initial_states)
    projected = _layer_inputs(args)
    final_states = []
    for l in range(args.layers):
        h, c = args.initial_states[l]
        outs = []
        for x_w in projected:
            # The operations, and their order, of keras.layers.LSTMCell.call (implementation 2).
            z = x_w + tf.matmul(h, args.recurrent_kernels[l]) + args.biases[l]
            z_i, z_f, z_c, z_o = tf.split(z, 4, axis=-1)
            i = tf.sigmoid(z_i)
            f = tf.sigmoid(z_f)
            c = f * c + i * tf.tanh(z_c)
            o = tf.sigmoid(z_o)
            h = o * tf.tanh(c)
            outs.append(h)
        final_states.append((h, c))
        if l + 1 < args.layers:
            projected = [tf.matmul(x, args.kernels[l + 1]) for x in outs]
        top = outs
    return _outputs(args, top if args.time else []), final_states
