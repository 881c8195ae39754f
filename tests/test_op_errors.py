"""Bad input to every cell's fused op, its wrapper and its reference: a clear error naming the argument and what was
expected, never a crash; the static shapes the raw ops infer; second-order gradients that say they are missing.

With DEEPRNN_FAST_TEST_FALLBACK=1 (tests/conftest.py) the wrappers' tests run on the plain-TensorFlow fallback; the
raw ops' tests (`compiled_op`) then skip."""
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

import deeprnn_fast
from deeprnn_fast import reference
from fallback_switch import FALLBACK
from op_testing import CELLS, fused_fn, layout, random_args, reference_fn, NO_MODIFIERS

pytestmark = pytest.mark.usefixtures("op_backend")

IMPLEMENTATIONS = ["fused", "reference"]


def implementation(name, cell):
    return fused_fn(cell) if name == "fused" else reference_fn(cell)


def cell_args(cell, seed=7):
    """Valid float32 arguments of `cell`: B = 3, T = 4, D = 5, H = 6, L = 2."""
    return random_args(np.random.default_rng(seed), 3, 4, 5, 6, 2, dtype=tf.float32, cell=cell)


def call(fn, args, **changes):
    inputs, kernels, recurrent, biases, initial = args
    values = dict(inputs=inputs, kernels=kernels, recurrent_kernels=recurrent, biases=biases, initial_states=initial)
    values.update(changes)
    return fn(**values)


def sizes(cell):
    """What the messages of `cell` say about the arguments of cell_args: its columns G * H and its gate count."""
    return SimpleNamespace(cell=cell, gates=layout(cell).gates, columns=layout(cell).gates * 6,
                           pairs=layout(cell).states > 1, bias_rows=layout(cell).bias_rows)


def shorter_bias(a, c):
    # A bias of the wrong shape: the GRU's one row of its two, the others' one column short.
    return {"biases": [a[3][0][0] if c.bias_rows else a[3][0][:c.columns - 1], a[3][1]]}


def bias_shape_message(c):
    return (rf"biases\[0\] must have shape \[2, {c.columns}\]" if c.bias_rows else
            rf"biases\[0\] must have shape \[{c.columns}\]")


def initial_batch_cut(a, c):
    first = (a[4][0][0][:2], a[4][0][1]) if c.pairs else a[4][0][:2]
    return {"initial_states": [first, a[4][1]]}


ALL, PAIRS, GATES = tuple(CELLS), ("lstm",), ("gru", "lstm")

