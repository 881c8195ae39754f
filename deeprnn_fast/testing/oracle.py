"""Float64 NumPy forward and backward of the stacked RNN and GRU: the oracle the kernels are checked against.

No TensorFlow here, so it also runs on the GPU machines (which have NumPy and PyTorch but no TensorFlow), in the GPU
check script (deeprnn_fast.testing.gpu_check) and in the tests. Everything is computed in float64 whatever the input dtype,
one cell at a time, in the library's layouts (csrc/deeprnn/stacked_rnn.h):

    inputs [B,T,D]  kernels[l] [D or H, H]  recurrent_kernels[l] [H,H]  biases[l] [H]  initial_states [L,B,H]
    outputs [B,T,H]  final_states [L,B,H]  activations [L,T,B,H]  grad_preactivations [L,T,B,H]

    H_t^(l) = phi(H_t^(l-1) W_x^(l) + H_{t-1}^(l) W_h^(l) + b^(l)),   H_t^(-1) = X_t,   H_{-1}^(l) = initial state.

The GRU (gru_forward, gru_backward; csrc/deeprnn/stacked_gru.h) is Keras' GRUCell with reset_after=True, gate order
[z, r, n], with kernels[l] [D or H, 3H], recurrent_kernels[l] [H, 3H], biases[l] [2, 3H] (input bias bx in row 0,
recurrent bias bh in row 1), and in addition gates [L,T,B,4H] (per cell and row [z | r | n | q]) and grad_gates
[L,T,B,4H] (per cell and row [dn | dz | dr | dn * r], the gradients of the gates' arguments):

    z = sigmoid(x Wx_z + bx_z + h Wh_z + bh_z),  r likewise,  q = h Wh_n + bh_n,  n = tanh(x Wx_n + bx_n + r q),
    h' = z h + (1 - z) n.
"""
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

__all__ = ["ACTIVATIONS", "Problem", "random_problem", "forward", "backward", "relative_error", "GruProblem",
           "random_gru_problem", "gru_forward", "gru_backward"]

ACTIVATIONS = ("tanh", "relu")


def _phi(activation, z):
    if activation == "tanh":
        return np.tanh(z)
    if activation == "relu":
        return np.maximum(z, 0.0)
    raise ValueError(f"activation must be one of {ACTIVATIONS}; got {activation!r}")


def _phi_grad_from_output(activation, h):
    """phi'(z) written with h = phi(z): 1 - h^2 for tanh, [h > 0] for relu (h > 0 exactly when z > 0)."""
    return 1.0 - h * h if activation == "tanh" else (h > 0).astype(np.float64)


def _as64(name, value, ndim):
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != ndim:
        raise ValueError(f"{name} must have rank {ndim}; got shape {array.shape}")
    return array


def _sizes(inputs, kernels, recurrent_kernels, biases):
    if not (len(kernels) == len(recurrent_kernels) == len(biases)) or not kernels:
        raise ValueError("kernels, recurrent_kernels and biases must hold one array per layer (at least one); got "
                         f"{len(kernels)}, {len(recurrent_kernels)}, {len(biases)}")
    B, T, D = inputs.shape
    H = np.shape(kernels[0])[1]
    L = len(kernels)
    for l in range(L):
        want = (D if l == 0 else H, H)
        if np.shape(kernels[l]) != want:
            raise ValueError(f"kernels[{l}] must have shape {want}; got {np.shape(kernels[l])}")
        if np.shape(recurrent_kernels[l]) != (H, H):
            raise ValueError(f"recurrent_kernels[{l}] must have shape {(H, H)}; got {np.shape(recurrent_kernels[l])}")
        if np.shape(biases[l]) != (H,):
            raise ValueError(f"biases[{l}] must have shape {(H,)}; got {np.shape(biases[l])}")
    return B, T, D, H, L


def _initial(initial_states, L, B, H):
    if initial_states is None:
        return np.zeros((L, B, H))
    h0 = np.asarray(initial_states, dtype=np.float64)
    if h0.shape != (L, B, H):
        raise ValueError(f"initial_states must have shape {(L, B, H)}; got {h0.shape}")
    return h0


