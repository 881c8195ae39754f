"""StackedGRU against keras.layers.RNN([GRUCell] * L) and a Sequential of keras.layers.GRU with copied weights: outputs,
states and gradients for every option of the Keras layers (return_sequences, return_state, go_backwards,
initial_state, masks, stateful, reset_after=False, other activations), dropout, saving, mixed precision, from_keras,
config and clear errors. (MirroredStrategy: test_layer_distribution.py, whose model holds a StackedGRU.)"""
import inspect
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from layer_testing import HandedOutBetweenMasks, assert_all_close, flat, loss_gradients, random_weights
from deeprnn_fast.layers import StackedGRU, from_keras

# The step-by-step loop announces itself once per layer (tested below); elsewhere it is noise.
pytestmark = pytest.mark.filterwarnings("ignore:.*step-by-step reference loop:UserWarning")

KERAS_CELL_SETTINGS = ("activation", "recurrent_activation", "use_bias", "reset_after", "dropout",
                       "recurrent_dropout")


def keras_gru_stack(units, num_layers, **options):
    """keras.layers.RNN over num_layers GRUCells: the layer StackedGRU stands in for."""
    cell_options = {k: options.pop(k) for k in KERAS_CELL_SETTINGS if k in options}
    # The cells take their dtype policy from their own argument, not from the RNN around them.
    cells = [keras.layers.GRUCell(units, dtype=options.get("dtype"), **cell_options) for _ in range(num_layers)]
    return keras.layers.RNN(keras.layers.StackedRNNCells(cells, dtype=options.get("dtype")), **options)


def make_pair(rng, input_shape, units, num_layers, **options):
    """(StackedGRU, keras.layers.RNN over GRUCells) built for input_shape, with the same random weights."""
    ours = StackedGRU(units, num_layers, **options)
    ours.build(input_shape)
    keras_options = {k: v for k, v in options.items() if k not in ("between_layer_dropout", "seed")}
    theirs = keras_gru_stack(units, num_layers, **keras_options)
    theirs.build(input_shape)
    theirs.set_weights(random_weights(ours, rng))
    return ours, theirs


def random_inputs(rng, shape):
    return rng.uniform(-1.0, 1.0, shape).astype(np.float32)


def random_states(rng, batch, units, num_layers):
    return [rng.uniform(-0.8, 0.8, (batch, units)).astype(np.float32) for _ in range(num_layers)]


def awkward_mask(rng, batch, time):
    """A random mask that is not right-padded, with a fully masked sequence, one whose first step is masked and one
    whose last step is masked (needs batch >= 3, time >= 2)."""
    mask = rng.random((batch, time)) > 0.35
    mask[0, :] = False
    mask[1, 0], mask[1, 1] = False, True
    mask[2, -1], mask[2, 0] = False, True
    return mask


# ---- against keras.layers.RNN([GRUCell] * L) -----------------------------------------------------------------------

@pytest.mark.parametrize("num_layers,return_sequences,return_state,go_backwards", [
    (1, False, False, False), (3, True, True, False), (3, False, True, True), (2, True, False, True)])
def test_outputs_and_states_match_keras(num_layers, return_sequences, return_state, go_backwards):
    rng = np.random.default_rng([num_layers, return_sequences, return_state, go_backwards])
    x = random_inputs(rng, (4, 6, 5))
    ours, theirs = make_pair(rng, x.shape, 7, num_layers, return_sequences=return_sequences,
                             return_state=return_state, go_backwards=go_backwards)
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    assert_all_close(ours(x), theirs(x))
    states = random_states(rng, 4, 7, num_layers)
    assert_all_close(ours(x, initial_state=states), theirs(x, initial_state=states))


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_any_mask_matches_keras(go_backwards, zero_output_for_mask):
    rng = np.random.default_rng([go_backwards, zero_output_for_mask, 7])
    x = random_inputs(rng, (5, 7, 3))
    mask = awkward_mask(rng, 5, 7)
    ours, theirs = make_pair(rng, x.shape, 4, 2, return_sequences=True, return_state=True, go_backwards=go_backwards,
                             zero_output_for_mask=zero_output_for_mask)
    states = random_states(rng, 5, 4, 2)
    assert_all_close(ours(x, initial_state=states, mask=mask), theirs(x, initial_state=states, mask=mask))