# (id, cells it applies to, change of cell_args(cell) given sizes(cell), expected message given sizes(cell))
BAD_ARGUMENTS = [
    ("inputs of rank 2", ALL, lambda a, c: {"inputs": a[0][0]},
     lambda c: r"inputs must have shape \[batch, time, features\] \(rank 3\)"),
    ("kernels[0] rows", ALL, lambda a, c: {"kernels": [a[1][0][:4]] + a[1][1:]},
     lambda c: rf"kernels\[0\] must have shape \[5, {c.columns}\]"),
    ("kernels[0] columns not gates * units", GATES, lambda a, c: {"kernels": [a[1][0][:, :c.columns - 1]] + a[1][1:]},
     lambda c: rf"kernels\[0\] must have .*\[features, {c.gates} \* units\]"),
    ("kernels[1] columns", ALL, lambda a, c: {"kernels": a[1][:1] + [a[1][1][:, :c.columns - c.gates]]},
     lambda c: rf"kernels\[1\] must have shape \[6, {c.columns}\]"),
    ("recurrent_kernels[1] rows", ALL, lambda a, c: {"recurrent_kernels": a[2][:1] + [a[2][1][:5]]},
     lambda c: rf"recurrent_kernels\[1\] must have shape \[6, {c.columns}\]"),
    ("biases[0] shape", ALL, shorter_bias, bias_shape_message),
    ("biases one short", ALL, lambda a, c: {"biases": a[3][:1]},
     lambda c: r"biases must hold one tensor per layer \(2"),
    ("recurrent_kernels one too many", ALL, lambda a, c: {"recurrent_kernels": a[2] + a[2][:1]},
     lambda c: r"recurrent_kernels must hold one tensor per layer"),
    ("initial_states one short", ALL, lambda a, c: {"initial_states": a[4][:1]},
     lambda c: (r"initial_states must hold one pair \(h, c\) of \[batch, 6\] tensors per layer \(2\)" if c.pairs
                else r"initial_states must hold one \[batch, 6\] tensor per layer \(2\)")),
    ("initial_states[0] batch", ALL, initial_batch_cut,
     lambda c: r"initial_states\[0\]" + (r"\.h" if c.pairs else "") + r" must have shape \[3, 6\]"),
    ("inputs int32", ALL, lambda a, c: {"inputs": tf.cast(a[0], tf.int32)},
     lambda c: r"inputs must be float32 or float64; got int32"),
    ("kernels[0] float64", ALL, lambda a, c: {"kernels": [tf.cast(a[1][0], tf.float64), a[1][1]]},
     lambda c: r"kernels\[0\] must have the dtype of inputs \(float32\); got float64"),
    ("biases[0] float64", ALL, lambda a, c: {"biases": [tf.cast(a[3][0], tf.float64), a[3][1]]},
     lambda c: r"biases\[0\] must have the dtype of inputs \(float32\); got float64"),
    ("biases[0] float64 with token inputs", ALL,
     lambda a, c: {"inputs": tf.zeros([3, 4], tf.int32), "biases": [tf.cast(a[3][0], tf.float64), a[3][1]]},
     lambda c: r"biases\[0\] must have the dtype of kernels\[0\] \(float32\); got float64"),
    ("kernels not a list", ALL, lambda a, c: {"kernels": a[1][0]}, lambda c: r"kernels must be a list of tensors"),
    ("kernels empty", ALL, lambda a, c: {"kernels": []}, lambda c: r"kernels must hold at least one tensor"),
    ("inputs text", ALL, lambda a, c: {"inputs": "text"}, lambda c: r"inputs must be float32 or float64; got string"),
    ("inputs object", ALL, lambda a, c: {"inputs": object()}, lambda c: r"inputs must be a tensor"),
    # The LSTM's states are pairs (h, c).
    ("initial_states not pairs", PAIRS, lambda a, c: {"initial_states": [a[4][0][0], a[4][1][0]]},
     lambda c: r"initial_states\[0\] must be a pair \(h, c\) of \[batch, 6\] tensors; got EagerTensor"),
    ("initial_states triples", PAIRS, lambda a, c: {"initial_states": [a[4][0] + a[4][0][1:], a[4][1]]},
     lambda c: r"initial_states\[0\] must be a pair \(h, c\) of \[batch, 6\] tensors; got tuple"),
    ("initial_states[1].c units", PAIRS, lambda a, c: {"initial_states": [a[4][0], (a[4][1][0], a[4][1][1][:, :5])]},
     lambda c: r"initial_states\[1\]\.c must have shape \[3, 6\]"),
    ("initial_states[0].h of rank 3", PAIRS,
     lambda a, c: {"initial_states": [(a[4][0][0][None], a[4][0][1]), a[4][1]]},
     lambda c: r"initial_states\[0\]\.h must have shape \[3, 6\] \(rank 2\)"),
    ("initial_states[0].c float64", PAIRS,
     lambda a, c: {"initial_states": [(a[4][0][0], tf.cast(a[4][0][1], tf.float64)), a[4][1]]},
     lambda c: r"initial_states\[0\]\[1\] must have the dtype of inputs \(float32\); got float64"),
]


@pytest.mark.parametrize("fn", IMPLEMENTATIONS)
@pytest.mark.parametrize("cell, change, message", [
    pytest.param(cell, change, message, id=f"{cell}-{name}")
    for name, cells, change, message in BAD_ARGUMENTS for cell in cells])
def test_bad_arguments_raise_value_error(fn, cell, change, message):
    args = cell_args(cell)
    with pytest.raises(ValueError, match=message(sizes(cell))):
        call(implementation(fn, cell), args, **change(args, sizes(cell)))


@pytest.mark.parametrize("fn", [deeprnn_fast.stacked_rnn, reference.stacked_rnn], ids=IMPLEMENTATIONS)
def test_unknown_activation(fn):
    with pytest.raises(ValueError, match=r"activation must be one of \('tanh', 'relu'\); got 'sigmoid'"):
        call(fn, cell_args("tanh"), activation="sigmoid")


