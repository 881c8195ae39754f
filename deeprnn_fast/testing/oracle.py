"""Float64 NumPy forward and backward of the stacked RNN, GRU and LSTM: the oracle the kernels are checked against.

No TensorFlow here, so it also runs on the GPU machines (which have NumPy and PyTorch but no TensorFlow), in the GPU
check script (deeprnn_fast.testing.gpu_check) and in the tests. Everything is computed in float64 whatever the input dtype,
one cell at a time, in the library's layouts (csrc/deeprnn/stacked.h):

    inputs [B,T,D]  kernels[l] [D or H, H]  recurrent_kernels[l] [H,H]  biases[l] [H]  initial_states [L,B,H]
    outputs [B,T,H]  final_states [L,B,H]  activations [L,T,B,H]  grad_preactivations [L,T,B,H]

    H_t^(l) = phi(H_t^(l-1) W_x^(l) + H_{t-1}^(l) W_h^(l) + b^(l)),   H_t^(-1) = X_t,   H_{-1}^(l) = initial state.

The GRU (gru_forward, gru_backward) is Keras' GRUCell with reset_after=True, gate order [z, r, n], with kernels[l]
[D or H, 3H], recurrent_kernels[l] [H, 3H], biases[l] [2, 3H] (input bias bx in row 0, recurrent bias bh in row 1),
and in addition gates [L,T,B,4H] (per cell and row [z | r | n | q]) and grad_gates [L,T,B,4H] (per cell and row
[dn | dz | dr | dn * r], the gradients of the gates' arguments):

    z = sigmoid(x Wx_z + bx_z + h Wh_z + bh_z),  r likewise,  q = h Wh_n + bh_n,  n = tanh(x Wx_n + bx_n + r q),
    h' = z h + (1 - z) n.

The LSTM (lstm_forward, lstm_backward) is Keras' LSTMCell, gate order [i, f, c, o], with kernels[l] [D or H, 4H],
recurrent_kernels[l] [H, 4H], biases[l] [4H], two states per layer (initial_states and final_states [L,2,B,H]: h,
then c), gates [L,T,B,5H] (per cell and row [i | f | g | o | c']) and grad_gates [L,T,B,4H] ([da_i | da_f | da_g |
da_o], the gradients of the gates' arguments):

    [a_i | a_f | a_g | a_o] = x Wx + h Wh + b,  i, f, o = sigmoid(a_i, a_f, a_o),  g = tanh(a_g),
    c' = f c + i g,  h' = o tanh(c').

Token inputs, for every cell: `inputs` may be integer token ids [B,T] instead of [B,T,D] features; layer 0's
input product x_t W_x^(0) is then row tokens[b, t] of kernels[0] ([V, G*H], V the vocabulary: what a one-hot x_t
computes), there is no grad_inputs (None), and grad_kernels[0] sums each step's input-side gradient rows into the
tokens' rows.

The loops are over layers and time steps only; each step is a few float64 matrix products (BLAS), which is where
the time goes even for large shapes, so compiling the loops (numba) would not make the oracle faster.
"""
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

__all__ = ["ACTIVATIONS", "Problem", "random_problem", "forward", "backward", "relative_error", "GruProblem",
           "random_gru_problem", "gru_forward", "gru_backward", "LstmProblem", "random_lstm_problem", "lstm_forward",
           "lstm_backward"]

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


class _Layer0:
    """Layer 0's input: dense features [B,T,D] (float64), or token ids [B,T] (rows of kernels[0])."""

    def __init__(self, inputs, vocabulary=None):
        array = np.asarray(inputs)
        self.tokens = array.ndim == 2 and np.issubdtype(array.dtype, np.integer)
        if self.tokens:
            self.values = array.astype(np.int64)
            if vocabulary is not None and array.size and (array.min() < 0 or array.max() >= vocabulary):
                raise ValueError(f"token ids must lie in [0, {vocabulary}) (the rows of kernels[0]); got values in "
                                 f"[{array.min()}, {array.max()}]")
        else:
            self.values = _as64("inputs", inputs, 3)
        self.batch, self.time = self.values.shape[:2]

    def product(self, t, kernel):
        """x_t W_x^(0) for all rows of step t."""
        return kernel[self.values[:, t]] if self.tokens else self.values[:, t, :] @ kernel

    def add_kernel_grad(self, t, grad, out):
        """out += x_t^T grad: the tokens' rows of the kernel's gradient get their rows of grad."""
        if self.tokens:
            np.add.at(out, self.values[:, t], grad)
        else:
            out += self.values[:, t, :].T @ grad