def forward(inputs, kernels, recurrent_kernels, biases, initial_states=None, activation="tanh"):
    """Returns (outputs [B,T,H], final_states [L,B,H], activations [L,T,B,H]), all float64.

    initial_states: None (zeros) or an array [L,B,H] (a list of L arrays [B,H] works too).
    """
    x = _as64("inputs", inputs, 3)
    B, T, D, H, L = _sizes(x, kernels, recurrent_kernels, biases)
    h0 = _initial(initial_states, L, B, H)
    _phi(activation, np.zeros(0))  # rejects an unknown activation before any work
    wx = [np.asarray(w, np.float64) for w in kernels]
    wh = [np.asarray(w, np.float64) for w in recurrent_kernels]
    b = [np.asarray(v, np.float64) for v in biases]
    activations = np.empty((L, T, B, H))
    for l in range(L):
        h = h0[l]
        for t in range(T):
            below = x[:, t, :] if l == 0 else activations[l - 1, t]
            h = _phi(activation, below @ wx[l] + h @ wh[l] + b[l])
            activations[l, t] = h
    outputs = activations[L - 1].transpose(1, 0, 2).copy() if T else np.zeros((B, 0, H))
    final_states = activations[:, T - 1].copy() if T else h0.copy()
    return outputs, final_states, activations


@dataclass
class Gradients:
    grad_inputs: np.ndarray                   # [B,T,D]
    grad_kernels: List[np.ndarray]            # L: [D,H], then [H,H]
    grad_recurrent_kernels: List[np.ndarray]  # L: [H,H]
    grad_biases: List[np.ndarray]             # L: [H]
    grad_initial_states: np.ndarray           # [L,B,H]
    grad_preactivations: np.ndarray           # [L,T,B,H]


def backward(inputs, kernels, recurrent_kernels, biases, initial_states, activations, grad_outputs,
             grad_final_states, activation="tanh"):
    """Gradients of a scalar loss with respect to every input of `forward`, given dLoss/d outputs [B,T,H] and
    dLoss/d final_states [L,B,H]; `activations` [L,T,B,H] as `forward` returned them. Returns a Gradients."""
    x = _as64("inputs", inputs, 3)
    B, T, D, H, L = _sizes(x, kernels, recurrent_kernels, biases)
    h0 = _initial(initial_states, L, B, H)
    act = _as64("activations", activations, 4)
    dy = _as64("grad_outputs", grad_outputs, 3)
    dfinal = _as64("grad_final_states", grad_final_states, 3)
    if act.shape != (L, T, B, H) or dy.shape != (B, T, H) or dfinal.shape != (L, B, H):
        raise ValueError(f"activations, grad_outputs, grad_final_states must have shapes {(L, T, B, H)}, "
                         f"{(B, T, H)}, {(L, B, H)}; got {act.shape}, {dy.shape}, {dfinal.shape}")
    _phi(activation, np.zeros(0))
    wx = [np.asarray(w, np.float64) for w in kernels]
    wh = [np.asarray(w, np.float64) for w in recurrent_kernels]

    dz = np.zeros((L, T, B, H))
    for l in reversed(range(L)):
        for t in reversed(range(T)):
            g = np.zeros((B, H))
            if l == L - 1:
                g += dy[:, t, :]
            if t == T - 1:
                g += dfinal[l]
            if l + 1 < L:
                g += dz[l + 1, t] @ wx[l + 1].T
            if t + 1 < T:
                g += dz[l, t + 1] @ wh[l].T
            dz[l, t] = g * _phi_grad_from_output(activation, act[l, t])

    grad_inputs = np.zeros((B, T, D))
    grad_kernels = [np.zeros_like(w) for w in wx]
    grad_recurrent = [np.zeros_like(w) for w in wh]
    grad_biases = [np.zeros(H) for _ in range(L)]
    grad_initial = dfinal.copy() if T == 0 else np.zeros((L, B, H))
    for l in range(L):
        for t in range(T):
            below = x[:, t, :] if l == 0 else act[l - 1, t]
            previous = h0[l] if t == 0 else act[l, t - 1]
            grad_kernels[l] += below.T @ dz[l, t]
            grad_recurrent[l] += previous.T @ dz[l, t]
            grad_biases[l] += dz[l, t].sum(axis=0)
            if l == 0:
                grad_inputs[:, t, :] = dz[0, t] @ wx[0].T
        if T:
            grad_initial[l] = dz[l, 0] @ wh[l].T
    return Gradients(grad_inputs, grad_kernels, grad_recurrent, grad_biases, grad_initial, dz)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _gru_sizes(inputs, kernels, recurrent_kernels, biases):
    if not (len(kernels) == len(recurrent_kernels) == len(biases)) or not kernels:
        raise ValueError("kernels, recurrent_kernels and biases must hold one array per layer (at least one); got "
                         f"{len(kernels)}, {len(recurrent_kernels)}, {len(biases)}")
    B, T, D = inputs.shape
    columns = np.shape(kernels[0])[1]
    if columns % 3:
        raise ValueError(f"kernels[0] must have shape ({D}, 3 * units); got {np.shape(kernels[0])}")
    H = columns // 3
    L = len(kernels)
    for l in range(L):
        want = (D if l == 0 else H, 3 * H)
        if np.shape(kernels[l]) != want:
            raise ValueError(f"kernels[{l}] must have shape {want}; got {np.shape(kernels[l])}")
        if np.shape(recurrent_kernels[l]) != (H, 3 * H):
            raise ValueError(f"recurrent_kernels[{l}] must have shape {(H, 3 * H)}; got "
                             f"{np.shape(recurrent_kernels[l])}")
        if np.shape(biases[l]) != (2, 3 * H):
            raise ValueError(f"biases[{l}] must have shape {(2, 3 * H)}; got {np.shape(biases[l])}")
    return B, T, D, H, L


