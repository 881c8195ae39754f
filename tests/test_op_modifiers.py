"""Masks and dropout inside the fused ops (Keras' masking, Keras' input and recurrent dropout, PyTorch's dropout
between layers): forward and every gradient against the plain-TF reference, for every cell and mask pattern; the
reference against Keras' own RNN on masked input; bad masks refused with a clear message."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import deeprnn_fast
from deeprnn_fast import _validate, reference
from op_testing import scaled_close

pytestmark = pytest.mark.usefixtures("require_library")

FUSED = {"tanh": deeprnn_fast.stacked_rnn, "relu": deeprnn_fast.stacked_rnn, "gru": deeprnn_fast.stacked_gru,
         "lstm": deeprnn_fast.stacked_lstm}
REFERENCE = {"tanh": reference.stacked_rnn, "relu": reference.stacked_rnn, "gru": reference.stacked_gru,
             "lstm": reference.stacked_lstm}


def cell_args(rng, cell, batch, time, features, units, layers, dtype=tf.float64, tokens=False):
    """Inputs (or token ids), weights and initial states of `cell`, drawn afresh at a scale that keeps the gates out
    of saturation; biases and initial states non-zero so that a lost term shows."""
    layout = _validate.CELLS[cell]
    g = layout.gates

    def draw(shape, std):
        return tf.constant(rng.normal(0.0, std, shape), dtype)

    inputs = (tf.constant(rng.integers(0, features, (batch, time)), tf.int32) if tokens
              else draw((batch, time, features), 1.0))
    kernels = [draw((features if l == 0 else units, g * units), 0.6 / np.sqrt(features if l == 0 else units))
               for l in range(layers)]
    recurrent = [draw((units, g * units), 0.6 / np.sqrt(units)) for _ in range(layers)]
    bias_shape = (g * units,) if layout.bias_rows is None else (layout.bias_rows, g * units)
    biases = [draw(bias_shape, 0.3) for _ in range(layers)]
    initial = [draw((batch, units), 0.5) if layout.states == 1 else (draw((batch, units), 0.5), draw((batch, units), 0.5))
               for _ in range(layers)]
    return inputs, kernels, recurrent, biases, initial


def mask_of(rng, pattern, batch, time):
    lengths = rng.integers(time // 2, time + 1, batch)
    steps = np.arange(time)[None, :]
    if pattern == "right-padded":
        mask = steps < lengths[:, None]
    elif pattern == "left-padded":
        mask = steps >= (time - lengths)[:, None]
    elif pattern == "holes":
        mask = rng.random((batch, time)) < 0.7
    else:
        raise ValueError(pattern)
    mask[min(1, batch - 1)] = False  # a row that never takes a step
    return tf.constant(mask)


def dropout_masks(rng, shape, dtype, rate=0.3):
    return tf.constant((rng.random(shape) >= rate) / (1 - rate), dtype)


def loss_and_grads(fn, args, activation, **modifiers):
    inputs, kernels, recurrent, biases, initial = args
    flat_initial = [s for pair in initial for s in (pair if isinstance(pair, tuple) else (pair,))]
    watched = ([] if inputs.dtype.is_integer else [inputs]) + kernels + recurrent + biases + flat_initial
    extra = {"activation": activation} if activation else {}
    with tf.GradientTape() as tape:
        tape.watch(watched)
        outputs, finals = fn(inputs, kernels, recurrent, biases, initial, **extra, **modifiers)
        w = tf.cast(tf.reshape(tf.range(tf.size(outputs)) % 7 + 1, tf.shape(outputs)), outputs.dtype) / 7.0
        loss = tf.reduce_sum(w * outputs * tf.cos(outputs))
        for l, s in enumerate(finals):
            for k, part in enumerate(s if isinstance(s, tuple) else (s,)):
                loss += (0.3 + 0.1 * l + 0.05 * k) * tf.reduce_sum(part * part)
    grads = tape.gradient(loss, watched)
    return outputs, finals, [tf.convert_to_tensor(g) if g is not None else None for g in grads]


def assert_match(cell, args, dtype, **modifiers):
    activation = cell if cell in ("tanh", "relu") else None
    out, final, grads = loss_and_grads(FUSED[cell], args, activation, **modifiers)
    ref_out, ref_final, ref_grads = loss_and_grads(REFERENCE[cell], args, activation, **modifiers)
    scaled_close(out, ref_out, dtype, "outputs")
    scaled_close(tf.nest.flatten(final), tf.nest.flatten(ref_final), dtype, "final states")
    for i, (a, e) in enumerate(zip(grads, ref_grads)):
        assert a is not None, f"no gradient for watched tensor {i}"
        scaled_close(a, e, dtype, f"gradient {i}")


CELLS = ["tanh", "relu", "gru", "lstm"]
# (B, T, D, H, L): a small batch across the register tiles, and one large enough for batch blocks.
SHAPES = [(5, 7, 4, 9, 3), (301, 5, 5, 8, 2)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}-T{}-D{}-H{}-L{}".format(*s))
@pytest.mark.parametrize("pattern", ["right-padded", "left-padded", "holes"])
@pytest.mark.parametrize("cell", CELLS)
def test_masked_steps_keep_states_and_repeat_the_output(rng, cell, pattern, shape):
    args = cell_args(rng, cell, *shape)
    mask = mask_of(rng, pattern, shape[0], shape[1])
    assert_match(cell, args, tf.float64, mask=mask)


@pytest.mark.parametrize("cell", CELLS)
def test_zero_output_for_mask(rng, cell):
    args = cell_args(rng, cell, 6, 6, 3, 7, 2)
    mask = mask_of(rng, "holes", 6, 6)
    outputs, _ = FUSED[cell](*args, **({"activation": cell} if cell in ("tanh", "relu") else {}), mask=mask,
                             zero_output_for_mask=True)
    assert np.all(outputs.numpy()[~mask.numpy()] == 0.0)
    assert_match(cell, args, tf.float64, mask=mask, zero_output_for_mask=True)


@pytest.mark.parametrize("dtype", [tf.float64, tf.float32], ids=lambda d: d.name)
@pytest.mark.parametrize("kind", ["input", "input-per-gate", "recurrent", "recurrent-per-gate", "between", "all"])
@pytest.mark.parametrize("cell", CELLS)
def test_dropout_matches_the_reference(rng, cell, kind, dtype):
    if cell in ("tanh", "relu") and "per-gate" in kind:
        pytest.skip("one gate: a mask per gate is the shared mask")
    B, T, D, H, L = 7, 5, 4, 9, 3
    args = cell_args(rng, cell, B, T, D, H, L, dtype=dtype)
    gates = _validate.CELLS[cell].gates
    copies = gates if "per-gate" in kind else 1
    modifiers = {}
    if kind.startswith("input") or kind == "all":
        modifiers["input_dropout"] = [dropout_masks(rng, (copies, B, D if l == 0 else H), dtype) for l in range(L)]
    if kind.startswith("recurrent") or kind == "all":
        modifiers["recurrent_dropout"] = [dropout_masks(rng, (copies, B, H), dtype) for _ in range(L)]
    if kind in ("between", "all"):
        modifiers["between_dropout"] = dropout_masks(rng, (L - 1, T, B, H), dtype)
    if kind == "all":
        modifiers["mask"] = mask_of(rng, "holes", B, T)
    assert_match(cell, args, dtype, **modifiers)


@pytest.mark.parametrize("cell", CELLS)
def test_dropout_and_masks_with_token_inputs_and_batch_blocks(rng, cell):
    B, T, V, H, L = 260, 4, 11, 8, 2
    args = cell_args(rng, cell, B, T, V, H, L, tokens=True)
    gates = _validate.CELLS[cell].gates
    assert_match(cell, args, tf.float64, mask=mask_of(rng, "right-padded", B, T),
                 input_dropout=[dropout_masks(rng, (gates, B, V if l == 0 else H), tf.float64) for l in range(L)],
                 recurrent_dropout=[dropout_masks(rng, (gates, B, H), tf.float64) for _ in range(L)],
                 between_dropout=dropout_masks(rng, (L - 1, T, B, H), tf.float64))


@pytest.mark.parametrize("cell", CELLS)
def test_masked_gradient_matches_numerical_jacobian(rng, cell):
    # The fused gradient through masked steps and dropout, against finite differences (float64), every weight.
    B, T, D, H, L = 3, 4, 3, 4, 2
    inputs, kernels, recurrent, biases, initial = cell_args(rng, cell, B, T, D, H, L)
    if cell == "relu":  # keep pre-activations away from relu's kink, where finite differences are wrong
        biases = [b + 0.5 for b in biases]
    gates = _validate.CELLS[cell].gates
    modifiers = dict(mask=mask_of(rng, "holes", B, T),
                     input_dropout=[dropout_masks(rng, (gates, B, D if l == 0 else H), tf.float64) for l in range(L)],
                     recurrent_dropout=[dropout_masks(rng, (1, B, H), tf.float64) for _ in range(L)],
                     between_dropout=dropout_masks(rng, (L - 1, T, B, H), tf.float64))
    extra = {"activation": cell} if cell in ("tanh", "relu") else {}
    weights = kernels + recurrent + biases

    def f(*ws):
        outputs, finals = FUSED[cell](inputs, list(ws[:L]), list(ws[L:2 * L]), list(ws[2 * L:]), initial, **extra,
                                      **modifiers)
        return tf.reduce_sum(outputs * tf.cos(outputs)) + sum(tf.reduce_sum(tf.square(s))
                                                              for s in tf.nest.flatten(finals))

    theoretical, numerical = tf.test.compute_gradient(f, weights, delta=1e-6)
    for i, (t, n) in enumerate(zip(theoretical, numerical)):
        np.testing.assert_allclose(t, n, rtol=1e-6, atol=1e-7, err_msg=f"weight {i}")


@pytest.mark.parametrize("cell, keras_cell", [("tanh", lambda u: keras.layers.SimpleRNNCell(u)),
                                              ("gru", lambda u: keras.layers.GRUCell(u)),
                                              ("lstm", lambda u: keras.layers.LSTMCell(u))])
@pytest.mark.parametrize("pattern", ["right-padded", "left-padded", "holes"])
def test_masks_mean_what_keras_masks_mean(rng, cell, keras_cell, pattern):
    # The reference, and so the fused op, is Keras' RNN over stacked cells given the same weights and mask. (In
    # float32: Keras' masked loop starts its previous output as float32 zeros whatever the layer's dtype.)
    B, T, D, H, L = 4, 6, 3, 5, 2
    inputs, kernels, recurrent, biases, _ = cell_args(rng, cell, B, T, D, H, L, dtype=tf.float32)
    mask = mask_of(rng, pattern, B, T)
    rnn = keras.layers.RNN([keras_cell(H) for _ in range(L)], return_sequences=True, return_state=True)
    rnn.build(inputs.shape)
    rnn.set_weights([w.numpy() for l in range(L) for w in (kernels[l], recurrent[l], biases[l])])
    keras_out, *keras_states = rnn(inputs, mask=mask)
    for fn in (REFERENCE[cell], FUSED[cell]):
        out, final = fn(inputs, kernels, recurrent, biases, mask=mask)
        scaled_close(out, keras_out, tf.float32, f"{fn.__module__} outputs")
        scaled_close(tf.nest.flatten(final), keras.tree.flatten(keras_states), tf.float32,
                     f"{fn.__module__} final states")


@pytest.mark.parametrize("fn", [deeprnn_fast.stacked_gru, reference.stacked_gru], ids=["fused", "reference"])
@pytest.mark.parametrize("change, message", [
    (dict(mask=tf.ones([5, 4], tf.bool)), r"mask must have shape \[3, 4\]"),
    (dict(mask=tf.ones([3, 4, 1], tf.bool)), r"mask must have shape \[3, 4\] \(rank 2\)"),
    (dict(mask=tf.constant([["a"] * 4] * 3)), r"mask must be a \[batch, time\] tensor of booleans"),
    (dict(input_dropout=[tf.ones([2, 3, 5]), tf.ones([2, 3, 6])]), r"input_dropout\[0\] must have shape \[masks, "
                                                                   r"batch, 5\] with masks 1 or 3"),
    (dict(input_dropout=[tf.ones([1, 3, 5])]), r"input_dropout must hold one tensor per layer \(2\)"),
    (dict(recurrent_dropout=[tf.ones([1, 3, 6]), tf.ones([3, 3, 6])]), r"recurrent_dropout must hold as many masks"),
    (dict(recurrent_dropout=[tf.ones([1, 3, 7]), tf.ones([1, 3, 6])]), r"recurrent_dropout\[0\] must have shape"),
    (dict(between_dropout=tf.ones([1, 4, 3, 5])), r"between_dropout must have shape \[1, 4, 3, 6\]"),
])
def test_bad_masks_name_the_argument_and_the_expected_shape(fn, change, message):
    rng = np.random.default_rng(3)
    inputs, kernels, recurrent, biases, initial = cell_args(rng, "gru", 3, 4, 5, 6, 2, dtype=tf.float32)
    with pytest.raises(ValueError, match=message):
        fn(inputs, kernels, recurrent, biases, initial, **change)


def test_a_mask_of_the_wrong_batch_at_run_time_is_caught_by_the_kernel():
    rng = np.random.default_rng(4)
    inputs, kernels, recurrent, biases, _ = cell_args(rng, "tanh", 3, 4, 5, 6, 2, dtype=tf.float32)
    fn = tf.function(lambda x, m: deeprnn_fast.stacked_rnn(x, kernels, recurrent, biases, mask=m)[0],
                     input_signature=[tf.TensorSpec([None, 4, 5]), tf.TensorSpec([None, 4], tf.bool)])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"mask must have shape \[3, 4\]"):
        fn(inputs, tf.ones([2, 4], tf.bool))