@pytest.mark.parametrize("fn", IMPLEMENTATIONS)
@pytest.mark.parametrize("cell", CELLS)
def test_token_inputs_need_a_static_vocabulary(fn, cell):
    # Token ids index kernels[0]'s rows, so its row count must be known when the call is traced.
    _, kernels, recurrent, biases, _ = cell_args(cell)
    columns = kernels[0].shape[1]
    traced = tf.function(lambda t, k0: implementation(fn, cell)(t, [k0, kernels[1]], recurrent, biases)[0],
                         input_signature=[tf.TensorSpec([3, 4], tf.int32), tf.TensorSpec([None, columns])])
    with pytest.raises(ValueError, match=r"with token inputs, kernels\[0\] must have a statically known number of "
                                         r"rows \(the vocabulary\)"):
        traced.get_concrete_function()


@pytest.mark.xfail(FALLBACK, strict=True, reason=(
    "deeprnn_fast/reference.py checks shapes at trace time only: a batch known only at run time that the initial "
    "states disagree with fails inside its arithmetic ('Incompatible shapes: [3,6] vs. [2,6]'), naming no argument"))
@pytest.mark.parametrize("cell", CELLS)
def test_batch_mismatch_at_run_time_is_caught_by_the_kernel(cell):
    # With the batch unknown while tracing, only the kernel can see that the initial states disagree.
    inputs, kernels, recurrent, biases, initial = cell_args(cell)
    pairs = layout(cell).states > 1
    states = lambda h: [(h, h), (h, h)] if pairs else [h, h]  # noqa: E731
    fn = tf.function(lambda x, h: fused_fn(cell)(x, kernels, recurrent, biases, states(h))[0],
                     input_signature=[tf.TensorSpec([None, 4, 5]), tf.TensorSpec([None, 6])])
    expected = r"initial_states must have shape \[2, 2, 3, 6\]" if pairs else r"initial_states must have shape " \
                                                                               r"\[2, 3, 6\]"
    with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
        fn(inputs, tf.nest.flatten(initial[0])[0][:2])


# ---- the raw ops, which can be called with anything ---------------------------------------------------------------

RAW_GARBAGE = {
    # (description, inputs, kernels, recurrent, biases, initial, expected message)
    "rnn": [
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
    ],
    "gru": [
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
        ("zero units", np.ones((3, 4, 5)), [np.ones((5, 0))], [np.ones((0, 0))], [np.ones((2, 0))],
         np.ones((1, 3, 0)), r"at least 1"),
    ],
    "lstm": [
        ("inputs of rank 2", np.ones((3, 5)), [np.ones((5, 8))], [np.ones((2, 8))], [np.ones(8)],
         np.ones((1, 2, 3, 2)), r"rank"),
        ("kernel columns not 4 * units", np.ones((3, 4, 5)), [np.ones((5, 7))], [np.ones((2, 8))], [np.ones(8)],
         np.ones((1, 2, 3, 2)), r"kernels\[0\] must have shape \[5, 4 \* units\]|divisible by 4"),
        ("recurrent kernel of the wrong width", np.ones((3, 4, 5)), [np.ones((5, 8))], [np.ones((2, 9))],
         [np.ones(8)], np.ones((1, 2, 3, 2)), r"recurrent_kernels\[0\] must have shape \[2, 8\]|Dimensions must be "
                                              r"equal"),
        ("bias of two rows", np.ones((3, 4, 5)), [np.ones((5, 8))], [np.ones((2, 8))], [np.ones((2, 8))],
         np.ones((1, 2, 3, 2)), r"biases\[0\] must have shape \[8\]|must be rank 1"),
        ("bias too long", np.ones((3, 4, 5)), [np.ones((5, 8))], [np.ones((2, 8))], [np.ones(9)],
         np.ones((1, 2, 3, 2)), r"biases\[0\] must have shape \[8\]|Dimensions must be equal"),
        ("initial states without the (h, c) axis", np.ones((3, 4, 5)), [np.ones((5, 8))], [np.ones((2, 8))],
         [np.ones(8)], np.ones((1, 3, 2)), r"initial_states must have shape \[1, 2, 3, 2\]|must be rank 4"),
        ("initial states of three per layer", np.ones((3, 4, 5)), [np.ones((5, 8))], [np.ones((2, 8))],
         [np.ones(8)], np.ones((1, 3, 3, 2)), r"initial_states must have shape \[1, 2, 3, 2\]|must be 2"),
        ("initial states for the wrong layer count", np.ones((3, 4, 5)), [np.ones((5, 8))], [np.ones((2, 8))],
         [np.ones(8)], np.ones((2, 2, 3, 2)), r"initial_states must have shape \[1, 2, 3, 2\]|must be 1"),
        ("zero units", np.ones((3, 4, 5)), [np.ones((5, 0))], [np.ones((0, 0))], [np.ones(0)], np.ones((1, 2, 3, 0)),
         r"at least 1"),
    ],
}
RAW_OPS = {"rnn": "deeprnn_fast_stacked_rnn", "gru": "deeprnn_fast_stacked_gru", "lstm": "deeprnn_fast_stacked_lstm"}


