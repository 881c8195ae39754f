"""Helpers of the op tests: fresh random stacked-cell arguments for every cell's layout, the public functions of each
cell, and the loss both implementations are differentiated on."""
import numpy as np
import tensorflow as tf

import deeprnn_fast
from deeprnn_fast import _validate, reference

# Agreement with the reference: float64 to rounding, float32 to a few ulp of the largest value compared.
TOLERANCE = {tf.float64: 1e-10, tf.float32: 1e-5}

# Every cell, by the name the package gives it everywhere.
CELLS = ["tanh", "relu", "gru", "lstm"]


def layout(cell):
    return _validate.CELLS[cell]


def fused_fn(cell):
    """The public fused function of `cell`, with the signature (inputs, kernels, recurrent, biases, initial)."""
    return _bind(cell, {"tanh": deeprnn_fast.stacked_rnn, "relu": deeprnn_fast.stacked_rnn,
                        "gru": deeprnn_fast.stacked_gru, "lstm": deeprnn_fast.stacked_lstm}[cell])


def reference_fn(cell):
    """The plain-TensorFlow reference of `cell`, with the signature of fused_fn."""
    return _bind(cell, {"tanh": reference.stacked_rnn, "relu": reference.stacked_rnn,
                        "gru": reference.stacked_gru, "lstm": reference.stacked_lstm}[cell])


def _bind(cell, fn):
    if cell not in _validate.RNN_ACTIVATIONS:
        return fn

    def with_activation(inputs, kernels, recurrent_kernels, biases, initial_states=None):
        return fn(inputs, kernels, recurrent_kernels, biases, initial_states, activation=cell)

    with_activation.__name__ = f"{fn.__module__}.{fn.__name__}[{cell}]"
    return with_activation


def weight_shapes(cell, features, units, layers):
    """Per layer the shapes of the kernel, the recurrent kernel and the bias (Keras' shapes)."""
    cell_layout = layout(cell)
    columns = cell_layout.gates * units
    bias = (columns,) if cell_layout.bias_rows is None else (cell_layout.bias_rows, columns)
    return [((features if l == 0 else units, columns), (units, columns), bias) for l in range(layers)]


def random_args(rng, batch, time, features, units, layers, dtype=tf.float64, scale=0.6, cell="tanh"):
    """Inputs, weights and initial states of `cell`'s layout drawn afresh, at a scale that keeps tanh and the gates
    out of saturation so that every weight visibly moves the result; biases and initial states are non-zero so that a
    lost term shows. The LSTM's initial states are L pairs (h, c)."""

    def draw(shape, std):
        return tf.constant(rng.normal(0.0, std, shape), dtype)

    inputs = draw((batch, time, features), 1.0)
    shapes = weight_shapes(cell, features, units, layers)
    kernels = [draw(k, scale / np.sqrt(k[0])) for k, _, _ in shapes]
    recurrent = [draw(r, scale / np.sqrt(units)) for _, r, _ in shapes]
    biases = [draw(b, 0.3) for _, _, b in shapes]
    initial = [random_state(rng, cell, batch, units, dtype) for _ in range(layers)]
    return inputs, kernels, recurrent, biases, initial


def random_state(rng, cell, batch, units, dtype):
    """One layer's initial state: a [B, H] tensor, or for the LSTM a pair (h, c) of them."""
    states = [tf.constant(rng.normal(0.0, 0.5, (batch, units)), dtype) for _ in range(layout(cell).states)]
    return states[0] if len(states) == 1 else tuple(states)


def zero_states(cell, batch, units, layers, dtype):
    one = lambda: tf.zeros([batch, units], dtype)  # noqa: E731
    return [one() if layout(cell).states == 1 else tuple(one() for _ in range(layout(cell).states))
            for _ in range(layers)]


def flatten_args(inputs, kernels, recurrent, biases, initial):
    """Every tensor argument in one list; the LSTM's state pairs become h, c one after the other."""
    return [inputs] + list(kernels) + list(recurrent) + list(biases) + tf.nest.flatten(list(initial))


def unflatten_args(cell, flat, layers):
    """flatten_args' inverse: (inputs, kernels, recurrent, biases, initial) for `cell`."""
    inputs, rest = flat[0], list(flat[1:])
    kernels, recurrent, biases, states = rest[:layers], rest[layers:2 * layers], rest[2 * layers:3 * layers], \
        rest[3 * layers:]
    per_layer = layout(cell).states
    initial = states if per_layer == 1 else [tuple(states[per_layer * l:per_layer * (l + 1)]) for l in range(layers)]
    return inputs, kernels, recurrent, biases, initial


def arg_names(cell, layers):
    """The names of flatten_args' entries, for messages."""
    states = [f"initial_states[{l}]" for l in range(layers)]
    if layout(cell).states > 1:
        states = [f"{s}.{part}" for s in states for part in "hc"]
    return (["inputs"] + [f"{n}[{l}]" for n in ("kernels", "recurrent_kernels", "biases") for l in range(layers)]
            + states)


def loss_of(outputs, final_states):
    """A loss that weighs every output and every final state differently, so that a gradient routed to the wrong
    time step, layer, unit (or the LSTM's h for its c) changes the result."""
    w = tf.cast(tf.reshape(tf.range(tf.size(outputs)) % 7 + 1, tf.shape(outputs)), outputs.dtype) / 7.0
    loss = tf.reduce_sum(w * outputs * tf.cos(outputs))
    for l, state in enumerate(final_states):
        for part, s in enumerate(tf.nest.flatten(state)):
            loss += (0.3 + 0.1 * l + 0.25 * part) * tf.reduce_sum(s * s)
    return loss


def value_and_grads(fn, args):
    """fn's outputs and final states on args, and the gradients of loss_of with respect to flatten_args(*args)."""
    flat = flatten_args(*args)
    with tf.GradientTape() as tape:
        tape.watch(flat)
        outputs, final_states = fn(*args)
        loss = loss_of(outputs, final_states)
    return outputs, final_states, tape.gradient(loss, flat)


def assert_close(actual, expected, rtol, atol, what=""):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def scaled_close(actual, expected, dtype, what):
    """assert_close at TOLERANCE[dtype], the absolute part scaled by the largest expected magnitude (at least 1)."""
    tol = TOLERANCE[dtype]
    scale = max(1.0, float(np.max(np.abs(np.asarray(expected)))) if np.size(expected) else 1.0)
    assert_close(actual, expected, rtol=tol, atol=tol * scale, what=what)


def states_close(actual, expected, dtype, what="final_states"):
    """Every layer's final state (the LSTM's h and c each) at scaled_close."""
    assert len(actual) == len(expected), f"{what}: {len(actual)} layers != {len(expected)}"
    for l, (a, e) in enumerate(zip(actual, expected)):
        a, e = tf.nest.flatten(a), tf.nest.flatten(e)
        assert len(a) == len(e), f"{what}[{l}]: {len(a)} state tensors != {len(e)}"
        for part, (x, y) in enumerate(zip(a, e)):
            scaled_close(x, y, dtype, f"{what}[{l}]" + (f".{'hc'[part]}" if len(a) > 1 else ""))


# The optional list inputs of the raw ops after `tokens` (masks and dropout), empty: for tests that call a raw op.
NO_MODIFIERS = dict(mask=[], input_dropout=[], recurrent_dropout=[], between_dropout=[])
