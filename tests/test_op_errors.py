"""Bad input to the fused op: a clear error naming the argument and what was expected, never a crash."""
import numpy as np
import pytest
import tensorflow as tf

import deeprnn_fast
from deeprnn_fast import _library, reference
from op_testing import random_args

IMPLEMENTATIONS = [deeprnn_fast.stacked_rnn, reference.stacked_rnn]


@pytest.fixture
def args():
    return random_args(np.random.default_rng(7), 3, 4, 5, 6, 2, dtype=tf.float32)


def call(fn, args, **changes):
    inputs, kernels, recurrent, biases, initial = args
    values = dict(inputs=inputs, kernels=kernels, recurrent_kernels=recurrent, biases=biases, initial_states=initial)
    values.update(changes)
    return fn(**values)


@pytest.mark.parametrize("fn", IMPLEMENTATIONS, ids=["fused", "reference"])
@pytest.mark.parametrize("change, message", [
    (lambda a: {"inputs": a[0][0]}, r"inputs must have shape \[batch, time, features\] \(rank 3\)"),
    (lambda a: {"kernels": [a[1][0][:4]] + a[1][1:]}, r"kernels\[0\] must have shape \[5, 6\]"),
    (lambda a: {"kernels": a[1][:1] + [a[1][1][:, :5]]}, r"kernels\[1\] must have shape \[6, 6\]"),
    (lambda a: {"recurrent_kernels": a[2][:1] + [a[2][1][:5]]}, r"recurrent_kernels\[1\] must have shape \[6, 6\]"),
    (lambda a: {"biases": [a[3][0][:5], a[3][1]]}, r"biases\[0\] must have shape \[6\]"),
    (lambda a: {"biases": a[3][:1]}, r"biases must hold one tensor per layer \(2"),
    (lambda a: {"recurrent_kernels": a[2] + a[2][:1]}, r"recurrent_kernels must hold one tensor per layer"),
    (lambda a: {"initial_states": a[4][:1]}, r"initial_states must hold one \[batch, 6\] tensor per layer \(2\)"),
    (lambda a: {"initial_states": [a[4][0][:2], a[4][1]]}, r"initial_states\[0\] must have shape \[3, 6\]"),
    (lambda a: {"inputs": tf.cast(a[0], tf.int32)}, r"inputs must be float32 or float64; got int32"),
    (lambda a: {"kernels": [tf.cast(a[1][0], tf.float64), a[1][1]]},
     r"kernels\[0\] must have the dtype of inputs \(float32\); got float64"),
    (lambda a: {"kernels": a[1][0]}, r"kernels must be a list of tensors"),
    (lambda a: {"kernels": []}, r"kernels must hold at least one tensor"),
    (lambda a: {"inputs": "text"}, r"inputs must be float32 or float64; got string"),
    (lambda a: {"inputs": object()}, r"inputs must be a tensor"),
])
def test_bad_arguments_raise_value_error(fn, args, change, message):
    with pytest.raises(ValueError, match=message):
        call(fn, args, **change(args))


@pytest.mark.parametrize("fn", IMPLEMENTATIONS, ids=["fused", "reference"])
def test_unknown_activation(fn, args):
    with pytest.raises(ValueError, match=r"activation must be one of \('tanh', 'relu'\); got 'sigmoid'"):
        call(fn, args, activation="sigmoid")


def test_batch_mismatch_at_run_time_is_caught_by_the_kernel(args):
    # With the batch unknown while tracing, only the kernel can see that the initial states disagree.
    inputs, kernels, recurrent, biases, initial = args
    fn = tf.function(lambda x, h: deeprnn_fast.stacked_rnn(x, kernels, recurrent, biases, [h, h])[0],
                     input_signature=[tf.TensorSpec([None, 4, 5]), tf.TensorSpec([None, 6])])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"initial_states must have shape \[2, 3, 6\]"):
        fn(inputs, initial[0][:2])


RAW_GARBAGE = [
    # (description, inputs, kernels, recurrent, biases, initial, expected message)
    ("inputs of rank 2", np.ones((3, 5)), [np.ones((5, 6))], [np.ones((6, 6))], [np.ones(6)], np.ones((1, 3, 6)),
     r"rank"),
    ("kernel rows != features", np.ones((3, 4, 5)), [np.ones((4, 6))], [np.ones((6, 6))], [np.ones(6)],
     np.ones((1, 3, 6)), r"kernels\[0\]|Dimensions must be equal"),
    ("recurrent kernel not square", np.ones((3, 4, 5)), [np.ones((5, 6))], [np.ones((6, 5))], [np.ones(6)],
     np.ones((1, 3, 6)), r"recurrent_kernels\[0\]|Dimensions must be equal"),
    ("bias too long", np.ones((3, 4, 5)), [np.ones((5, 6))], [np.ones((6, 6))], [np.ones(7)], np.ones((1, 3, 6)),
     r"biases\[0\]|Dimensions must be equal"),
    ("initial states for the wrong layer count", np.ones((3, 4, 5)), [np.ones((5, 6))], [np.ones((6, 6))],
     [np.ones(6)], np.ones((2, 3, 6)), r"initial_states|must be 1"),
    ("zero units", np.ones((3, 4, 5)), [np.ones((5, 0))], [np.ones((0, 0))], [np.ones(0)], np.ones((1, 3, 0)),
     r"at least 1"),
]