def as_f32(x):
    return tf.constant(x, tf.float32)


@pytest.mark.parametrize("op, case", [pytest.param(op, case, id=f"{op}-{case[0]}")
                                      for op, cases in RAW_GARBAGE.items() for case in cases])
@pytest.mark.parametrize("mode", ["eager", "graph"])
def test_raw_op_rejects_garbage(compiled_op, op, case, mode):
    _, inputs, kernels, recurrent, biases, initial, message = case
    raw = getattr(compiled_op, RAW_OPS[op])
    run = lambda: raw(as_f32(inputs), [as_f32(k) for k in kernels], [as_f32(r) for r in recurrent],  # noqa: E731
                      [as_f32(b) for b in biases], as_f32(initial), tokens=[], **NO_MODIFIERS)
    if mode == "graph":
        run = tf.function(run)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=message):
        run()


def raw_valid_args(op, B=3, T=4, D=5, H=2):
    """Valid ones-filled arguments of a raw forward op (one layer), as keyword arguments."""
    gates, bias, states = {"rnn": (1, [H], [1, B, H]), "gru": (3, [2, 3 * H], [1, B, H]),
                           "lstm": (4, [4 * H], [1, 2, B, H])}[op]
    return dict(inputs=tf.ones([B, T, D]), kernels=[tf.ones([D, gates * H])],
                recurrent_kernels=[tf.ones([H, gates * H])], biases=[tf.ones(bias)], initial_states=tf.ones(states))


RAW_TOKEN_GARBAGE = [
    # (description, change of raw_valid_args, expected message)
    ("tokens of another batch", {"inputs": tf.zeros([3, 4, 0]), "tokens": [tf.zeros([2, 4], tf.int32)]},
     r"tokens must have shape \[3, 4\]|Dimensions must be equal"),
    ("tokens of rank 3", {"inputs": tf.zeros([3, 4, 0]), "tokens": [tf.zeros([3, 4, 1], tf.int32)]},
     r"tokens must have shape \[3, 4\]|must be rank 2"),
    ("tokens beside dense inputs", {"tokens": [tf.zeros([3, 4], tf.int32)]},
     r"with token inputs, inputs must be an empty \[batch, time, 0\] tensor; got \[3,4,5\]"),
    ("tokens out of range", {"inputs": tf.zeros([3, 4, 0]), "tokens": [tf.fill([3, 4], 5)]},
     r"tokens must lie in \[0, 5\) \(the rows of kernels\[0\]\); got 5 at flat index 0"),
    ("negative tokens", {"inputs": tf.zeros([3, 4, 0]), "tokens": [tf.fill([3, 4], -2)]},
     r"tokens must lie in \[0, 5\) \(the rows of kernels\[0\]\); got -2"),
]


@pytest.mark.parametrize("case", RAW_TOKEN_GARBAGE, ids=[c[0] for c in RAW_TOKEN_GARBAGE])
@pytest.mark.parametrize("mode", ["eager", "graph"])
@pytest.mark.parametrize("op", list(RAW_OPS))
def test_raw_op_rejects_garbage_tokens(compiled_op, op, mode, case):
    _, change, message = case
    values = {**raw_valid_args(op), "tokens": [], **NO_MODIFIERS, **change}
    run = lambda: getattr(compiled_op, RAW_OPS[op])(**values)  # noqa: E731
    if mode == "graph":
        run = tf.function(run)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=message):
        run()


def test_raw_gradient_op_rejects_mismatched_activations(compiled_op):
    grad = compiled_op.deeprnn_fast_stacked_rnn_grad
    ones = lambda *s: tf.ones(s, tf.float32)  # noqa: E731
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"activations must have shape \[1, 4, 3, 6\]"):
        grad(ones(3, 4, 5), [ones(5, 6)], [ones(6, 6)], ones(1, 3, 6), ones(1, 4, 3, 5), ones(3, 4, 6), ones(1, 3, 6),
             tokens=[], **NO_MODIFIERS)


