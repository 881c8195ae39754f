"""The fused GRU op against the plain-TensorFlow reference, Keras' GRUCell and TensorFlow's numerical Jacobian; bad
input; empty, NaN and reproducibility cases."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import deeprnn_fast
from deeprnn_fast import _library, reference
from deeprnn_fast.ops import stacked_gru
from op_testing import flatten_args, loss_of, scaled_close

# (B, T, D, H, L): ones everywhere, H below / across / not a multiple of the 16- and 8-wide column tiles, B across
# the 6-row register tile, D != H, deep stacks, a width where the weight-gradient products pack their operands, and
# batches of 128 and more, where the weight gradients are streamed through the wavefront (T = 1 included), and of
# 256 and more, where blocks of rows run the wavefront on their own (here four blocks, not multiples of 6 rows).
SHAPES = [
    (1, 1, 1, 1, 1),
    (3, 5, 4, 7, 3),
    (1, 7, 3, 17, 2),
    (13, 1, 20, 33, 4),
    (6, 4, 5, 24, 8),
    (5, 3, 150, 140, 2),
    (130, 4, 5, 9, 3),
    (128, 1, 3, 4, 2),
    (301, 3, 5, 9, 3),
]



pytestmark = pytest.mark.usefixtures("require_library")


def random_gru_args(rng, batch, time, features, units, layers, dtype=tf.float64, scale=0.6):
    """Inputs, weights [in, 3H] / [H, 3H] / [2, 3H] and initial states, drawn afresh at a scale that keeps the gates
    out of saturation; biases and initial states non-zero so that a lost term shows."""

    def draw(shape, std):
        return tf.constant(rng.normal(0.0, std, shape), dtype)

    inputs = draw((batch, time, features), 1.0)
    kernels = [draw((features if l == 0 else units, 3 * units), scale / np.sqrt(features if l == 0 else units))
               for l in range(layers)]
    recurrent = [draw((units, 3 * units), scale / np.sqrt(units)) for _ in range(layers)]
    biases = [draw((2, 3 * units), 0.3) for _ in range(layers)]
    initial = [draw((batch, units), 0.5) for _ in range(layers)]
    return inputs, kernels, recurrent, biases, initial


def value_and_grads(fn, args):
    flat = flatten_args(*args)
    with tf.GradientTape() as tape:
        tape.watch(flat)
        outputs, final_states = fn(*args)
        loss = loss_of(outputs, final_states)
    return outputs, final_states, tape.gradient(loss, flat)



@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}-T{}-D{}-H{}-L{}".format(*s))
@pytest.mark.parametrize("dtype", [tf.float64, tf.float32], ids=lambda d: d.name)
def test_forward_and_gradient_match_reference(rng, shape, dtype):
    args = random_gru_args(rng, *shape, dtype=dtype)
    out, final, grads = value_and_grads(stacked_gru, args)
    ref_out, ref_final, ref_grads = value_and_grads(reference.stacked_gru, args)
    scaled_close(out, ref_out, dtype, "outputs")
    assert len(final) == shape[4]
    for l, (a, e) in enumerate(zip(final, ref_final)):
        scaled_close(a, e, dtype, f"final_states[{l}]")
    names = ["inputs"] + [f"{n}[{l}]" for n in ("kernels", "recurrent_kernels", "biases", "initial_states")
                          for l in range(shape[4])]
    for name, a, e in zip(names, grads, ref_grads):
        assert a is not None, f"no gradient for {name}"
        scaled_close(a, e, dtype, f"gradient of {name}")


@pytest.mark.parametrize("dtype", [tf.float64, tf.float32], ids=lambda d: d.name)
def test_reference_and_op_match_keras_gru_cells(rng, dtype):
    # The reference is only a reference if it is Keras' GRUCell (reset_after=True): same weights, same results.
    inputs, kernels, recurrent, biases, initial = random_gru_args(rng, 4, 5, 3, 6, 2, dtype=dtype)
    cells = [keras.layers.GRUCell(6, dtype=dtype.name) for _ in range(2)]
    rnn = keras.layers.RNN(keras.layers.StackedRNNCells(cells, dtype=dtype.name), return_sequences=True,
                           return_state=True, dtype=dtype.name)
    rnn.build(inputs.shape)
    rnn.set_weights([w.numpy() for l in range(2) for w in (kernels[l], recurrent[l], biases[l])])
    keras_out, *keras_states = rnn(inputs, initial_state=initial)
    for fn in (reference.stacked_gru, stacked_gru):
        out, final = fn(inputs, kernels, recurrent, biases, initial)
        scaled_close(out, keras_out, dtype, f"{fn.__module__} outputs")
        for l in range(2):
            scaled_close(final[l], keras.tree.flatten(keras_states)[l], dtype, f"{fn.__module__} final_states[{l}]")


def test_inside_tf_function_matches_eager(rng):
    args = random_gru_args(rng, 4, 6, 5, 9, 3, dtype=tf.float32)
    eager = value_and_grads(stacked_gru, args)
    graph = tf.function(lambda *a: value_and_grads(stacked_gru, a))(*args)
    for a, e in zip(tf.nest.flatten(graph), tf.nest.flatten(eager)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


def test_tf_function_with_unknown_batch_and_time(rng):
    _, kernels, recurrent, biases, _ = random_gru_args(rng, 3, 4, 5, 6, 2, dtype=tf.float32)
    weights = kernels + recurrent + biases
    fn = tf.function(lambda x, *w: stacked_gru(x, w[0:2], w[2:4], w[4:6])[0],
                     input_signature=[tf.TensorSpec([None, None, 5], tf.float32)]
                     + [tf.TensorSpec(t.shape, tf.float32) for t in weights])
    for batch, time in [(3, 4), (1, 9)]:
        x = tf.constant(rng.normal(size=(batch, time, 5)), tf.float32)
        expected, _ = reference.stacked_gru(x, kernels, recurrent, biases)
        scaled_close(fn(x, *weights), expected, tf.float32, f"outputs for batch {batch}, time {time}")


@pytest.mark.parametrize("batch", [2, 128, 256], ids=["batched", "streamed", "batch-blocked"])
def test_gradient_matches_numerical_jacobian(rng, batch):
    # compute_gradient checks each argument's Jacobian against finite differences; the fused gradient op must
    # agree to float64 precision for every argument, on every schedule of the weight gradients (with 128 rows and
    # more, for the weights only: the Jacobian of the inputs would take thousands of evaluations).
    inputs, kernels, recurrent, biases, initial = random_gru_args(rng, batch, 3, 3, 4, 2, dtype=tf.float64)
    everything = flatten_args(inputs, kernels, recurrent, biases, initial)
    first, last = (0, len(everything)) if batch == 2 else (1, 7)

    def f(*xs):
        args = everything[:first] + list(xs) + everything[last:]
        outputs, finals = stacked_gru(args[0], args[1:3], args[3:5], args[5:7], args[7:9])
        return loss_of(outputs, finals)

    theoretical, numerical = tf.test.compute_gradient(f, everything[first:last], delta=1e-6)
    for i, (t, n) in enumerate(zip(theoretical, numerical)):
        np.testing.assert_allclose(t, n, rtol=1e-6, atol=1e-7, err_msg=f"argument {first + i}")


def test_default_initial_states_are_zeros(rng):
    inputs, kernels, recurrent, biases, _ = random_gru_args(rng, 3, 4, 5, 6, 2)
    zeros = [tf.zeros([3, 6], tf.float64)] * 2
    a, fa = stacked_gru(inputs, kernels, recurrent, biases)
    b, fb = stacked_gru(inputs, kernels, recurrent, biases, zeros)
    np.testing.assert_array_equal(a, b)
    for x, y in zip(fa, fb):
        np.testing.assert_array_equal(x, y)


def test_one_step_is_wired_as_the_equations_say(rng):
    # Keras' GRUCell by hand for two layers and one step, gate order [z, r, h], input bias row 0, recurrent row 1.
    inputs, kernels, recurrent, biases, initial = random_gru_args(rng, 2, 1, 3, 4, 2)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731

    def cell(x, h, w, u, b):
        gx, gh = x @ w + b[0], h @ u + b[1]
        z, r = sigmoid(gx[:, :4] + gh[:, :4]), sigmoid(gx[:, 4:8] + gh[:, 4:8])
        n = np.tanh(gx[:, 8:] + r * gh[:, 8:])
        return z * h + (1 - z) * n

    h0 = cell(inputs.numpy()[:, 0], initial[0].numpy(), kernels[0].numpy(), recurrent[0].numpy(), biases[0].numpy())
    h1 = cell(h0, initial[1].numpy(), kernels[1].numpy(), recurrent[1].numpy(), biases[1].numpy())
    outputs, finals = stacked_gru(inputs, kernels, recurrent, biases, initial)
    np.testing.assert_allclose(outputs.numpy()[:, 0], h1, rtol=1e-12)
    np.testing.assert_allclose(finals[0], h0, rtol=1e-12)


def test_empty_batch_and_empty_sequence(rng):
    inputs, kernels, recurrent, biases, initial = random_gru_args(rng, 3, 0, 4, 5, 2)
    outputs, finals = stacked_gru(inputs, kernels, recurrent, biases, initial)
    assert outputs.shape == (3, 0, 5)
    for f, i in zip(finals, initial):
        np.testing.assert_array_equal(f, i)
    flat = flatten_args(inputs, kernels, recurrent, biases, initial)
    with tf.GradientTape() as tape:
        tape.watch(flat)
        outputs, finals = stacked_gru(inputs, kernels, recurrent, biases, initial)
        loss = tf.reduce_sum(finals[0] * 2.0) + tf.reduce_sum(finals[1])
    grads = tape.gradient(loss, flat)
    np.testing.assert_array_equal(grads[-2], np.full((3, 5), 2.0))
    np.testing.assert_array_equal(grads[-1], np.ones((3, 5)))
    for g in grads[1:7]:
        np.testing.assert_array_equal(g, np.zeros_like(g))

    inputs, kernels, recurrent, biases, _ = random_gru_args(rng, 0, 4, 4, 5, 2)
    outputs, finals = stacked_gru(inputs, kernels, recurrent, biases)
    assert outputs.shape == (0, 4, 5) and all(f.shape == (0, 5) for f in finals)
    with tf.GradientTape() as tape:
        tape.watch(kernels)
        loss = tf.reduce_sum(stacked_gru(inputs, kernels, recurrent, biases)[0])
    for g in tape.gradient(loss, kernels):
        np.testing.assert_array_equal(g, np.zeros_like(g))


def test_nan_in_nan_out(rng):
    inputs, kernels, recurrent, biases, initial = random_gru_args(rng, 4, 5, 3, 6, 2, dtype=tf.float32)
    poisoned = inputs.numpy()
    poisoned[1, 2, 0] = np.nan
    outputs, finals = stacked_gru(tf.constant(poisoned), kernels, recurrent, biases, initial)
    outputs = outputs.numpy()
    # The NaN reaches batch row 1 from step 2 on, and nothing else.
    assert np.isnan(outputs[1, 2:]).all()
    assert np.isfinite(outputs[1, :2]).all() and np.isfinite(np.delete(outputs, 1, axis=0)).all()
    assert np.isnan(finals[1].numpy()[1]).all()


def test_saturated_gates_stay_finite_and_exact(rng):
    # Biases of +-100 and +-1000 push every gate far beyond the range of exp: sigmoid and tanh must saturate to
    # 0 / 1 / -1 and the gradients vanish, never overflow to inf or NaN. (Both bias rows are equal so that the
    # candidate's x and h terms never cancel, which would leave an ill-conditioned sum to compare.)
    inputs, kernels, recurrent, biases, initial = random_gru_args(rng, 7, 3, 4, 20, 2, dtype=tf.float32)
    biases = [tf.constant(np.tile(rng.choice([-1000.0, -100.0, 100.0, 1000.0], (1, 60)), (2, 1)), tf.float32)
              for _ in range(2)]
    args = (inputs, kernels, recurrent, biases, initial)
    out, final, grads = value_and_grads(stacked_gru, args)
    ref_out, _, ref_grads = value_and_grads(reference.stacked_gru, args)
    assert np.isfinite(out.numpy()).all() and all(np.isfinite(g.numpy()).all() for g in grads)
    scaled_close(out, ref_out, tf.float32, "saturated outputs")
    for i, (a, e) in enumerate(zip(grads, ref_grads)):
        scaled_close(a, e, tf.float32, f"saturated gradient {i}")


@pytest.mark.parametrize("batch", [37, 160, 400], ids=["batched", "streamed", "batch-blocked"])
def test_results_are_bitwise_reproducible(rng, batch):
    args = random_gru_args(rng, batch, 11, 19, 45, 3, dtype=tf.float32)
    first = value_and_grads(stacked_gru, args)
    for _ in range(2):
        again = value_and_grads(stacked_gru, args)
        for a, e in zip(tf.nest.flatten(again), tf.nest.flatten(first)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


def test_kernels_are_registered_for_float_and_double():
    from tensorflow.python.framework import kernels as registered_kernels
    _library.library()
    for op_name in ("DeeprnnFast>StackedGru", "DeeprnnFast>StackedGruGrad"):
        found = {(k.device_type, k.constraint[0].allowed_values.list.type[0])
                 for k in registered_kernels.get_registered_kernels_for_op(op_name).kernel}
        assert {("CPU", 1), ("CPU", 2)} <= found, f"{op_name}: {found}"


def test_falls_back_to_the_reference_with_one_warning(rng, monkeypatch):
    def unavailable():
        raise _library.LibraryUnavailable("simulated: the library is not built")

    monkeypatch.setattr(_library, "library", unavailable)
    monkeypatch.setitem(_library._state, "warned", False)
    args = random_gru_args(rng, 2, 3, 4, 5, 2)
    with pytest.warns(RuntimeWarning, match="simulated") as record:
        out, _ = stacked_gru(*args)
        stacked_gru(*args)
    assert sum("simulated" in str(w.message) for w in record) == 1
    np.testing.assert_array_equal(out, reference.stacked_gru(*args)[0])


# ---- bad input -----------------------------------------------------------------------------------------------------

IMPLEMENTATIONS = [stacked_gru, reference.stacked_gru]


@pytest.fixture
def args():
    return random_gru_args(np.random.default_rng(7), 3, 4, 5, 6, 2, dtype=tf.float32)


def call(fn, args, **changes):
    inputs, kernels, recurrent, biases, initial = args
    values = dict(inputs=inputs, kernels=kernels, recurrent_kernels=recurrent, biases=biases, initial_states=initial)
    values.update(changes)
    return fn(**values)


@pytest.mark.parametrize("fn", IMPLEMENTATIONS, ids=["fused", "reference"])
@pytest.mark.parametrize("change, message", [
    (lambda a: {"inputs": a[0][0]}, r"inputs must have shape \[batch, time, features\] \(rank 3\)"),
    (lambda a: {"kernels": [a[1][0][:4]] + a[1][1:]}, r"kernels\[0\] must have shape \[5, 18\]"),
    (lambda a: {"kernels": [a[1][0][:, :17]] + a[1][1:]}, r"kernels\[0\] must have .*\[features, 3 \* units\]"),
    (lambda a: {"kernels": a[1][:1] + [a[1][1][:, :15]]}, r"kernels\[1\] must have shape \[6, 18\]"),
    (lambda a: {"recurrent_kernels": a[2][:1] + [a[2][1][:5]]}, r"recurrent_kernels\[1\] must have shape \[6, 18\]"),
    (lambda a: {"biases": [a[3][0][0], a[3][1]]}, r"biases\[0\] must have shape \[2, 18\]"),
    (lambda a: {"biases": a[3][:1]}, r"biases must hold one tensor per layer \(2"),
    (lambda a: {"initial_states": a[4][:1]}, r"initial_states must hold one \[batch, 6\] tensor per layer \(2\)"),
    (lambda a: {"initial_states": [a[4][0][:2], a[4][1]]}, r"initial_states\[0\] must have shape \[3, 6\]"),
    (lambda a: {"inputs": tf.cast(a[0], tf.int32)}, r"inputs must be float32 or float64; got int32"),
    (lambda a: {"biases": [tf.cast(a[3][0], tf.float64), a[3][1]]},
     r"biases\[0\] must have the dtype of inputs \(float32\); got float64"),
    (lambda a: {"kernels": a[1][0]}, r"kernels must be a list of tensors"),
    (lambda a: {"kernels": []}, r"kernels must hold at least one tensor"),
])
def test_bad_arguments_raise_value_error(fn, args, change, message):
    with pytest.raises(ValueError, match=message):
        call(fn, args, **change(args))


def test_batch_mismatch_at_run_time_is_caught_by_the_kernel(args):
    inputs, kernels, recurrent, biases, initial = args
    fn = tf.function(lambda x, h: stacked_gru(x, kernels, recurrent, biases, [h, h])[0],
                     input_signature=[tf.TensorSpec([None, 4, 5]), tf.TensorSpec([None, 6])])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"initial_states must have shape \[2, 3, 6\]"):
        fn(inputs, initial[0][:2])


RAW_GARBAGE = [
    # (description, inputs, kernels, recurrent, biases, initial, expected message)
    ("inputs of rank 2", np.ones((3, 5)), [np.ones((5, 6))], [np.ones((2, 6))], [np.ones((2, 6))],
     np.ones((1, 3, 2)), r"rank"),
    ("kernel columns not 3 * units", np.ones((3, 4, 5)), [np.ones((5, 7))], [np.ones((2, 6))], [np.ones((2, 6))],
     np.ones((1, 3, 2)), r"kernels\[0\]|divisible"),
    ("recurrent kernel of the wrong width", np.ones((3, 4, 5)), [np.ones((5, 6))], [np.ones((2, 9))],
     [np.ones((2, 6))], np.ones((1, 3, 2)), r"recurrent_kernels\[0\]|Dimensions must be equal"),
    ("bias of one row", np.ones((3, 4, 5)), [np.ones((5, 6))], [np.ones((2, 6))], [np.ones((1, 6))],
     np.ones((1, 3, 2)), r"biases\[0\]|must be 2"),
    ("initial states for the wrong layer count", np.ones((3, 4, 5)), [np.ones((5, 6))], [np.ones((2, 6))],
     [np.ones((2, 6))], np.ones((2, 3, 2)), r"initial_states|must be 1"),
    ("zero units", np.ones((3, 4, 5)), [np.ones((5, 0))], [np.ones((0, 0))], [np.ones((2, 0))], np.ones((1, 3, 0)),
     r"at least 1"),
]


@pytest.mark.parametrize("case", RAW_GARBAGE, ids=[c[0] for c in RAW_GARBAGE])
@pytest.mark.parametrize("mode", ["eager", "graph"])
def test_raw_op_rejects_garbage(case, mode):
    _, inputs, kernels, recurrent, biases, initial, message = case
    op = _library.library().deeprnn_fast_stacked_gru
    as_f32 = lambda x: tf.constant(x, tf.float32)  # noqa: E731
    run = lambda: op(as_f32(inputs), [as_f32(k) for k in kernels], [as_f32(r) for r in recurrent],  # noqa: E731
                     [as_f32(b) for b in biases], as_f32(initial), tokens=[], mask=[], input_dropout=[], recurrent_dropout=[], between_dropout=[])
    if mode == "graph":
        run = tf.function(run)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=message):
        run()


def test_raw_gradient_op_rejects_mismatched_gates():
    grad = _library.library().deeprnn_fast_stacked_gru_grad
    ones = lambda *s: tf.ones(s, tf.float32)  # noqa: E731
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"gates must have shape \[1, 4, 3, 24\]"):
        grad(ones(3, 4, 5), [ones(5, 18)], [ones(6, 18)], ones(1, 3, 6), ones(1, 4, 3, 6), ones(1, 4, 3, 18),
             ones(3, 4, 6), ones(1, 3, 6), tokens=[], mask=[], input_dropout=[], recurrent_dropout=[], between_dropout=[])
