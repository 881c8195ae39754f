"""StackedRNN inside Keras models, as the Keras stack it replaces: Bidirectional, functional models with masks and
sequences of unknown length, model.fit, and from_keras conversion."""
import keras
import numpy as np
import pytest

from layer_testing import assert_all_close, keras_stack, random_weights
from deeprnn_fast.layers import StackedRNN, from_keras

# The step-by-step loop announces itself once per layer (tested in test_layer_options.py); here it is noise.
pytestmark = pytest.mark.filterwarnings("ignore:.*step-by-step reference loop:UserWarning")


def random_inputs(rng, shape):
    return rng.uniform(-1.0, 1.0, shape).astype(np.float32)


def padded_inputs(rng, batch, time, features):
    """Inputs with zero steps (masked by keras.layers.Masking) at the end of some sequences and in the middle of one."""
    x = random_inputs(rng, (batch, time, features))
    for b in range(batch):
        x[b, time - b % 3:] = 0.0
    x[0, 1] = 0.0
    return x


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("merge_mode", ["concat", "sum"])
@pytest.mark.parametrize("masked", [False, True])
def test_bidirectional_matches_keras(return_sequences, merge_mode, masked):
    rng = np.random.default_rng([41, return_sequences, len(merge_mode), masked])
    x = padded_inputs(rng, 4, 6, 3) if masked else random_inputs(rng, (4, 6, 3))
    ours = keras.layers.Bidirectional(StackedRNN(5, 2, return_sequences=return_sequences), merge_mode=merge_mode)
    theirs = keras.layers.Bidirectional(keras_stack(5, 2, return_sequences=return_sequences), merge_mode=merge_mode)
    ours.build(x.shape)
    theirs.build(x.shape)
    assert ours.backward_layer.go_backwards and type(ours.backward_layer) is StackedRNN
    theirs.set_weights(random_weights(ours, rng))
    inputs = keras.layers.Masking(0.0)(x) if masked else x
    assert_all_close(ours(inputs), theirs(inputs))


def test_bidirectional_with_states_matches_keras():
    rng = np.random.default_rng(42)
    x = random_inputs(rng, (3, 5, 2))
    ours = keras.layers.Bidirectional(StackedRNN(4, 2, return_sequences=True, return_state=True))
    theirs = keras.layers.Bidirectional(keras_stack(4, 2, return_sequences=True, return_state=True))
    ours.build(x.shape)
    theirs.build(x.shape)
    theirs.set_weights(random_weights(ours, rng))
    states = [random_inputs(rng, (3, 4)) for _ in range(4)]  # forward layers' states, then backward layers'
    assert_all_close(ours(x, initial_state=states), theirs(x, initial_state=states))


def functional_model(rnn, time=None, features=3):
    inputs = keras.Input((time, features))
    hidden = rnn(keras.layers.Masking(0.0)(inputs))
    return keras.Model(inputs, keras.layers.Dense(2)(hidden))


@pytest.mark.parametrize("time", [None, 6])
def test_functional_model_fit_matches_keras(time):
    # Same weights, same data, same optimizer: the same predictions and losses through two epochs of training.
    rng = np.random.default_rng([43, time or 0])
    x, y = padded_inputs(rng, 8, 6, 3), random_inputs(rng, (8, 6, 2))
    ours = functional_model(StackedRNN(5, 2, return_sequences=True), time)
    theirs = functional_model(keras_stack(5, 2, return_sequences=True), time)
    theirs.set_weights(random_weights(ours, rng))
    assert_all_close(ours.predict(x, verbose=0), theirs.predict(x, verbose=0))
    histories = []
    for model in (ours, theirs):
        model.compile(keras.optimizers.SGD(0.3), "mse")
        histories.append(model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"])
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-5)
    assert_all_close(ours.get_weights(), theirs.get_weights())


