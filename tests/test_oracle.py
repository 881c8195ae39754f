"""The float64 NumPy oracle (deeprnn_fast.testing.oracle), tanh RNN and GRU: its backward against finite differences of its
forward, and both against the plain-TensorFlow reference and TensorFlow's autodiff (where TensorFlow is installed)."""
import zlib

import numpy as np
import pytest

from deeprnn_fast.testing import oracle


def _loss(p, x, wx, wh, b, h0):
    """sum(outputs * dY) + sum(final_states * dFinal): its gradients are what backward computes for (dY, dFinal)."""
    y, fin, _ = oracle.forward(x, wx, wh, b, h0, p.activation)
    return float(np.sum(y * p.grad_outputs) + np.sum(fin * p.grad_final_states))


def _numeric_grad(f, array, eps=1e-6):
    g = np.zeros_like(array)
    it = np.nditer(array, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = array[i]
        array[i] = old + eps
        up = f()
        array[i] = old - eps
        down = f()
        array[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("shape", [(2, 3, 2, 3, 2), (1, 2, 3, 2, 3), (3, 1, 2, 4, 1)])
def test_backward_matches_finite_differences(activation, shape):
    rng = np.random.default_rng(zlib.crc32(repr((activation, shape)).encode()))
    p = oracle.random_problem(rng, *shape, dtype=np.float64, activation=activation, weight_scale=0.8)
    x, h0 = p.inputs.copy(), p.initial_states.copy()
    wx = [w.copy() for w in p.kernels]
    wh = [w.copy() for w in p.recurrent_kernels]
    b = [v.copy() for v in p.biases]
    _, _, act = oracle.forward(x, wx, wh, b, h0, activation)
    # (relu: a pre-activation within eps of 0 would spoil the finite difference; with these sizes the odds are
    # about 1e-5.)
    g = oracle.backward(x, wx, wh, b, h0, act, p.grad_outputs, p.grad_final_states, activation)
    f = lambda: _loss(p, x, wx, wh, b, h0)  # noqa: E731
    np.testing.assert_allclose(g.grad_inputs, _numeric_grad(f, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(g.grad_initial_states, _numeric_grad(f, h0), rtol=1e-6, atol=1e-8)
    for l in range(len(wx)):
        np.testing.assert_allclose(g.grad_kernels[l], _numeric_grad(f, wx[l]), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(g.grad_recurrent_kernels[l], _numeric_grad(f, wh[l]), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(g.grad_biases[l], _numeric_grad(f, b[l]), rtol=1e-6, atol=1e-8)


def test_grad_preactivations_is_dloss_dz():
    """dZ of the top layer's last cell is (dY + dFinal) * phi'(Z) there: nothing flows into it from later cells."""
    rng = np.random.default_rng(5)
    p = oracle.random_problem(rng, 2, 3, 2, 4, 2, dtype=np.float64)
    _, _, act = oracle.forward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states)
    g = oracle.backward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, act, p.grad_outputs,
                        p.grad_final_states)
    h = act[1, 2]
    np.testing.assert_allclose(g.grad_preactivations[1, 2],
                               (p.grad_outputs[:, 2, :] + p.grad_final_states[1]) * (1 - h * h), rtol=1e-14)


def test_forward_layouts_and_empty_sequences():
    rng = np.random.default_rng(6)
    p = oracle.random_problem(rng, 3, 4, 5, 6, 2, dtype=np.float32)
    y, fin, act = oracle.forward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states)
    assert y.dtype == np.float64 and y.shape == (3, 4, 6) and fin.shape == (2, 3, 6) and act.shape == (2, 4, 3, 6)
    np.testing.assert_array_equal(y, act[1].transpose(1, 0, 2))
    np.testing.assert_array_equal(fin, act[:, 3])
    # T = 0: the final states are the initial ones, and so are their gradients.
    p0 = oracle.random_problem(rng, 3, 0, 5, 6, 2, dtype=np.float64)
    y0, fin0, act0 = oracle.forward(p0.inputs, p0.kernels, p0.recurrent_kernels, p0.biases, p0.initial_states)
    assert y0.shape == (3, 0, 6) and act0.shape == (2, 0, 3, 6)
    np.testing.assert_array_equal(fin0, p0.initial_states)
    g0 = oracle.backward(p0.inputs, p0.kernels, p0.recurrent_kernels, p0.biases, p0.initial_states, act0,
                         p0.grad_outputs, p0.grad_final_states)
    np.testing.assert_array_equal(g0.grad_initial_states, p0.grad_final_states)
    assert all(not np.any(w) for w in g0.grad_kernels + g0.grad_recurrent_kernels + g0.grad_biases)


def test_bad_arguments_raise_clear_errors():
    rng = np.random.default_rng(7)
    p = oracle.random_problem(rng, 2, 3, 4, 5, 2)
    with pytest.raises(ValueError, match="activation"):
        oracle.forward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, "sigmoid")
    with pytest.raises(ValueError, match=r"kernels\[1\] must have shape \(5, 5\)"):
        oracle.forward(p.inputs, [p.kernels[0], p.kernels[1][:4]], p.recurrent_kernels, p.biases)
    with pytest.raises(ValueError, match="initial_states must have shape"):
        oracle.forward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states[:, :1])
    with pytest.raises(ValueError, match="one array per layer"):
        oracle.forward(p.inputs, p.kernels, p.recurrent_kernels[:1], p.biases)


def test_relative_error_never_passes_nan():
    want = np.array([1.0, 2.0])
    assert oracle.relative_error(want, want) == 0.0
    assert oracle.relative_error([1.0, np.nan], want) == float("inf")
    assert oracle.relative_error([0.0, 0.0], [0.0, 0.0]) == 0.0
    assert oracle.relative_error([1.0, 2.0 + 1e-3], want) == pytest.approx(1e-3 / np.sqrt(5))


def test_matches_tensorflow_reference_and_autodiff():
    tf = pytest.importorskip("tensorflow")
    from deeprnn_fast import reference

    rng = np.random.default_rng(8)
    for activation in ("tanh", "relu"):
        p = oracle.random_problem(rng, 3, 5, 4, 6, 3, dtype=np.float64, activation=activation)
        variables = [tf.Variable(a) for a in [p.inputs] + p.kernels + p.recurrent_kernels + p.biases
                     + list(p.initial_states)]
        L = 3
        with tf.GradientTape() as tape:
            x, rest = variables[0], variables[1:]
            wx, wh, b, h0 = rest[:L], rest[L:2 * L], rest[2 * L:3 * L], rest[3 * L:]
            y, finals = reference.stacked_rnn(x, wx, wh, b, h0, activation=activation)
            loss = tf.reduce_sum(y * p.grad_outputs) + tf.reduce_sum(tf.stack(finals) * p.grad_final_states)
        grads = tape.gradient(loss, variables)
        oy, ofin, act = oracle.forward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states,
                                       activation)
        np.testing.assert_allclose(oy, y.numpy(), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(ofin, tf.stack(finals).numpy(), rtol=1e-12, atol=1e-13)
        g = oracle.backward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, act,
                            p.grad_outputs, p.grad_final_states, activation)
        mine = [g.grad_inputs] + g.grad_kernels + g.grad_recurrent_kernels + g.grad_biases + list(g.grad_initial_states)
        for got, want in zip(mine, grads):
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-12)


