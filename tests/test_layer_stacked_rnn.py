"""StackedRNN against keras.layers.RNN([SimpleRNNCell] * L) with copied weights: outputs, states and gradients for
every option of the Keras layer (return_sequences, return_state, go_backwards, initial_state, masks, stateful)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from layer_testing import assert_all_close, flat, keras_stack, loss_gradients, make_pair, random_weights
from deeprnn_fast.layers import StackedRNN

# The step-by-step loop announces itself once per layer (tested in test_layer_options.py); here it is noise.
pytestmark = pytest.mark.filterwarnings("ignore:.*step-by-step reference loop:UserWarning")


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


@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_outputs_and_states_match_keras(num_layers, return_sequences, return_state, go_backwards):
    rng = np.random.default_rng([num_layers, return_sequences, return_state, go_backwards])
    x = random_inputs(rng, (4, 6, 5))
    ours, theirs = make_pair(rng, x.shape, 7, num_layers, return_sequences=return_sequences,
                             return_state=return_state, go_backwards=go_backwards)
    assert_all_close(ours(x), theirs(x))
    states = random_states(rng, 4, 7, num_layers)
    assert_all_close(ours(x, initial_state=states), theirs(x, initial_state=states))


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", None])
@pytest.mark.parametrize("use_bias", [True, False])
def test_activations_and_bias_match_keras(activation, use_bias):
    # sigmoid and linear (None) are not in the fused op: they run the step-by-step loop, with a warning.
    rng = np.random.default_rng([len(str(activation)), use_bias])
    x = random_inputs(rng, (3, 5, 4))
    ours, theirs = make_pair(rng, x.shape, 6, 2, activation=activation, use_bias=use_bias, return_sequences=True,
                             return_state=True)
    assert len(ours.get_weights()) == (6 if use_bias else 4)
    assert_all_close(ours(x), theirs(x))


@pytest.mark.parametrize("batch,time,features,units,num_layers", [
    (1, 1, 1, 1, 1), (2, 9, 3, 5, 2), (5, 3, 8, 2, 4), (3, 4, 6, 6, 1)])
def test_shapes_match_keras(batch, time, features, units, num_layers):
    rng = np.random.default_rng([batch, time, features, units, num_layers])
    x = random_inputs(rng, (batch, time, features))
    ours, theirs = make_pair(rng, x.shape, units, num_layers, return_sequences=True, return_state=True)
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    out = ours(x)
    assert out[0].shape == (batch, time, units) and all(s.shape == (batch, units) for s in out[1:])
    assert_all_close(out, theirs(x))


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_any_mask_matches_keras(go_backwards, zero_output_for_mask, return_sequences):
    rng = np.random.default_rng([go_backwards, zero_output_for_mask, return_sequences])
    x = random_inputs(rng, (5, 7, 3))
    mask = awkward_mask(rng, 5, 7)
    options = dict(return_sequences=return_sequences, return_state=True, go_backwards=go_backwards,
                   zero_output_for_mask=zero_output_for_mask)
    ours, theirs = make_pair(rng, x.shape, 4, 2, **options)
    states = random_states(rng, 5, 4, 2)
    assert_all_close(ours(x, initial_state=states, mask=mask), theirs(x, initial_state=states, mask=mask))
    assert_all_close(ours(x, mask=mask), theirs(x, mask=mask))


def test_mask_from_a_masking_layer_matches_keras():
    rng = np.random.default_rng(11)
    x = random_inputs(rng, (4, 6, 3))
    x[1, 2:4] = 0.0  # a gap in the middle of a sequence, not padding at its end
    x[3, 0] = 0.0
    ours, theirs = make_pair(rng, x.shape, 5, 2, return_sequences=True)
    masked = keras.layers.Masking(0.0)(x)
    assert_all_close(ours(masked), theirs(masked))


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_gradients_match_keras(num_layers, go_backwards, masked):
    rng = np.random.default_rng([num_layers, go_backwards, masked, 3])
    x = random_inputs(rng, (4, 5, 3))
    mask = awkward_mask(rng, 4, 5) if masked else None
    ours, theirs = make_pair(rng, x.shape, 6, num_layers, return_sequences=True, return_state=True,
                             go_backwards=go_backwards)
    states = random_states(rng, 4, 6, num_layers)
    ours_grads = loss_gradients(ours, x, states, mask)
    theirs_grads = loss_gradients(theirs, x, states, mask)
    assert len(ours_grads) == len(theirs_grads) == 1 + num_layers + 3 * num_layers
    for i, (a, b) in enumerate(zip(ours_grads, theirs_grads)):
        assert np.abs(np.asarray(b)).max() > 0, f"gradient {i} of Keras is zero: the test would prove nothing"
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-5, err_msg=f"gradient {i}")


def test_gradients_of_last_output_match_keras():
    rng = np.random.default_rng(5)
    x = random_inputs(rng, (3, 4, 2))
    ours, theirs = make_pair(rng, x.shape, 5, 3)
    for a, b in zip(loss_gradients(ours, x), loss_gradients(theirs, x)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-5)


def test_keras_nested_states_are_accepted_as_initial_state():
    # keras.layers.RNN over stacked cells returns each state wrapped in a list; feeding them back must work.
    rng = np.random.default_rng(8)
    x = random_inputs(rng, (2, 3, 4))
    ours, theirs = make_pair(rng, x.shape, 3, 2, return_state=True)
    _, *keras_states = theirs(x)
    assert isinstance(keras_states[0], list)
    assert_all_close(ours(x, initial_state=keras_states), theirs(x, initial_state=keras_states))


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
            # keras.layers.RNN.reset_state() fails over stacked cells (Keras 3.15 assigns to the list of one
            # cell's states); zero its variables directly.
            for variable in keras.tree.flatten(theirs.states):
                variable.assign(np.zeros(variable.shape, np.float32))
            assert all(np.all(np.asarray(v.value) == 0) for v in ours.states)


def test_stateful_needs_its_batch_size():
    layer = StackedRNN(3, 2, stateful=True)
    with pytest.raises(ValueError, match="static batch size"):
        layer.build((None, 4, 2))
    layer = StackedRNN(3, 2, stateful=True)
    layer.build((2, 4, 2))
    with pytest.raises(ValueError, match=r"\[2, time, 2\]"):
        layer(np.ones((3, 4, 2), np.float32))


def test_unknown_time_steps_in_a_traced_function_match_keras():
    rng = np.random.default_rng(13)
    ours, theirs = make_pair(rng, (None, None, 3), 4, 2, return_sequences=True, return_state=True)
    spec = tf.TensorSpec([None, None, 3], tf.float32)
    ours_fn = tf.function(lambda x: ours(x), input_signature=[spec])
    theirs_fn = tf.function(lambda x: theirs(x), input_signature=[spec])
    for time in (2, 5):
        x = random_inputs(rng, (3, time, 3))
        assert_all_close(ours_fn(x), theirs_fn(x))


def test_float64_layer_matches_keras_in_float64():
    rng = np.random.default_rng(17)
    x = rng.uniform(-1, 1, (3, 5, 4))
    ours = StackedRNN(6, 2, return_sequences=True, return_state=True, dtype="float64")
    ours.build(x.shape)
    theirs = keras_stack(6, 2, return_sequences=True, return_state=True, dtype="float64")
    theirs.build(x.shape)
    theirs.set_weights(random_weights(ours, rng))
    out = ours(x)
    assert all(o.dtype == tf.float64 for o in keras.tree.flatten(out))
    assert_all_close(out, theirs(x), atol=1e-12, rtol=1e-12)


def test_weights_move_between_the_layers_in_one_call():
    rng = np.random.default_rng(19)
    x = random_inputs(rng, (2, 3, 4))
    theirs = keras_stack(5, 3, return_sequences=True)
    theirs.build(x.shape)
    random_weights(theirs, rng)
    ours = StackedRNN(5, 3, return_sequences=True)
    ours.build(x.shape)
    ours.set_weights(theirs.get_weights())
    assert_all_close(ours(x), theirs(x))
    assert [w.shape for w in ours.weights] == [w.shape for w in theirs.weights]
    assert all(np.array_equal(a, b) for a, b in zip(ours.get_weights(), theirs.get_weights()))
    assert len(flat(ours(x))) == 1
