"""A float64 NumPy oracle of the stacked cells with Keras masking and the three dropouts (deeprnn/stacked.h,
Modifiers), forward and backward, for every cell: written step by step from the definitions, apart from the
engines, so that the CPU and CUDA passes can be checked against it (deeprnn_fast/testing/gpu_check.py).

Semantics (as the Keras layers and deeprnn/stacked.h state them): at a step a row does not take (mask False) every
layer keeps its states, and the output repeats the last output of a step taken (zeros before the first one, or
always with zero_output_for_mask); input dropout multiplies a layer's input before its input product (one mask
for every gate, or one per gate), recurrent dropout h_{t-1} before the recurrent product only, between-layer
dropout h_t^(l) on its way into layer l + 1. The weight gradients read the dropped operands.
"""
import numpy as np

GATES = {"tanh": 1, "relu": 1, "gru": 3, "lstm": 4}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _cell_forward(cell, ax, ah, bias, states):
    """ax, ah: [G][B,H] products of the gates; bias: [G*H] or the GRU's [2, 3H]; states: [h] or [h, c]. Returns
    (new states, what the backward step needs)."""
    H = ax[0].shape[1]
    if cell in ("tanh", "relu"):
        z = ax[0] + ah[0] + bias
        h = np.tanh(z) if cell == "tanh" else np.maximum(z, 0.0)
        return [h], (h,)
    if cell == "gru":
        bx, bh = bias[0].reshape(3, H), bias[1].reshape(3, H)
        z = _sigmoid(ax[0] + bx[0] + ah[0] + bh[0])
        r = _sigmoid(ax[1] + bx[1] + ah[1] + bh[1])
        q = ah[2] + bh[2]
        n = np.tanh(ax[2] + bx[2] + r * q)
        h = z * states[0] + (1.0 - z) * n
        return [h], (z, r, q, n, states[0])
    b = bias.reshape(4, H)
    i, f = _sigmoid(ax[0] + ah[0] + b[0]), _sigmoid(ax[1] + ah[1] + b[1])
    g, o = np.tanh(ax[2] + ah[2] + b[2]), _sigmoid(ax[3] + ah[3] + b[3])
    c = f * states[1] + i * g
    return [o * np.tanh(c), c], (i, f, g, o, c, states[1])


def _cell_backward(cell, cache, dstates):
    """Returns (dax [G][B,H], dah [G][B,H], the direct gradients of the previous states)."""
    if cell in ("tanh", "relu"):
        (h,) = cache
        dz = dstates[0] * ((1.0 - h * h) if cell == "tanh" else (h > 0))
        return [dz], [dz], [np.zeros_like(dz)]
    if cell == "gru":
        z, r, q, n, h_prev = cache
        dh = dstates[0]
        dan = dh * (1.0 - z) * (1.0 - n * n)
        daz = dh * (h_prev - n) * z * (1.0 - z)
        dar = dan * q * r * (1.0 - r)
        return [daz, dar, dan], [daz, dar, dan * r], [dh * z]
    i, f, g, o, c, c_prev = cache
    dh, dc = dstates
    tc = np.tanh(c)
    total = dc + dh * o * (1.0 - tc * tc)
    da = [total * g * i * (1.0 - i), total * c_prev * f * (1.0 - f), total * i * (1.0 - g * g),
          dh * tc * o * (1.0 - o)]
    return da, da, [np.zeros_like(dh), total * f]