def test_unmasked_model_fit_matches_keras():
    rng = np.random.default_rng(44)
    x, y = random_inputs(rng, (8, 5, 3)), random_inputs(rng, (8, 4))
    models = [keras.Sequential([keras.Input((5, 3)), rnn, keras.layers.Dense(4)])
              for rnn in (StackedRNN(6, 3), keras_stack(6, 3))]
    models[1].set_weights(random_weights(models[0], rng))
    histories = []
    for model in models:
        model.compile(keras.optimizers.Adam(0.01), "mse")
        histories.append(model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"])
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-5)
    assert_all_close(models[0].get_weights(), models[1].get_weights())


# ---- from_keras ----------------------------------------------------------------------------------------------------

def sequential_stack(units, num_layers, features, **last_options):
    layers = [keras.layers.SimpleRNN(units, return_sequences=True) for _ in range(num_layers - 1)]
    return keras.Sequential([keras.Input((None, features))] + layers + [keras.layers.SimpleRNN(units, **last_options)])


@pytest.mark.parametrize("make", [
    lambda: keras_stack(5, 3, return_sequences=True, return_state=True, go_backwards=True),
    lambda: keras.layers.SimpleRNN(5, activation="relu", return_state=True),
    lambda: keras.layers.RNN(keras.layers.SimpleRNNCell(5, use_bias=False), return_sequences=True),
    lambda: sequential_stack(5, 3, 4, return_sequences=False),
], ids=["rnn-over-cells", "simple-rnn", "rnn-over-one-cell", "sequential"])
def test_from_keras_computes_the_same(make):
    rng = np.random.default_rng(45)
    x = random_inputs(rng, (3, 6, 4))
    keras_layer = make()
    if not keras_layer.built:  # a Sequential with an Input is built already
        keras_layer.build(x.shape)
    random_weights(keras_layer, rng)
    converted = from_keras(keras_layer)
    assert type(converted) is StackedRNN
    assert_all_close(converted(x), keras_layer(x))
    mask = rng.random((3, 6)) > 0.3
    if not isinstance(keras_layer, keras.Sequential):
        assert_all_close(converted(x, mask=mask), keras_layer(x, mask=mask))


def test_from_keras_copies_the_states_of_a_stateful_layer():
    rng = np.random.default_rng(46)
    keras_layer = keras_stack(4, 2, stateful=True, return_sequences=True)
    keras_layer.build((2, 3, 3))
    random_weights(keras_layer, rng)
    keras_layer(random_inputs(rng, (2, 3, 3)))  # moves the states away from zero
    converted = from_keras(keras_layer)
    x = random_inputs(rng, (2, 3, 3))
    assert_all_close(converted(x), keras_layer(x))


def test_from_keras_of_an_unbuilt_layer_keeps_the_settings():
    converted = from_keras(keras.layers.SimpleRNN(7, activation="relu", go_backwards=True, recurrent_dropout=0.2))
    assert not converted.built
    assert (converted.units, converted.num_layers, converted.go_backwards, converted.recurrent_dropout) == \
        (7, 1, True, 0.2)


@pytest.mark.parametrize("make,match", [
    # A cell of another type, even a subclass of a known one (its maths may differ), is refused.
    (lambda: keras.layers.RNN(type("CustomCell", (keras.layers.SimpleRNNCell,), {})(3)),
     "SimpleRNNCell, keras.layers.GRUCell or keras.layers.LSTMCell only; .* has a CustomCell"),
    (lambda: keras.layers.RNN([keras.layers.SimpleRNNCell(3), keras.layers.SimpleRNNCell(4)]), "same units"),
    (lambda: keras.layers.RNN([keras.layers.SimpleRNNCell(3, activation="relu"), keras.layers.SimpleRNNCell(3)]),
     "same activation"),
    (lambda: keras.layers.SimpleRNN(3, dropout=0.1), "dropout > 0"),
    (lambda: keras.Sequential([keras.layers.SimpleRNN(3), keras.layers.SimpleRNN(3)]), "must return sequences"),
    (lambda: keras.Sequential([keras.layers.SimpleRNN(3, return_sequences=True), keras.layers.Dense(3)]),
     "made of SimpleRNN layers only"),
    (lambda: keras.layers.Dense(3), "expects a keras.layers.RNN"),
])
def test_from_keras_refuses_what_it_cannot_convert(make, match):
    with pytest.raises(ValueError, match=match):
        from_keras(make())
