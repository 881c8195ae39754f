"""Plain-TensorFlow references: the stacked RNN (the maths of d2l's StackedRNNScratch), the stacked GRU (Keras'
GRUCell) and the stacked LSTM (Keras' LSTMCell), one cell at a time, with Keras' masking and dropout.

It is the "Python fallback" of every fused op in this package: `deeprnn_fast.stacked_*` run it when the compiled
library is unavailable, and the tests check the fused forward and gradient against it (its gradient is TensorFlow's
own autodiff through these ops). It favours obviously-correct over fast: a Python loop over layers and time steps.

Every function takes the fused op's optional modifiers (see `deeprnn_fast.stacked_rnn`): `mask` [B, T] (a masked
step keeps every layer's states and repeats the last output, zeros before the first step taken or always with
`zero_output_for_mask`), `input_dropout` / `recurrent_dropout` (per layer [masks, B, width] masks, one or one per
gate, multiplying the cell's input / h_{t-1} in its products, as Keras' cells do) and `between_dropout`
[L - 1, T, B, H] (a fresh mask per step on each layer's output on its way into the next, as torch.nn.RNN).

`dropout_mask` is the plain-TensorFlow form of the op the layers draw those masks with: the same bits, the same
masks.
"""
import math

import numpy as np
import tensorflow as tf

from deeprnn_fast import _validate, _xla

__all__ = ["stacked_rnn", "stacked_gru", "stacked_lstm", "dropout_mask"]


def _phi(name):
    return {"tanh": tf.tanh, "relu": tf.nn.relu}[name]


def _checked(cell, inputs, kernels, recurrent_kernels, biases, initial_states, modifiers):
    args = _validate.stacked_args(cell, inputs, kernels, recurrent_kernels, biases, initial_states)
    if args.time is None:
        raise ValueError("the reference needs a statically known number of time steps (inputs.shape[1]); "
                         f"got inputs of shape {(args.inputs if args.inputs is not None else args.tokens).shape}")
    return args, _validate.modifier_args(args, **modifiers)


def _projection(operand, kernel, masks, gates):
    """operand W for every gate block: (operand * masks[g]) W[:, g] side by side when the masks are per gate,
    (operand * mask) W with one mask, operand W with none."""
    if masks is None:
        return tf.matmul(operand, kernel)
    if masks.shape[0] == 1:
        return tf.matmul(operand * masks[0], kernel)
    return tf.concat([tf.matmul(operand * masks[g], part) for g, part in enumerate(tf.split(kernel, gates, axis=1))],
                     axis=-1)


def _token_projection(tokens, kernel, masks, gates):
    """The rows of kernel for the tokens: what one-hot inputs compute, the dropout mask taken at each row's token.
    An id outside the kernel's rows is an error naming `tokens`, as in the fused op; inside XLA, which runs no
    assertion and clamps a gather silently, it gives its row NaN instead (never another token's row)."""
    vocabulary = kernel.shape[0]
    bad = tf.logical_or(tokens < 0, tokens >= vocabulary)
    if _xla.in_xla_context():
        kernel = tf.concat([kernel, tf.fill([1, kernel.shape[1]], tf.constant(float("nan"), kernel.dtype))], axis=0)
        tokens = tf.where(bad, vocabulary, tokens)
        if masks is not None:
            masks = tf.concat([masks, tf.ones_like(masks[:, :, :1])], axis=2)
    else:
        first_bad = tf.concat([tf.boolean_mask(tokens, bad), [0]], axis=0)[0]
        message = tf.strings.format("tokens must lie in [0, {}) (the rows of kernels[0]); got {}",
                                    (vocabulary, first_bad))
        with tf.control_dependencies([tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)), [message])]):
            tokens = tf.identity(tokens)
    rows = tf.gather(kernel, tokens)
    if masks is None:
        return rows
    one_hot = tf.one_hot(tokens, tf.shape(masks)[2], dtype=masks.dtype)  # [B, V]
    scales = tf.reduce_sum(masks * one_hot[tf.newaxis], axis=-1)  # [masks, B]: each row's mask at its token
    if masks.shape[0] == 1:
        return rows * scales[0][:, tf.newaxis]
    return tf.concat([part * scales[g][:, tf.newaxis] for g, part in enumerate(tf.split(rows, gates, axis=1))],
                     axis=-1)