@pytest.mark.parametrize("case", RAW_GARBAGE, ids=[c[0] for c in RAW_GARBAGE])
@pytest.mark.parametrize("mode", ["eager", "graph"])
def test_raw_op_rejects_garbage(case, mode):
    _, inputs, kernels, recurrent, biases, initial, message = case
    op = _library.library().deeprnn_fast_stacked_rnn
    as_f32 = lambda x: tf.constant(x, tf.float32)  # noqa: E731
    run = lambda: op(as_f32(inputs), [as_f32(k) for k in kernels], [as_f32(r) for r in recurrent],  # noqa: E731
                     [as_f32(b) for b in biases], as_f32(initial), tokens=[], mask=[], input_dropout=[], recurrent_dropout=[], between_dropout=[])
    if mode == "graph":
        run = tf.function(run)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=message):
        run()


def test_raw_gradient_op_rejects_mismatched_activations():
    grad = _library.library().deeprnn_fast_stacked_rnn_grad
    ones = lambda *s: tf.ones(s, tf.float32)  # noqa: E731
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"activations must have shape \[1, 4, 3, 6\]"):
        grad(ones(3, 4, 5), [ones(5, 6)], [ones(6, 6)], ones(1, 3, 6), ones(1, 4, 3, 5), ones(3, 4, 6), ones(1, 3, 6), tokens=[], mask=[], input_dropout=[], recurrent_dropout=[], between_dropout=[])


def test_raw_op_rejects_integer_dtype():
    op = _library.library().deeprnn_fast_stacked_rnn
    i = lambda *s: tf.ones(s, tf.int32)  # noqa: E731
    with pytest.raises((TypeError, tf.errors.InvalidArgumentError, tf.errors.NotFoundError)):
        op(i(3, 4, 5), [i(5, 6)], [i(6, 6)], [i(6)], i(1, 3, 6), tokens=[], mask=[], input_dropout=[], recurrent_dropout=[], between_dropout=[])


@pytest.mark.parametrize("cell, gates", [("rnn", 1), ("gru", 3)])
def test_traced_ops_infer_every_static_shape(cell, gates):
    # The shape functions (tf/shape_inference.h) must give the outputs their full static shapes from the weights
    # alone, batch unknown; the hidden size here is only known from the recurrent kernels' rows.
    lib = _library.library()
    op = lib.deeprnn_fast_stacked_rnn if cell == "rnn" else lib.deeprnn_fast_stacked_gru
    grad = lib.deeprnn_fast_stacked_rnn_grad if cell == "rnn" else lib.deeprnn_fast_stacked_gru_grad
    B, T, D, H, L = None, 4, 5, 6, 2
    bias_shape = [H] if cell == "rnn" else [2, 3 * H]
    specs = [tf.TensorSpec([B, T, D]), tf.TensorSpec([D, None]), tf.TensorSpec([H, gates * H]),
             tf.TensorSpec([None, None]), tf.TensorSpec([H, gates * H]), tf.TensorSpec(bias_shape),
             tf.TensorSpec(bias_shape), tf.TensorSpec([L, B, H])]
    seen = {}

    @tf.function(input_signature=specs)
    def trace(x, k0, k1, r0, r1, b0, b1, h0):
        forward = op(x, [k0, k1], [r0, r1], [b0, b1], h0, tokens=[], mask=[], input_dropout=[], recurrent_dropout=[], between_dropout=[])
        seen["forward"] = [t.shape.as_list() for t in forward]
        backward = grad(x, [k0, k1], [r0, r1], h0, *forward[2:], forward[0], forward[1], tokens=[], mask=[], input_dropout=[], recurrent_dropout=[], between_dropout=[])
        seen["grad"] = [t.shape.as_list() for t in tf.nest.flatten(backward)]
        return forward[0]

    trace.get_concrete_function()
    expected = [[B, T, H], [L, B, H], [L, T, B, H]] + ([[L, T, B, 4 * H]] if cell == "gru" else [])
    assert seen["forward"] == expected
    assert seen["grad"] == [[B, T, D], [D, None], [H, gates * H], [None, None], [H, gates * H], bias_shape,
                            bias_shape, [L, B, H]]