# ---- the GRU ----

def _gru_loss(p, x, wx, wh, b, h0):
    y, fin, _, _ = oracle.gru_forward(x, wx, wh, b, h0)
    return float(np.sum(y * p.grad_outputs) + np.sum(fin * p.grad_final_states))


@pytest.mark.parametrize("shape", [(2, 3, 2, 3, 2), (1, 2, 3, 2, 3), (3, 1, 2, 4, 1)])
def test_gru_backward_matches_finite_differences(shape):
    rng = np.random.default_rng(zlib.crc32(repr(("gru", shape)).encode()))
    p = oracle.random_gru_problem(rng, *shape, dtype=np.float64, weight_scale=0.8)
    x, h0 = p.inputs.copy(), p.initial_states.copy()
    wx = [w.copy() for w in p.kernels]
    wh = [w.copy() for w in p.recurrent_kernels]
    b = [v.copy() for v in p.biases]
    _, _, act, gates = oracle.gru_forward(x, wx, wh, b, h0)
    g = oracle.gru_backward(x, wx, wh, b, h0, act, gates, p.grad_outputs, p.grad_final_states)
    f = lambda: _gru_loss(p, x, wx, wh, b, h0)  # noqa: E731
    np.testing.assert_allclose(g.grad_inputs, _numeric_grad(f, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(g.grad_initial_states, _numeric_grad(f, h0), rtol=1e-6, atol=1e-8)
    for l in range(len(wx)):
        np.testing.assert_allclose(g.grad_kernels[l], _numeric_grad(f, wx[l]), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(g.grad_recurrent_kernels[l], _numeric_grad(f, wh[l]), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(g.grad_biases[l], _numeric_grad(f, b[l]), rtol=1e-6, atol=1e-8)


def test_gru_gates_and_grad_gates_layouts():
    """gates rows are [z | r | n | q] of each cell, and grad_gates rows [dn | dz | dr | dn * r], checked on the top
    layer's last cell, where dh = dY + dFinal."""
    rng = np.random.default_rng(9)
    p = oracle.random_gru_problem(rng, 2, 3, 4, 5, 2, dtype=np.float64)
    y, fin, act, gates = oracle.gru_forward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states)
    H = 5
    np.testing.assert_array_equal(y, act[1].transpose(1, 0, 2))
    np.testing.assert_array_equal(fin, act[:, 2])
    x, h = act[0, 2], act[1, 1]  # the input and previous state of cell (1, 2)
    xp = x @ p.kernels[1] + p.biases[1][0]
    hp = h @ p.recurrent_kernels[1] + p.biases[1][1]
    z = 1 / (1 + np.exp(-(xp[:, :H] + hp[:, :H])))
    r = 1 / (1 + np.exp(-(xp[:, H:2 * H] + hp[:, H:2 * H])))
    q = hp[:, 2 * H:]
    n = np.tanh(xp[:, 2 * H:] + r * q)
    np.testing.assert_allclose(gates[1, 2], np.concatenate([z, r, n, q], axis=1), rtol=1e-13)
    np.testing.assert_allclose(act[1, 2], z * h + (1 - z) * n, rtol=1e-13)
    g = oracle.gru_backward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, act, gates,
                            p.grad_outputs, p.grad_final_states)
    dh = p.grad_outputs[:, 2, :] + p.grad_final_states[1]
    dn = dh * (1 - z) * (1 - n * n)
    want = np.concatenate([dn, dh * (h - n) * z * (1 - z), dn * q * r * (1 - r), dn * r], axis=1)
    np.testing.assert_allclose(g.grad_gates[1, 2], want, rtol=1e-13)


def test_gru_empty_sequences_and_bad_arguments():
    rng = np.random.default_rng(10)
    p0 = oracle.random_gru_problem(rng, 3, 0, 5, 6, 2, dtype=np.float64)
    y0, fin0, act0, gates0 = oracle.gru_forward(p0.inputs, p0.kernels, p0.recurrent_kernels, p0.biases,
                                                p0.initial_states)
    assert y0.shape == (3, 0, 6) and act0.shape == (2, 0, 3, 6) and gates0.shape == (2, 0, 3, 24)
    np.testing.assert_array_equal(fin0, p0.initial_states)
    g0 = oracle.gru_backward(p0.inputs, p0.kernels, p0.recurrent_kernels, p0.biases, p0.initial_states, act0,
                             gates0, p0.grad_outputs, p0.grad_final_states)
    np.testing.assert_array_equal(g0.grad_initial_states, p0.grad_final_states)
    assert all(not np.any(w) for w in g0.grad_kernels + g0.grad_recurrent_kernels + g0.grad_biases)
    p = oracle.random_gru_problem(rng, 2, 3, 4, 5, 2)
    with pytest.raises(ValueError, match=r"kernels\[0\] must have shape \(4, 3 \* units\)"):
        oracle.gru_forward(p.inputs, [p.kernels[0][:, :14], p.kernels[1]], p.recurrent_kernels, p.biases)
    with pytest.raises(ValueError, match=r"biases\[1\] must have shape \(2, 15\)"):
        oracle.gru_forward(p.inputs, p.kernels, p.recurrent_kernels, [p.biases[0], p.biases[1][0]])
    with pytest.raises(ValueError, match=r"recurrent_kernels\[0\] must have shape \(5, 15\)"):
        oracle.gru_forward(p.inputs, p.kernels, [p.recurrent_kernels[0][:4], p.recurrent_kernels[1]], p.biases)


def test_gru_matches_tensorflow_reference_and_autodiff():
    tf = pytest.importorskip("tensorflow")
    from deeprnn_fast import reference
    if not hasattr(reference, "stacked_gru"):
        pytest.skip("deeprnn_fast.reference.stacked_gru does not exist yet")

    rng = np.random.default_rng(11)
    p = oracle.random_gru_problem(rng, 3, 5, 4, 6, 3, dtype=np.float64)
    L = 3
    variables = [tf.Variable(a) for a in [p.inputs] + p.kernels + p.recurrent_kernels + p.biases
                 + list(p.initial_states)]
    with tf.GradientTape() as tape:
        x, rest = variables[0], variables[1:]
        wx, wh, b, h0 = rest[:L], rest[L:2 * L], rest[2 * L:3 * L], rest[3 * L:]
        y, finals = reference.stacked_gru(x, wx, wh, b, h0)
        loss = tf.reduce_sum(y * p.grad_outputs) + tf.reduce_sum(tf.stack(finals) * p.grad_final_states)
    grads = tape.gradient(loss, variables)
    oy, ofin, act, gates = oracle.gru_forward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states)
    np.testing.assert_allclose(oy, y.numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(ofin, tf.stack(finals).numpy(), rtol=1e-12, atol=1e-13)
    g = oracle.gru_backward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, act, gates,
                            p.grad_outputs, p.grad_final_states)
    mine = [g.grad_inputs] + g.grad_kernels + g.grad_recurrent_kernels + g.grad_biases + list(g.grad_initial_states)
    for got, want in zip(mine, grads):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-12)
