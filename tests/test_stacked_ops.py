"""The fused op of every cell (tanh, relu, gru, lstm) over float32 and float64: against the plain-TensorFlow
reference, Keras' own cells and TensorFlow's numerical Jacobian; token inputs, skipped input gradients, empty, NaN,
saturated, reproducibility and thread cases.

With DEEPRNN_FAST_TEST_FALLBACK=1 (tests/conftest.py) the same tests run `deeprnn_fast.stacked_*` on the
plain-TensorFlow fallback instead; the tests about the compiled op itself (`compiled_op`) then skip."""
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

import deeprnn_fast
from deeprnn_fast import _library
from fallback_switch import FALLBACK
from op_testing import (CELLS, arg_names, flatten_args, fused_fn, layout, loss_of, random_args, reference_fn,
                        scaled_close, states_close, unflatten_args, value_and_grads, zero_states)

pytestmark = pytest.mark.usefixtures("op_backend")

# (B, T, D, H, L): ones everywhere, H below / across / not a multiple of the 16- and 8-wide column tiles, B across
# the 6-row register tile, D != H, deep stacks, a width where the weight-gradient products pack their operands, and
# batches of 128 and more, where the weight gradients are streamed through the wavefront (T = 1 included), and of
# 256 and more, where blocks of rows run the wavefront on their own (here four blocks, not multiples of 6 rows).
SHAPES = [
    (1, 1, 1, 1, 1),
    (3, 5, 4, 7, 3),
    (1, 7, 3, 17, 2),
    (13, 1, 20, 33, 4),
    (7, 9, 16, 16, 1),
    (6, 4, 5, 24, 8),
    (5, 3, 150, 140, 2),
    (130, 4, 5, 9, 3),
    (128, 1, 3, 4, 2),
    (301, 3, 5, 9, 3),
]
DTYPES = [tf.float64, tf.float32]

shape_id = lambda s: "B{}-T{}-D{}-H{}-L{}".format(*s)  # noqa: E731
dtype_id = lambda d: d.name  # noqa: E731

# The compiled op of each cell, by its registered name.
OP_NAMES = {"tanh": "DeeprnnFast>StackedRnn", "relu": "DeeprnnFast>StackedRnn", "gru": "DeeprnnFast>StackedGru",
            "lstm": "DeeprnnFast>StackedLstm"}


def op_types(fn, *args):
    """The types of the ops that tracing fn(*args) in a tf.function creates."""
    concrete = tf.function(fn).get_concrete_function(*args)
    return {op.type for op in concrete.graph.get_operations()}


@pytest.mark.parametrize("cell", CELLS)
def test_the_wrappers_run_the_backend_under_test(op_backend, rng, cell):
    # What the fallback switch promises: with it the public function builds no op of the compiled library, without it
    # the forward op and its fused gradient.
    args = random_args(rng, 2, 3, 4, 5, 2, dtype=tf.float32, cell=cell)
    types = op_types(lambda *a: value_and_grads(fused_fn(cell), a), *args)
    ours = {t for t in types if t.startswith("DeeprnnFast>")}
    if op_backend == "fallback":
        assert not ours
    else:
        assert ours == {OP_NAMES[cell], OP_NAMES[cell] + "Grad"}


# ---- against the reference, Keras and finite differences -----------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("cell", CELLS)
def test_forward_and_gradient_match_reference(rng, cell, dtype, shape):
    args = random_args(rng, *shape, dtype=dtype, cell=cell)
    out, final, grads = value_and_grads(fused_fn(cell), args)
    ref_out, ref_final, ref_grads = value_and_grads(reference_fn(cell), args)
    scaled_close(out, ref_out, dtype, "outputs")
    assert len(final) == shape[4]
    states_close(final, ref_final, dtype)
    names = arg_names(cell, shape[4])
    assert len(grads) == len(names)
    for name, a, e in zip(names, grads, ref_grads):
        assert a is not None, f"no gradient for {name}"
        scaled_close(a, e, dtype, f"gradient of {name}")


