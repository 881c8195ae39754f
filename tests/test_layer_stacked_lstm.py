"""StackedLSTM against keras.layers.RNN([LSTMCell] * L) and a Sequential of keras.layers.LSTM with copied weights:
outputs, both states of every layer and gradients for every option of the Keras layers (return_sequences,
return_state, go_backwards, initial_state, masks, stateful, other activations), unit_forget_bias, dropout, mixed
precision, from_keras, config and clear errors. (Saving and distribution: test_layer_saving.py,
test_layer_distribution.py.)"""
import inspect
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from layer_testing import (HandedOutBetweenMasks, assert_all_close, keras_cells_stack, loss_gradients,
                           make_keras_pair, random_weights)
from deeprnn_fast.layers import StackedLSTM, from_keras

# The step-by-step loop announces itself once per layer (tested below); elsewhere it is noise.
pytestmark = pytest.mark.filterwarnings("ignore:.*step-by-step reference loop:UserWarning")


def keras_lstm_stack(units, num_layers, **options):
    return keras_cells_stack(keras.layers.LSTMCell, units, num_layers, **options)


def make_pair(rng, input_shape, units, num_layers, **options):
    return make_keras_pair(StackedLSTM, keras.layers.LSTMCell, rng, input_shape, units, num_layers, **options)


def random_inputs(rng, shape):
    return rng.uniform(-1.0, 1.0, shape).astype(np.float32)


def random_states(rng, batch, units, num_layers):
    """Flat, as StackedLSTM takes and returns them: h_0, c_0, h_1, c_1, ... (c beyond [-1, 1], as it may be)."""
    return [rng.uniform(-0.8, 0.8, (batch, units)).astype(np.float32) * (1 + 1.5 * (i % 2))
            for i in range(2 * num_layers)]


def nested(states):
    """The same states as keras.layers.RNN over LSTMCells takes them: [[h_0, c_0], [h_1, c_1], ...]."""
    return [list(states[i:i + 2]) for i in range(0, len(states), 2)]


def awkward_mask(rng, batch, time):
    """A random mask that is not right-padded, with a fully masked sequence, one whose first step is masked and one
    whose last step is masked (needs batch >= 3, time >= 2)."""
    mask = rng.random((batch, time)) > 0.35
    mask[0, :] = False
    mask[1, 0], mask[1, 1] = False, True
    mask[2, -1], mask[2, 0] = False, True
    return mask


# ---- against keras.layers.RNN([LSTMCell] * L) ----------------------------------------------------------------------

@pytest.mark.parametrize("num_layers,return_sequences,return_state,go_backwards", [
    (1, False, False, False), (3, True, True, False), (3, False, True, True), (2, True, False, True)])
def test_outputs_and_states_match_keras(num_layers, return_sequences, return_state, go_backwards):
    rng = np.random.default_rng([num_layers, return_sequences, return_state, go_backwards, 4])
    x = random_inputs(rng, (4, 6, 5))
    ours, theirs = make_pair(rng, x.shape, 7, num_layers, return_sequences=return_sequences,
                             return_state=return_state, go_backwards=go_backwards)
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    out = ours(x)
    assert len(keras.tree.flatten(out)) == (1 + 2 * num_layers if return_state else 1)
    assert_all_close(out, theirs(x))
    states = random_states(rng, 4, 7, num_layers)
    expected = theirs(x, initial_state=nested(states))
    assert_all_close(ours(x, initial_state=states), expected)
    assert_all_close(ours(x, initial_state=nested(states)), expected)  # Keras' nested form is taken too


def test_states_come_flat_h_then_c_of_every_layer():
    # Each layer's h and c against a one-layer Keras LSTM fed the layer below's sequence.
    rng = np.random.default_rng(5)
    x = random_inputs(rng, (3, 4, 2))
    layer = StackedLSTM(5, 2, return_sequences=True, return_state=True)
    layer.build(x.shape)
    weights = random_weights(layer, rng)
    expected, layer_input = [], x
    for l in range(2):
        single = keras.layers.LSTM(5, return_sequences=True, return_state=True)
        single.build(layer_input.shape)
        single.set_weights(weights[3 * l:3 * l + 3])
        layer_input, h, c = single(layer_input)
        expected += [h, c]
    out = layer(x)
    assert_all_close(out, [layer_input] + expected)
    assert not np.allclose(np.asarray(out[3]), np.asarray(out[4]))  # h_1 and c_1 differ: their order is tested


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_any_mask_matches_keras(go_backwards, zero_output_for_mask):
    rng = np.random.default_rng([go_backwards, zero_output_for_mask, 7])
    x = random_inputs(rng, (5, 7, 3))
    mask = awkward_mask(rng, 5, 7)
    ours, theirs = make_pair(rng, x.shape, 4, 2, return_sequences=True, return_state=True, go_backwards=go_backwards,
                             zero_output_for_mask=zero_output_for_mask)
    states = random_states(rng, 5, 4, 2)
    assert_all_close(ours(x, initial_state=states, mask=mask), theirs(x, initial_state=nested(states), mask=mask))