def test_raw_gradient_op_rejects_mismatched_gates(compiled_op):
    grad = compiled_op.deeprnn_fast_stacked_gru_grad
    ones = lambda *s: tf.ones(s, tf.float32)  # noqa: E731
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"gates must have shape \[1, 4, 3, 24\]"):
        grad(ones(3, 4, 5), [ones(5, 18)], [ones(6, 18)], ones(1, 3, 6), ones(1, 4, 3, 6), ones(1, 4, 3, 18),
             ones(3, 4, 6), ones(1, 3, 6), tokens=[], **NO_MODIFIERS)


@pytest.mark.parametrize("what, gates, grad_final_states, message", [
    ("gates", (1, 4, 3, 24), (1, 2, 3, 6), r"gates must have shape \[1, 4, 3, 30\]"),
    ("grad_final_states", (1, 4, 3, 30), (1, 3, 6), r"grad_final_states must have shape \[1, 2, 3, 6\]"),
])
def test_raw_lstm_gradient_op_rejects_mismatched_saved_tensors(compiled_op, what, gates, grad_final_states, message):
    grad = compiled_op.deeprnn_fast_stacked_lstm_grad
    ones = lambda *s: tf.ones(s, tf.float32)  # noqa: E731
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        grad(ones(3, 4, 5), [ones(5, 24)], [ones(6, 24)], ones(1, 2, 3, 6), ones(1, 4, 3, 6), ones(*gates),
             ones(3, 4, 6), ones(*grad_final_states), tokens=[], **NO_MODIFIERS)


@pytest.mark.parametrize("op", list(RAW_OPS))
def test_raw_op_rejects_integer_dtype(compiled_op, op):
    raw = getattr(compiled_op, RAW_OPS[op])
    values = {name: tf.nest.map_structure(lambda t: tf.cast(t, tf.int32), value)
              for name, value in raw_valid_args(op).items()}
    with pytest.raises((TypeError, tf.errors.InvalidArgumentError, tf.errors.NotFoundError)):
        raw(**values, tokens=[], **NO_MODIFIERS)


@pytest.mark.parametrize("cell", CELLS)
def test_traced_ops_infer_every_static_shape(compiled_op, cell):
    # The shape functions (tf/shape_inference.h) must give the outputs their full static shapes from the weights
    # alone, batch unknown; the hidden size here is only known from the recurrent kernels' rows.
    family = {"tanh": "rnn", "relu": "rnn", "gru": "gru", "lstm": "lstm"}[cell]
    op = getattr(compiled_op, RAW_OPS[family])
    grad = getattr(compiled_op, RAW_OPS[family] + "_grad")
    attrs = {"activation": cell} if family == "rnn" else {}
    gates, saved_slots = {"rnn": (1, 0), "gru": (3, 4), "lstm": (4, 5)}[family]
    B, T, D, H, L = None, 4, 5, 6, 2
    bias_shape = [2, 3 * H] if family == "gru" else [gates * H]
    states_shape = [L, 2, B, H] if family == "lstm" else [L, B, H]
    specs = [tf.TensorSpec([B, T, D]), tf.TensorSpec([D, None]), tf.TensorSpec([H, gates * H]),
             tf.TensorSpec([None, None]), tf.TensorSpec([H, gates * H]), tf.TensorSpec(bias_shape),
             tf.TensorSpec(bias_shape), tf.TensorSpec(states_shape)]
    seen = {}

    @tf.function(input_signature=specs)
    def trace(x, k0, k1, r0, r1, b0, b1, h0):
        forward = op(x, [k0, k1], [r0, r1], [b0, b1], h0, tokens=[], **NO_MODIFIERS, **attrs)
        seen["forward"] = [t.shape.as_list() for t in forward]
        backward = grad(x, [k0, k1], [r0, r1], h0, *forward[2:], forward[0], forward[1], tokens=[], **NO_MODIFIERS, **attrs)
        seen["grad"] = [t.shape.as_list() for t in tf.nest.flatten(backward)]
        without_dx = grad(x, [k0, k1], [r0, r1], h0, *forward[2:], forward[0], forward[1], tokens=[], **NO_MODIFIERS,
                          compute_grad_inputs=False, **attrs)
        seen["grad without dX"] = [t.shape.as_list() for t in tf.nest.flatten(without_dx)]
        return forward[0]

    trace.get_concrete_function()
    expected = [[B, T, H], states_shape, [L, T, B, H]] + ([[L, T, B, saved_slots * H]] if saved_slots else [])
    assert seen["forward"] == expected
    weights = [[D, None], [H, gates * H], [None, None], [H, gates * H], bias_shape, bias_shape]
    assert seen["grad"] == [[B, T, D]] + weights + [states_shape]
    assert seen["grad without dX"] == [[B, T, 0]] + weights + [states_shape]