def _layer0(inputs, kernels):
    """Layer 0's input and the input size D it implies (the vocabulary, kernels[0]'s rows, for tokens)."""
    first = _Layer0(inputs)
    if first.tokens:
        if not kernels:
            raise ValueError("kernels must hold one array per layer (at least one)")
        first = _Layer0(inputs, np.shape(kernels[0])[0])
        return first, np.shape(kernels[0])[0]
    return first, first.values.shape[2]


def _sizes(first, D, kernels, recurrent_kernels, biases, gates=1, bias_shape=None):
    """B, T, D, H, L, with every weight checked against them: kernels [D or H, G*H], recurrent kernels [H, G*H],
    biases `bias_shape(H)` (default [G*H])."""
    if not (len(kernels) == len(recurrent_kernels) == len(biases)) or not kernels:
        raise ValueError("kernels, recurrent_kernels and biases must hold one array per layer (at least one); got "
                         f"{len(kernels)}, {len(recurrent_kernels)}, {len(biases)}")
    B, T = first.batch, first.time
    columns = np.shape(kernels[0])[1]
    if gates > 1 and columns % gates:
        raise ValueError(f"kernels[0] must have shape ({D}, {gates} * units); got {np.shape(kernels[0])}")
    H = columns // gates
    L = len(kernels)
    for l in range(L):
        want = (D if l == 0 else H, gates * H)
        if np.shape(kernels[l]) != want:
            raise ValueError(f"kernels[{l}] must have shape {want}; got {np.shape(kernels[l])}")
        if np.shape(recurrent_kernels[l]) != (H, gates * H):
            raise ValueError(f"recurrent_kernels[{l}] must have shape {(H, gates * H)}; got "
                             f"{np.shape(recurrent_kernels[l])}")
        want_b = bias_shape(H) if bias_shape else (gates * H,)
        if np.shape(biases[l]) != want_b:
            raise ValueError(f"biases[{l}] must have shape {want_b}; got {np.shape(biases[l])}")
    return B, T, D, H, L


def _initial(initial_states, L, B, H, states=1):
    shape = (L, B, H) if states == 1 else (L, states, B, H)
    if initial_states is None:
        return np.zeros(shape)
    h0 = np.asarray(initial_states, dtype=np.float64)
    if h0.shape != shape:
        raise ValueError(f"initial_states must have shape {shape}; got {h0.shape}")
    return h0


def forward(inputs, kernels, recurrent_kernels, biases, initial_states=None, activation="tanh"):
    """Returns (outputs [B,T,H], final_states [L,B,H], activations [L,T,B,H]), all float64.

    inputs: [B,T,D] features or [B,T] token ids; initial_states: None (zeros) or an array [L,B,H] (a list of L
    arrays [B,H] works too).
    """
    x, D = _layer0(inputs, kernels)
    B, T, D, H, L = _sizes(x, D, kernels, recurrent_kernels, biases)
    h0 = _initial(initial_states, L, B, H)
    _phi(activation, np.zeros(0))  # rejects an unknown activation before any work
    wx = [np.asarray(w, np.float64) for w in kernels]
    wh = [np.asarray(w, np.float64) for w in recurrent_kernels]
    b = [np.asarray(v, np.float64) for v in biases]
    activations = np.empty((L, T, B, H))
    for l in range(L):
        h = h0[l]
        for t in range(T):
            below = x.product(t, wx[0]) if l == 0 else activations[l - 1, t] @ wx[l]
            h = _phi(activation, below + h @ wh[l] + b[l])
            activations[l, t] = h
    outputs = activations[L - 1].transpose(1, 0, 2).copy() if T else np.zeros((B, 0, H))
    final_states = activations[:, T - 1].copy() if T else h0.copy()
    return outputs, final_states, activations