def keras_cell(cell, units, dtype):
    """The Keras cell whose maths the fused op of `cell` implements."""
    if cell in ("tanh", "relu"):
        return keras.layers.SimpleRNNCell(units, activation=cell, dtype=dtype.name)
    if cell == "gru":
        return keras.layers.GRUCell(units, dtype=dtype.name)  # reset_after=True, Keras' default
    return keras.layers.LSTMCell(units, dtype=dtype.name)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("cell", CELLS)
def test_reference_and_op_match_keras_cells(rng, cell, dtype):
    # The reference is only a reference if it is Keras' cell: same weights, same results.
    inputs, kernels, recurrent, biases, initial = random_args(rng, 4, 5, 3, 6, 2, dtype=dtype, cell=cell)
    cells = [keras_cell(cell, 6, dtype) for _ in range(2)]
    rnn = keras.layers.RNN(keras.layers.StackedRNNCells(cells, dtype=dtype.name), return_sequences=True,
                           return_state=True, dtype=dtype.name)
    rnn.build(inputs.shape)
    rnn.set_weights([w.numpy() for l in range(2) for w in (kernels[l], recurrent[l], biases[l])])
    keras_initial = [list(s) if isinstance(s, tuple) else s for s in initial]
    keras_out, *keras_states = rnn(inputs, initial_state=keras_initial)
    keras_states = keras.tree.flatten(keras_states)
    for label, fn in (("reference", reference_fn(cell)), ("fused", fused_fn(cell))):
        out, final = fn(inputs, kernels, recurrent, biases, initial)
        scaled_close(out, keras_out, dtype, f"{label} outputs")
        final = tf.nest.flatten(final)
        assert len(final) == len(keras_states) == 2 * layout(cell).states
        for i, (a, e) in enumerate(zip(final, keras_states)):
            scaled_close(a, e, dtype, f"{label} final state tensor {i}")


@pytest.mark.parametrize("batch", [2, 128, 256], ids=["batched", "streamed", "batch-blocked"])
@pytest.mark.parametrize("cell", CELLS)
def test_gradient_matches_numerical_jacobian(rng, cell, batch):
    # compute_gradient checks each argument's Jacobian against finite differences; the fused gradient op must
    # agree to float64 precision for every argument including the initial states, on every schedule of the weight
    # gradients (with 128 rows and more, for the weights only: the Jacobian of the inputs would take thousands of
    # evaluations).
    inputs, kernels, recurrent, biases, initial = random_args(rng, batch, 3, 3, 4, 2, dtype=tf.float64, cell=cell)
    if cell == "relu":  # keep pre-activations away from relu's kink, where finite differences are wrong
        biases = [b + 0.5 for b in biases]
    everything = flatten_args(inputs, kernels, recurrent, biases, initial)
    first, last = (0, len(everything)) if batch == 2 else (1, 7)
    fn = fused_fn(cell)

    # Traced once: compute_gradient evaluates f twice per element of its arguments, ~700 times for the LSTM.
    @tf.function
    def f(*xs):
        outputs, finals = fn(*unflatten_args(cell, everything[:first] + list(xs) + everything[last:], 2))
        return loss_of(outputs, finals)

    names = arg_names(cell, 2)
    if cell == "relu" and batch > 2:
        # With thousands of pre-activations, some lie within a finite difference of relu's kink for most draws (a
        # 3.7e-5 error seen at B = 256), whatever the bias shift: on the weight-gradient schedules of the larger
        # batches, relu's fused Jacobian is checked against the reference's exact float64 autodiff instead.
        ref = reference_fn(cell)
        xs = [tf.constant(x) for x in everything[first:last]]
        grads = []
        for g_fn in (fn, ref):
            with tf.GradientTape() as tape:
                tape.watch(xs)
                outputs, finals = g_fn(*unflatten_args(cell, everything[:first] + xs + everything[last:], 2))
                loss = loss_of(outputs, finals)
            grads.append(tape.gradient(loss, xs))
        for i, (got, want) in enumerate(zip(*grads)):
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-9, atol=1e-9 * float(np.abs(want).max()),
                                       err_msg=f"argument {first + i} ({names[first + i]})")
        return
    theoretical, numerical = tf.test.compute_gradient(f, everything[first:last], delta=1e-6)
    for i, (t, n) in enumerate(zip(theoretical, numerical)):
        # Central differences of a float64 loss resolve each entry to about eps * |loss| / delta, which grows with the
        # batch (1.3e-7 seen at B = 256): the absolute tolerance follows the argument's largest entry; a wrong index
        # is off by the size of the entries themselves.
        atol = 1e-7 * max(1.0, float(np.abs(n).max()))
        np.testing.assert_allclose(t, n, rtol=1e-6, atol=atol, err_msg=f"argument {first + i} ({names[first + i]})")


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def numpy_step(cell, x, state, w, u, b):
    """One step of one layer by hand, Keras' equations: (the layer's output, its new state)."""
    if cell in ("tanh", "relu"):
        phi = np.tanh if cell == "tanh" else (lambda v: np.maximum(v, 0.0))
        h = phi(x @ w + state @ u + b)
        return h, h
    if cell == "gru":  # gate order [z, r, n], input bias row 0, recurrent bias row 1
        H = state.shape[1]
        gx, gh = x @ w + b[0], state @ u + b[1]
        z, r = sigmoid(gx[:, :H] + gh[:, :H]), sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
        n = np.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
        h = z * state + (1 - z) * n
        return h, h
    h, c = state  # LSTM, gate order [i, f, c, o]
    H = h.shape[1]
    a = x @ w + h @ u + b
    i, f, g, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
    c = f * c + i * g
    h = o * np.tanh(c)
    return h, (h, c)