@pytest.mark.parametrize("go_backwards,masked", [(False, False), (True, False), (False, True)])
def test_gradients_match_keras(go_backwards, masked):
    rng = np.random.default_rng([go_backwards, masked, 3])
    x = random_inputs(rng, (4, 5, 3))
    mask = awkward_mask(rng, 4, 5) if masked else None
    ours, theirs = make_pair(rng, x.shape, 6, 2, return_sequences=True, return_state=True, go_backwards=go_backwards)
    states = random_states(rng, 4, 6, 2)
    ours_grads = loss_gradients(ours, x, states, mask)
    theirs_grads = loss_gradients(theirs, x, states, mask)
    assert len(ours_grads) == len(theirs_grads) == 1 + 2 + 3 * 2
    for i, (a, b) in enumerate(zip(ours_grads, theirs_grads)):
        assert np.abs(np.asarray(b)).max() > 0, f"gradient {i} of Keras is zero: the test would prove nothing"
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-5, err_msg=f"gradient {i}")


@pytest.mark.parametrize("settings", [
    dict(reset_after=False), dict(use_bias=False), dict(reset_after=False, use_bias=False),
    dict(activation="relu"), dict(recurrent_activation="hard_sigmoid")],
    ids=["reset_before", "no_bias", "reset_before_no_bias", "relu", "hard_sigmoid"])
