"""The layers under XLA: Keras may compile a model holding them (supports_jit), and inside an XLA-compiled function they
run deeprnn_fast.reference (plain TF ops XLA compiles) instead of the fused op, with one warning, to the same results:
model.compile(jit_compile=True) trains to the losses of jit_compile=False, and tf.function(jit_compile=True) around a
layer call gives its outputs and gradients."""
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.trainers.trainer import model_supports_jit

from layer_testing import assert_all_close, random_weights
from deeprnn_fast.layers import StackedGRU, StackedLSTM, StackedRNN
from deeprnn_fast._xla import in_xla_context

LAYERS = [StackedRNN, StackedGRU, StackedLSTM]
XLA_WARNING = "traced inside an XLA-compiled function"


def random_inputs(rng, shape):
    return rng.uniform(-1.0, 1.0, shape).astype(np.float32)


def test_xla_context_is_seen_where_tensorflow_compiles_with_xla():
    seen = []

    def probe(x):
        seen.append(in_xla_context())
        return x + 1

    x = tf.ones([2])
    probe(x)
    tf.function(probe)(x)
    tf.function(probe, jit_compile=True)(x)
    tf.function(lambda x: tf.function(probe)(x), jit_compile=True)(x)  # a plain function nested in an XLA one
    tf.function(lambda x: tf.while_loop(lambda i, y: i < 1, lambda i, y: (i + 1, probe(y)), (0, x))[1],
                jit_compile=True)(x)  # a loop body
    assert seen == [False, False, True, True, True]


@pytest.mark.parametrize("layer_class", LAYERS)
def test_models_with_the_layers_may_be_compiled_with_xla(layer_class):
    model = keras.Sequential([keras.Input((4, 3)), layer_class(5, 2)])
    assert model.layers[0].supports_jit is True
    assert model_supports_jit(model) is True  # what jit_compile="auto" consults on GPU machines
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Keras warns when it has to turn jit_compile off
        model.compile("sgd", "mse", jit_compile=True)
    assert model.jit_compile is True


def sequence_model(layer_class, rng):
    model = keras.Sequential([keras.Input((3, 3)), layer_class(4, 2, return_sequences=True), keras.layers.Dense(2)])
    random_weights(model, rng)
    return model


@pytest.mark.parametrize("layer_class", LAYERS)
def test_fit_with_jit_compile_gives_the_losses_without_it(layer_class):
    rng = np.random.default_rng([71, LAYERS.index(layer_class)])
    x, y = random_inputs(rng, (8, 3, 3)), random_inputs(rng, (8, 3, 2))
    models = [sequence_model(layer_class, rng) for _ in range(2)]
    models[1].set_weights(models[0].get_weights())
    histories = []
    for model, jit in zip(models, (False, True)):
        model.compile(keras.optimizers.SGD(0.3), "mse", jit_compile=jit)
        assert model.jit_compile is jit
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            histories.append(model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0).history["loss"])
        xla_warnings = [w for w in record if XLA_WARNING in str(w.message)]
        # XLA traced the layer and it said so, once (per layer and message); without XLA, nothing.
        assert len(xla_warnings) == (1 if jit else 0), [str(w.message) for w in record]
        if jit:
            message = str(xla_warnings[0].message)
            assert f"deeprnn_fast.reference.{layer_class.fused_function_name}" in message and "slower" in message
    assert histories[0][-1] < histories[0][0]
    np.testing.assert_allclose(histories[1], histories[0], rtol=1e-5)
    assert_all_close(models[1].get_weights(), models[0].get_weights())


def call_and_gradients(layer, x, mask=None):
    """The layer's flat outputs and the gradients of a fixed random projection of them w.r.t. every weight."""
    with tf.GradientTape() as tape:
        outputs = keras.tree.flatten(layer(x, mask=mask))
        rng = np.random.default_rng(0)
        loss = tf.add_n([tf.reduce_sum(o * rng.standard_normal(o.shape).astype(np.float32)) for o in outputs])
    return outputs, tape.gradient(loss, layer.trainable_weights)


# XLA compiles slowly on the CPU: each case covers one more path, not every path for every layer. The reference
# (no mask) runs for every layer; the step-by-step loop under XLA (a mask) for the LSTM's two states per layer.
@pytest.mark.parametrize("layer_class,masked", [(StackedRNN, False), (StackedGRU, False), (StackedLSTM, False),
                                                (StackedLSTM, True)])
def test_tf_function_with_jit_compile_around_a_layer_call(layer_class, masked):
    rng = np.random.default_rng([72, LAYERS.index(layer_class), masked])
    x = tf.constant(random_inputs(rng, (3, 4, 4)))
    mask = tf.constant(rng.random((3, 4)) > 0.3) if masked else None
    layer = layer_class(5, 2, return_sequences=True, return_state=True)
    layer.build(x.shape)
    random_weights(layer, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = call_and_gradients(layer, x, mask)
        got = tf.function(lambda x, mask: call_and_gradients(layer, x, mask), jit_compile=True)(x, mask)
    assert len(got[0]) == 1 + 2 * len(layer.state_names) and len(got[1]) == 6
    assert all(np.abs(np.asarray(g)).max() > 0 for g in expected[1])
    assert_all_close(got, expected)


def test_unknown_time_steps_under_xla_run_the_loop_and_say_why():
    rng = np.random.default_rng(73)
    layer = StackedRNN(4, 2, return_sequences=True)
    layer.build((None, None, 3))
    random_weights(layer, rng)
    compiled = tf.function(lambda x: layer(x), jit_compile=True,
                           input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])
    x = random_inputs(rng, (2, 5, 3))
    with pytest.warns(UserWarning, match="needs the number of time steps"):
        got = compiled(x)
    assert_all_close(got, layer(x))


def test_token_inputs_under_xla():
    rng = np.random.default_rng(74)
    layer = StackedGRU(5, 2, return_sequences=True, vocabulary_size=7)
    layer.build((3, 4))
    random_weights(layer, rng)
    ids = rng.integers(0, 7, (3, 4))
    compiled = tf.function(lambda ids: layer(ids), jit_compile=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_all_close(compiled(ids), layer(ids))
        # No assertion can stop an XLA cluster: an id out of range turns its own sequence to NaN, and only that one.
        ids[1, 2] = 9
        poisoned = np.asarray(compiled(ids))
    assert np.isnan(poisoned[1, 2:]).all() and not np.isnan(poisoned[[0, 2]]).any()
    assert not np.isnan(poisoned[1, :2]).any()
