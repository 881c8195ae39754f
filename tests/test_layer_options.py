"""StackedRNN's training options and ecosystem settings: dropout between layers, recurrent_dropout, regularizers and
constraints, mixed precision, config, every SimpleRNN argument, and clear errors for bad input. (XLA is tested in
test_layer_xla.py.)"""
import inspect
import re
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from layer_testing import HandedOutBetweenMasks, assert_all_close, keras_stack, make_pair, random_weights
from deeprnn_fast.layers import StackedGRU, StackedRNN


def random_inputs(rng, shape):
    return rng.uniform(-1.0, 1.0, shape).astype(np.float32)


# ---- dropout between layers ----------------------------------------------------------------------------------------

def keras_layer_by_layer(weights, x, between_masks, units):
    """The stack run as separate one-layer Keras RNNs with known masks multiplied in between: what dropout between
    layers means (torch.nn.RNN's dropout). Returns [sequence, state per layer]."""
    states, layer_input = [], x
    for l in range(len(weights) // 3):
        layer = keras_stack(units, 1, return_sequences=True, return_state=True)
        layer.build(layer_input.shape)
        layer.set_weights(weights[3 * l:3 * l + 3])
        sequence, (state,) = layer(layer_input)
        states.append(state)
        layer_input = sequence * between_masks[l] if l < len(between_masks) else sequence
    return [sequence] + states


@pytest.mark.parametrize("stepwise", [False, True])
def test_dropout_between_layers_in_training(stepwise):
    # stepwise: the test sends the call through the step-by-step loop instead of the fused op.
    rng = np.random.default_rng([31, stepwise])
    x = random_inputs(rng, (3, 5, 4))
    layer = StackedRNN(6, 3, between_layer_dropout=0.4, return_sequences=True, return_state=True)
    layer.build(x.shape)
    weights = random_weights(layer, rng)
    masks = [(rng.random((3, 5, 6)) > 0.4).astype(np.float32) / 0.6 for _ in range(2)]
    layer._between_layer_masks = handed_out = HandedOutBetweenMasks(masks)
    if stepwise:
        layer._fused_unsupported_reason = lambda: "forced by the test"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore" if stepwise else "error")
        out = layer(x, mask=np.ones((3, 5), bool), training=True)
    assert handed_out.calls == 1, "the masks between layers were not used"
    assert_all_close(out, keras_layer_by_layer(weights, x, masks, 6))


def test_dropout_acts_in_training_only_and_never_on_a_single_layer():
    rng = np.random.default_rng(32)
    x = random_inputs(rng, (4, 6, 3))
    ours, theirs = make_pair(rng, x.shape, 5, 2, between_layer_dropout=0.5, seed=7, return_sequences=True)
    assert_all_close(ours(x, training=False), theirs(x))
    assert_all_close(ours(x), theirs(x))
    assert np.abs(np.asarray(ours(x, training=True)) - np.asarray(theirs(x))).max() > 1e-2
    single, single_keras = make_pair(rng, x.shape, 5, 1, between_layer_dropout=0.5, return_sequences=True)
    assert_all_close(single(x, training=True), single_keras(x))


def test_dropout_masks_are_fresh_for_every_step_and_scaled():
    layer = StackedRNN(8, 3, between_layer_dropout=0.25, seed=3)
    masks = np.asarray(layer._between_layer_masks(16, 40, tf.float32))  # [L - 1, T, B, H]
    assert masks.shape == (2, 40, 16, 8)
    assert set(np.unique(masks)) == {0.0, np.float32(1 / 0.75)}
    assert abs((masks == 0).mean() - 0.25) < 0.04
    for mask in masks:
        assert not all(np.array_equal(mask[0], mask[t]) for t in range(1, 40)), "one mask for all steps"
    assert not np.array_equal(masks[0], masks[1]), "one mask for all layers"
    again = np.asarray(layer._between_layer_masks(16, 40, tf.float32))
    assert not np.array_equal(masks, again), "the same masks for every call"


# ---- recurrent_dropout (Keras' semantics) --------------------------------------------------------------------------

def test_recurrent_dropout_matches_keras_given_the_same_masks():
    rng = np.random.default_rng(33)
    x = random_inputs(rng, (3, 5, 4))
    ours, theirs = make_pair(rng, x.shape, 6, 2, recurrent_dropout=0.3, return_sequences=True, return_state=True)
    masks = [tf.constant((rng.random((3, 6)) > 0.3).astype(np.float32) / 0.7) for _ in range(2)]
    handed_out = iter(masks)
    ours._cell_dropout_masks = lambda l, kind, batch, width, dtype, count: [next(handed_out)]
    for cell, mask in zip(theirs.cell.cells, masks):
        cell.get_recurrent_dropout_mask = lambda prev, mask=mask: mask
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # runs fused, without a fallback
        out = ours(x, training=True)
    assert next(handed_out, None) is None, "a recurrent mask was not used"
    assert_all_close(out, theirs(x, training=True))
    assert_all_close(ours(x), theirs(x))  # inference: no dropout, and the fused op


# ---- regularizers, constraints: one training step against Keras ----------------------------------------------------

def test_training_with_regularizers_and_constraints_matches_keras():
    rng = np.random.default_rng(34)
    x = random_inputs(rng, (8, 5, 3))
    y = random_inputs(rng, (8, 4))
    settings = dict(kernel_regularizer=keras.regularizers.L2(0.01), recurrent_regularizer=keras.regularizers.L1(0.02),
                    bias_regularizer=keras.regularizers.L2(0.03), kernel_constraint=keras.constraints.MaxNorm(0.4),
                    recurrent_constraint=keras.constraints.UnitNorm(), bias_constraint=keras.constraints.NonNeg())
    ours = StackedRNN(4, 2, activity_regularizer=keras.regularizers.L2(0.05), **settings)
    cells = [keras.layers.SimpleRNNCell(4, **settings) for _ in range(2)]
    theirs = keras.layers.RNN(cells, activity_regularizer=keras.regularizers.L2(0.05))
    models = []
    for layer in (ours, theirs):
        model = keras.Sequential([keras.Input((5, 3)), layer])
        model.compile(keras.optimizers.SGD(0.5), "mse")
        models.append(model)
    theirs.set_weights(random_weights(ours, rng))
    ours(x), theirs(x)
    np.testing.assert_allclose(float(tf.add_n(ours.losses)), float(tf.add_n(theirs.losses)), rtol=1e-5)
    histories = [m.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"] for m in models]
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-5)
    assert_all_close(ours.get_weights(), theirs.get_weights())
    assert np.all(ours.get_weights()[2] >= 0)  # NonNeg bias: the constraint ran


# ---- mixed precision -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("policy,atol", [("mixed_float16", 2e-3), ("mixed_bfloat16", 2e-2)])
def test_mixed_precision_outputs_in_compute_dtype(policy, atol):
    rng = np.random.default_rng(35)
    x = random_inputs(rng, (3, 6, 4))
    ours = StackedRNN(5, 2, return_sequences=True, return_state=True, dtype=policy)
    ours.build(x.shape)
    theirs = keras_stack(5, 2, return_sequences=True, return_state=True)  # float32 Keras: the exact answer
    theirs.build(x.shape)
    theirs.set_weights(random_weights(ours, rng))
    assert all(v.dtype == "float32" for v in ours.weights)
    out = ours(x)
    compute_dtype = keras.DTypePolicy(policy).compute_dtype
    assert all(o.dtype == compute_dtype for o in keras.tree.flatten(out))
    cast = [np.asarray(tf.cast(o, tf.float32)) for o in keras.tree.flatten(out)]
    assert_all_close(cast, theirs(x), atol=atol, rtol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        masked = ours(x, mask=np.ones((3, 6), bool))  # the step-by-step loop casts the same way
    assert all(o.dtype == compute_dtype for o in keras.tree.flatten(masked))
    assert_all_close([np.asarray(tf.cast(o, tf.float32)) for o in keras.tree.flatten(masked)], cast, atol=atol, rtol=0)


def test_fit_under_a_global_mixed_float16_policy():
    rng = np.random.default_rng(36)
    keras.utils.set_random_seed(36)  # the dropout masks too: two epochs of 2 steps must lower the loss every run
    x, y = random_inputs(rng, (8, 5, 3)), random_inputs(rng, (8, 5, 2))
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = keras.Sequential([keras.Input((5, 3)),
                                  StackedRNN(4, 2, between_layer_dropout=0.2, return_sequences=True),
                                  keras.layers.Dense(2, dtype="float32")])
        model.compile(keras.optimizers.SGD(0.1), "mse")
        history = model.fit(x, y, batch_size=4, epochs=2, verbose=0).history["loss"]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.all(np.isfinite(history)) and history[-1] < history[0]
    assert model.layers[0].compute_dtype == "float16"
    assert all(v.dtype == "float32" for v in model.layers[0].weights)


# ---- arguments and config ------------------------------------------------------------------------------------------

def test_every_simple_rnn_argument_is_accepted():
    ours = set(inspect.signature(StackedRNN.__init__).parameters)
    keras_args = set(inspect.signature(keras.layers.SimpleRNN.__init__).parameters)
    assert keras_args <= ours, f"missing: {keras_args - ours}"


def test_unroll_changes_nothing():
    rng = np.random.default_rng(37)
    x = random_inputs(rng, (2, 4, 3))
    ours, theirs = make_pair(rng, x.shape, 3, 2, unroll=True, return_sequences=True)
    assert ours.get_config()["unroll"] is True
    assert_all_close(ours(x), theirs(x))


def test_config_round_trip_keeps_every_argument():
    layer = StackedRNN(7, 3, activation="relu", use_bias=False, kernel_initializer="he_normal",
                       recurrent_initializer=keras.initializers.Orthogonal(gain=0.5, seed=1),
                       bias_initializer="ones", kernel_regularizer="l2", recurrent_regularizer="l1",
                       bias_regularizer=keras.regularizers.L2(0.3), activity_regularizer="l2",
                       kernel_constraint="non_neg", recurrent_constraint=keras.constraints.MaxNorm(2.0),
                       bias_constraint="unit_norm", dropout=0.3, recurrent_dropout=0.2, return_sequences=True,
                       return_state=True, go_backwards=True, stateful=True, unroll=True, zero_output_for_mask=True,
                       seed=5, name="deep", dtype="mixed_float16")
    config = layer.get_config()
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(clone) is StackedRNN
    assert clone.get_config() == config
    assert keras.layers.serialize(layer)["registered_name"] == "deeprnn_fast>StackedRNN"


@pytest.mark.parametrize("kwargs,match", [
    (dict(units=0, num_layers=2), "units must be a positive integer"),
    (dict(units=3, num_layers=0), "num_layers must be a positive integer"),
    (dict(units=3, num_layers=2, dropout=1.0), r"dropout must be a fraction in \[0, 1\)"),
    (dict(units=3, num_layers=2, recurrent_dropout=-0.1), r"recurrent_dropout must be a fraction in \[0, 1\)"),
])
def test_bad_constructor_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StackedRNN(**kwargs)


@pytest.mark.parametrize("layer_class", [StackedRNN, StackedGRU])
@pytest.mark.parametrize("name", ["dropout", "recurrent_dropout"])
@pytest.mark.parametrize("value", [None, "0.5", "often", True, [0.1]], ids=repr)
def test_a_rate_that_is_not_a_number_is_refused_by_name(layer_class, name, value):
    with pytest.raises(TypeError, match=rf"^{name} must be a fraction in \[0, 1\) \(a number\); got "
                                        rf"{re.escape(repr(value))}$"):
        layer_class(3, 2, **{name: value})


@pytest.mark.parametrize("layer_class", [StackedRNN, StackedGRU])
@pytest.mark.parametrize("dtype, got", [(3, "3"), ("nonsense", "'nonsense'"), (True, "True"),
                                        ("int32", "'int32' (computing in int32)"),
                                        ("string", "'string' (computing in string)"),
                                        (tf.int64, "tf.int64 (computing in int64)")], ids=repr)
def test_a_dtype_that_is_not_floating_point_is_refused_at_construction(layer_class, dtype, got):
    with pytest.raises(ValueError, match=rf"^{layer_class.__name__} dtype must be a floating-point dtype or Keras "
                                         rf"dtype policy .*; got {re.escape(got)}$"):
        layer_class(3, 2, dtype=dtype)


@pytest.mark.parametrize("dtype, compute, variable", [
    ("float64", "float64", "float64"), (tf.float64, "float64", "float64"), ("mixed_float16", "float16", "float32"),
    (keras.DTypePolicy("mixed_bfloat16"), "bfloat16", "float32"), (None, "float32", "float32"),
    ({"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float16"}}, "float16", "float16"),
], ids=repr)
def test_every_floating_point_dtype_is_still_accepted(dtype, compute, variable):
    layer = StackedRNN(3, 2, dtype=dtype)
    assert (layer.compute_dtype, layer.variable_dtype) == (compute, variable)


@pytest.mark.parametrize("layer_class", [StackedRNN, StackedGRU])
def test_sparse_inputs_are_refused_in_one_short_line(layer_class):
    x = random_inputs(np.random.default_rng(40), (3, 4, 6))
    x[x < 0] = 0
    with pytest.raises(ValueError) as error:
        layer_class(5, 2)(tf.sparse.from_dense(x))
    message = str(error.value)
    assert (f"{layer_class.__name__} inputs must be a dense tensor; got a tf.SparseTensor of shape (3, 4, 6) "
            "(densify it first, e.g. with tf.sparse.to_dense)") in message
    assert "indices" not in message and len(message) < 600  # Keras adds the call's arguments, summarised


# ---- bad input -----------------------------------------------------------------------------------------------------

@pytest.fixture
def built_layer():
    layer = StackedRNN(5, 2, return_state=True)
    layer.build((3, 4, 6))
    return layer


def test_wrong_rank_names_the_expected_shape(built_layer):
    with pytest.raises(ValueError, match=r"\[batch, time, 6\] \(rank 3\); got shape \(3, 6\)"):
        built_layer(np.ones((3, 6), np.float32))
    with pytest.raises(ValueError, match=r"\[batch, time, features\] \(rank 3\)"):
        StackedRNN(5, 2)(np.ones((3, 6), np.float32))


def test_wrong_feature_size_names_the_expected_shape(built_layer):
    with pytest.raises(ValueError, match=r"built for inputs of shape \[batch, time, 6\]; got shape \(3, 4, 7\)"):
        built_layer(np.ones((3, 4, 7), np.float32))


def test_integer_inputs_are_refused(built_layer):
    with pytest.raises(ValueError, match="floating-point inputs"):
        built_layer(np.ones((3, 4, 6), np.int32))


@pytest.mark.parametrize("states,match", [
    ([np.ones((3, 5), np.float32)], r"list of 2 tensors of shape \[3, 5\]"),
    ([np.ones((3, 5), np.float32), np.ones((3, 4), np.float32)], r"initial_state\[1\] must have shape \[3, 5\]"),
    ([np.ones((2, 5), np.float32)] * 2, r"initial_state\[0\] must have shape \[3, 5\]"),
    ([np.ones((3, 5, 1), np.float32)] * 2, r"initial_state\[0\] must have shape \[3, 5\]"),
    ([np.ones((3, 5), np.int32)] * 2, r"initial_state\[0\] must be floating-point"),
])
def test_wrong_initial_states_name_the_expected_shape(built_layer, states, match):
    with pytest.raises(ValueError, match=match):
        built_layer(np.ones((3, 4, 6), np.float32), initial_state=states)


def test_wrong_mask_names_the_expected_shape(built_layer):
    with pytest.raises(ValueError, match=r"mask of shape \[batch, time\] = \[3, 4\]; got shape \(3, 5\)"):
        built_layer(np.ones((3, 4, 6), np.float32), mask=np.ones((3, 5), bool))


def test_fallback_warns_once_per_layer_and_reason():
    rng = np.random.default_rng(38)
    x = random_inputs(rng, (2, 3, 4))
    layer = StackedRNN(3, 2)
    layer = StackedRNN(3, 2, activation="softsign")
    with pytest.warns(UserWarning, match="the fused op computes tanh and relu only") as record:
        layer(x, mask=np.ones((2, 3), bool))
        layer(x, mask=np.ones((2, 3), bool))
    assert sum("tanh and relu only" in str(w.message) for w in record) == 1


# ---- without the compiled library ----------------------------------------------------------------------------------

def test_without_the_compiled_library_the_layer_still_matches_keras(monkeypatch):
    from deeprnn_fast import _library

    def unavailable():
        raise _library.LibraryUnavailable("simulated: the library is not built")

    monkeypatch.setattr(_library, "library", unavailable)
    monkeypatch.setitem(_library._state, "warned", False)
    rng = np.random.default_rng(39)
    x = random_inputs(rng, (3, 5, 4))
    ours, theirs = make_pair(rng, x.shape, 6, 2, return_sequences=True, return_state=True)
    with pytest.warns(RuntimeWarning, match="simulated"):  # deeprnn_fast.stacked_rnn runs the reference
        assert_all_close(ours(x), theirs(x))
    # The reference needs the number of steps when traced: the layer runs its own loop instead, and says so.
    traced = tf.function(lambda x: ours(x), input_signature=[tf.TensorSpec([None, None, 4], tf.float32)])
    with pytest.warns(UserWarning, match="library is not built"):
        assert_all_close(traced(x), theirs(x))


def test_layers_get_distinct_initial_weights():
    # One initializer instance per weight: same-shaped weights of different layers must not start identical.
    layer = StackedRNN(8, 3)
    layer.build((None, 5, 8))
    weights = layer.get_weights()
    kernels_after_first = [weights[3 * l] for l in range(1, 3)]
    recurrent = [weights[3 * l + 1] for l in range(3)]
    assert not np.allclose(kernels_after_first[0], kernels_after_first[1])
    assert not np.allclose(recurrent[0], recurrent[1]) and not np.allclose(recurrent[1], recurrent[2])
