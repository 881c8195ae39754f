"""The fused op against the plain-TensorFlow reference and TensorFlow's numerical Jacobian."""
import threading

import numpy as np
import pytest
import tensorflow as tf

import deeprnn_fast
from deeprnn_fast import reference
from op_testing import flatten_args, loss_of, random_args, scaled_close, value_and_grads

# (B, T, D, H, L): ones everywhere, H below / across / not a multiple of the 16- and 8-wide column tiles, B across
# the 6-row register tile, D != H, deep stacks, a width where the weight-gradient product packs its operands, and a
# large batch with small weights, where the weight gradients are accumulated while the reverse wavefront runs, and a
# larger one, where blocks of rows run the wavefront on their own (here four, not multiples of 6 rows).
SHAPES = [
    (1, 1, 1, 1, 1),
    (3, 5, 4, 7, 3),
    (1, 7, 3, 17, 2),
    (13, 1, 20, 33, 4),
    (7, 9, 16, 16, 1),
    (6, 4, 5, 24, 8),
    (5, 3, 150, 140, 2),
    (130, 4, 5, 9, 3),
    (301, 3, 5, 9, 3),
]



pytestmark = pytest.mark.usefixtures("require_library")



@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}-T{}-D{}-H{}-L{}".format(*s))
@pytest.mark.parametrize("dtype", [tf.float64, tf.float32], ids=lambda d: d.name)
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_forward_and_gradient_match_reference(rng, shape, dtype, activation):
    args = random_args(rng, *shape, dtype=dtype)
    out, final, grads = value_and_grads(deeprnn_fast.stacked_rnn, args, activation)
    ref_out, ref_final, ref_grads = value_and_grads(reference.stacked_rnn, args, activation)
    scaled_close(out, ref_out, dtype, "outputs")
    assert len(final) == shape[4]
    for l, (a, e) in enumerate(zip(final, ref_final)):
        scaled_close(a, e, dtype, f"final_states[{l}]")
    names = ["inputs"] + [f"{n}[{l}]" for n in ("kernels", "recurrent_kernels", "biases", "initial_states")
                          for l in range(shape[4])]
    for name, a, e in zip(names, grads, ref_grads):
        assert a is not None, f"no gradient for {name}"
        scaled_close(a, e, dtype, f"gradient of {name}")


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_inside_tf_function_matches_eager(rng, activation):
    args = random_args(rng, 4, 6, 5, 9, 3, dtype=tf.float32)
    eager = value_and_grads(deeprnn_fast.stacked_rnn, args, activation)
    graph = tf.function(lambda *a: value_and_grads(deeprnn_fast.stacked_rnn, a, activation))(*args)
    for a, e in zip(tf.nest.flatten(graph), tf.nest.flatten(eager)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


def test_tf_function_with_unknown_batch_and_time(rng):
    args = random_args(rng, 3, 4, 5, 6, 2, dtype=tf.float32)
    fn = tf.function(lambda x, *w: deeprnn_fast.stacked_rnn(x, w[0:2], w[2:4], w[4:6])[0],
                     input_signature=[tf.TensorSpec([None, None, 5], tf.float32)]
                     + [tf.TensorSpec(t.shape, tf.float32) for t in args[1] + args[2] + args[3]])
    weights = list(args[1]) + list(args[2]) + list(args[3])
    for batch, time in [(3, 4), (1, 9)]:
        x = tf.constant(rng.normal(size=(batch, time, 5)), tf.float32)
        expected, _ = reference.stacked_rnn(x, args[1], args[2], args[3])
        scaled_close(fn(x, *weights), expected, tf.float32, f"outputs for batch {batch}, time {time}")


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("batch", [2, 256], ids=["wavefront", "batch-blocked"])
def test_gradient_matches_numerical_jacobian(rng, activation, batch):
    # compute_gradient checks each argument's Jacobian against finite differences; the fused gradient op must
    # agree to float64 precision, for every argument including the initial states (with 256 rows, for the
    # weights only: the Jacobian of the inputs would take thousands of evaluations).
    inputs, kernels, recurrent, biases, initial = random_args(rng, batch, 3, 3, 4, 2, dtype=tf.float64)
    if activation == "relu":  # keep pre-activations away from relu's kink, where finite differences are wrong
        biases = [b + 0.5 for b in biases]
    flat = flatten_args(inputs, kernels, recurrent, biases, initial)
    first, last = (0, len(flat)) if batch == 2 else (1, 7)

    def f(*xs):
        args = flat[:first] + list(xs) + flat[last:]
        outputs, finals = deeprnn_fast.stacked_rnn(args[0], list(args[1:3]), list(args[3:5]), list(args[5:7]),
                                                   list(args[7:9]), activation=activation)
        return loss_of(outputs, finals)

    theoretical, numerical = tf.test.compute_gradient(f, flat[first:last], delta=1e-6)
    for i, (t, n) in enumerate(zip(theoretical, numerical)):
        np.testing.assert_allclose(t, n, rtol=1e-6, atol=1e-7, err_msg=f"argument {first + i}")


def test_default_initial_states_are_zeros(rng):
    inputs, kernels, recurrent, biases, _ = random_args(rng, 3, 4, 5, 6, 2)
    zeros = [tf.zeros([3, 6], tf.float64)] * 2
    a, fa = deeprnn_fast.stacked_rnn(inputs, kernels, recurrent, biases)
    b, fb = deeprnn_fast.stacked_rnn(inputs, kernels, recurrent, biases, zeros)
    np.testing.assert_array_equal(a, b)
    for x, y in zip(fa, fb):
        np.testing.assert_array_equal(x, y)


def test_first_layer_and_recurrence_are_wired_as_the_equation_says(rng):
    # One step by hand: H_0^(0) = tanh(X_0 Wx0 + h0 Wh0 + b0), H_0^(1) = tanh(H_0^(0) Wx1 + h1 Wh1 + b1).
    inputs, kernels, recurrent, biases, initial = random_args(rng, 2, 1, 3, 4, 2)
    x = inputs.numpy()[:, 0]
    h = [np.tanh(x @ kernels[0].numpy() + initial[0].numpy() @ recurrent[0].numpy() + biases[0].numpy())]
    h.append(np.tanh(h[0] @ kernels[1].numpy() + initial[1].numpy() @ recurrent[1].numpy() + biases[1].numpy()))
    outputs, finals = deeprnn_fast.stacked_rnn(inputs, kernels, recurrent, biases, initial)
    np.testing.assert_allclose(outputs.numpy()[:, 0], h[1], rtol=1e-12)
    np.testing.assert_allclose(finals[0], h[0], rtol=1e-12)


def test_empty_batch_and_empty_sequence(rng):
    inputs, kernels, recurrent, biases, initial = random_args(rng, 3, 0, 4, 5, 2)
    outputs, finals = deeprnn_fast.stacked_rnn(inputs, kernels, recurrent, biases, initial)
    assert outputs.shape == (3, 0, 5)
    for f, i in zip(finals, initial):
        np.testing.assert_array_equal(f, i)
    flat = flatten_args(inputs, kernels, recurrent, biases, initial)
    with tf.GradientTape() as tape:
        tape.watch(flat)
        outputs, finals = deeprnn_fast.stacked_rnn(inputs, kernels, recurrent, biases, initial)
        loss = tf.reduce_sum(finals[0] * 2.0) + tf.reduce_sum(finals[1])
    grads = tape.gradient(loss, flat)
    np.testing.assert_array_equal(grads[-2], np.full((3, 5), 2.0))
    np.testing.assert_array_equal(grads[-1], np.ones((3, 5)))
    for g in grads[1:7]:
        np.testing.assert_array_equal(g, np.zeros_like(g))

    inputs, kernels, recurrent, biases, _ = random_args(rng, 0, 4, 4, 5, 2)
    outputs, finals = deeprnn_fast.stacked_rnn(inputs, kernels, recurrent, biases)
    assert outputs.shape == (0, 4, 5) and all(f.shape == (0, 5) for f in finals)


def test_nan_in_nan_out(rng):
    inputs, kernels, recurrent, biases, initial = random_args(rng, 4, 5, 3, 6, 2, dtype=tf.float32)
    poisoned = inputs.numpy()
    poisoned[1, 2, 0] = np.nan
    outputs, finals = deeprnn_fast.stacked_rnn(tf.constant(poisoned), kernels, recurrent, biases, initial)
    outputs = outputs.numpy()
    # The NaN reaches batch row 1 from step 2 on, and nothing else.
    assert np.isnan(outputs[1, 2:]).all()
    assert np.isfinite(outputs[1, :2]).all() and np.isfinite(np.delete(outputs, 1, axis=0)).all()
    assert np.isnan(finals[1].numpy()[1]).all()


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("batch", [37, 400], ids=["wavefront", "batch-blocked"])
def test_results_are_bitwise_reproducible(rng, activation, batch):
    args = random_args(rng, batch, 11, 19, 45, 3, dtype=tf.float32)
    first = value_and_grads(deeprnn_fast.stacked_rnn, args, activation)
    for _ in range(3):
        again = value_and_grads(deeprnn_fast.stacked_rnn, args, activation)
        for a, e in zip(tf.nest.flatten(again), tf.nest.flatten(first)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


def test_concurrent_calls_from_python_threads(rng):
    cases = [random_args(rng, 5 + i, 6, 7, 11 + i, 2, dtype=tf.float32) for i in range(6)]
    expected = [reference.stacked_rnn(*c)[0].numpy() for c in cases]
    results, errors = [None] * len(cases), []

    def work(i):
        try:
            for _ in range(5):
                results[i] = deeprnn_fast.stacked_rnn(*cases[i])[0].numpy()
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


def test_build_info_describes_the_library():
    info = deeprnn_fast.build_info()
    assert info["built"] and info["loadable"] and info["error"] is None
    assert info["tensorflow_version"] == tf.__version__
    assert isinstance(info["cuda"], bool)
    assert all(a.startswith(("sm_", "compute_")) for a in info["cuda_archs"])
    assert bool(info["cuda_archs"]) == info["cuda"]