def test_other_gru_forms_match_keras(settings):
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
    layer = StackedGRU(3, 2, reset_after=False)
    with pytest.warns(UserWarning, match="reset_after=False") as record:
        layer(x)
        layer(x)
    assert sum("reset_after=False" in str(w.message) for w in record) == 1
    with pytest.warns(UserWarning, match="recurrent_activation='sigmoid' only, not 'hard_sigmoid'"):
        StackedGRU(3, 2, recurrent_activation="hard_sigmoid")(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default GRU runs fused, silently
        StackedGRU(3, 2)(x)


@pytest.mark.parametrize("masked", [False, True])
def test_stateful_calls_and_reset_match_keras(masked):
    rng = np.random.default_rng([21, masked])
    ours, theirs = make_pair(rng, (3, 4, 2), 5, 2, stateful=True, return_sequences=True, return_state=True)
    assert len(ours.get_weights()) == len(theirs.get_weights()) == 6  # state variables are not weights
    for call in range(3):
        x = random_inputs(rng, (3, 4, 2))
        mask = awkward_mask(rng, 3, 4) if masked else None
        assert_all_close(ours(x, mask=mask), theirs(x, mask=mask))
        assert_all_close([v.value for v in ours.states], [v.value for v in keras.tree.flatten(theirs.states)])
        if call == 1:
            ours.reset_state()
            for variable in keras.tree.flatten(theirs.states):  # Keras' reset_state fails over stacked cells
                variable.assign(np.zeros(variable.shape, np.float32))


def test_float64_layer_matches_keras_in_float64():
    rng = np.random.default_rng(17)
    x = rng.uniform(-1, 1, (3, 5, 4))
    ours, theirs = make_pair(rng, x.shape, 6, 2, return_sequences=True, return_state=True, dtype="float64")
    out = ours(x)
    assert all(o.dtype == tf.float64 for o in keras.tree.flatten(out))
    assert_all_close(out, theirs(x), atol=1e-12, rtol=1e-12)


# ---- against a Sequential of keras.layers.GRU; from_keras ----------------------------------------------------------

def sequential_gru(units, num_layers, features, **last_options):
    layers = [keras.layers.GRU(units, return_sequences=True) for _ in range(num_layers - 1)]
    return keras.Sequential([keras.Input((None, features))] + layers + [keras.layers.GRU(units, **last_options)])


def test_matches_a_sequential_of_keras_gru_layers():
    rng = np.random.default_rng(23)
    x = random_inputs(rng, (3, 6, 4))
    theirs = sequential_gru(5, 3, 4, return_sequences=True)
    random_weights(theirs, rng)
    ours = StackedGRU(5, 3, return_sequences=True)
    ours.build(x.shape)
    ours.set_weights(theirs.get_weights())
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    assert_all_close(ours(x), theirs(x))


@pytest.mark.parametrize("make", [
    lambda: keras_gru_stack(5, 3, return_sequences=True, return_state=True, go_backwards=True),
    lambda: keras.layers.GRU(5, return_state=True),
    lambda: keras.layers.GRU(5, reset_after=False, return_sequences=True),
    lambda: keras.layers.RNN(keras.layers.GRUCell(5, use_bias=False), return_sequences=True),
    lambda: sequential_gru(5, 3, 4),
], ids=["rnn-over-cells", "gru", "gru-reset-before", "rnn-over-one-cell", "sequential"])
def test_from_keras_computes_the_same(make):
    rng = np.random.default_rng(45)
    x = random_inputs(rng, (3, 6, 4))
    keras_layer = make()
    if not keras_layer.built:
        keras_layer.build(x.shape)
    random_weights(keras_layer, rng)
    converted = from_keras(keras_layer)
    assert type(converted) is StackedGRU
    assert_all_close(converted(x), keras_layer(x))


def test_from_keras_copies_settings_and_states():
    rng = np.random.default_rng(46)
    keras_layer = keras_gru_stack(4, 2, stateful=True, return_sequences=True, recurrent_activation="hard_sigmoid")
    keras_layer.build((2, 3, 3))
    random_weights(keras_layer, rng)
    keras_layer(random_inputs(rng, (2, 3, 3)))  # moves the states away from zero
    converted = from_keras(keras_layer)
    assert keras.activations.serialize(converted.recurrent_activation) == "hard_sigmoid"
    x = random_inputs(rng, (2, 3, 3))
    assert_all_close(converted(x), keras_layer(x))
    unbuilt = from_keras(keras.layers.GRU(7, reset_after=False, go_backwards=True))
    assert not unbuilt.built and (unbuilt.units, unbuilt.reset_after, unbuilt.go_backwards) == (7, False, True)


@pytest.mark.parametrize("make,match", [
    # A cell of another type, even a subclass of a known one (its maths may differ), is refused.
    (lambda: keras.layers.RNN(type("CustomCell", (keras.layers.GRUCell,), {})(3)),
     "SimpleRNNCell, keras.layers.GRUCell or keras.layers.LSTMCell only; .* has a CustomCell"),
    (lambda: keras.layers.RNN([keras.layers.GRUCell(3), keras.layers.SimpleRNNCell(3)]), "of one type"),
    (lambda: keras.layers.RNN([keras.layers.GRUCell(3), keras.layers.GRUCell(3, reset_after=False)]),
     "same reset_after"),
    (lambda: keras.layers.RNN([keras.layers.GRUCell(3, dropout=0.1), keras.layers.GRUCell(3)]), "same dropout"),
])
def test_from_keras_refuses_what_it_cannot_convert(make, match):
    with pytest.raises(ValueError, match=match):
        from_keras(make())


# ---- training options ----------------------------------------------------------------------------------------------

def test_dropout_between_layers_in_training():
    rng = np.random.default_rng(31)
    x = random_inputs(rng, (3, 5, 4))
    layer = StackedGRU(6, 3, between_layer_dropout=0.4, return_sequences=True, return_state=True)
    layer.build(x.shape)
    weights = random_weights(layer, rng)
    masks = [(rng.random((3, 5, 6)) > 0.4).astype(np.float32) / 0.6 for _ in range(2)]
    layer._between_layer_masks = handed_out = HandedOutBetweenMasks(masks)
    out = layer(x, training=True)
    assert handed_out.calls == 1, "the masks between layers were not used"
    # The same stack as separate one-layer Keras GRUs with the masks multiplied in between.
    expected, layer_input = [], x
    for l in range(3):
        single = keras_gru_stack(6, 1, return_sequences=True, return_state=True)
        single.build(layer_input.shape)
        single.set_weights(weights[3 * l:3 * l + 3])
        sequence, (state,) = single(layer_input)
        expected.append(state)
        layer_input = sequence * masks[l] if l < 2 else sequence
    assert_all_close(out, [sequence] + expected)
    assert_all_close(layer(x), layer(x, training=False))


def test_recurrent_dropout_matches_keras_given_the_same_masks():
    rng = np.random.default_rng(33)
    x = random_inputs(rng, (3, 5, 4))
    ours, theirs = make_pair(rng, x.shape, 6, 2, recurrent_dropout=0.3, return_sequences=True, return_state=True)
    masks = [[tf.constant((rng.random((3, 6)) > 0.3).astype(np.float32) / 0.7) for _ in range(3)] for _ in range(2)]
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


def test_training_with_regularizers_and_constraints_matches_keras():
    rng = np.random.default_rng(34)
    x, y = random_inputs(rng, (8, 5, 3)), random_inputs(rng, (8, 4))
    settings = dict(kernel_regularizer=keras.regularizers.L2(0.01), recurrent_regularizer=keras.regularizers.L1(0.02),
                    bias_regularizer=keras.regularizers.L2(0.03), kernel_constraint=keras.constraints.MaxNorm(0.4),
                    recurrent_constraint=keras.constraints.UnitNorm(), bias_constraint=keras.constraints.NonNeg())
    ours = StackedGRU(4, 2, activity_regularizer=keras.regularizers.L2(0.05), **settings)
    theirs = keras.layers.RNN([keras.layers.GRUCell(4, **settings) for _ in range(2)],
                              activity_regularizer=keras.regularizers.L2(0.05))
    models = []
    for layer in (ours, theirs):
        model = keras.Sequential([keras.Input((5, 3)), layer])
        model.compile(keras.optimizers.SGD(0.5), "mse")
        models.append(model)
    theirs.set_weights(random_weights(ours, rng))
    histories = [m.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"] for m in models]
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-5)
    assert_all_close(ours.get_weights(), theirs.get_weights())
    assert np.all(ours.get_weights()[2] >= 0)  # NonNeg bias: the constraint ran


@pytest.mark.parametrize("policy,atol", [("mixed_float16", 2e-3), ("mixed_bfloat16", 2e-2)])
def test_mixed_precision_outputs_in_compute_dtype(policy, atol):
    rng = np.random.default_rng(35)
    x = random_inputs(rng, (3, 6, 4))
    ours = StackedGRU(5, 2, return_sequences=True, return_state=True, dtype=policy)
    ours.build(x.shape)
    theirs = keras_gru_stack(5, 2, return_sequences=True, return_state=True)  # float32 Keras: the exact answer
    theirs.build(x.shape)
    theirs.set_weights(random_weights(ours, rng))
    assert all(v.dtype == "float32" for v in ours.weights)
    out = ours(x)
    compute_dtype = keras.DTypePolicy(policy).compute_dtype
    assert all(o.dtype == compute_dtype for o in keras.tree.flatten(out))
    assert_all_close([np.asarray(tf.cast(o, tf.float32)) for o in keras.tree.flatten(out)], theirs(x), atol=atol,
                     rtol=0)


# ---- saving, config, arguments -------------------------------------------------------------------------------------

def test_keras_file_round_trip_gives_identical_predictions(tmp_path):
    rng = np.random.default_rng(51)
    x = random_inputs(rng, (4, 6, 3))
    x[1, 4:] = 0.0
    inputs = keras.Input((6, 3))
    hidden = keras.layers.Bidirectional(StackedGRU(5, 2, between_layer_dropout=0.3, return_sequences=True, seed=2))(
        keras.layers.Masking(0.0)(inputs))
    hidden = StackedGRU(4, 2, reset_after=False, go_backwards=True)(hidden)
    model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
    random_weights(model, rng)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_export_holds_the_fused_op_and_reloads(tmp_path):
    rng = np.random.default_rng(52)
    x = random_inputs(rng, (3, 6, 3))
    inputs = keras.Input((6, 3))
    sequence, *states = StackedGRU(5, 2, return_sequences=True, return_state=True)(inputs)
    hidden = keras.layers.Bidirectional(StackedGRU(4, 2))(sequence)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Concatenate()([hidden] + states)))
    random_weights(model, rng)
    model.export(str(tmp_path / "saved_model"), verbose=False)
    assert b"DeeprnnFast>StackedGru" in (tmp_path / "saved_model" / "saved_model.pb").read_bytes()
    reloaded = tf.saved_model.load(str(tmp_path / "saved_model"))
    np.testing.assert_allclose(reloaded.serve(tf.constant(x)).numpy(), model.predict(x, verbose=0), atol=1e-6,
                               rtol=1e-6)


