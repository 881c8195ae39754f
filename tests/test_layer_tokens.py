"""Token inputs (vocabulary_size=V): every layer fed integer ids [batch, time] computes what the same layer with the same
weights computes on tf.one_hot(ids, V), forward and gradients, fused and in the step-by-step loop; ids out of range are
a clear error; the option survives config, saving and from_keras."""
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from layer_testing import HandedOutBetweenMasks, assert_all_close, random_weights
from deeprnn_fast.layers import StackedGRU, StackedLSTM, StackedRNN, from_keras

LAYERS = [StackedRNN, StackedGRU, StackedLSTM]
VOCABULARY = 9

# The step-by-step loop announces itself once per layer (tested elsewhere); here it is noise.
pytestmark = pytest.mark.filterwarnings("ignore:.*step-by-step reference loop:UserWarning")


def token_and_one_hot_layers(layer_class, rng, units=5, num_layers=2, batch=4, **options):
    """(token layer, the same layer for one-hot inputs), with the same random weights."""
    tokens = layer_class(units, num_layers, vocabulary_size=VOCABULARY, **options)
    tokens.build((batch, None))
    one_hot = layer_class(units, num_layers, **options)
    one_hot.build((batch, None, VOCABULARY))
    assert [w.shape for w in tokens.get_weights()] == [w.shape for w in one_hot.get_weights()]
    one_hot.set_weights(random_weights(tokens, rng))
    return tokens, one_hot


def outputs_and_gradients(layer, inputs, **call_options):
    """Flat outputs and the gradients of a fixed random projection of them w.r.t. every trainable weight."""
    with tf.GradientTape() as tape:
        outputs = keras.tree.flatten(layer(inputs, **call_options))
        rng = np.random.default_rng(0)
        loss = tf.add_n([tf.reduce_sum(o * rng.standard_normal(o.shape).astype(np.float32)) for o in outputs])
    # The loop's gather gives layer 0's kernel an IndexedSlices gradient (rows only), as tf.gather does.
    return outputs, [tf.convert_to_tensor(g) for g in tape.gradient(loss, layer.trainable_weights)]


def assert_same_as_one_hot(tokens, one_hot, ids, **call_options):
    got = outputs_and_gradients(tokens, ids, **call_options)
    expected = outputs_and_gradients(one_hot, tf.one_hot(ids, VOCABULARY), **call_options)
    assert all(np.abs(np.asarray(g)).max() > 0 for g in expected[1]), "a zero gradient would prove nothing"
    assert_all_close(got, expected)


@pytest.mark.parametrize("layer_class", LAYERS)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_token_layer_computes_the_one_hot_layer(layer_class, go_backwards):
    rng = np.random.default_rng([81, LAYERS.index(layer_class), go_backwards])
    tokens, one_hot = token_and_one_hot_layers(layer_class, rng, return_sequences=True, return_state=True,
                                               go_backwards=go_backwards)
    ids = rng.integers(0, VOCABULARY, (4, 6))
    ids[0, 0], ids[1, 1] = 0, VOCABULARY - 1  # both ends of the vocabulary
    assert_same_as_one_hot(tokens, one_hot, ids)


@pytest.mark.parametrize("layer_class", LAYERS)
def test_token_layer_in_the_step_by_step_loop(layer_class):
    # A mask runs the loop, which gathers rows of the kernel as the op does; so does an activation the op lacks.
    rng = np.random.default_rng([82, LAYERS.index(layer_class)])
    ids = rng.integers(0, VOCABULARY, (4, 5))
    mask = rng.random((4, 5)) > 0.3
    tokens, one_hot = token_and_one_hot_layers(layer_class, rng, return_sequences=True, return_state=True)
    assert_same_as_one_hot(tokens, one_hot, ids, mask=mask)
    other = dict(activation="sigmoid") if layer_class is StackedRNN else dict(recurrent_activation="hard_sigmoid")
    tokens, one_hot = token_and_one_hot_layers(layer_class, rng, return_sequences=True, **other)
    assert_same_as_one_hot(tokens, one_hot, ids)


def test_token_layer_with_dropout_between_layers():
    rng = np.random.default_rng(83)
    tokens, one_hot = token_and_one_hot_layers(StackedLSTM, rng, num_layers=3, between_layer_dropout=0.4,
                                               return_sequences=True)
    masks = [(rng.random((4, 5, 5)) > 0.4).astype(np.float32) / 0.6 for _ in range(2)]
    for layer in (tokens, one_hot):
        layer._between_layer_masks = HandedOutBetweenMasks(masks)
    ids = rng.integers(0, VOCABULARY, (4, 5))
    assert_all_close(tokens(ids, training=True), one_hot(tf.one_hot(ids, VOCABULARY), training=True))


