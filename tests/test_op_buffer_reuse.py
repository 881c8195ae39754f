"""The CPU op kernels hand out their saved activations, gates and backward scratch from blocks they keep
(csrc/tf/reused_tensor.h): a block is reused only once nothing else holds it. These tests hold earlier results while
the same kernel runs again on other data, eagerly and inside one tf.function, and check that nothing held changed and
that every gradient is still its own call's."""
import numpy as np
import pytest
import tensorflow as tf

from deeprnn_fast import _library, ops
from op_testing import CELLS, fused_fn, random_args, reference_fn


@pytest.fixture(autouse=True)
def needs_library():
    try:
        _library.library()
    except _library.LibraryUnavailable as e:
        pytest.skip(str(e))


def raw_forward(cell, args):
    """The forward op's every output: outputs, final states, activations (and the gates of a gated cell)."""
    inputs, kernels, recurrent, biases, initial = args
    states = tf.stack([tf.stack(pair) for pair in initial] if cell == "lstm" else initial)
    attrs = {"activation": cell} if cell in ("tanh", "relu") else {}
    return getattr(_library.library(), ops._FORWARD_OPS[cell])(
        inputs, kernels, recurrent, biases, states, [], mask=[], input_dropout=[], recurrent_dropout=[],
        between_dropout=[], **attrs)


@pytest.mark.parametrize("cell", CELLS)
def test_held_saved_tensors_survive_later_calls(cell):
    rng = np.random.default_rng([5, len(cell)])
    first_args = random_args(rng, 6, 5, 4, 7, 2, dtype=tf.float32, cell=cell)
    first = raw_forward(cell, first_args)
    copies = [np.array(t) for t in first]
    for _ in range(3):  # the same kernel on other data, while `first` is held
        later = raw_forward(cell, random_args(rng, 6, 5, 4, 7, 2, dtype=tf.float32, cell=cell))
        assert not np.allclose(np.asarray(later[2]), copies[2])
    for held, copy in zip(first, copies):
        np.testing.assert_array_equal(np.asarray(held), copy)


@pytest.mark.parametrize("cell", CELLS)
def test_two_calls_in_one_function_keep_their_own_gradients(cell):
    rng = np.random.default_rng([6, len(cell)])
    a = random_args(rng, 5, 6, 3, 4, 2, dtype=tf.float64, cell=cell)
    b = random_args(rng, 5, 6, 3, 4, 2, dtype=tf.float64, cell=cell)

    def loss_and_grads(fn, args_a, args_b):
        with tf.GradientTape() as tape:
            tape.watch([args_a[0], args_b[0]] + list(args_a[1]) + list(args_b[1]))
            ya, _ = fn(*args_a)
            yb, _ = fn(*args_b)
            loss = tf.reduce_sum(ya * ya) + 3.0 * tf.reduce_sum(yb * tf.sin(yb))
        return tape.gradient(loss, [args_a[0], args_b[0]] + list(args_a[1]) + list(args_b[1]))

    fused = tf.function(lambda: loss_and_grads(fused_fn(cell), a, b))
    for _ in range(2):  # the second call runs on the kept blocks of the first
        got = fused()
        want = loss_and_grads(reference_fn(cell), a, b)
        for g, w in zip(got, want):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-9, atol=1e-10)