def gru_forward(inputs, kernels, recurrent_kernels, biases, initial_states=None):
    """Returns (outputs [B,T,H], final_states [L,B,H], activations [L,T,B,H], gates [L,T,B,4H]), all float64."""
    x = _as64("inputs", inputs, 3)
    B, T, D, H, L = _gru_sizes(x, kernels, recurrent_kernels, biases)
    h0 = _initial(initial_states, L, B, H)
    wx = [np.asarray(w, np.float64) for w in kernels]
    wh = [np.asarray(w, np.float64) for w in recurrent_kernels]
    b = [np.asarray(v, np.float64) for v in biases]
    activations = np.empty((L, T, B, H))
    gates = np.empty((L, T, B, 4 * H))
    for l in range(L):
        h = h0[l]
        for t in range(T):
            below = x[:, t, :] if l == 0 else activations[l - 1, t]
            xp = below @ wx[l] + b[l][0]
            hp = h @ wh[l] + b[l][1]
            z = _sigmoid(xp[:, :H] + hp[:, :H])
            r = _sigmoid(xp[:, H:2 * H] + hp[:, H:2 * H])
            q = hp[:, 2 * H:]
            n = np.tanh(xp[:, 2 * H:] + r * q)
            h = z * h + (1.0 - z) * n
            activations[l, t] = h
            gates[l, t] = np.concatenate([z, r, n, q], axis=1)
    outputs = activations[L - 1].transpose(1, 0, 2).copy() if T else np.zeros((B, 0, H))
    final_states = activations[:, T - 1].copy() if T else h0.copy()
    return outputs, final_states, activations, gates


@dataclass
class GruGradients:
    grad_inputs: np.ndarray                   # [B,T,D]
    grad_kernels: List[np.ndarray]            # L: [D,3H], then [H,3H]
    grad_recurrent_kernels: List[np.ndarray]  # L: [H,3H]
    grad_biases: List[np.ndarray]             # L: [2,3H]
    grad_initial_states: np.ndarray           # [L,B,H]
    grad_gates: np.ndarray                    # [L,T,B,4H]: [dn | dz | dr | dn * r] per row