@pytest.mark.parametrize("cell", CELLS)
def test_one_step_is_wired_as_the_equations_say(rng, cell):
    # Two layers and one step by hand: H_0^(0) = cell(X_0, h0; Wx0, Wh0, b0), H_0^(1) = cell(H_0^(0), h1; ...).
    inputs, kernels, recurrent, biases, initial = random_args(rng, 2, 1, 3, 4, 2, cell=cell)
    numpy_state = lambda s: tuple(t.numpy() for t in s) if isinstance(s, tuple) else s.numpy()  # noqa: E731
    x, expected_states = inputs.numpy()[:, 0], []
    for l in range(2):
        x, state = numpy_step(cell, x, numpy_state(initial[l]), kernels[l].numpy(), recurrent[l].numpy(),
                              biases[l].numpy())
        expected_states.append(state)
    outputs, finals = fused_fn(cell)(inputs, kernels, recurrent, biases, initial)
    np.testing.assert_allclose(outputs.numpy()[:, 0], x, rtol=1e-12)
    for l in range(2):
        for a, e in zip(tf.nest.flatten(finals[l]), tf.nest.flatten(expected_states[l])):
            np.testing.assert_allclose(a, e, rtol=1e-12, err_msg=f"final_states[{l}]")


# ---- tracing -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", CELLS)
def test_inside_tf_function_matches_eager(op_backend, rng, cell):
    args = random_args(rng, 4, 6, 5, 9, 3, dtype=tf.float32, cell=cell)
    eager = value_and_grads(fused_fn(cell), args)
    graph = tf.function(lambda *a: value_and_grads(fused_fn(cell), a))(*args)
    for a, e in zip(tf.nest.flatten(graph), tf.nest.flatten(eager)):
        if op_backend == "fused":  # bitwise: the op reduces every element in a fixed order in both
            np.testing.assert_array_equal(np.asarray(a), np.asarray(e))
        else:  # plain TF's graph optimiser may reorder a sum
            scaled_close(a, e, tf.float32, "the fallback traced against eager")


UNKNOWN_TIME_ON_THE_FALLBACK = pytest.mark.xfail(
    FALLBACK, strict=True, reason="the reference needs a statically known number of time steps "
                                  "(deeprnn_fast/reference.py, _checked): a clear ValueError, not a result")


