"""The entry points of deeprnn_fast._kernels as one template over the cells: forward_cpu / backward_cpu with cell=...
for every cell (the LSTM included) and token inputs, against the float64 oracle; the argument checks that the cell
and the inputs' kind add; the CUDA entry points' checks for every cell on a machine without a GPU. (The CUDA passes
themselves run in tests/test_cuda_emulation.py.)"""
import numpy as np
import pytest

from deeprnn_fast.testing import oracle
from deeprnn_fast.testing.gpu_check import CELL_CASES, FakeCudaArray

kernels = pytest.importorskip("deeprnn_fast._kernels",
                              reason="deeprnn_fast._kernels is not built (python setup.py build_ext --inplace)")

# The CPU passes of the gated cells use float approximations of exp (engine/cpu/simd.h).
TOL = {np.float32: 5e-5, np.float64: 1e-12}


def _buffers(cell, shape, dtype, tokens):
    B, T, D, H, L = shape
    case = CELL_CASES[cell]
    nan = lambda *s: np.full(s, np.nan, dtype)  # noqa: E731
    out = {"outputs": nan(B, T, H), "final_states": nan(*case.states_shape(L, B, H)),
           "activations": nan(L, T, B, H), "gates": nan(L, T, B, case.saved_slots * H) if case.saved_slots else None}
    grads = {"grad_inputs": None if tokens else nan(B, T, D),
             "grad_kernels": [nan(D if l == 0 else H, case.gates * H) for l in range(L)],
             "grad_recurrent_kernels": [nan(H, case.gates * H) for _ in range(L)],
             "grad_biases": [nan(*case.bias_shape(H)) for _ in range(L)],
             "grad_initial_states": nan(*case.states_shape(L, B, H))}
    return out, grads


def _run(cell, p, dtype):
    out, g = _buffers(cell, p.shape, dtype, p.tokens)
    kernels.forward_cpu(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, out["outputs"],
                        out["final_states"], out["activations"], gates=out["gates"], cell=cell)
    kernels.backward_cpu(p.inputs, p.kernels, p.recurrent_kernels, p.initial_states, out["activations"],
                         p.grad_outputs, p.grad_final_states, **g, grad_preactivations=None, gates=out["gates"],
                         cell=cell)
    return out, g


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tokens", [False, True])
@pytest.mark.parametrize("cell", ["tanh", "relu", "gru", "lstm"])
@pytest.mark.parametrize("shape", [(2, 5, 3, 7, 3), (3, 1, 4, 5, 1), (2, 0, 3, 4, 2)])
def test_cpu_passes_of_every_cell_match_the_oracle(cell, tokens, dtype, shape):
    p = CELL_CASES[cell].random_problem(np.random.default_rng(), shape, dtype, tokens)
    out, g = _run(cell, p, dtype)
    ref = CELL_CASES[cell].reference(p)
    tol = TOL[dtype]
    for name in ("outputs", "final_states", "activations", "gates", "grad_inputs", "grad_initial_states"):
        if name in ref:
            got = out.get(name) if name in out else g[name]
            assert oracle.relative_error(got, ref[name]) <= tol, name
    assert (g["grad_inputs"] is None) == tokens and ("gates" in ref) == (out["gates"] is not None)
    for name in ("grad_kernels", "grad_recurrent_kernels", "grad_biases"):
        for l, (got, want) in enumerate(zip(g[name], ref[name])):
            assert oracle.relative_error(got, want) <= tol, f"{name}[{l}]"


def test_grad_inputs_none_is_not_computed_and_the_rest_unchanged():
    p = oracle.random_lstm_problem(np.random.default_rng(3), 2, 4, 3, 5, 2, dtype=np.float64)
    out, g = _run("lstm", p, np.float64)
    _, g2 = _buffers("lstm", p.shape, np.float64, False)
    g2["grad_inputs"] = None
    kernels.backward_cpu(p.inputs, p.kernels, p.recurrent_kernels, p.initial_states, out["activations"],
                         p.grad_outputs, p.grad_final_states, **g2, grad_preactivations=None, gates=out["gates"],
                         cell="lstm")
    for name in ("grad_kernels", "grad_recurrent_kernels", "grad_biases"):
        for a, b in zip(g[name], g2[name]):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(g["grad_initial_states"], g2["grad_initial_states"])


def _forward(cell, p, **overrides):
    out, _ = _buffers(cell, p.shape, p.kernels[0].dtype, p.tokens)
    args = dict(inputs=p.inputs, kernels=p.kernels, recurrent_kernels=p.recurrent_kernels, biases=p.biases,
                initial_states=p.initial_states, **out, cell=cell)
    args.update(overrides)
    kernels.forward_cpu(**args)