def gru_backward(inputs, kernels, recurrent_kernels, biases, initial_states, activations, gates, grad_outputs,
                 grad_final_states):
    """Gradients of a scalar loss with respect to every input of `gru_forward`, given dLoss/d outputs [B,T,H] and
    dLoss/d final_states [L,B,H]; `activations` and `gates` as `gru_forward` returned them. Returns GruGradients."""
    x = _as64("inputs", inputs, 3)
    B, T, D, H, L = _gru_sizes(x, kernels, recurrent_kernels, biases)
    h0 = _initial(initial_states, L, B, H)
    act = _as64("activations", activations, 4)
    gat = _as64("gates", gates, 4)
    dy = _as64("grad_outputs", grad_outputs, 3)
    dfinal = _as64("grad_final_states", grad_final_states, 3)
    if act.shape != (L, T, B, H) or gat.shape != (L, T, B, 4 * H) or dy.shape != (B, T, H) \
            or dfinal.shape != (L, B, H):
        raise ValueError(f"activations, gates, grad_outputs, grad_final_states must have shapes {(L, T, B, H)}, "
                         f"{(L, T, B, 4 * H)}, {(B, T, H)}, {(L, B, H)}; got {act.shape}, {gat.shape}, {dy.shape}, "
                         f"{dfinal.shape}")
    wx = [np.asarray(w, np.float64) for w in kernels]
    wh = [np.asarray(w, np.float64) for w in recurrent_kernels]

    def input_side(gg):   # (dz, dr, dn): the gradient of x Wx + bx, in Wx's column order
        return np.concatenate([gg[:, H:3 * H], gg[:, :H]], axis=1)

    def recurrent_side(gg):  # (dz, dr, dn * r): the gradient of h Wh + bh
        return gg[:, H:]

    grad_gates = np.zeros((L, T, B, 4 * H))
    dh = np.zeros((L, T, B, H))  # dLoss/dH_t^(l), every path summed
    for l in reversed(range(L)):
        for t in reversed(range(T)):
            d = np.zeros((B, H))
            if l == L - 1:
                d += dy[:, t, :]
            if t == T - 1:
                d += dfinal[l]
            else:
                d += dh[l, t + 1] * gat[l, t + 1, :, :H] + recurrent_side(grad_gates[l, t + 1]) @ wh[l].T
            if l + 1 < L:
                d += input_side(grad_gates[l + 1, t]) @ wx[l + 1].T
            z, r, n, q = (gat[l, t, :, i * H:(i + 1) * H] for i in range(4))
            previous = h0[l] if t == 0 else act[l, t - 1]
            da_n = d * (1.0 - z) * (1.0 - n * n)
            da_z = d * (previous - n) * z * (1.0 - z)
            da_r = da_n * q * r * (1.0 - r)
            grad_gates[l, t] = np.concatenate([da_n, da_z, da_r, da_n * r], axis=1)
            dh[l, t] = d

    grad_inputs = np.zeros((B, T, D))
    grad_kernels = [np.zeros_like(w) for w in wx]
    grad_recurrent = [np.zeros_like(w) for w in wh]
    grad_biases = [np.zeros((2, 3 * H)) for _ in range(L)]
    grad_initial = dfinal.copy() if T == 0 else np.zeros((L, B, H))
    for l in range(L):
        for t in range(T):
            below = x[:, t, :] if l == 0 else act[l - 1, t]
            previous = h0[l] if t == 0 else act[l, t - 1]
            gx, gh = input_side(grad_gates[l, t]), recurrent_side(grad_gates[l, t])
            grad_kernels[l] += below.T @ gx
            grad_recurrent[l] += previous.T @ gh
            grad_biases[l][0] += gx.sum(axis=0)
            grad_biases[l][1] += gh.sum(axis=0)
            if l == 0:
                grad_inputs[:, t, :] = gx @ wx[0].T
        if T:
            grad_initial[l] = dh[l, 0] * gat[l, 0, :, :H] + recurrent_side(grad_gates[l, 0]) @ wh[l].T
    return GruGradients(grad_inputs, grad_kernels, grad_recurrent, grad_biases, grad_initial, grad_gates)