@pytest.mark.parametrize("unknown", ["batch", pytest.param("batch-and-time", marks=UNKNOWN_TIME_ON_THE_FALLBACK)])
@pytest.mark.parametrize("cell", CELLS)
def test_tf_function_with_unknown_batch_and_time(rng, cell, unknown):
    _, kernels, recurrent, biases, _ = random_args(rng, 3, 4, 5, 6, 2, dtype=tf.float32, cell=cell)
    weights = kernels + recurrent + biases
    fn = tf.function(lambda x, *w: fused_fn(cell)(x, w[0:2], w[2:4], w[4:6])[0],
                     input_signature=[tf.TensorSpec([None, None if unknown != "batch" else 4, 5], tf.float32)]
                     + [tf.TensorSpec(t.shape, tf.float32) for t in weights])
    for batch, time in [(3, 4), (1, 9 if unknown != "batch" else 4)]:
        x = tf.constant(rng.normal(size=(batch, time, 5)), tf.float32)
        expected, _ = reference_fn(cell)(x, kernels, recurrent, biases)
        scaled_close(fn(x, *weights), expected, tf.float32, f"outputs for batch {batch}, time {time}")


# ---- edge cases ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", CELLS)
def test_default_initial_states_are_zeros(rng, cell):
    inputs, kernels, recurrent, biases, _ = random_args(rng, 3, 4, 5, 6, 2, cell=cell)
    zeros = zero_states(cell, 3, 6, 2, tf.float64)
    a, fa = fused_fn(cell)(inputs, kernels, recurrent, biases)
    b, fb = fused_fn(cell)(inputs, kernels, recurrent, biases, zeros)
    np.testing.assert_array_equal(a, b)
    assert len(fa) == len(fb) == 2
    for x, y in zip(tf.nest.flatten(fa), tf.nest.flatten(fb)):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("cell", CELLS)
def test_empty_batch_and_empty_sequence(rng, cell):
    fn = fused_fn(cell)
    inputs, kernels, recurrent, biases, initial = random_args(rng, 3, 0, 4, 5, 2, cell=cell)
    outputs, finals = fn(inputs, kernels, recurrent, biases, initial)
    assert outputs.shape == (3, 0, 5)
    for f, i in zip(tf.nest.flatten(finals), tf.nest.flatten(initial)):
        np.testing.assert_array_equal(f, i)
    flat = flatten_args(inputs, kernels, recurrent, biases, initial)
    # A different weight for every final state tensor (the LSTM's h and c included): each gradient must be its own.
    state_weights = [2.0, 1.0, 3.0, 4.0][:2 * layout(cell).states]
    with tf.GradientTape() as tape:
        tape.watch(flat)
        outputs, finals = fn(inputs, kernels, recurrent, biases, initial)
        loss = sum(w * tf.reduce_sum(s) for w, s in zip(state_weights, tf.nest.flatten(finals)))
    grads = tape.gradient(loss, flat)
    for w, g in zip(state_weights, grads[7:]):
        np.testing.assert_array_equal(g, np.full((3, 5), w))

    inputs, kernels, recurrent, biases, _ = random_args(rng, 0, 4, 4, 5, 2, cell=cell)
    outputs, finals = fn(inputs, kernels, recurrent, biases)
    assert outputs.shape == (0, 4, 5) and all(f.shape == (0, 5) for f in tf.nest.flatten(finals))
    assert len(tf.nest.flatten(finals)) == 2 * layout(cell).states
    with tf.GradientTape() as tape:
        tape.watch(kernels)
        loss = tf.reduce_sum(fn(inputs, kernels, recurrent, biases)[0])
    for g in tape.gradient(loss, kernels):
        np.testing.assert_array_equal(g, np.zeros_like(g))


@pytest.mark.xfail(FALLBACK, strict=True, reason=(
    "deeprnn_fast/reference.py: with T = 0 the weights never enter its graph, so their gradients are None "
    "(unconnected), not the zeros of the fused op"))