def run(cell, inputs, kernels, recurrent_kernels, biases, initial_states, grad_outputs, grad_final_states,
        mask=None, zero_output_for_mask=False, input_dropout=None, recurrent_dropout=None, between_dropout=None):
    """Forward and backward pass in float64. inputs [B,T,D] features or [B,T] token ids (rows of kernels[0]);
    initial_states and grad_final_states [L,B,H] ([L,2,B,H] for the LSTM); the modifiers as the TF op takes them.
    Returns a dict of outputs, final_states, activations, grad_inputs (None with tokens), grad_kernels,
    grad_recurrent_kernels, grad_biases (lists of L) and grad_initial_states."""
    G = GATES[cell]
    tokens = np.asarray(inputs).ndim == 2
    x_in = np.asarray(inputs) if tokens else np.asarray(inputs, np.float64)
    B, T = x_in.shape[:2]
    wx = [np.asarray(w, np.float64) for w in kernels]
    wh = [np.asarray(w, np.float64) for w in recurrent_kernels]
    bs = [np.asarray(b, np.float64) for b in biases]
    L, H = len(wx), wh[0].shape[0]
    S = 2 if cell == "lstm" else 1
    h0 = np.asarray(initial_states, np.float64).reshape(L, S, B, H)
    dfinal = np.asarray(grad_final_states, np.float64).reshape(L, S, B, H)
    dy = np.asarray(grad_outputs, np.float64)
    taken = np.ones((B, T), bool) if mask is None else np.asarray(mask, bool)

    def gate_masks(masks, l):  # per gate: the [B, width] mask of its operand, or None
        if masks is None:
            return [None] * G
        m = np.asarray(masks[l], np.float64)
        return [m[g if m.shape[0] > 1 else 0] for g in range(G)]

    din = [gate_masks(input_dropout, l) for l in range(L)]
    drec = [gate_masks(recurrent_dropout, l) for l in range(L)]
    between = None if between_dropout is None else np.asarray(between_dropout, np.float64)
    cols = lambda w, g: w[:, g * H:(g + 1) * H]  # noqa: E731

    def layer_input(l, t, act):  # the operand of layer l's input product at t, before its own input dropout
        if l == 0:
            return None if tokens else x_in[:, t, :]
        x = act[l - 1, t]
        return x * between[l - 1, t] if between is not None else x

    def dropped(x, m):
        return x if m is None else x * m

    def input_products(l, t, act):
        if l == 0 and tokens:
            ids = x_in[:, t]
            return [cols(wx[0], g)[ids] * (1.0 if din[0][g] is None else din[0][g][np.arange(B), ids][:, None])
                    for g in range(G)]
        x = layer_input(l, t, act)
        return [dropped(x, din[l][g]) @ cols(wx[l], g) for g in range(G)]

    # Forward.
    states = [[h0[l, s] for s in range(S)] for l in range(L)]
    act = np.zeros((L, T, B, H))
    caches = {}
    for t in range(T):
        for l in range(L):
            prev = states[l]
            ax = input_products(l, t, act)
            ah = [dropped(prev[0], drec[l][g]) @ cols(wh[l], g) for g in range(G)]
            new, cache = _cell_forward(cell, ax, ah, bs[l], prev)
            keep = ~taken[:, t][:, None]
            new = [np.where(keep, p, n) for p, n in zip(prev, new)]
            caches[l, t] = (cache, prev)
            states[l] = new
            act[l, t] = new[0]
    outputs = np.zeros((B, T, H))
    for b in range(B):
        seen = False
        for t in range(T):
            if taken[b, t]:
                outputs[b, t], seen = act[L - 1, t, b], True
            elif seen and not zero_output_for_mask:
                outputs[b, t] = act[L - 1, t, b]
    final = np.array([[states[l][s] for s in range(S)] for l in range(L)])

    # Backward: cell (l, t) after (l + 1, t) and (l, t + 1).
    flows = taken.copy()  # where the output's gradient reaches the top layer's h
    if not zero_output_for_mask:
        flows |= np.cumsum(taken, axis=1) - taken > 0
    dstate = [[dfinal[l, s].copy() for s in range(S)] for l in range(L)]  # gradient of the states after step t
    d_from_above = np.zeros((L, B, H))  # dLoss/dh(l, t) through layer l + 1 at the current t
    g_kernels = [np.zeros_like(w) for w in wx]
    g_recurrent = [np.zeros_like(w) for w in wh]
    g_biases = [np.zeros_like(b) for b in bs]
    g_inputs = None if tokens else np.zeros_like(x_in)
    for t in reversed(range(T)):
        d_from_above[:] = 0.0
        for l in reversed(range(L)):
            cache, prev = caches[l, t]
            d = [dstate[l][s].copy() for s in range(S)]
            d[0] += d_from_above[l]
            if l == L - 1:
                d[0] += np.where(flows[:, t][:, None], dy[:, t], 0.0)
            rows = taken[:, t][:, None]
            dax, dah, direct = _cell_backward(cell, cache, d)
            dax = [np.where(rows, a, 0.0) for a in dax]
            dah = [np.where(rows, a, 0.0) for a in dah]
            if cell == "gru":
                dbias = np.stack([np.concatenate(dax, 1).sum(0), np.concatenate(dah, 1).sum(0)])
            else:
                dbias = np.concatenate(dax, 1).sum(0)
            g_biases[l] += dbias.reshape(g_biases[l].shape)
            # The previous states: the direct paths (everything where the row kept its states), and the
            # recurrent products through their masks.
            new_d = [np.where(rows, direct[s], d[s]) for s in range(S)]
            for g in range(G):
                hg = dropped(prev[0], drec[l][g])
                cols(g_recurrent[l], g)[:] += hg.T @ dah[g]
                new_d[0] += dropped(dah[g] @ cols(wh[l], g).T, drec[l][g])
            dstate[l] = new_d
            # The input: its products' gradients through their masks.
            if l == 0 and tokens:
                ids = x_in[:, t]
                for g in range(G):
                    scale = 1.0 if din[0][g] is None else din[0][g][np.arange(B), ids][:, None]
                    np.add.at(cols(g_kernels[0], g), ids, dax[g] * scale)
                continue
            x = layer_input(l, t, act)
            dx = np.zeros_like(x)
            for g in range(G):
                cols(g_kernels[l], g)[:] += dropped(x, din[l][g]).T @ dax[g]
                dx += dropped(dax[g] @ cols(wx[l], g).T, din[l][g])
            if l == 0:
                g_inputs[:, t, :] = dx
            else:
                d_from_above[l - 1] = dx * between[l - 1, t] if between is not None else dx
    g_initial = np.array([[dstate[l][s] for s in range(S)] for l in range(L)])
    if cell != "lstm":
        final, g_initial = final[:, 0], g_initial[:, 0]
    return {"outputs": outputs, "final_states": final, "activations": act, "grad_inputs": g_inputs,
            "grad_kernels": g_kernels, "grad_recurrent_kernels": g_recurrent, "grad_biases": g_biases,
            "grad_initial_states": g_initial}