def test_argument_errors_of_cells_and_tokens_name_the_argument():
    rng = np.random.default_rng(4)
    lstm = oracle.random_lstm_problem(rng, 2, 5, 3, 7, 2)
    with pytest.raises(ValueError, match=r"initial_states must have shape \(2, 2, 2, 7\); got \(2, 2, 7\)"):
        _forward("lstm", lstm, initial_states=lstm.initial_states[:, 0].copy())
    with pytest.raises(ValueError, match=r"kernels\[0\] must have shape \(3, 4 \* units\) \(gates i, f, c, o"):
        _forward("lstm", lstm, kernels=[np.ascontiguousarray(lstm.kernels[0][:, :26])] + lstm.kernels[1:])
    with pytest.raises(ValueError, match=r"biases\[1\] must have shape \(28,\)"):
        _forward("lstm", lstm, biases=[lstm.biases[0], np.zeros((1, 28), np.float32)])
    with pytest.raises(TypeError, match=r"gates must be an array of shape \(2, 5, 2, 35\) for the lstm cell"):
        _forward("lstm", lstm, gates=None)
    tanh = oracle.random_problem(rng, 2, 5, 3, 7, 2)
    with pytest.raises(ValueError, match="gates must be None for the tanh cell"):
        _forward("tanh", tanh, gates=np.zeros((2, 5, 2, 7), np.float32))
    with pytest.raises(ValueError, match="cell must be 'tanh', 'relu', 'gru' or 'lstm'"):
        kernels.forward_cpu(
            tanh.inputs, tanh.kernels, tanh.recurrent_kernels, tanh.biases, tanh.initial_states,
            **_buffers("tanh", tanh.shape, np.float32, False)[0], cell="lstm2")
    with pytest.raises(ValueError, match="activation 'relu' contradicts cell 'tanh'"):
        _forward("tanh", tanh, activation="relu")
    # Token inputs: int32 ids within the vocabulary, no grad_inputs.
    gru = oracle.random_gru_problem(rng, 2, 5, 6, 7, 2, tokens=True)
    bad = gru.inputs.copy()
    bad[1, 3] = 6
    with pytest.raises(ValueError, match=r"inputs \(token ids\) must lie in \[0, 6\) \(the rows of kernels\[0\]\); "
                                         r"got 6 at flat "
                                         r"index 8"):
        _forward("gru", gru, inputs=bad)
    with pytest.raises(TypeError, match="token inputs must be int32"):
        _forward("gru", gru, inputs=gru.inputs.astype(np.int64))
    out, g = _buffers("gru", gru.shape, np.float32, True)
    _forward("gru", gru, **out)
    with pytest.raises(ValueError, match="grad_inputs must be None with token inputs"):
        kernels.backward_cpu(gru.inputs, gru.kernels, gru.recurrent_kernels, gru.initial_states, out["activations"],
                             gru.grad_outputs, gru.grad_final_states, **dict(g, grad_inputs=np.zeros((2, 5, 6),
                                                                                                       np.float32)),
                             grad_preactivations=None, gates=out["gates"], cell="gru")


@pytest.mark.parametrize("tokens", [False, True])
@pytest.mark.skipif(kernels.cuda_available(), reason="these check the behaviour without a GPU")
def test_cuda_entry_points_check_every_cells_arguments_first(tokens):
    p = oracle.random_lstm_problem(np.random.default_rng(5), 2, 5, 3, 7, 2, tokens=tokens)
    out, g = _buffers("lstm", p.shape, np.float32, tokens)
    fake = FakeCudaArray
    args = dict(inputs=fake(p.inputs), kernels=[fake(w) for w in p.kernels],
                recurrent_kernels=[fake(w) for w in p.recurrent_kernels], biases=[fake(b) for b in p.biases],
                initial_states=fake(p.initial_states), workspace=fake(np.zeros(4096, np.uint8)),
                **{k: fake(v) for k, v in out.items()}, cell="lstm")
    if not kernels.has_cuda_build():
        with pytest.raises(RuntimeError, match="built without CUDA"):
            kernels.forward_cuda(**args)
        return
    with pytest.raises(ValueError, match=r"gates must have shape \(2, 5, 2, 35\)"):
        kernels.forward_cuda(**dict(args, gates=fake(np.zeros((2, 5, 2, 28), np.float32))))
    with pytest.raises(ValueError, match=r"final_states must have shape \(2, 2, 2, 7\)"):
        kernels.forward_cuda(**dict(args, final_states=fake(np.zeros((2, 2, 7), np.float32))))
    with pytest.raises(ValueError, match="invalid_tokens must be a writable CUDA int32 array of shape"):
        kernels.forward_cuda(**args, invalid_tokens=fake(np.zeros(2, np.int32)))
    grads = {k: ([fake(x) for x in v] if isinstance(v, list) else (None if v is None else fake(v)))
             for k, v in g.items()}
    bargs = dict(inputs=args["inputs"], kernels=args["kernels"], recurrent_kernels=args["recurrent_kernels"],
                 initial_states=args["initial_states"], activations=args["activations"],
                 grad_outputs=fake(p.grad_outputs), grad_final_states=fake(p.grad_final_states), **grads,
                 workspace=args["workspace"], gates=args["gates"], cell="lstm")
    with pytest.raises(TypeError, match=r"grad_preactivations must be a CUDA array of shape \(L, T, B, 4 \* units\)"):
        kernels.backward_cuda(**bargs, grad_preactivations=None)
    with pytest.raises(ValueError, match=r"grad_preactivations must have shape \(2, 5, 2, 28\)"):
        kernels.backward_cuda(**bargs, grad_preactivations=fake(np.zeros((2, 5, 2, 7), np.float32)))
    # ...and the first CUDA call reports the missing driver or device.
    with pytest.raises(RuntimeError, match="cuda"):
        kernels.forward_cuda(**args)