def test_config_round_trip_keeps_every_argument():
    layer = StackedGRU(7, 3, activation="relu", recurrent_activation="hard_sigmoid", use_bias=False,
                       kernel_initializer="he_normal", recurrent_initializer=keras.initializers.Orthogonal(gain=0.5),
                       bias_initializer="ones", kernel_regularizer="l2", recurrent_regularizer="l1",
                       bias_regularizer=keras.regularizers.L2(0.3), activity_regularizer="l2",
                       kernel_constraint="non_neg", recurrent_constraint=keras.constraints.MaxNorm(2.0),
                       bias_constraint="unit_norm", dropout=0.3, recurrent_dropout=0.2, return_sequences=True,
                       return_state=True, go_backwards=True, stateful=True, unroll=True, reset_after=False,
                       use_cudnn=False, zero_output_for_mask=True, seed=5, name="deep", dtype="mixed_float16")
    config = layer.get_config()
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(clone) is StackedGRU
    assert clone.get_config() == config
    assert keras.layers.serialize(layer)["registered_name"] == "deeprnn_fast>StackedGRU"


def test_every_gru_argument_is_accepted():
    ours = set(inspect.signature(StackedGRU.__init__).parameters)
    keras_args = set(inspect.signature(keras.layers.GRU.__init__).parameters)
    assert keras_args <= ours, f"missing: {keras_args - ours}"