@dataclass
class Gradients:
    grad_inputs: Optional[np.ndarray]         # [B,T,D]; None with token inputs
    grad_kernels: List[np.ndarray]            # L: [D,H], then [H,H]
    grad_recurrent_kernels: List[np.ndarray]  # L: [H,H]
    grad_biases: List[np.ndarray]             # L: [H]
    grad_initial_states: np.ndarray           # [L,B,H]
    grad_preactivations: np.ndarray           # [L,T,B,H]


def backward(inputs, kernels, recurrent_kernels, biases, initial_states, activations, grad_outputs,
             grad_final_states, activation="tanh"):
    """Gradients of a scalar loss with respect to every input of `forward`, given dLoss/d outputs [B,T,H] and
    dLoss/d final_states [L,B,H]; `activations` [L,T,B,H] as `forward` returned them. Returns a Gradients."""
    x, D = _layer0(inputs, kernels)
    B, T, D, H, L = _sizes(x, D, kernels, recurrent_kernels, biases)
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

    grad_inputs = None if x.tokens else np.zeros((B, T, D))
    grad_kernels = [np.zeros_like(w) for w in wx]
    grad_recurrent = [np.zeros_like(w) for w in wh]
    grad_biases = [np.zeros(H) for _ in range(L)]
    grad_initial = dfinal.copy() if T == 0 else np.zeros((L, B, H))
    for l in range(L):
        for t in range(T):
            previous = h0[l] if t == 0 else act[l, t - 1]
            if l == 0:
                x.add_kernel_grad(t, dz[0, t], grad_kernels[0])
            else:
                grad_kernels[l] += act[l - 1, t].T @ dz[l, t]
            grad_recurrent[l] += previous.T @ dz[l, t]
            grad_biases[l] += dz[l, t].sum(axis=0)
            if l == 0 and grad_inputs is not None:
                grad_inputs[:, t, :] = dz[0, t] @ wx[0].T
        if T:
            grad_initial[l] = dz[l, 0] @ wh[l].T
    return Gradients(grad_inputs, grad_kernels, grad_recurrent, grad_biases, grad_initial, dz)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _gru_sizes(first, D, kernels, recurrent_kernels, biases):
    return _sizes(first, D, kernels, recurrent_kernels, biases, gates=3, bias_shape=lambda H: (2, 3 * H))


def gru_forward(inputs, kernels, recurrent_kernels, biases, initial_states=None):
    """Returns (outputs [B,T,H], final_states [L,B,H], activations [L,T,B,H], gates [L,T,B,4H]), all float64.
    inputs: [B,T,D] features or [B,T] token ids."""
    x, D = _layer0(inputs, kernels)
    B, T, D, H, L = _gru_sizes(x, D, kernels, recurrent_kernels, biases)
    h0 = _initial(initial_states, L, B, H)
    wx = [np.asarray(w, np.float64) for w in kernels]
    wh = [np.asarray(w, np.float64) for w in recurrent_kernels]
    b = [np.asarray(v, np.float64) for v in biases]
    activations = np.empty((L, T, B, H))
    gates = np.empty((L, T, B, 4 * H))
    for l in range(L):
        h = h0[l]
        for t in range(T):
            xp = (x.product(t, wx[0]) if l == 0 else activations[l - 1, t] @ wx[l]) + b[l][0]
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
    grad_inputs: Optional[np.ndarray]         # [B,T,D]; None with token inputs
    grad_kernels: List[np.ndarray]            # L: [D,3H], then [H,3H]
    grad_recurrent_kernels: List[np.ndarray]  # L: [H,3H]
    grad_biases: List[np.ndarray]             # L: [2,3H]
    grad_initial_states: np.ndarray           # [L,B,H]
    grad_gates: np.ndarray                    # [L,T,B,4H]: [dn | dz | dr | dn * r] per row