def test_stateful_token_layer_and_a_model_over_token_ids():
    rng = np.random.default_rng(84)
    tokens, one_hot = token_and_one_hot_layers(StackedGRU, rng, stateful=True, return_sequences=True)
    for _ in range(2):
        ids = rng.integers(0, VOCABULARY, (4, 3))
        assert_all_close(tokens(ids), one_hot(tf.one_hot(ids, VOCABULARY)))
    inputs = keras.Input((3,), dtype="int32")
    model = keras.Model(inputs, keras.layers.Dense(2)(StackedRNN(4, 2, vocabulary_size=VOCABULARY)(inputs)))
    ids = rng.integers(0, VOCABULARY, (6, 3))
    model.compile(keras.optimizers.SGD(0.1), "mse")
    history = model.fit(ids, rng.uniform(-1, 1, (6, 2)), batch_size=3, epochs=3, verbose=0).history["loss"]
    assert np.all(np.isfinite(history)) and history[-1] < history[0]


@pytest.mark.parametrize("bad_id", [VOCABULARY, -1, 2 ** 32 + 1], ids=["vocabulary", "negative", "wraps-in-int32"])
def test_ids_out_of_range_are_a_clear_error(bad_id):
    layer = StackedLSTM(3, 2, vocabulary_size=VOCABULARY)
    ids = np.array([[0, 1, 2], [3, bad_id, 4]], np.int64)
    expected = (rf"inputs \(tokens\) must be token ids in \[0, {VOCABULARY}\) \(vocabulary_size\); got ids from "
                rf"{min(0, bad_id)} to {max(4, bad_id)}")
    with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
        layer(ids)
    with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
        tf.function(layer)(ids)


@pytest.mark.parametrize("inputs,match", [
    (np.ones((2, 3), np.float32), r"has vocabulary_size=9: it takes integer token ids of shape \[batch, time\]; got "
                                  "dtype float32"),
    (np.ones((2, 3, 1), np.int32), r"token ids of shape \[batch, time\] \(rank 2\); got shape \(2, 3, 1\)"),
])
def test_wrong_token_inputs_name_what_is_expected(inputs, match):
    with pytest.raises(ValueError, match=match):
        StackedGRU(3, 2, vocabulary_size=VOCABULARY)(inputs)


def test_integer_inputs_to_a_float_layer_point_to_vocabulary_size():
    with pytest.raises(ValueError, match="floating-point inputs .* or build the layer with vocabulary_size="):
        StackedRNN(3, 2)(np.ones((2, 3, 4), np.int32))


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "9"], ids=repr)
def test_a_bad_vocabulary_size_is_refused(value):
    with pytest.raises(ValueError, match=rf"vocabulary_size must be None \(float inputs\) or a positive integer "
                                         rf"\(the number of token ids\); got {value!r}"):
        StackedRNN(3, 2, vocabulary_size=value)


@pytest.mark.parametrize("layer_class", LAYERS)
def test_config_and_keras_file_keep_the_vocabulary(layer_class, tmp_path):
    rng = np.random.default_rng([85, LAYERS.index(layer_class)])
    inputs = keras.Input((4,), dtype="int32")
    outputs = keras.layers.Dense(2)(layer_class(5, 2, vocabulary_size=VOCABULARY)(inputs))
    model = keras.Model(inputs, outputs)
    random_weights(model, rng)
    assert model.layers[1].get_config()["vocabulary_size"] == VOCABULARY
    model.save(tmp_path / "tokens.keras")
    loaded = keras.saving.load_model(tmp_path / "tokens.keras")
    assert loaded.layers[1].vocabulary_size == VOCABULARY
    ids = rng.integers(0, VOCABULARY, (3, 4))
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0))


def test_from_keras_of_a_one_hot_model_takes_the_tokens():
    rng = np.random.default_rng(86)
    keras_layer = keras.layers.LSTM(5, return_sequences=True, return_state=True)
    keras_layer.build((None, None, VOCABULARY))
    random_weights(keras_layer, rng)
    converted = from_keras(keras_layer, vocabulary_size=VOCABULARY)
    assert type(converted) is StackedLSTM and converted.vocabulary_size == VOCABULARY
    ids = rng.integers(0, VOCABULARY, (3, 6))
    assert_all_close(converted(ids), keras_layer(tf.one_hot(ids, VOCABULARY)))
    with pytest.raises(ValueError, match=f"vocabulary_size={VOCABULARY + 1} stands for one-hot inputs of that many "
                                         f"features, but .* takes {VOCABULARY} features"):
        from_keras(keras_layer, vocabulary_size=VOCABULARY + 1)
    unbuilt = from_keras(keras.layers.GRU(4), vocabulary_size=VOCABULARY)
    assert not unbuilt.built and unbuilt.vocabulary_size == VOCABULARY


def test_the_fused_op_takes_the_tokens_without_a_one_hot_product():
    # The traced graph of a token layer holds the fused op fed the ids, and no OneHot.
    layer = StackedGRU(4, 2, vocabulary_size=VOCABULARY)
    layer.build((2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fused path: no fallback warning
        graph = tf.function(layer).get_concrete_function(tf.TensorSpec([2, 3], tf.int32)).graph
    types = {op.type for op in graph.get_operations()}
    assert "DeeprnnFast>StackedGru" in types and "OneHot" not in types