@dataclass
class Problem:
    """One random problem: the forward's inputs and the backward's upstream gradients, in one dtype."""
    inputs: np.ndarray
    kernels: List[np.ndarray]
    recurrent_kernels: List[np.ndarray]
    biases: List[np.ndarray]
    initial_states: np.ndarray
    grad_outputs: np.ndarray
    grad_final_states: np.ndarray
    activation: str

    @property
    def shape(self):
        B, T, D = self.inputs.shape
        return B, T, D, self.kernels[0].shape[1], len(self.kernels)


def random_problem(rng: np.random.Generator, batch, time, input_size, hidden, layers, dtype=np.float32,
                   activation="tanh", weight_scale: Optional[float] = None) -> Problem:
    """Fresh random data (never zeros) of a stable size: weights U(-s, s) with s = 1/sqrt(H) for tanh and
    0.5/sqrt(H) for relu, so that long sequences neither explode nor vanish."""
    if weight_scale is None:
        weight_scale = (1.0 if activation == "tanh" else 0.5) / np.sqrt(hidden)

    def u(shape, scale):
        return rng.uniform(-scale, scale, size=shape).astype(dtype)

    L, H = layers, hidden
    return Problem(
        inputs=u((batch, time, input_size), 1.0),
        kernels=[u((input_size if l == 0 else H, H), weight_scale) for l in range(L)],
        recurrent_kernels=[u((H, H), weight_scale) for _ in range(L)],
        biases=[u((H,), 0.2) for _ in range(L)],
        initial_states=u((L, batch, H), 0.5),
        grad_outputs=u((batch, time, H), 1.0),
        grad_final_states=u((L, batch, H), 1.0),
        activation=activation,
    )


@dataclass
class GruProblem(Problem):
    """A random GRU problem: kernels [in, 3H], recurrent_kernels [H, 3H], biases [2, 3H]; activation is "gru"."""

    @property
    def shape(self):
        B, T, D = self.inputs.shape
        return B, T, D, self.kernels[0].shape[1] // 3, len(self.kernels)


def random_gru_problem(rng: np.random.Generator, batch, time, input_size, hidden, layers, dtype=np.float32,
                       weight_scale: Optional[float] = None) -> GruProblem:
    """Fresh random GRU data (never zeros): weights U(-s, s) with s = 1/sqrt(H) (Keras' glorot range for these
    sizes), biases U(-0.2, 0.2)."""
    if weight_scale is None:
        weight_scale = 1.0 / np.sqrt(hidden)

    def u(shape, scale):
        return rng.uniform(-scale, scale, size=shape).astype(dtype)

    L, H = layers, hidden
    return GruProblem(
        inputs=u((batch, time, input_size), 1.0),
        kernels=[u((input_size if l == 0 else H, 3 * H), weight_scale) for l in range(L)],
        recurrent_kernels=[u((H, 3 * H), weight_scale) for _ in range(L)],
        biases=[u((2, 3 * H), 0.2) for _ in range(L)],
        initial_states=u((L, batch, H), 0.5),
        grad_outputs=u((batch, time, H), 1.0),
        grad_final_states=u((L, batch, H), 1.0),
        activation="gru",
    )


def relative_error(got, want):
    """||got - want|| / ||want|| in float64 (the absolute norm when want is all zeros); inf when got has a NaN or
    an infinity, so that an unwritten (NaN-poisoned) output never passes."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise ValueError(f"shapes differ: got {got.shape}, want {want.shape}")
    if not np.all(np.isfinite(got)):
        return float("inf")
    den = np.linalg.norm(want)
    num = np.linalg.norm(got - want)
    return float(num / den) if den > 0 else float(num)
