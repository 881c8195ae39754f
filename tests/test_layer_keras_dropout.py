"""Keras' dropout, recurrent_dropout and masks on the stacked layers, run fused: forward and gradients in training
against keras.layers.RNN over the same cells with the same weights and the SAME dropout masks (handed to both sides:
the Keras cells' get_dropout_mask / get_recurrent_dropout_mask, the layer's _cell_dropout_masks), for every cell, in
Keras' implementation 2 (one input mask) and 1 (one mask per gate, forced by recurrent_dropout), with a mask holding
every pattern (right and left padding, holes, a row fully masked, a full row), go_backwards, stateful and
Bidirectional; none of these may fall back to the step-by-step loop, and the loop (kept for what the op cannot
express) must agree with the fused op."""
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from layer_testing import HandedOutBetweenMasks, assert_all_close, random_weights
from deeprnn_fast.layers import StackedGRU, StackedLSTM, StackedRNN

CELLS = {"rnn": (StackedRNN, keras.layers.SimpleRNNCell, 1), "gru": (StackedGRU, keras.layers.GRUCell, 3),
         "lstm": (StackedLSTM, keras.layers.LSTMCell, 4)}

# Per row one pattern: right padded, left padded, holes, fully masked, all steps taken.
MASK = np.array([[1, 1, 1, 1, 0, 0],
                 [0, 0, 1, 1, 1, 1],
                 [1, 0, 1, 0, 0, 1],
                 [0, 0, 0, 0, 0, 0],
                 [1, 1, 1, 1, 1, 1]], bool)
B, T, D, H, L = 5, 6, 4, 3, 2


def keras_pair(rng, cell, dtype="float32", implementation=None, **options):
    """(our layer, keras.layers.RNN over the same cells) with the same random weights."""
    ours_class, cell_class, _ = CELLS[cell]
    cell_options = {k: options.pop(k) for k in ("dropout", "recurrent_dropout") if k in options}
    if implementation is not None:
        cell_options["implementation"] = implementation
    batch = options.pop("batch_size", None)
    ours_only = {k: options.pop(k) for k in ("between_layer_dropout",) if k in options}
    ours = ours_class(H, L, dtype=dtype, **cell_options, **ours_only, **options)
    ours.build((batch, T, D))
    cells = [cell_class(H, dtype=dtype, **cell_options) for _ in range(L)]
    theirs = keras.layers.RNN(keras.layers.StackedRNNCells(cells, dtype=dtype), dtype=dtype, **options)
    theirs.build((batch, T, D))
    theirs.set_weights(random_weights(ours, rng))
    return ours, theirs


def inject_masks(rng, ours, theirs, batch=B, dtype=np.float32):
    """Draws Keras-style masks (0 or 1 / (1 - rate)) for every cell and hands the same ones to both layers; returns
    the list of (layer, kind) the layer asked for, to check it drew what Keras' cells draw."""
    asked = []
    given = {}
    for l, keras_cell in enumerate(theirs.cell.cells):
        count = getattr(keras_cell, "dropout_mask_count", None)
        for kind, rate, width in (("input", keras_cell.dropout, D if l == 0 else H),
                                  ("recurrent", keras_cell.recurrent_dropout, H)):
            if rate == 0:
                continue
            masks = [tf.constant((rng.random((batch, width)) > rate).astype(dtype) / dtype(1 - rate))
                     for _ in range(count or 1)]
            given[l, kind] = masks
            value = masks if count is not None else masks[0]
            if kind == "input":
                keras_cell.get_dropout_mask = lambda x, value=value: value
            else:
                keras_cell.get_recurrent_dropout_mask = lambda h, value=value: value

    def handed_out(l, kind, batch, width, dtype, count):
        asked.append((l, kind, count))
        assert width == given[l, kind][0].shape[1]
        return given[l, kind]

    ours._cell_dropout_masks = handed_out
    return asked, given