@pytest.mark.parametrize("cell", CELLS)
def test_weight_gradients_of_an_empty_sequence_are_zeros(rng, cell):
    inputs, kernels, recurrent, biases, initial = random_args(rng, 3, 0, 4, 5, 2, cell=cell)
    flat = flatten_args(inputs, kernels, recurrent, biases, initial)
    with tf.GradientTape() as tape:
        tape.watch(flat)
        outputs, finals = fused_fn(cell)(inputs, kernels, recurrent, biases, initial)
        loss = sum((i + 1.0) * tf.reduce_sum(s) for i, s in enumerate(tf.nest.flatten(finals)))
    for name, g in zip(arg_names(cell, 2)[1:7], tape.gradient(loss, flat)[1:7]):
        assert g is not None, f"no gradient for {name}"
        np.testing.assert_array_equal(g, np.zeros_like(g), err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
def test_nan_in_nan_out(rng, cell):
    inputs, kernels, recurrent, biases, initial = random_args(rng, 4, 5, 3, 6, 2, dtype=tf.float32, cell=cell)
    poisoned = inputs.numpy()
    poisoned[1, 2, 0] = np.nan
    outputs, finals = fused_fn(cell)(tf.constant(poisoned), kernels, recurrent, biases, initial)
    outputs = outputs.numpy()
    # The NaN reaches batch row 1 from step 2 on, and nothing else.
    assert np.isnan(outputs[1, 2:]).all()
    assert np.isfinite(outputs[1, :2]).all() and np.isfinite(np.delete(outputs, 1, axis=0)).all()
    for state in tf.nest.flatten(finals[1]):
        assert np.isnan(state.numpy()[1]).all()
        assert np.isfinite(np.delete(state.numpy(), 1, axis=0)).all()


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_saturated_gates_stay_finite_and_exact(rng, cell):
    # Biases of +-100 and +-1000 push every gate far beyond the range of exp: sigmoid and tanh must saturate to
    # 0 / 1 / -1 and the gradients vanish, never overflow to inf or NaN. (The GRU's two bias rows are equal so that
    # the candidate's x and h terms never cancel, which would leave an ill-conditioned sum to compare.)
    inputs, kernels, recurrent, biases, initial = random_args(rng, 7, 3, 4, 20, 2, dtype=tf.float32, cell=cell)
    rows = layout(cell).bias_rows
    columns = layout(cell).gates * 20
    draw = lambda: rng.choice([-1000.0, -100.0, 100.0, 1000.0], columns)  # noqa: E731
    biases = [tf.constant(draw() if rows is None else np.tile(draw(), (rows, 1)), tf.float32) for _ in range(2)]
    args = (inputs, kernels, recurrent, biases, initial)
    out, final, grads = value_and_grads(fused_fn(cell), args)
    ref_out, _, ref_grads = value_and_grads(reference_fn(cell), args)
    assert np.isfinite(out.numpy()).all() and all(np.isfinite(g.numpy()).all() for g in grads)
    scaled_close(out, ref_out, tf.float32, "saturated outputs")
    for name, a, e in zip(arg_names(cell, 2), grads, ref_grads):
        scaled_close(a, e, tf.float32, f"saturated gradient of {name}")


@pytest.mark.parametrize("batch", [37, 160, 400], ids=["batched", "streamed", "batch-blocked"])
@pytest.mark.parametrize("cell", CELLS)
def test_results_are_bitwise_reproducible(rng, cell, batch):
    args = random_args(rng, batch, 11, 19, 45, 3, dtype=tf.float32, cell=cell)
    first = value_and_grads(fused_fn(cell), args)
    for _ in range(3):
        again = value_and_grads(fused_fn(cell), args)
        for a, e in zip(tf.nest.flatten(again), tf.nest.flatten(first)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


@pytest.mark.parametrize("cell", CELLS)
def test_concurrent_calls_from_python_threads(rng, cell):
    cases = [random_args(rng, 5 + i, 6, 7, 11 + i, 2, dtype=tf.float32, cell=cell) for i in range(6)]
    expected = [reference_fn(cell)(*c)[0].numpy() for c in cases]
    results, errors = [None] * len(cases), []

    def work(i):
        try:
            for _ in range(5):
                results[i] = fused_fn(cell)(*cases[i])[0].numpy()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for r, e in zip(results, expected):
        scaled_close(r, e, tf.float32, "outputs of a concurrent call")


# ---- token inputs --------------------------------------------------------------------------------------------------

TOKEN_SHAPES = [(3, 5, 7, 6, 2), (260, 3, 11, 8, 2)]  # (B, T, vocabulary, H, L): one small, one batch-blocked


def token_args(rng, cell, batch, time, vocabulary, units, layers, dtype):
    """Random token ids [B, T] that use every row of kernels[0], their one-hot inputs, and the other arguments."""
    _, kernels, recurrent, biases, initial = random_args(rng, batch, time, vocabulary, units, layers, dtype=dtype,
                                                         cell=cell)
    ids = rng.integers(0, vocabulary, (batch, time))
    ids.flat[:vocabulary] = np.arange(vocabulary)
    tokens = tf.constant(ids, tf.int32)
    return tokens, tf.one_hot(tokens, vocabulary, dtype=dtype), kernels, recurrent, biases, initial


@pytest.mark.parametrize("shape", TOKEN_SHAPES, ids=["small", "batch-blocked"])
@pytest.mark.parametrize("mode", ["eager", "tf.function"])
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("cell", CELLS)
def test_token_inputs_are_one_hot_inputs(rng, cell, dtype, mode, shape):
    # Integer ids [B, T] compute what their one-hot inputs of kernels[0]'s rows compute, forward and every weight's
    # and initial state's gradient (that the ids get none is test_input_gradients_nobody_asks_for_are_skipped's).
    tokens, one_hot, kernels, recurrent, biases, initial = token_args(rng, cell, *shape, dtype)
    weights = flatten_args(one_hot, kernels, recurrent, biases, initial)[1:]
    fn = fused_fn(cell)

    def run(inputs, *weights):
        args = unflatten_args(cell, [inputs] + list(weights), shape[4])
        with tf.GradientTape() as tape:
            tape.watch(weights)
            outputs, finals = fn(*args)
            loss = loss_of(outputs, finals)
        # The reference's gradient of a gathered kernel is a tf.IndexedSlices: the same values, sparsely.
        return outputs, finals, [g if g is None else tf.convert_to_tensor(g) for g in tape.gradient(loss, weights)]

    if mode == "tf.function":
        run = tf.function(run)
    out, final, grads = run(tokens, *weights)
    ref_out, ref_final, ref_grads = run(one_hot, *weights)
    assert out.shape == (shape[0], shape[1], shape[3])
    scaled_close(out, ref_out, dtype, "outputs")
    states_close(final, ref_final, dtype)
    for name, a, e in zip(arg_names(cell, shape[4])[1:], grads, ref_grads):
        assert a is not None, f"no gradient for {name}"
        scaled_close(a, e, dtype, f"gradient of {name}")


def test_int64_token_ids_are_int32_ones(rng):
    tokens, _, kernels, recurrent, biases, initial = token_args(rng, "lstm", *TOKEN_SHAPES[0], tf.float32)
    expected = fused_fn("lstm")(tokens, kernels, recurrent, biases, initial)
    got = fused_fn("lstm")(tf.cast(tokens, tf.int64), kernels, recurrent, biases, initial)
    for a, e in zip(tf.nest.flatten(got), tf.nest.flatten(expected)):
        np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("bad_id", [7, -1])
@pytest.mark.parametrize("mode", ["eager", "tf.function"])
@pytest.mark.parametrize("cell", CELLS)
def test_out_of_range_token_ids_raise_naming_tokens(rng, cell, mode, bad_id):
    tokens, _, kernels, recurrent, biases, initial = token_args(rng, cell, *TOKEN_SHAPES[0], tf.float32)
    ids = tokens.numpy()
    ids[2, 3] = bad_id
    call = lambda t: fused_fn(cell)(t, kernels, recurrent, biases, initial)[0]  # noqa: E731
    if mode == "tf.function":
        call = tf.function(call)
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"tokens must lie in \[0, 7\).*got {bad_id}"):
        call(tf.constant(ids))


@pytest.mark.parametrize("cell", CELLS)
def test_the_reference_names_tokens_for_out_of_range_ids(rng, cell):
    # The fallback of every wrapper must keep the wrappers' promise (ops.py: out-of-range ids name `tokens`).
    tokens, _, kernels, recurrent, biases, initial = token_args(rng, cell, *TOKEN_SHAPES[0], tf.float32)
    ids = tokens.numpy()
    ids[0, 1] = 7
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"tokens"):
        reference_fn(cell)(tf.constant(ids), kernels, recurrent, biases, initial)