def _run(args, mods, step):
    """The stacked recurrence with masking and dropout, one cell at a time: step(l, x_w, h_w, state) gives the new
    state of layer l (a tuple whose first element is h) from the input and recurrent projections of its gates."""
    gates = _validate.CELLS[args.cell].gates
    lstm = _validate.CELLS[args.cell].states > 1
    states = [tuple(s) if lstm else (s,) for s in args.initial_states]
    masks_in = mods.input_dropout or [None] * args.layers
    masks_rec = mods.recurrent_dropout or [None] * args.layers
    outputs = []
    seen = None
    if mods.mask is not None:
        seen = tf.zeros(tf.shape(mods.mask)[:1], tf.bool)
    for t in range(args.time):
        x = None if args.tokens is not None else args.inputs[:, t]
        for l in range(args.layers):
            if l == 0 and args.tokens is not None:
                x_w = _token_projection(args.tokens[:, t], args.kernels[0], masks_in[0], gates)
            else:
                if l > 0 and mods.between_dropout is not None:
                    x = x * mods.between_dropout[l - 1, t]
                x_w = _projection(x, args.kernels[l], masks_in[l], gates)
            h_w = _projection(states[l][0], args.recurrent_kernels[l], masks_rec[l], gates)
            new = step(l, x_w, h_w, states[l])
            if mods.mask is not None:
                taken = mods.mask[:, t][:, tf.newaxis]
                new = tuple(tf.where(taken, n, s) for n, s in zip(new, states[l]))
            states[l] = new
            x = new[0]
        if mods.mask is not None:
            taken = mods.mask[:, t]
            passes = taken if mods.zero_output_for_mask else taken | seen
            outputs.append(tf.where(passes[:, tf.newaxis], x, tf.zeros_like(x)))
            seen = seen | taken
        else:
            outputs.append(x)
    if args.time:
        output = tf.stack(outputs, axis=1)
    else:
        output = tf.zeros([args.batch, 0, args.hidden], args.dtype)
    final = [s if lstm else s[0] for s in states]
    return output, final


def stacked_rnn(inputs, kernels, recurrent_kernels, biases, initial_states=None, activation="tanh", **modifiers):
    """Stacked RNN on plain TensorFlow ops; same signature and results as `deeprnn_fast.stacked_rnn`.

    Args:
      inputs: [B, T, D] float tensor, or [B, T] integer token ids (one-hot inputs of kernels[0]'s rows).
      kernels: list of L tensors, [D, H] for the first layer and [H, H] for the others.
      recurrent_kernels: list of L tensors [H, H].
      biases: list of L tensors [H].
      initial_states: None (zeros) or a list of L tensors [B, H].
      activation: "tanh" or "relu".
      **modifiers: mask, zero_output_for_mask, input_dropout, recurrent_dropout, between_dropout (see the module).

    Returns:
      (outputs [B, T, H], final_states: list of L tensors [B, H]).
    """
    args, mods = _checked(_validate.rnn_activation(activation), inputs, kernels, recurrent_kernels, biases,
                          initial_states, modifiers)
    phi = _phi(args.cell)

    def step(l, x_w, h_w, state):
        return (phi(x_w + h_w + args.biases[l]),)

    return _run(args, mods, step)