def gradients(layer, x, mask, coefficients_seed=0, **call_options):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs = keras.tree.flatten(layer(x, mask=mask, training=True, **call_options))
        rng = np.random.default_rng(coefficients_seed)
        loss = tf.add_n([tf.reduce_sum(o * rng.standard_normal(o.shape).astype(o.dtype.as_numpy_dtype))
                         for o in outputs])
    return outputs, tape.gradient(loss, [x] + list(layer.trainable_weights))


# (dropout, recurrent_dropout, implementation): Keras' implementation 2 (one input mask), 1 chosen (one per gate),
# and recurrent_dropout (which forces 1), with and without input dropout.
DROPOUTS = [(0.3, 0.0, 2), (0.3, 0.0, 1), (0.3, 0.25, 2), (0.0, 0.25, 2)]


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("dropout, recurrent_dropout, implementation", DROPOUTS)
def test_fused_training_matches_keras_with_the_same_masks(cell, dropout, recurrent_dropout, implementation):
    if cell == "rnn" and implementation == 1:
        pytest.skip("SimpleRNNCell has no implementation 1")
    rng = np.random.default_rng([71, len(cell), int(10 * dropout), implementation, int(100 * recurrent_dropout)])
    ours, theirs = keras_pair(rng, cell, dropout=dropout, recurrent_dropout=recurrent_dropout,
                              implementation=None if cell == "rnn" else implementation,
                              return_sequences=True, return_state=True)
    asked, given = inject_masks(rng, ours, theirs)
    x = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback, no warning of any kind
        ours_out, ours_grads = gradients(ours, x, MASK)
    theirs_out, theirs_grads = gradients(theirs, x, MASK)
    gates = CELLS[cell][2]
    expected_count = gates if (implementation == 1 or recurrent_dropout > 0) else 1
    assert sorted(asked) == sorted((l, k, expected_count) for l, k in given), "not the masks Keras' cells draw"
    assert_all_close(ours_out, theirs_out)
    assert_all_close(ours_grads, theirs_grads, atol=2e-5, rtol=2e-5)
    # The masks do something: without them the outputs differ.
    plain, _ = keras_pair(np.random.default_rng(0), cell, return_sequences=True)
    plain.set_weights(ours.get_weights())
    assert np.abs(np.asarray(plain(x, mask=MASK)) - np.asarray(ours_out[0])).max() > 1e-3


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_the_step_by_step_loop_computes_what_the_fused_op_computes(cell):
    # The loop remains for what the op cannot express; forced here, with the same masks, it must agree.
    rng = np.random.default_rng([72, len(cell)])
    ours, theirs = keras_pair(rng, cell, dropout=0.3, recurrent_dropout=0.2, between_layer_dropout=0.4,
                              return_sequences=True, return_state=True, go_backwards=True)
    inject_masks(rng, ours, theirs)
    between = (rng.random((B, T, H)) > 0.4).astype(np.float32) / 0.6
    ours._between_layer_masks = HandedOutBetweenMasks([between] * (ours.num_layers - 1))
    x = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)
    fused = gradients(ours, x, MASK)
    ours._fused_unsupported_reason = lambda: "forced by the test"
    with pytest.warns(UserWarning, match="forced by the test"):
        stepwise = gradients(ours, x, MASK)
    assert_all_close(stepwise[0], fused[0])
    assert_all_close(stepwise[1], fused[1], atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_go_backwards_and_zero_output_for_mask_with_dropout_match_keras(cell):
    rng = np.random.default_rng([73, len(cell)])
    ours, theirs = keras_pair(rng, cell, dropout=0.3, recurrent_dropout=0.2, return_sequences=True,
                              go_backwards=True, zero_output_for_mask=True)
    inject_masks(rng, ours, theirs)
    x = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours_out, ours_grads = gradients(ours, x, MASK)
    theirs_out, theirs_grads = gradients(theirs, x, MASK)
    assert_all_close(ours_out, theirs_out)
    assert_all_close(ours_grads, theirs_grads, atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_stateful_with_masks_and_dropout_matches_keras_over_two_batches(cell):
    rng = np.random.default_rng([74, len(cell)])
    ours, theirs = keras_pair(rng, cell, dropout=0.3, recurrent_dropout=0.2, stateful=True, batch_size=B,
                              return_sequences=True)
    inject_masks(rng, ours, theirs)
    for _ in range(2):  # the second batch starts from the states the first left
        x = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = ours(x, mask=MASK, training=True)
        assert_all_close(out, theirs(x, mask=MASK, training=True))
    assert_all_close([v.value for v in ours.states], [v.value for v in keras.tree.flatten(theirs.states)])


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_bidirectional_with_masks_runs_fused_and_matches_keras(cell):
    rng = np.random.default_rng([75, len(cell)])
    ours_class, cell_class, _ = CELLS[cell]
    x = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)
    ours = keras.layers.Bidirectional(ours_class(H, L, return_sequences=True))
    theirs = keras.layers.Bidirectional(keras.layers.RNN(
        keras.layers.StackedRNNCells([cell_class(H) for _ in range(L)]), return_sequences=True))
    ours.build(x.shape)
    theirs.build(x.shape)
    theirs.set_weights(random_weights(ours, rng))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ours(x, mask=MASK)
    assert ours.forward_layer.zero_output_for_mask and ours.backward_layer.zero_output_for_mask
    assert_all_close(out, theirs(x, mask=MASK))


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_float64_gradients_with_masks_and_dropout_match_keras_tightly(cell):
    rng = np.random.default_rng([76, len(cell)])
    ours, theirs = keras_pair(rng, cell, dtype="float64", dropout=0.3, recurrent_dropout=0.2,
                              return_sequences=True, return_state=True)
    inject_masks(rng, ours, theirs, dtype=np.float64)
    x = rng.uniform(-1, 1, (B, T, D))
    ours_out, ours_grads = gradients(ours, x, MASK)
    theirs_out, theirs_grads = gradients(theirs, x, MASK)
    assert_all_close(ours_out, theirs_out, atol=1e-12, rtol=1e-10)
    assert_all_close(ours_grads, theirs_grads, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_token_inputs_with_dropout_match_one_hot_inputs(cell):
    # Layer 0's input masks are over the vocabulary, as the one-hot input's columns.
    rng = np.random.default_rng([77, len(cell)])
    ours_class = CELLS[cell][0]
    vocabulary = 7
    tokens = ours_class(H, L, vocabulary_size=vocabulary, dropout=0.3, recurrent_dropout=0.2, return_sequences=True)
    one_hot = ours_class(H, L, dropout=0.3, recurrent_dropout=0.2, return_sequences=True)
    tokens.build((B, T))
    one_hot.build((B, T, vocabulary))
    one_hot.set_weights(random_weights(tokens, rng))
    count = tokens._dropout_mask_count()
    masks = {(l, kind): [tf.constant((rng.random((B, vocabulary if l == 0 and kind == "input" else H)) > 0.3)
                                     .astype(np.float32) / 0.7) for _ in range(count)]
             for l in range(L) for kind in ("input", "recurrent")}
    for layer in (tokens, one_hot):
        layer._cell_dropout_masks = lambda l, kind, batch, width, dtype, count: masks[l, kind]
    ids = rng.integers(0, vocabulary, (B, T))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = tokens(ids, mask=MASK, training=True)
    assert_all_close(out, one_hot(tf.one_hot(ids, vocabulary), mask=MASK, training=True))


def test_dropout_masks_are_drawn_per_call_and_the_same_at_every_step():
    # One call with a sequence of identical steps and zero recurrent weights: a mask the same at every step gives
    # every step the same output; two calls draw different masks.
    layer = StackedRNN(16, 1, dropout=0.5, return_sequences=True, seed=5)
    layer.build((8, 5, 16))
    layer.set_weights([np.eye(16, dtype=np.float32), np.zeros((16, 16), np.float32), np.zeros(16, np.float32)])
    x = np.tile(np.random.default_rng(78).uniform(0.2, 0.9, (8, 1, 16)).astype(np.float32), (1, 5, 1))
    first, second = np.asarray(layer(x, training=True)), np.asarray(layer(x, training=True))
    for out in (first, second):
        assert all(np.array_equal(out[:, 0], out[:, t]) for t in range(1, 5)), "a fresh mask at some step"
        dropped = out[:, 0] == 0
        assert 0.3 < dropped.mean() < 0.7
        np.testing.assert_allclose(out[:, 0][~dropped], np.tanh(x[:, 0][~dropped] * 2), rtol=1e-6)
    assert not np.array_equal(first, second), "the same masks for two calls"
    np.testing.assert_allclose(layer(x, training=False), np.tanh(x), rtol=1e-6)


# ---- bad input ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mask, match", [
    (np.ones((B, T + 1), bool), rf"mask of shape \[batch, time\] = \[{B}, {T}\]; got shape \({B}, {T + 1}\)"),
    (np.ones((B,), bool), rf"mask of shape \[batch, time\] = \[{B}, {T}\]; got shape \({B},\)"),
    (np.ones((B, T, 2), bool), rf"mask of shape \[batch, time\] = \[{B}, {T}\]; got shape \({B}, {T}, 2\)"),
    (np.full((B, T), "yes"), r"mask must be a \[batch, time\] tensor of booleans .*got dtype string"),
])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_a_bad_mask_is_an_error_naming_the_expected_shape(cell, mask, match):
    layer = CELLS[cell][0](H, L, dropout=0.2)
    with pytest.raises(ValueError, match=match):
        layer(np.ones((B, T, D), np.float32), mask=mask, training=True)