# ---- the compiled op itself ----------------------------------------------------------------------------------------

GRAD_OPS = {"tanh": "deeprnn_fast_stacked_rnn_grad", "relu": "deeprnn_fast_stacked_rnn_grad",
            "gru": "deeprnn_fast_stacked_gru_grad", "lstm": "deeprnn_fast_stacked_lstm_grad"}


@pytest.mark.parametrize("mode", ["eager", "tf.function"])
@pytest.mark.parametrize("cell", CELLS)
def test_input_gradients_nobody_asks_for_are_skipped(compiled_op, monkeypatch, rng, cell, mode):
    # The tape tells the gradient which inputs need none (a constant, token ids): the grad op then runs with
    # compute_grad_inputs=False and returns an empty [B, T, 0] grad_inputs; the weights' gradients are unchanged.
    B, T, V, H, L = 5, 4, 7, 6, 2
    tokens, inputs, kernels, recurrent, biases, initial = token_args(rng, cell, B, T, V, H, L, tf.float64)
    inputs = inputs + tf.constant(rng.normal(0.0, 0.3, inputs.shape), tf.float64)  # not one-hot: dX is not trivial
    weights = flatten_args(inputs, kernels, recurrent, biases, initial)[1:]
    original, calls = getattr(compiled_op, GRAD_OPS[cell]), []

    def spy(*args, **attrs):
        results = original(*args, **attrs)
        calls.append((attrs["compute_grad_inputs"], results[0].shape.as_list()))
        return results

    monkeypatch.setattr(compiled_op, GRAD_OPS[cell], spy)

    def weight_grads(x, watch_x):
        with tf.GradientTape() as tape:
            tape.watch(weights)
            if watch_x:
                tape.watch(x)
            outputs, finals = fused_fn(cell)(*unflatten_args(cell, [x] + weights, L))
            loss = loss_of(outputs, finals)
        return tape.gradient(loss, weights)

    run = weight_grads if mode == "eager" else tf.function(weight_grads)
    asked = run(inputs, True)
    unasked = run(inputs, False)
    from_tokens = run(tokens, False)
    assert calls == [(True, [B, T, V]), (False, [B, T, 0]), (False, [B, T, 0])]
    for name, a, e in zip(arg_names(cell, L)[1:], unasked, asked):
        np.testing.assert_array_equal(a, e, err_msg=f"gradient of {name} without dX")
    for name, a, e in zip(arg_names(cell, L)[1:], from_tokens, asked):
        assert a is not None and a.shape == e.shape, name