@pytest.mark.parametrize("kwargs,match", [
    (dict(units=0, num_layers=2), "units must be a positive integer"),
    (dict(units=3, num_layers=0), "num_layers must be a positive integer"),
    (dict(units=3, num_layers=2, dropout=1.0), r"dropout must be a fraction in \[0, 1\)"),
    (dict(units=3, num_layers=2, use_cudnn=True), "never cuDNN"),
    (dict(units=3, num_layers=2, use_cudnn="yes"), "use_cudnn must be 'auto', True or False"),
])
def test_bad_constructor_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StackedGRU(**kwargs)


def test_bad_inputs_name_the_expected_shape():
    layer = StackedGRU(5, 2, return_state=True)
    layer.build((3, 4, 6))
    with pytest.raises(ValueError, match=r"built for inputs of shape \[batch, time, 6\]; got shape \(3, 4, 7\)"):
        layer(np.ones((3, 4, 7), np.float32))
    with pytest.raises(ValueError, match=r"initial_state\[1\] must have shape \[3, 5\]"):
        layer(np.ones((3, 4, 6), np.float32), initial_state=[np.ones((3, 5), np.float32), np.ones((3, 4), np.float32)])


def test_layers_get_distinct_initial_weights_of_keras_shapes():
    layer = StackedGRU(8, 3)
    layer.build((None, 5, 4))
    weights = layer.get_weights()
    assert [w.shape for w in weights[:3]] == [(4, 24), (8, 24), (2, 24)]
    assert not np.allclose(weights[3], weights[6]) and not np.allclose(weights[1], weights[4])
    assert len(flat(layer(np.ones((2, 5, 4), np.float32)))) == 1