# ---- sparse and ragged arguments: a short message that says to densify, never a dump of the tensor -----------------

GRU_IMPLEMENTATIONS = [deeprnn_fast.stacked_gru, reference.stacked_gru]


def gru_args(rng, batch=3, time=4, features=5, units=6, layers=2):
    draw = lambda *shape: tf.constant(rng.normal(0.0, 0.5, shape), tf.float32)  # noqa: E731
    return (draw(batch, time, features), [draw(features, 3 * units), draw(units, 3 * units)],
            [draw(units, 3 * units), draw(units, 3 * units)], [draw(2, 3 * units), draw(2, 3 * units)],
            [draw(batch, units), draw(batch, units)])


@pytest.mark.parametrize("fn", IMPLEMENTATIONS + GRU_IMPLEMENTATIONS,
                         ids=["fused", "reference", "fused gru", "reference gru"])
@pytest.mark.parametrize("argument", ["inputs", "kernels[0]", "initial_states[1]"])
def test_sparse_arguments_are_refused_in_one_short_line(fn, argument, args):
    values = list(gru_args(np.random.default_rng(8)) if fn in GRU_IMPLEMENTATIONS else args)
    index = {"inputs": 0, "kernels[0]": 1, "initial_states[1]": 4}[argument]
    if argument == "inputs":
        values[0] = tf.sparse.from_dense(values[0])
        shape = values[0].shape
    else:
        position = int(argument[-2])
        values[index] = list(values[index])
        values[index][position] = tf.sparse.from_dense(values[index][position])
        shape = values[index][position].shape
    with pytest.raises(ValueError) as error:
        fn(*values)
    message = str(error.value)
    assert message == (f"{argument} must be a dense tensor; got a tf.SparseTensor of shape {shape} (densify it "
                       "first, e.g. with tf.sparse.to_dense)")


def test_ragged_inputs_are_refused_in_one_short_line(args):
    ragged = tf.RaggedTensor.from_tensor(args[0], lengths=[4, 2, 3])
    with pytest.raises(ValueError, match=r"^inputs must be a dense tensor; got a tf.RaggedTensor of shape \(3, None, "
                                         r"5\) \(densify it first, e\.g\. with its \.to_tensor\(\)\)$"):
        deeprnn_fast.stacked_rnn(ragged, *args[1:])


# ---- second-order gradients: not implemented, and the error says so -----------------------------------------------

def _differentiate_twice(fn, values, graph):
    inputs, rest = values[0], values[1:]

    def run(x):
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                outputs, _ = fn(x, *rest)
                loss = tf.reduce_sum(outputs * outputs)
            first = inner.gradient(loss, x)
            total = tf.reduce_sum(first * first)
        return first, outer.gradient(total, x)

    return (tf.function(run) if graph else run)(inputs)


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_second_order_gradients_say_they_are_not_implemented(cell, graph, args):
    fn, values, op = ((deeprnn_fast.stacked_rnn, args, "StackedRnn") if cell == "rnn" else
                      (deeprnn_fast.stacked_gru, gru_args(np.random.default_rng(9)), "StackedGru"))
    with pytest.raises(deeprnn_fast.ops.SecondOrderGradientError) as error:
        _differentiate_twice(fn, values, graph)
    # Also what TensorFlow raises for an op without a gradient, so that code catching that still works.
    assert isinstance(error.value, NotImplementedError) and isinstance(error.value, LookupError)
    message = str(error.value)
    assert f"second-order gradients (and forward-mode autodiff) of the fused DeeprnnFast>{op} op are not " \
           "implemented" in message
    assert f"use deeprnn_fast.reference.stacked_{cell}" in message


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_the_reference_gives_the_second_order_gradients_the_fused_op_does_not(cell, args):
    # What the error message advises works, and its first-order gradients are the fused op's.
    fused, ref = ((deeprnn_fast.stacked_rnn, reference.stacked_rnn) if cell == "rnn" else
                  (deeprnn_fast.stacked_gru, reference.stacked_gru))
    values = args if cell == "rnn" else gru_args(np.random.default_rng(10))
    first, second = _differentiate_twice(ref, values, graph=False)
    assert float(tf.reduce_max(tf.abs(second))) > 1e-3
    x = values[0]
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs, _ = fused(x, *values[1:])
        loss = tf.reduce_sum(outputs * outputs)
    np.testing.assert_allclose(tape.gradient(loss, x), first, rtol=1e-4, atol=1e-5)
