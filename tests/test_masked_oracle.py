"""The float64 oracle of masks and dropout (deeprnn_fast/testing/masked_oracle.py), which the GPU check compares the
CUDA passes with, against the plain-TensorFlow reference and TensorFlow's autodiff through it: every cell, dense and
token inputs, a mask with padding, holes and a row that takes no step, all three dropouts (one mask and one per
gate), both output rules of masked steps."""
import numpy as np
import pytest

from deeprnn_fast.testing import masked_oracle

tf = pytest.importorskip("tensorflow")
from deeprnn_fast import reference  # noqa: E402


def _problem(rng, cell, tokens, per_gate):
    B, T, D, H, L = 4, 5, 3, 6, 3
    G = masked_oracle.GATES[cell]
    S = 2 if cell == "lstm" else 1
    inputs = rng.integers(0, D, (B, T)).astype(np.int32) if tokens else rng.normal(size=(B, T, D))
    kernels = [rng.normal(scale=0.5, size=(D if l == 0 else H, G * H)) for l in range(L)]
    recurrent = [rng.normal(scale=0.4, size=(H, G * H)) for _ in range(L)]
    biases = [rng.normal(scale=0.2, size=(2, 3 * H) if cell == "gru" else (G * H,)) for _ in range(L)]
    h0 = rng.normal(scale=0.5, size=(L, S, B, H) if S == 2 else (L, B, H))
    mask = rng.random((B, T)) > 0.35
    mask[0] = [False, False, True, True, True]  # left padding
    mask[1] = [True, True, True, False, False]  # right padding
    mask[3] = False                             # no step at all
    masks = G if per_gate else 1
    drop = lambda *shape: (rng.random(shape) > 0.3) / 0.7  # noqa: E731
    mods = {"mask": mask, "input_dropout": [drop(masks, B, D if l == 0 else H) for l in range(L)],
            "recurrent_dropout": [drop(masks, B, H) for _ in range(L)], "between_dropout": drop(L - 1, T, B, H)}
    return inputs, kernels, recurrent, biases, h0, mods


@pytest.mark.parametrize("cell,tokens,per_gate,zero_output",
                         [("tanh", False, False, False), ("relu", True, False, True), ("gru", False, True, False),
                          ("gru", True, False, True), ("lstm", False, True, True), ("lstm", True, True, False)])
def test_oracle_matches_reference_and_its_autodiff(rng, cell, tokens, per_gate, zero_output):
    inputs, kernels, recurrent, biases, h0, mods = _problem(rng, cell, tokens, per_gate)
    B, T = inputs.shape[:2]
    L, H = len(kernels), recurrent[0].shape[0]
    dy = rng.normal(size=(B, T, H))
    dfinal = rng.normal(size=h0.shape)
    got = masked_oracle.run(cell, inputs, kernels, recurrent, biases, h0, dy, dfinal,
                            zero_output_for_mask=zero_output, **mods)

    function = {"tanh": reference.stacked_rnn, "relu": reference.stacked_rnn, "gru": reference.stacked_gru,
                "lstm": reference.stacked_lstm}[cell]
    extra = {"activation": cell} if cell in ("tanh", "relu") else {}
    variables = [tf.Variable(w) for w in kernels + recurrent + biases] + [tf.Variable(h0)]
    x = tf.Variable(inputs) if not tokens else tf.constant(inputs)
    with tf.GradientTape() as tape:
        k, r, b = variables[:L], variables[L:2 * L], variables[2 * L:3 * L]
        states = [tuple(tf.unstack(variables[-1][l])) if cell == "lstm" else variables[-1][l] for l in range(L)]
        outputs, final = function(x, k, r, b, states, zero_output_for_mask=zero_output, **extra,
                                  **{n: v for n, v in mods.items()})
        final = tf.stack([tf.stack(f) if cell == "lstm" else f for f in final])
        loss = tf.reduce_sum(outputs * dy) + tf.reduce_sum(final * dfinal)
    grads = tape.gradient(loss, variables + ([] if tokens else [x]))

    np.testing.assert_allclose(got["outputs"], outputs.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got["final_states"], final.numpy(), rtol=1e-10, atol=1e-12)
    want = {"grad_kernels": grads[:L], "grad_recurrent_kernels": grads[L:2 * L], "grad_biases": grads[2 * L:3 * L]}
    for name, arrays in want.items():
        for l in range(L):
            dense = tf.convert_to_tensor(arrays[l]).numpy()
            np.testing.assert_allclose(got[name][l], dense, rtol=1e-9, atol=1e-11, err_msg=f"{name}[{l}]")
    np.testing.assert_allclose(got["grad_initial_states"], grads[3 * L].numpy(), rtol=1e-9, atol=1e-11)
    if not tokens:
        np.testing.assert_allclose(got["grad_inputs"], grads[-1].numpy(), rtol=1e-9, atol=1e-11)
    # The masks really changed the problem: the row without a step kept its initial states.
    np.testing.assert_array_equal(got["final_states"][..., 3, :], h0[..., 3, :])
