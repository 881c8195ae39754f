"""The GPU self-check (deeprnn_fast.gpu_self_check) over the pybind CUDA entry points of a module built against the
CPU emulation of CUDA (benchmarks/gpu/build_kernels.py --cuda emulate), against the float64 NumPy oracle: the check's
real logic on the real CUDA kernel sources, without a GPU or TensorFlow. tests/test_gpu_self_check.py runs it in a
subprocess, with and without DEEPRNN_FAST_EMULATION_FAULT.

    python -m deeprnn_fast.testing.emulated_self_check --kernels build/.../_kernels*.so [--cells tanh,gru]
        [--dtypes float32,float64]

prints one JSON object: {"results": {"cell/dtype": {"passed", "detail", "answers"}}, "warnings": [...],
"checks_run": n}, where "answers" are use_fused's answers to --calls calls of that key.
"""
import argparse
import json
import sys
import warnings

import numpy as np

from deeprnn_fast import gpu_self_check
from deeprnn_fast.testing import masked_oracle, oracle
from deeprnn_fast.testing.gpu_check import FakeCudaArray, load_kernels

DEVICE = "emulated-cuda:0"


def pybind_cuda_runner(kernels):
    """The fused side: problem -> results through the module's CUDA entry points. The one place that names them
    (forward_cuda / backward_cuda / gru_forward_cuda / gru_backward_cuda / workspace_bytes), so that a rename of
    the bindings is re-pointed here only."""

    def run(problem):
        B, T, D = problem.inputs.shape
        L, H = len(problem.kernels), problem.grad_outputs.shape[2]
        dtype = problem.inputs.dtype
        gru = problem.cell == "gru"

        def put(a):
            return FakeCudaArray(np.asarray(a))

        def buffer(shape):
            return FakeCudaArray(np.full(shape, np.nan, dtype))  # NaN: an unwritten output never passes

        def workspace(direction):
            n = kernels.workspace_bytes(direction, B, T, D, H, L, dtype.name, cell="gru" if gru else "rnn")
            return FakeCudaArray(np.empty(n + 256, np.uint8))

        x, wx = put(problem.inputs), [put(w) for w in problem.kernels]
        wh, b = [put(w) for w in problem.recurrent_kernels], [put(v) for v in problem.biases]
        h0 = put(np.stack(problem.initial_states))
        dy, dfinal = put(problem.grad_outputs), put(np.stack(problem.grad_final_states))
        G = 3 if gru else 1
        y, final, act = buffer((B, T, H)), buffer((L, B, H)), buffer((L, T, B, H))
        gx, gh0 = buffer((B, T, D)), buffer((L, B, H))
        gwx = [buffer((D if l == 0 else H, G * H)) for l in range(L)]
        gwh = [buffer((H, G * H)) for _ in range(L)]
        gb = [buffer((2, 3 * H) if gru else (H,)) for _ in range(L)]
        mods = {k: v if isinstance(v, bool) else [put(m) for m in v] if isinstance(v, list) else put(v)
                for k, v in problem.modifiers.items()}
        if gru and mods:  # the GRU's former entry points take no modifiers
            gates, ggates = buffer((L, T, B, 4 * H)), buffer((L, T, B, 4 * H))
            kernels.forward_cuda(x, wx, wh, b, h0, y, final, act, workspace("forward"), stream=0, gates=gates,
                                 cell="gru", **mods)
            kernels.backward_cuda(x, wx, wh, h0, act, dy, dfinal, gx, gwx, gwh, gb, gh0, ggates,
                                  workspace("backward"), stream=0, gates=gates, cell="gru", **mods)
        elif gru:
            gates, ggates = buffer((L, T, B, 4 * H)), buffer((L, T, B, 4 * H))
            kernels.gru_forward_cuda(x, wx, wh, b, h0, y, final, act, gates, workspace("forward"), stream=0)
            kernels.gru_backward_cuda(x, wx, wh, h0, act, gates, dy, dfinal, gx, gwx, gwh, gb, gh0, ggates,
                                      workspace("backward"), stream=0)
        else:
            kernels.forward_cuda(x, wx, wh, b, h0, y, final, act, workspace("forward"), activation=problem.cell,
                                 stream=0, **mods)
            kernels.backward_cuda(x, wx, wh, h0, act, dy, dfinal, gx, gwx, gwh, gb, gh0, buffer((L, T, B, H)),
                                  workspace("backward"), activation=problem.cell, stream=0, **mods)
        return gpu_self_check.named_results(
            y.array, list(final.array), gx.array, [g.array for g in gwx], [g.array for g in gwh],
            [g.array for g in gb], list(gh0.array))

    return run


def oracle_runner(problem):
    """The reference side: the float64 NumPy oracle on the same problem (with modifiers, the oracle of them)."""
    if problem.modifiers:
        r = masked_oracle.run(problem.cell, problem.inputs, problem.kernels, problem.recurrent_kernels,
                              problem.biases, np.stack(problem.initial_states), problem.grad_outputs,
                              np.stack(problem.grad_final_states), **problem.modifiers)
        pairs = (lambda states: [tuple(s) for s in states]) if problem.cell == "lstm" else list  # noqa: E731
        return gpu_self_check.named_results(r["outputs"], pairs(r["final_states"]), r["grad_inputs"],
                                            r["grad_kernels"], r["grad_recurrent_kernels"], r["grad_biases"],
                                            pairs(r["grad_initial_states"]))
    if problem.cell == "gru":
        y, final, act, gates = oracle.gru_forward(problem.inputs, problem.kernels, problem.recurrent_kernels,
                                                  problem.biases, problem.initial_states)
        g = oracle.gru_backward(problem.inputs, problem.kernels, problem.recurrent_kernels, problem.biases,
                                problem.initial_states, act, gates, problem.grad_outputs,
                                np.stack(problem.grad_final_states))
    else:
        y, final, act = oracle.forward(problem.inputs, problem.kernels, problem.recurrent_kernels, problem.biases,
                                       problem.initial_states, problem.cell)
        g = oracle.backward(problem.inputs, problem.kernels, problem.recurrent_kernels, problem.biases,
                            problem.initial_states, act, problem.grad_outputs, np.stack(problem.grad_final_states),
                            problem.cell)
    return gpu_self_check.named_results(y, list(final), g.grad_inputs, g.grad_kernels, g.grad_recurrent_kernels,
                                        g.grad_biases, list(g.grad_initial_states))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", required=True, help="the emulated build's _kernels*.so")
    ap.add_argument("--cells", default="tanh,relu,gru")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--calls", type=int, default=2, help="calls per key (the check must run once per key)")
    a = ap.parse_args(argv)
    kernels = load_kernels(a.kernels)
    checks = gpu_self_check.SelfCheck()
    fused = pybind_cuda_runner(kernels)
    results = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for cell in a.cells.split(","):
            for dtype in a.dtypes.split(","):
                answers = [checks.use_fused(DEVICE, cell, dtype, fused, oracle_runner) for _ in range(a.calls)]
                result = checks.result(DEVICE, cell, dtype)
                results[f"{cell}/{dtype}"] = {"passed": result.passed, "detail": result.detail, "answers": answers}
    json.dump({"results": results, "warnings": [str(w.message) for w in caught], "checks_run": checks.runs},
              sys.stdout)
    print()


if __name__ == "__main__":
    main()