def test_build_info_describes_the_library(compiled_op):
    info = deeprnn_fast.build_info()
    assert info["built"] and info["loadable"] and info["error"] is None
    assert info["tensorflow_version"] == tf.__version__
    assert isinstance(info["cuda"], bool)
    assert all(a.startswith(("sm_", "compute_")) for a in info["cuda_archs"])
    assert bool(info["cuda_archs"]) == info["cuda"]


@pytest.mark.parametrize("op_name", sorted({n + g for n in OP_NAMES.values() for g in ("", "Grad")}))
def test_kernels_are_registered_for_float_and_double(compiled_op, op_name):
    from tensorflow.python.framework import kernels as registered_kernels
    found = {(k.device_type, k.constraint[0].allowed_values.list.type[0])
             for k in registered_kernels.get_registered_kernels_for_op(op_name).kernel}
    assert {("CPU", 1), ("CPU", 2)} <= found, f"{op_name}: {found}"


@pytest.mark.parametrize("cell", CELLS)
def test_falls_back_to_the_reference_with_one_warning(rng, monkeypatch, cell):
    def unavailable():
        raise _library.LibraryUnavailable("simulated: the library is not built")

    monkeypatch.setattr(_library, "library", unavailable)
    monkeypatch.setitem(_library._state, "warned", False)
    args = random_args(rng, 2, 3, 4, 5, 2, cell=cell)
    with pytest.warns(RuntimeWarning, match="simulated") as record:
        out, final = fused_fn(cell)(*args)
        fused_fn(cell)(*args)
    assert sum("simulated" in str(w.message) for w in record) == 1
    ref_out, ref_final = reference_fn(cell)(*args)
    np.testing.assert_array_equal(out, ref_out)
    for a, e in zip(tf.nest.flatten(final), tf.nest.flatten(ref_final)):
        np.testing.assert_array_equal(a, e)