def gru_backward(inputs, kernels, recurrent_kernels, biases, initial_states, activations, gates, grad_outputs,
                 grad_final_states):
    """Gradients of a scalar loss with respect to every input of `gru_forward`, given dLoss/d outputs [B,T,H] and
    dLoss/d final_states [L,B,H]; `activations` and `gates` as `gru_forward` returned them. Returns GruGradients."""
    x, D = _layer0(inputs, kernels)
    B, T, D, H, L = _gru_sizes(x, D, kernels, recurrent_kernels, biases)
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

    grad_inputs = None if x.tokens else np.zeros((B, T, D))
    grad_kernels = [np.zeros_like(w) for w in wx]
    grad_recurrent = [np.zeros_like(w) for w in wh]
    grad_biases = [np.zeros((2, 3 * H)) for _ in range(L)]
    grad_initial = dfinal.copy() if T == 0 else np.zeros((L, B, H))
    for l in range(L):
        for t in range(T):
            previous = h0[l] if t == 0 else act[l, t - 1]
            gx, gh = input_side(grad_gates[l, t]), recurrent_side(grad_gates[l, t])
            if l == 0:
                x.add_kernel_grad(t, gx, grad_kernels[0])
            else:
                grad_kernels[l] += act[l - 1, t].T @ gx
            grad_recurrent[l] += previous.T @ gh
            grad_biases[l][0] += gx.sum(axis=0)
            grad_biases[l][1] += gh.sum(axis=0)
            if l == 0 and grad_inputs is not None:
                grad_inputs[:, t, :] = gx @ wx[0].T
        if T:
            grad_initial[l] = dh[l, 0] * gat[l, 0, :, :H] + recurrent_side(grad_gates[l, 0]) @ wh[l].T
    return GruGradients(grad_inputs, grad_kernels, grad_recurrent, grad_biases, grad_initial, grad_gates)


def _lstm_sizes(first, D, kernels, recurrent_kernels, biases):
    return _sizes(first, D, kernels, recurrent_kernels, biases, gates=4)


def lstm_forward(inputs, kernels, recurrent_kernels, biases, initial_states=None):
    """Returns (outputs [B,T,H], final_states [L,2,B,H], activations [L,T,B,H], gates [L,T,B,5H]), all float64.

    inputs: [B,T,D] features or [B,T] token ids; initial_states: None (zeros) or [L,2,B,H] (h, then c)."""
    x, D = _layer0(inputs, kernels)
    B, T, D, H, L = _lstm_sizes(x, D, kernels, recurrent_kernels, biases)
    s0 = _initial(initial_states, L, B, H, states=2)
    wx = [np.asarray(w, np.float64) for w in kernels]
    wh = [np.asarray(w, np.float64) for w in recurrent_kernels]
    b = [np.asarray(v, np.float64) for v in biases]
    activations = np.empty((L, T, B, H))
    gates = np.empty((L, T, B, 5 * H))
    final_states = s0.copy()
    for l in range(L):
        h, c = s0[l, 0], s0[l, 1]
        for t in range(T):
            a = (x.product(t, wx[0]) if l == 0 else activations[l - 1, t] @ wx[l]) + h @ wh[l] + b[l]
            i, f, o = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H]), _sigmoid(a[:, 3 * H:])
            g = np.tanh(a[:, 2 * H:3 * H])
            c = f * c + i * g
            h = o * np.tanh(c)
            activations[l, t] = h
            gates[l, t] = np.concatenate([i, f, g, o, c], axis=1)
        final_states[l] = h, c
    outputs = activations[L - 1].transpose(1, 0, 2).copy() if T else np.zeros((B, 0, H))
    return outputs, final_states, activations, gates


@dataclass
class LstmGradients:
    grad_inputs: Optional[np.ndarray]         # [B,T,D]; None with token inputs
    grad_kernels: List[np.ndarray]            # L: [D,4H], then [H,4H]
    grad_recurrent_kernels: List[np.ndarray]  # L: [H,4H]
    grad_biases: List[np.ndarray]             # L: [4H]
    grad_initial_states: np.ndarray           # [L,2,B,H]
    grad_gates: np.ndarray                    # [L,T,B,4H]: [da_i | da_f | da_g | da_o] per row