def gradients(call, weights, x, states, mask):
    """Gradients of sum(outputs * fixed random coefficients) w.r.t. the inputs, the initial states (flat) and
    `weights`; call(x, states, mask) runs the layer."""
    x, states = tf.constant(x), [tf.constant(s) for s in states]
    with tf.GradientTape() as tape:
        tape.watch([x] + states)
        outputs = keras.tree.flatten(call(x, states, mask))
        rng = np.random.default_rng(0)
        loss = tf.add_n([tf.reduce_sum(o * rng.standard_normal(o.shape).astype(np.float32)) for o in outputs])
    return tape.gradient(loss, [x] + states + list(weights))


@pytest.mark.parametrize("go_backwards,masked", [(False, False), (True, False), (False, True)])
def test_gradients_match_keras(go_backwards, masked):
    rng = np.random.default_rng([go_backwards, masked, 3])
    x = random_inputs(rng, (4, 5, 3))
    mask = awkward_mask(rng, 4, 5) if masked else None
    ours, theirs = make_pair(rng, x.shape, 6, 2, return_sequences=True, return_state=True, go_backwards=go_backwards)
    states = random_states(rng, 4, 6, 2)
    ours_grads = gradients(lambda x, s, m: ours(x, initial_state=s, mask=m), ours.trainable_weights, x, states, mask)
    theirs_grads = gradients(lambda x, s, m: theirs(x, initial_state=nested(s), mask=m), theirs.trainable_weights, x,
                             states, mask)
    assert len(ours_grads) == len(theirs_grads) == 1 + 4 + 3 * 2
    for i, (a, b) in enumerate(zip(ours_grads, theirs_grads)):
        assert np.abs(np.asarray(b)).max() > 0, f"gradient {i} of Keras is zero: the test would prove nothing"
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-5, err_msg=f"gradient {i}")


@pytest.mark.parametrize("settings", [
    dict(use_bias=False), dict(unit_forget_bias=False), dict(activation="relu"),
    dict(recurrent_activation="hard_sigmoid")], ids=["no_bias", "no_unit_forget_bias", "relu", "hard_sigmoid"])
def test_other_lstm_forms_match_keras(settings):
    rng = np.random.default_rng(len(str(settings)))
    x = random_inputs(rng, (3, 5, 4))
    ours, theirs = make_pair(rng, x.shape, 6, 2, return_sequences=True, return_state=True, **settings)
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    assert_all_close(ours(x), theirs(x))
    for a, b in zip(loss_gradients(ours, x), loss_gradients(theirs, x)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-5)