def stacked_gru(inputs, kernels, recurrent_kernels, biases, initial_states=None, **modifiers):
    """Stacked GRU on plain TensorFlow ops, Keras' GRUCell (reset_after=True) one cell at a time; same signature and
    results as `deeprnn_fast.stacked_gru`.

    Args:
      inputs: [B, T, D] float tensor, or [B, T] integer token ids (one-hot inputs of kernels[0]'s rows).
      kernels: list of L tensors, [D, 3H] for the first layer and [H, 3H] for the others (gates z | r | n).
      recurrent_kernels: list of L tensors [H, 3H].
      biases: list of L tensors [2, 3H]: the input bias in row 0, the recurrent bias in row 1.
      initial_states: None (zeros) or a list of L tensors [B, H].
      **modifiers: mask, zero_output_for_mask, input_dropout, recurrent_dropout, between_dropout (see the module).

    Returns:
      (outputs [B, T, H], final_states: list of L tensors [B, H]).
    """
    args, mods = _checked("gru", inputs, kernels, recurrent_kernels, biases, initial_states, modifiers)

    def step(l, x_w, h_w, state):
        # The operations, and their order, of keras.layers.GRUCell.call (reset_after=True).
        (h,) = state
        x_z, x_r, x_n = tf.split(x_w + args.biases[l][0], 3, axis=-1)
        h_z, h_r, h_n = tf.split(h_w + args.biases[l][1], 3, axis=-1)
        z = tf.sigmoid(x_z + h_z)
        r = tf.sigmoid(x_r + h_r)
        n = tf.tanh(x_n + r * h_n)
        return (z * h + (1 - z) * n,)

    return _run(args, mods, step)


def stacked_lstm(inputs, kernels, recurrent_kernels, biases, initial_states=None, **modifiers):
    """Stacked LSTM on plain TensorFlow ops, Keras' LSTMCell one cell at a time; same signature and results as
    `deeprnn_fast.stacked_lstm`.

    Args:
      inputs: [B, T, D] float tensor, or [B, T] integer token ids (one-hot inputs of kernels[0]'s rows).
      kernels: list of L tensors, [D, 4H] for the first layer and [H, 4H] for the others (gates i | f | c | o).
      recurrent_kernels: list of L tensors [H, 4H].
      biases: list of L tensors [4H].
      initial_states: None (zeros) or a list of L pairs (h, c) of [B, H] tensors.
      **modifiers: mask, zero_output_for_mask, input_dropout, recurrent_dropout, between_dropout (see the module).

    Returns:
      (outputs [B, T, H], final_states: list of L pairs (h, c) of [B, H]).
    """
    args, mods = _checked("lstm", inputs, kernels, recurrent_kernels, biases, initial_states, modifiers)

    def step(l, x_w, h_w, state):
        # The operations, and their order, of keras.layers.LSTMCell.call.
        _, c = state
        z_i, z_f, z_c, z_o = tf.split(x_w + h_w + args.biases[l], 4, axis=-1)
        i = tf.sigmoid(z_i)
        f = tf.sigmoid(z_f)
        c = f * c + i * tf.tanh(z_c)
        o = tf.sigmoid(z_o)
        return (o * tf.tanh(c), c)

    return _run(args, mods, step)


def dropout_threshold(rate):
    """The 32-bit number below which an element is dropped: ceil(rate * 2^32), with rate rounded to float32 as the
    op's attribute is (the product is exact in float64)."""
    return min(math.ceil(float(np.float32(rate)) * 2.0 ** 32), 2 ** 32 - 1)


def dropout_mask(shape, rate, seed, dtype=tf.float32):
    """deeprnn_fast.dropout_mask in plain TensorFlow: TensorFlow's stateless uniform bits for `seed`, kept where they
    reach dropout_threshold(rate), kept elements scaled by 1 / (1 - rate) (computed in `dtype`)."""
    dtype = tf.as_dtype(dtype)
    bits = tf.random.stateless_uniform(shape, seed=seed, minval=None, maxval=None, dtype=tf.uint32)
    one = tf.constant(1, dtype)
    scale = one / (one - tf.cast(tf.constant(np.float32(rate)), dtype))
    return tf.where(bits >= tf.constant(dropout_threshold(rate), tf.uint32), scale, tf.zeros([], dtype))