def lstm_backward(inputs, kernels, recurrent_kernels, biases, initial_states, activations, gates, grad_outputs,
                  grad_final_states):
    """Gradients of a scalar loss with respect to every input of `lstm_forward`, given dLoss/d outputs [B,T,H] and
    dLoss/d final_states [L,2,B,H]; `activations` and `gates` as `lstm_forward` returned them. Returns
    LstmGradients."""
    x, D = _layer0(inputs, kernels)
    B, T, D, H, L = _lstm_sizes(x, D, kernels, recurrent_kernels, biases)
    s0 = _initial(initial_states, L, B, H, states=2)
    act = _as64("activations", activations, 4)
    gat = _as64("gates", gates, 4)
    dy = _as64("grad_outputs", grad_outputs, 3)
    dfinal = _as64("grad_final_states", grad_final_states, 4)
    if act.shape != (L, T, B, H) or gat.shape != (L, T, B, 5 * H) or dy.shape != (B, T, H) \
            or dfinal.shape != (L, 2, B, H):
        raise ValueError(f"activations, gates, grad_outputs, grad_final_states must have shapes {(L, T, B, H)}, "
                         f"{(L, T, B, 5 * H)}, {(B, T, H)}, {(L, 2, B, H)}; got {act.shape}, {gat.shape}, "
                         f"{dy.shape}, {dfinal.shape}")
    wx = [np.asarray(w, np.float64) for w in kernels]
    wh = [np.asarray(w, np.float64) for w in recurrent_kernels]

    grad_gates = np.zeros((L, T, B, 4 * H))
    grad_initial = dfinal.copy() if T == 0 else np.zeros((L, 2, B, H))
    for l in reversed(range(L)):
        dc = dfinal[l, 1]  # dLoss/dc of the cell one step later (the final state's for t = T-1)
        for t in reversed(range(T)):
            d = np.zeros((B, H))
            if l == L - 1:
                d += dy[:, t, :]
            if t == T - 1:
                d += dfinal[l, 0]
            else:
                d += grad_gates[l, t + 1] @ wh[l].T
            if l + 1 < L:
                d += grad_gates[l + 1, t] @ wx[l + 1].T
            i, f, g, o, c = (gat[l, t, :, k * H:(k + 1) * H] for k in range(5))
            c_prev = s0[l, 1] if t == 0 else gat[l, t - 1, :, 4 * H:]
            tc = np.tanh(c)
            total = dc + d * o * (1.0 - tc * tc)
            grad_gates[l, t] = np.concatenate([total * g * i * (1.0 - i), total * c_prev * f * (1.0 - f),
                                               total * i * (1.0 - g * g), d * tc * o * (1.0 - o)], axis=1)
            dc = total * f
        if T:
            grad_initial[l, 1] = dc

    grad_inputs = None if x.tokens else np.zeros((B, T, D))
    grad_kernels = [np.zeros_like(w) for w in wx]
    grad_recurrent = [np.zeros_like(w) for w in wh]
    grad_biases = [np.zeros(4 * H) for _ in range(L)]
    for l in range(L):
        for t in range(T):
            gg = grad_gates[l, t]
            previous = s0[l, 0] if t == 0 else act[l, t - 1]
            if l == 0:
                x.add_kernel_grad(t, gg, grad_kernels[0])
            else:
                grad_kernels[l] += act[l - 1, t].T @ gg
            grad_recurrent[l] += previous.T @ gg
            grad_biases[l] += gg.sum(axis=0)
            if l == 0 and grad_inputs is not None:
                grad_inputs[:, t, :] = gg @ wx[0].T
        if T:
            grad_initial[l, 0] = grad_gates[l, 0] @ wh[l].T
    return LstmGradients(grad_inputs, grad_kernels, grad_recurrent, grad_biases, grad_initial, grad_gates)


@dataclass
class Problem:
    """One random problem: the forward's inputs ([B,T,D] features, or [B,T] int32 token ids) and the backward's
    upstream gradients, in one dtype."""
    inputs: np.ndarray
    kernels: List[np.ndarray]
    recurrent_kernels: List[np.ndarray]
    biases: List[np.ndarray]
    initial_states: np.ndarray
    grad_outputs: np.ndarray
    grad_final_states: np.ndarray
    activation: str
    gates = 1  # G: gate blocks of H columns in the weights

    @property
    def tokens(self):
        return self.inputs.ndim == 2

    @property
    def shape(self):
        """(B, T, D, H, L), D the vocabulary (kernels[0]'s rows) with tokens."""
        B, T = self.inputs.shape[:2]
        return B, T, self.kernels[0].shape[0], self.kernels[0].shape[1] // self.gates, len(self.kernels)


