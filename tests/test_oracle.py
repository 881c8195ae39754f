"""The float64 NumPy oracle (deeprnn_fast.testing.oracle), tanh RNN, GRU and LSTM, dense and token inputs: its backward
against finite differences of its forward, token inputs against the one-hot inputs they stand for, and both against the
plain-TensorFlow reference and TensorFlow's autodiff (where TensorFlow is installed)."""
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


# ---- the LSTM ----

def _lstm_loss(p, x, wx, wh, b, s0):
    y, fin, _, _ = oracle.lstm_forward(x, wx, wh, b, s0)
    return float(np.sum(y * p.grad_outputs) + np.sum(fin * p.grad_final_states))


@pytest.mark.parametrize("shape", [(2, 3, 2, 3, 2), (1, 2, 3, 2, 3), (3, 1, 2, 4, 1)])
def test_lstm_backward_matches_finite_differences(shape):
    rng = np.random.default_rng(zlib.crc32(repr(("lstm", shape)).encode()))
    p = oracle.random_lstm_problem(rng, *shape, dtype=np.float64, weight_scale=0.8)
    x, s0 = p.inputs.copy(), p.initial_states.copy()
    wx = [w.copy() for w in p.kernels]
    wh = [w.copy() for w in p.recurrent_kernels]
    b = [v.copy() for v in p.biases]
    _, _, act, gates = oracle.lstm_forward(x, wx, wh, b, s0)
    g = oracle.lstm_backward(x, wx, wh, b, s0, act, gates, p.grad_outputs, p.grad_final_states)
    f = lambda: _lstm_loss(p, x, wx, wh, b, s0)  # noqa: E731
    np.testing.assert_allclose(g.grad_inputs, _numeric_grad(f, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(g.grad_initial_states, _numeric_grad(f, s0), rtol=1e-6, atol=1e-8)
    for l in range(len(wx)):
        np.testing.assert_allclose(g.grad_kernels[l], _numeric_grad(f, wx[l]), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(g.grad_recurrent_kernels[l], _numeric_grad(f, wh[l]), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(g.grad_biases[l], _numeric_grad(f, b[l]), rtol=1e-6, atol=1e-8)


def test_lstm_gates_and_grad_gates_layouts():
    """gates rows are [i | f | g | o | c'] of each cell and the states [L,2,B,H] are (h, c); grad_gates rows are
    [da_i | da_f | da_g | da_o], checked on the top layer's last cell, where dh = dY + dFinal_h, dc = dFinal_c."""
    rng = np.random.default_rng(12)
    p = oracle.random_lstm_problem(rng, 2, 3, 4, 5, 2, dtype=np.float64)
    y, fin, act, gates = oracle.lstm_forward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states)
    H = 5
    np.testing.assert_array_equal(y, act[1].transpose(1, 0, 2))
    np.testing.assert_array_equal(fin[:, 0], act[:, 2])
    np.testing.assert_array_equal(fin[:, 1], gates[:, 2, :, 4 * H:])
    x, h, c = act[0, 2], act[1, 1], gates[1, 1, :, 4 * H:]  # the input and previous states of cell (1, 2)
    a = x @ p.kernels[1] + h @ p.recurrent_kernels[1] + p.biases[1]
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    i, f, gg, o = sig(a[:, :H]), sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), sig(a[:, 3 * H:])
    c_new = f * c + i * gg
    np.testing.assert_allclose(gates[1, 2], np.concatenate([i, f, gg, o, c_new], axis=1), rtol=1e-13)
    np.testing.assert_allclose(act[1, 2], o * np.tanh(c_new), rtol=1e-13)
    g = oracle.lstm_backward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, act, gates,
                             p.grad_outputs, p.grad_final_states)
    dh = p.grad_outputs[:, 2, :] + p.grad_final_states[1, 0]
    tc = np.tanh(c_new)
    dc = p.grad_final_states[1, 1] + dh * o * (1 - tc * tc)
    want = np.concatenate([dc * gg * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - gg * gg),
                           dh * tc * o * (1 - o)], axis=1)
    np.testing.assert_allclose(g.grad_gates[1, 2], want, rtol=1e-13)


def test_lstm_empty_sequences_and_bad_arguments():
    rng = np.random.default_rng(13)
    p0 = oracle.random_lstm_problem(rng, 3, 0, 5, 6, 2, dtype=np.float64)
    y0, fin0, act0, gates0 = oracle.lstm_forward(p0.inputs, p0.kernels, p0.recurrent_kernels, p0.biases,
                                                 p0.initial_states)
    assert y0.shape == (3, 0, 6) and act0.shape == (2, 0, 3, 6) and gates0.shape == (2, 0, 3, 30)
    np.testing.assert_array_equal(fin0, p0.initial_states)
    g0 = oracle.lstm_backward(p0.inputs, p0.kernels, p0.recurrent_kernels, p0.biases, p0.initial_states, act0,
                              gates0, p0.grad_outputs, p0.grad_final_states)
    np.testing.assert_array_equal(g0.grad_initial_states, p0.grad_final_states)
    assert all(not np.any(w) for w in g0.grad_kernels + g0.grad_recurrent_kernels + g0.grad_biases)
    p = oracle.random_lstm_problem(rng, 2, 3, 4, 5, 2)
    with pytest.raises(ValueError, match=r"kernels\[0\] must have shape \(4, 4 \* units\)"):
        oracle.lstm_forward(p.inputs, [p.kernels[0][:, :18], p.kernels[1]], p.recurrent_kernels, p.biases)
    with pytest.raises(ValueError, match=r"biases\[1\] must have shape \(20,\)"):
        oracle.lstm_forward(p.inputs, p.kernels, p.recurrent_kernels, [p.biases[0], p.biases[1][:19]])
    with pytest.raises(ValueError, match=r"initial_states must have shape \(2, 2, 2, 5\)"):
        oracle.lstm_forward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states[:, 0])