def test_unfused_forms_warn_once_and_say_why():
    rng = np.random.default_rng(9)
    x = random_inputs(rng, (2, 3, 4))
    layer = StackedLSTM(3, 2, activation="relu")
    with pytest.warns(UserWarning, match="activation='tanh' only, not 'relu'") as record:
        layer(x)
        layer(x)
    assert sum("activation='tanh' only" in str(w.message) for w in record) == 1
    with pytest.warns(UserWarning, match="recurrent_activation='sigmoid' only, not 'hard_sigmoid'"):
        StackedLSTM(3, 2, recurrent_activation="hard_sigmoid")(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default LSTM runs fused, silently
        StackedLSTM(3, 2)(x)


@pytest.mark.parametrize("masked", [False, True])
def test_stateful_calls_and_reset_match_keras(masked):
    rng = np.random.default_rng([21, masked])
    ours, theirs = make_pair(rng, (3, 4, 2), 5, 2, stateful=True, return_sequences=True, return_state=True)
    assert len(ours.get_weights()) == len(theirs.get_weights()) == 6  # state variables are not weights
    assert len(ours.states) == 4
    for call in range(3):
        x = random_inputs(rng, (3, 4, 2))
        mask = awkward_mask(rng, 3, 4) if masked else None
        assert_all_close(ours(x, mask=mask), theirs(x, mask=mask))
        assert_all_close([v.value for v in ours.states], [v.value for v in keras.tree.flatten(theirs.states)])
        if call == 1:
            ours.reset_state()
            assert all(np.all(np.asarray(v.value) == 0) for v in ours.states)
            for variable in keras.tree.flatten(theirs.states):  # Keras' reset_state fails over stacked cells
                variable.assign(np.zeros(variable.shape, np.float32))


def test_float64_layer_matches_keras_in_float64():
    rng = np.random.default_rng(17)
    x = rng.uniform(-1, 1, (3, 5, 4))
    ours, theirs = make_pair(rng, x.shape, 6, 2, return_sequences=True, return_state=True, dtype="float64")
    out = ours(x)
    assert all(o.dtype == tf.float64 for o in keras.tree.flatten(out))
    assert_all_close(out, theirs(x), atol=1e-12, rtol=1e-12)


def test_bidirectional_with_states_matches_keras():
    rng = np.random.default_rng(42)
    x = random_inputs(rng, (3, 5, 2))
    mask = awkward_mask(rng, 3, 5)
    ours = keras.layers.Bidirectional(StackedLSTM(4, 2, return_sequences=True, return_state=True))
    theirs = keras.layers.Bidirectional(keras_lstm_stack(4, 2, return_sequences=True, return_state=True))
    ours.build(x.shape)
    theirs.build(x.shape)
    theirs.set_weights(random_weights(ours, rng))
    states = random_states(rng, 3, 4, 2) + random_states(rng, 3, 4, 2)  # forward layers' states, then backward's
    expected = theirs(x, initial_state=nested(states[:4]) + nested(states[4:]))
    assert len(keras.tree.flatten(expected)) == 1 + 8
    assert_all_close(ours(x, initial_state=states), expected)
    assert_all_close(ours(x, mask=mask), theirs(x, mask=mask))


# ---- unit_forget_bias ----------------------------------------------------------------------------------------------

def test_unit_forget_bias_sets_the_forget_gate_bias_to_one():
    layer = StackedLSTM(4, 3, bias_initializer=keras.initializers.RandomNormal())
    layer.build((None, 5, 2))
    biases = [w for w in layer.get_weights() if w.ndim == 1]
    assert len(biases) == 3
    for bias in biases:
        np.testing.assert_array_equal(bias[4:8], np.ones(4))  # gates i, f, c, o: f is the second block
        assert np.abs(np.concatenate([bias[:4], bias[8:]])).min() > 0
    assert not np.allclose(biases[0][:4], biases[1][:4])  # every layer draws its own
    plain = StackedLSTM(4, 1, unit_forget_bias=False)
    plain.build((None, 5, 2))
    np.testing.assert_array_equal(plain.get_weights()[2], np.zeros(16))


# ---- against a Sequential of keras.layers.LSTM; from_keras ---------------------------------------------------------

def sequential_lstm(units, num_layers, features, **last_options):
    layers = [keras.layers.LSTM(units, return_sequences=True) for _ in range(num_layers - 1)]
    return keras.Sequential([keras.Input((None, features))] + layers + [keras.layers.LSTM(units, **last_options)])


def test_matches_a_sequential_of_keras_lstm_layers():
    rng = np.random.default_rng(23)
    x = random_inputs(rng, (3, 6, 4))
    theirs = sequential_lstm(5, 3, 4, return_sequences=True)
    random_weights(theirs, rng)
    ours = StackedLSTM(5, 3, return_sequences=True)
    ours.build(x.shape)
    ours.set_weights(theirs.get_weights())
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    assert_all_close(ours(x), theirs(x))
    for a, b in zip(loss_gradients(ours, x), loss_gradients(theirs, x)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("make", [
    lambda: keras_lstm_stack(5, 3, return_sequences=True, return_state=True, go_backwards=True),
    lambda: keras.layers.LSTM(5, return_state=True, unit_forget_bias=False),
    lambda: keras.layers.RNN(keras.layers.LSTMCell(5, use_bias=False), return_sequences=True),
    lambda: sequential_lstm(5, 3, 4),
], ids=["rnn-over-cells", "lstm", "rnn-over-one-cell", "sequential"])
def test_from_keras_computes_the_same(make):
    rng = np.random.default_rng(45)
    x = random_inputs(rng, (3, 6, 4))
    keras_layer = make()
    if not keras_layer.built:
        keras_layer.build(x.shape)
    random_weights(keras_layer, rng)
    converted = from_keras(keras_layer)
    assert type(converted) is StackedLSTM
    assert_all_close(converted(x), keras_layer(x))


def test_from_keras_copies_settings_and_both_states():
    rng = np.random.default_rng(46)
    keras_layer = keras_lstm_stack(4, 2, stateful=True, return_sequences=True, recurrent_activation="hard_sigmoid",
                                   unit_forget_bias=False)
    keras_layer.build((2, 3, 3))
    random_weights(keras_layer, rng)
    keras_layer(random_inputs(rng, (2, 3, 3)))  # moves the states away from zero
    converted = from_keras(keras_layer)
    assert keras.activations.serialize(converted.recurrent_activation) == "hard_sigmoid"
    assert converted.unit_forget_bias is False
    assert_all_close([v.value for v in converted.states], [v.value for v in keras.tree.flatten(keras_layer.states)])
    x = random_inputs(rng, (2, 3, 3))
    assert_all_close(converted(x), keras_layer(x))
    unbuilt = from_keras(keras.layers.LSTM(7, go_backwards=True))
    assert not unbuilt.built and (unbuilt.units, unbuilt.unit_forget_bias, unbuilt.go_backwards) == (7, True, True)


@pytest.mark.parametrize("make,match", [
    (lambda: keras.layers.RNN([keras.layers.LSTMCell(3), keras.layers.GRUCell(3)]), "of one type"),
    (lambda: keras.layers.RNN([keras.layers.LSTMCell(3), keras.layers.LSTMCell(3, unit_forget_bias=False)]),
     "same unit_forget_bias"),
    (lambda: keras.layers.RNN([keras.layers.LSTMCell(3, dropout=0.1), keras.layers.LSTMCell(3)]), "same dropout"),
    (lambda: keras.Sequential([keras.layers.LSTM(3, return_sequences=True), keras.layers.GRU(3)]), "of one type"),
])
def test_from_keras_refuses_what_it_cannot_convert(make, match):
    with pytest.raises(ValueError, match=match):
        from_keras(make())


# ---- training options ----------------------------------------------------------------------------------------------

def test_dropout_between_layers_in_training():
    rng = np.random.default_rng(31)
    x = random_inputs(rng, (3, 5, 4))
    layer = StackedLSTM(6, 3, between_layer_dropout=0.4, return_sequences=True, return_state=True)
    layer.build(x.shape)
    weights = random_weights(layer, rng)
    masks = [(rng.random((3, 5, 6)) > 0.4).astype(np.float32) / 0.6 for _ in range(2)]
    layer._between_layer_masks = handed_out = HandedOutBetweenMasks(masks)
    out = layer(x, training=True)
    assert handed_out.calls == 1, "the masks between layers were not used"
    # The same stack as separate one-layer Keras LSTMs with the masks multiplied in between.
    expected, layer_input = [], x
    for l in range(3):
        single = keras.layers.LSTM(6, return_sequences=True, return_state=True)
        single.build(layer_input.shape)
        single.set_weights(weights[3 * l:3 * l + 3])
        sequence, h, c = single(layer_input)
        expected += [h, c]
        layer_input = sequence * masks[l] if l < 2 else sequence
    assert_all_close(out, [sequence] + expected)
    assert_all_close(layer(x), layer(x, training=False))


def test_recurrent_dropout_matches_keras_given_the_same_masks():
    rng = np.random.default_rng(33)
    x = random_inputs(rng, (3, 5, 4))
    ours, theirs = make_pair(rng, x.shape, 6, 2, recurrent_dropout=0.3, return_sequences=True, return_state=True)
    masks = [[tf.constant((rng.random((3, 6)) > 0.3).astype(np.float32) / 0.7) for _ in range(4)] for _ in range(2)]
    handed_out = iter(masks)
    ours._cell_dropout_masks = lambda l, kind, batch, width, dtype, count: next(handed_out)
    for cell, mask in zip(theirs.cell.cells, masks):
        cell.get_recurrent_dropout_mask = lambda prev, mask=mask: mask
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # runs fused, without a fallback
        out = ours(x, training=True)
    assert next(handed_out, None) is None, "a recurrent mask was not used"
    assert_all_close(out, theirs(x, training=True))
    assert_all_close(ours(x), theirs(x))


@pytest.mark.parametrize("policy,atol", [("mixed_float16", 2e-3), ("mixed_bfloat16", 2e-2)])
def test_mixed_precision_outputs_in_compute_dtype(policy, atol):
    rng = np.random.default_rng(35)
    x = random_inputs(rng, (3, 6, 4))
    ours = StackedLSTM(5, 2, return_sequences=True, return_state=True, dtype=policy)
    ours.build(x.shape)
    theirs = keras_lstm_stack(5, 2, return_sequences=True, return_state=True)  # float32 Keras: the exact answer
    theirs.build(x.shape)
    theirs.set_weights(random_weights(ours, rng))
    assert all(v.dtype == "float32" for v in ours.weights)
    out = ours(x)
    compute_dtype = keras.DTypePolicy(policy).compute_dtype
    assert all(o.dtype == compute_dtype for o in keras.tree.flatten(out))
    assert_all_close([np.asarray(tf.cast(o, tf.float32)) for o in keras.tree.flatten(out)], theirs(x), atol=atol,
                     rtol=0)


def test_fit_matches_keras():
    rng = np.random.default_rng(36)
    x, y = random_inputs(rng, (8, 5, 3)), random_inputs(rng, (8, 4))
    models = [keras.Sequential([keras.Input((5, 3)), rnn, keras.layers.Dense(4)])
              for rnn in (StackedLSTM(6, 2), keras_lstm_stack(6, 2))]
    models[1].set_weights(random_weights(models[0], rng))
    histories = []
    for model in models:
        model.compile(keras.optimizers.Adam(0.01), "mse")
        histories.append(model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"])
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-5)
    assert_all_close(models[0].get_weights(), models[1].get_weights())


# ---- config, arguments ---------------------------------------------------------------------------------------------

def test_config_round_trip_keeps_every_argument():
    layer = StackedLSTM(7, 3, activation="relu", recurrent_activation="hard_sigmoid", use_bias=False,
                        kernel_initializer="he_normal", recurrent_initializer=keras.initializers.Orthogonal(gain=0.5),
                        bias_initializer="ones", unit_forget_bias=False, kernel_regularizer="l2",
                        recurrent_regularizer="l1", bias_regularizer=keras.regularizers.L2(0.3),
                        activity_regularizer="l2", kernel_constraint="non_neg",
                        recurrent_constraint=keras.constraints.MaxNorm(2.0), bias_constraint="unit_norm",
                        dropout=0.3, recurrent_dropout=0.2, return_sequences=True, return_state=True,
                        go_backwards=True, stateful=True, unroll=True, use_cudnn=False, zero_output_for_mask=True,
                        implementation=1, vocabulary_size=11, seed=5, name="deep", dtype="mixed_float16")
    config = layer.get_config()
    assert (config["unit_forget_bias"], config["implementation"], config["vocabulary_size"]) == (False, 1, 11)
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(clone) is StackedLSTM
    assert clone.get_config() == config
    assert keras.layers.serialize(layer)["registered_name"] == "deeprnn_fast>StackedLSTM"


def test_every_lstm_argument_is_accepted():
    ours = set(inspect.signature(StackedLSTM.__init__).parameters)
    keras_args = set(inspect.signature(keras.layers.LSTM.__init__).parameters)
    assert keras_args <= ours, f"missing: {keras_args - ours}"


@pytest.mark.parametrize("kwargs,match", [
    (dict(units=0, num_layers=2), "units must be a positive integer"),
    (dict(units=3, num_layers=0), "num_layers must be a positive integer"),
    (dict(units=3, num_layers=2, dropout=1.0), r"dropout must be a fraction in \[0, 1\)"),
    (dict(units=3, num_layers=2, use_cudnn=True), "never cuDNN"),
    (dict(units=3, num_layers=2, use_cudnn="yes"), "use_cudnn must be 'auto', True or False"),
    (dict(units=3, num_layers=2, implementation=3), "implementation must be 1 or 2"),
])
def test_bad_constructor_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StackedLSTM(**kwargs)


def test_bad_initial_states_name_what_is_expected():
    layer = StackedLSTM(5, 2, return_state=True)
    layer.build((3, 4, 6))
    x = np.ones((3, 4, 6), np.float32)
    states = [np.ones((3, 5), np.float32)] * 4
    with pytest.raises(ValueError, match=r"list of 4 tensors of shape \[3, 5\], h and c of every layer in turn "
                                         r"\(\[h_0, c_0, h_1, c_1, \.\.\.\]\); got 2 tensors"):
        layer(x, initial_state=states[:2])
    with pytest.raises(ValueError, match=r"initial_state\[3\] must have shape \[3, 5\]; got shape \(3, 4\)"):
        layer(x, initial_state=states[:3] + [np.ones((3, 4), np.float32)])


def test_layers_get_distinct_initial_weights_of_keras_shapes():
    layer = StackedLSTM(8, 3)
    layer.build((None, 5, 4))
    weights = layer.get_weights()
    assert [w.shape for w in weights[:3]] == [(4, 32), (8, 32), (32,)]
    assert not np.allclose(weights[3], weights[6]) and not np.allclose(weights[1], weights[4])