def _draw(rng, dtype, batch, time, input_size, hidden, layers, gates, bias_shape, states, weight_scale, tokens):
    """Fresh random data (never zeros): weights U(-s, s), biases U(-0.2, 0.2), states U(-0.5, 0.5), upstream
    gradients U(-1, 1); with tokens, ids drawn uniformly from [0, input_size) (and the token rows of kernels[0],
    being layer 0's whole input, U(-1, 1))."""

    def u(shape, scale):
        return rng.uniform(-scale, scale, size=shape).astype(dtype)

    L, H = layers, hidden
    states_shape = (L, batch, H) if states == 1 else (L, states, batch, H)
    if tokens:
        inputs = rng.integers(0, input_size, size=(batch, time)).astype(np.int32)
    else:
        inputs = u((batch, time, input_size), 1.0)
    return dict(
        inputs=inputs,
        kernels=[u((input_size if l == 0 else H, gates * H), 1.0 if tokens and l == 0 else weight_scale)
                 for l in range(L)],
        recurrent_kernels=[u((H, gates * H), weight_scale) for _ in range(L)],
        biases=[u(bias_shape, 0.2) for _ in range(L)],
        initial_states=u(states_shape, 0.5),
        grad_outputs=u((batch, time, H), 1.0),
        grad_final_states=u(states_shape, 1.0),
    )


def random_problem(rng: np.random.Generator, batch, time, input_size, hidden, layers, dtype=np.float32,
                   activation="tanh", weight_scale: Optional[float] = None, tokens=False) -> Problem:
    """A random tanh / relu problem: weights U(-s, s) with s = 1/sqrt(H) for tanh and 0.5/sqrt(H) for relu, so that
    long sequences neither explode nor vanish. tokens=True: inputs are [B,T] ids of a vocabulary of input_size."""
    if weight_scale is None:
        weight_scale = (1.0 if activation == "tanh" else 0.5) / np.sqrt(hidden)
    return Problem(**_draw(rng, dtype, batch, time, input_size, hidden, layers, 1, (hidden,), 1, weight_scale,
                           tokens), activation=activation)


@dataclass
class GruProblem(Problem):
    """A random GRU problem: kernels [in, 3H], recurrent_kernels [H, 3H], biases [2, 3H]; activation is "gru"."""
    gates = 3


def random_gru_problem(rng: np.random.Generator, batch, time, input_size, hidden, layers, dtype=np.float32,
                       weight_scale: Optional[float] = None, tokens=False) -> GruProblem:
    """Fresh random GRU data (never zeros): weights U(-s, s) with s = 1/sqrt(H) (Keras' glorot range for these
    sizes), biases U(-0.2, 0.2)."""
    if weight_scale is None:
        weight_scale = 1.0 / np.sqrt(hidden)
    return GruProblem(**_draw(rng, dtype, batch, time, input_size, hidden, layers, 3, (2, 3 * hidden), 1,
                              weight_scale, tokens), activation="gru")


@dataclass
class LstmProblem(Problem):
    """A random LSTM problem: kernels [in, 4H], recurrent_kernels [H, 4H], biases [4H], initial_states and
    grad_final_states [L,2,B,H]; activation is "lstm"."""
    gates = 4


def random_lstm_problem(rng: np.random.Generator, batch, time, input_size, hidden, layers, dtype=np.float32,
                        weight_scale: Optional[float] = None, tokens=False) -> LstmProblem:
    """Fresh random LSTM data (never zeros): weights U(-s, s) with s = 1/sqrt(H), biases U(-0.2, 0.2)."""
    if weight_scale is None:
        weight_scale = 1.0 / np.sqrt(hidden)
    return LstmProblem(**_draw(rng, dtype, batch, time, input_size, hidden, layers, 4, (4 * hidden,), 2,
                               weight_scale, tokens), activation="lstm")


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