def test_lstm_matches_tensorflow_reference_and_autodiff():
    tf = pytest.importorskip("tensorflow")
    from deeprnn_fast import reference

    rng = np.random.default_rng(14)
    p = oracle.random_lstm_problem(rng, 3, 5, 4, 6, 3, dtype=np.float64)
    L = 3
    states = [p.initial_states[l, k] for l in range(L) for k in range(2)]
    variables = [tf.Variable(a) for a in [p.inputs] + p.kernels + p.recurrent_kernels + p.biases + states]
    with tf.GradientTape() as tape:
        x, rest = variables[0], variables[1:]
        wx, wh, b, s0 = rest[:L], rest[L:2 * L], rest[2 * L:3 * L], rest[3 * L:]
        y, finals = reference.stacked_lstm(x, wx, wh, b, [(s0[2 * l], s0[2 * l + 1]) for l in range(L)])
        loss = tf.reduce_sum(y * p.grad_outputs) + tf.reduce_sum(
            tf.stack([tf.stack(pair) for pair in finals]) * p.grad_final_states)
    grads = tape.gradient(loss, variables)
    oy, ofin, act, gates = oracle.lstm_forward(p.inputs, p.kernels, p.recurrent_kernels, p.biases,
                                               p.initial_states)
    np.testing.assert_allclose(oy, y.numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(ofin, np.stack([np.stack([h.numpy(), c.numpy()]) for h, c in finals]), rtol=1e-12,
                               atol=1e-13)
    g = oracle.lstm_backward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, act, gates,
                             p.grad_outputs, p.grad_final_states)
    mine = ([g.grad_inputs] + g.grad_kernels + g.grad_recurrent_kernels + g.grad_biases
            + [g.grad_initial_states[l, k] for l in range(L) for k in range(2)])
    for got, want in zip(mine, grads):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-12)


# ---- token inputs ----

def _passes(cell, p, inputs):
    """Forward and backward of `cell` on p's weights with `inputs`: (forward results, gradients)."""
    if cell in ("tanh", "relu"):
        y, fin, act = oracle.forward(inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, cell)
        g = oracle.backward(inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, act, p.grad_outputs,
                            p.grad_final_states, cell)
        return (y, fin, act), g
    fwd, bwd = (oracle.gru_forward, oracle.gru_backward) if cell == "gru" else (oracle.lstm_forward,
                                                                                oracle.lstm_backward)
    y, fin, act, gates = fwd(inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states)
    g = bwd(inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, act, gates, p.grad_outputs,
            p.grad_final_states)
    return (y, fin, act, gates), g


RANDOM = {"tanh": oracle.random_problem, "relu": oracle.random_problem, "gru": oracle.random_gru_problem,
          "lstm": oracle.random_lstm_problem}


@pytest.mark.parametrize("cell", ["tanh", "relu", "gru", "lstm"])
def test_tokens_are_the_one_hot_inputs_they_stand_for(cell):
    """Token ids give what one-hot rows of the vocabulary give, forward and backward (grad_kernels[0] included:
    each token's row sums its steps' gradients, repeated tokens too), with no grad_inputs."""
    rng = np.random.default_rng(zlib.crc32(repr(("tokens", cell)).encode()))
    kw = {"activation": cell} if cell in ("tanh", "relu") else {}
    p = RANDOM[cell](rng, 3, 4, 5, 6, 2, dtype=np.float64, tokens=True, **kw)
    assert p.tokens and p.inputs.shape == (3, 4) and p.inputs.dtype == np.int32 and p.shape == (3, 4, 5, 6, 2)
    p.inputs[0, :] = 2  # a token repeated along a sequence and across the batch
    p.inputs[1, 1] = 2
    one_hot = np.eye(5)[p.inputs]
    fwd_tokens, g_tokens = _passes(cell, p, p.inputs)
    fwd_dense, g_dense = _passes(cell, p, one_hot)
    for got, want in zip(fwd_tokens, fwd_dense):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    assert g_tokens.grad_inputs is None and g_dense.grad_inputs.shape == (3, 4, 5)
    for name in ("grad_kernels", "grad_recurrent_kernels", "grad_biases"):
        for got, want in zip(getattr(g_tokens, name), getattr(g_dense, name)):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g_tokens.grad_initial_states, g_dense.grad_initial_states, rtol=1e-12, atol=1e-14)
    # A token that never occurs gets no gradient; one that does, some (relu units below 0 get none).
    unused = sorted(set(range(5)) - set(p.inputs.ravel().tolist()))
    assert all(not np.any(g_tokens.grad_kernels[0][v]) for v in unused)
    assert np.count_nonzero(g_tokens.grad_kernels[0][2]) >= (1 if cell == "relu" else 6 * p.gates)


def test_token_ids_outside_the_vocabulary_are_refused():
    p = oracle.random_gru_problem(np.random.default_rng(15), 2, 3, 4, 5, 1, tokens=True)
    bad = p.inputs.copy()
    bad[1, 2] = 4
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 4\)"):
        oracle.gru_forward(bad, p.kernels, p.recurrent_kernels, p.biases, p.initial_states)
    bad[1, 2] = -1
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 4\)"):
        oracle.forward(bad, [np.ones((4, 5))], [np.ones((5, 5))], [np.ones(5)])