# ---- sparse and ragged arguments: a short message that says to densify, never a dump of the tensor -----------------

def sparse_cases():
    for cell in CELLS:
        # An LSTM layer's initial state is a pair (h, c): its h is initial_states[1][0].
        state = "initial_states[1][0]" if layout(cell).states > 1 else "initial_states[1]"
        for argument in ("inputs", "kernels[0]", state):
            for fn in IMPLEMENTATIONS:
                yield pytest.param(fn, cell, argument, id=f"{fn}-{cell}-{argument}")


@pytest.mark.parametrize("fn, cell, argument", list(sparse_cases()))
def test_sparse_arguments_are_refused_in_one_short_line(fn, cell, argument):
    values = [v if not isinstance(v, list) else list(v) for v in cell_args(cell, seed=8)]
    if argument == "inputs":
        values[0] = tf.sparse.from_dense(values[0])
        shape = values[0].shape
    elif argument == "kernels[0]":
        values[1][0] = tf.sparse.from_dense(values[1][0])
        shape = values[1][0].shape
    elif argument == "initial_states[1]":
        values[4][1] = tf.sparse.from_dense(values[4][1])
        shape = values[4][1].shape
    else:
        h, c = values[4][1]
        values[4][1] = (tf.sparse.from_dense(h), c)
        shape = values[4][1][0].shape
    with pytest.raises(ValueError) as error:
        implementation(fn, cell)(*values)
    message = str(error.value)
    assert message == (f"{argument} must be a dense tensor; got a tf.SparseTensor of shape {shape} (densify it "
                       "first, e.g. with tf.sparse.to_dense)")


@pytest.mark.parametrize("fn", IMPLEMENTATIONS)
@pytest.mark.parametrize("cell", CELLS)
def test_ragged_inputs_are_refused_in_one_short_line(fn, cell):
    args = cell_args(cell)
    ragged = tf.RaggedTensor.from_tensor(args[0], lengths=[4, 2, 3])
    with pytest.raises(ValueError, match=r"^inputs must be a dense tensor; got a tf.RaggedTensor of shape \(3, None, "
                                         r"5\) \(densify it first, e\.g\. with its \.to_tensor\(\)\)$"):
        implementation(fn, cell)(ragged, *args[1:])


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


SECOND_ORDER_NAMES = {"tanh": ("StackedRnn", "rnn"), "relu": ("StackedRnn", "rnn"), "gru": ("StackedGru", "gru"),
                      "lstm": ("StackedLstm", "lstm")}


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize("cell", CELLS)
def test_second_order_gradients_say_they_are_not_implemented(compiled_op, cell, graph):
    op, function = SECOND_ORDER_NAMES[cell]
    with pytest.raises(deeprnn_fast.ops.SecondOrderGradientError) as error:
        _differentiate_twice(fused_fn(cell), cell_args(cell, seed=9), graph)
    # Also what TensorFlow raises for an op without a gradient, so that code catching that still works.
    assert isinstance(error.value, NotImplementedError) and isinstance(error.value, LookupError)
    message = str(error.value)
    assert f"second-order gradients (and forward-mode autodiff) of the fused DeeprnnFast>{op} op are not " \
           "implemented" in message
    assert f"use deeprnn_fast.reference.stacked_{function}" in message


@pytest.mark.parametrize("cell", CELLS)
def test_the_reference_gives_the_second_order_gradients_the_fused_op_does_not(cell):
    # What the error message advises works, and its first-order gradients are the fused op's.
    values = cell_args(cell, seed=10)
    first, second = _differentiate_twice(reference_fn(cell), values, graph=False)
    assert float(tf.reduce_max(tf.abs(second))) > 1e-3
    x = values[0]
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs, _ = fused_fn(cell)(x, *values[1:])
        loss = tf.reduce_sum(outputs * outputs)
    np.testing.assert_allclose(tape.gradient(loss, x), first, rtol=1e-4, atol=1e-5)