@pytest.mark.parametrize("name", ["dropout", "recurrent_dropout", "between_layer_dropout"])
@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_a_rate_outside_0_1_is_an_error_naming_the_argument(cell, name, rate):
    with pytest.raises(ValueError, match=rf"^{name} must be a fraction in \[0, 1\); got {rate}$"):
        CELLS[cell][0](H, L, **{name: rate})


# ---- from_keras ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, expected", [
    (lambda: keras.layers.SimpleRNN(H, dropout=0.3, recurrent_dropout=0.2), (StackedRNN, 0.3, 0.2, None)),
    (lambda: keras.layers.GRU(H, dropout=0.3), (StackedGRU, 0.3, 0.0, 2)),
    (lambda: keras.layers.GRU(H, dropout=0.3, implementation=1), (StackedGRU, 0.3, 0.0, 1)),
    # Keras' cell switches itself to implementation 1 for recurrent_dropout; so does the converted layer's count.
    (lambda: keras.layers.LSTM(H, dropout=0.1, recurrent_dropout=0.2), (StackedLSTM, 0.1, 0.2, 1)),
    (lambda: keras.Sequential([keras.layers.GRU(H, dropout=0.3, return_sequences=True),
                               keras.layers.GRU(H, dropout=0.3)]), (StackedGRU, 0.3, 0.0, 2)),
])
def test_from_keras_carries_both_dropouts_and_the_implementation(make, expected):
    from deeprnn_fast.layers import from_keras
    converted = from_keras(make())
    layer_class, dropout, recurrent_dropout, implementation = expected
    assert type(converted) is layer_class
    assert (converted.dropout, converted.recurrent_dropout, converted.between_layer_dropout) == \
        (dropout, recurrent_dropout, 0.0)
    assert getattr(converted, "implementation", None) == implementation
    gates = {StackedRNN: 1, StackedGRU: 3, StackedLSTM: 4}[layer_class]
    assert converted._dropout_mask_count() == (gates if implementation == 1 else 1)
