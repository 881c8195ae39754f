"""Helpers of the Keras-layer tests: a StackedRNN and the Keras stack it replaces, with the same random weights."""
import keras
import numpy as np
import tensorflow as tf

from deeprnn_fast.layers import StackedRNN

# float32 against Keras with copied weights: the same products summed in possibly another order.
ATOL = RTOL = 1e-5


def keras_stack(units, num_layers, activation="tanh", use_bias=True, recurrent_dropout=0.0, dropout=0.0,
                **rnn_options):
    """keras.layers.RNN over num_layers SimpleRNNCells: the layer StackedRNN stands in for."""
    # The cells take their dtype policy from their own argument, not from the RNN around them.
    cells = [keras.layers.SimpleRNNCell(units, activation=activation, use_bias=use_bias,
                                        recurrent_dropout=recurrent_dropout, dropout=dropout,
                                        dtype=rnn_options.get("dtype"))
             for _ in range(num_layers)]
    # So does the StackedRNNCells wrapper, which would otherwise cast the states to float32.
    return keras.layers.RNN(keras.layers.StackedRNNCells(cells, dtype=rnn_options.get("dtype")), **rnn_options)


def random_weights(layer, rng):
    """Draws every weight of `layer` afresh (biases too, so that a lost bias shows) at a scale that keeps tanh
    unsaturated, and returns them in get_weights() order."""
    weights = [rng.normal(0.0, 0.6 / np.sqrt(w.shape[0]) if w.ndim == 2 else 0.3, w.shape).astype(w.dtype)
               for w in layer.get_weights()]
    layer.set_weights(weights)
    return weights


def make_pair(rng, input_shape, units, num_layers, activation="tanh", use_bias=True, **options):
    """(StackedRNN, keras.layers.RNN) built for input_shape, with the same random weights."""
    ours = StackedRNN(units, num_layers, activation=activation, use_bias=use_bias, **options)
    ours.build(input_shape)
    # between_layer_dropout has no Keras equivalent: tests compare it in training against a hand-built stack.
    reference_options = {k: v for k, v in options.items() if k not in ("between_layer_dropout", "seed")}
    theirs = keras_stack(units, num_layers, activation=activation, use_bias=use_bias, **reference_options)
    theirs.build(input_shape)
    theirs.set_weights(random_weights(ours, rng))
    return ours, theirs


def flat(outputs):
    """Outputs as a list of NumPy arrays; Keras nests each layer's state in a list, StackedRNN does not."""
    return [np.asarray(o) for o in keras.tree.flatten(outputs)]


def assert_all_close(actual, expected, atol=ATOL, rtol=RTOL):
    actual, expected = flat(actual), flat(expected)
    assert len(actual) == len(expected), f"{len(actual)} outputs against {len(expected)}"
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert a.shape == e.shape, f"output {i}: shape {a.shape} against {e.shape}"
        np.testing.assert_allclose(a, e, atol=atol, rtol=rtol, err_msg=f"output {i}")


def loss_gradients(layer, x, initial_state=None, mask=None, seed=0, **call_options):
    """Gradients of sum(outputs * fixed random coefficients), over every output, with respect to the inputs, the
    initial states (when given) and every trainable weight, in that order."""
    x = tf.constant(x)
    states = [tf.constant(s) for s in initial_state] if initial_state is not None else []
    with tf.GradientTape() as tape:
        tape.watch([x] + states)
        outputs = layer(x, initial_state=states or None, mask=mask, **call_options)
        flat_outputs = keras.tree.flatten(outputs)
        rng = np.random.default_rng(seed)
        loss = tf.add_n([tf.reduce_sum(o * rng.standard_normal(o.shape).astype(np.float32))
                         for o in flat_outputs])
    return tape.gradient(loss, [x] + states + list(layer.trainable_weights))


# The arguments of Keras' cells (as opposed to those of keras.layers.RNN around them).
CELL_SETTINGS = ("activation", "recurrent_activation", "use_bias", "reset_after", "unit_forget_bias",
                 "dropout", "recurrent_dropout", "kernel_initializer", "recurrent_initializer", "bias_initializer")


def keras_cells_stack(cell_class, units, num_layers, **options):
    """keras.layers.RNN over num_layers cells of cell_class (SimpleRNNCell, GRUCell, LSTMCell)."""
    cell_options = {k: options.pop(k) for k in CELL_SETTINGS if k in options}
    # The cells and the StackedRNNCells wrapper take their dtype policy from their own argument.
    cells = [cell_class(units, dtype=options.get("dtype"), **cell_options) for _ in range(num_layers)]
    return keras.layers.RNN(keras.layers.StackedRNNCells(cells, dtype=options.get("dtype")), **options)


def make_keras_pair(ours_class, cell_class, rng, input_shape, units, num_layers, **options):
    """(our layer, keras.layers.RNN over cell_class) built for input_shape, with the same random weights."""
    ours = ours_class(units, num_layers, **options)
    ours.build(input_shape)
    keras_options = {k: v for k, v in options.items() if k not in ("between_layer_dropout", "seed",
                                                                    "implementation")}
    theirs = keras_cells_stack(cell_class, units, num_layers, **keras_options)
    theirs.build(input_shape)
    theirs.set_weights(random_weights(ours, rng))
    return ours, theirs


class HandedOutBetweenMasks:
    """A replacement for a layer's _between_layer_masks that hands out `masks` (L - 1 arrays [B, T, H], batch major
    as the tests draw them) as the layer takes them, one [L - 1, T, B, H] tensor; `calls` counts its calls."""

    def __init__(self, masks):
        self.masks = tf.constant(np.stack([np.asarray(m) for m in masks]).transpose(0, 2, 1, 3))
        self.calls = 0

    def __call__(self, batch, time, dtype):
        self.calls += 1
        return tf.cast(self.masks, dtype)
