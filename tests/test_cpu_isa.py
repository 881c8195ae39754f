"""The baseline (non-AVX2) CPU kernels, forced with DEEPRNN_FAST_CPU_ISA=generic in a fresh process, against the
float64 oracle: on an AVX2 machine nothing else runs them. Both cells, both dtypes, and a batch large enough for batch
blocks; the default choice is checked the same way beside it."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

kernels = pytest.importorskip("deeprnn_fast._kernels",
                              reason="deeprnn_fast._kernels is not built (python setup.py build_ext --inplace)")

REPO = Path(__file__).resolve().parents[1]

# Prints {"isa": ..., "errors": {case: largest relative error over every output and gradient}}.
CHECK = textwrap.dedent('''
    import json
    import numpy as np
    from deeprnn_fast import _kernels as k
    from deeprnn_fast.testing import oracle

    def nans(dtype, *shape):
        return np.full(shape, np.nan, dtype)

    def rnn_error(shape, dtype):
        B, T, D, H, L = shape
        p = oracle.random_problem(np.random.default_rng(7), *shape, dtype=dtype)
        out = {"outputs": nans(dtype, B, T, H), "final_states": nans(dtype, L, B, H),
               "activations": nans(dtype, L, T, B, H)}
        g = {"grad_inputs": nans(dtype, B, T, D),
             "grad_kernels": [nans(dtype, D if l == 0 else H, H) for l in range(L)],
             "grad_recurrent_kernels": [nans(dtype, H, H) for _ in range(L)],
             "grad_biases": [nans(dtype, H) for _ in range(L)], "grad_initial_states": nans(dtype, L, B, H),
             "grad_preactivations": nans(dtype, L, T, B, H)}
        k.forward_cpu(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, **out)
        k.backward_cpu(p.inputs, p.kernels, p.recurrent_kernels, p.initial_states, out["activations"],
                       p.grad_outputs, p.grad_final_states, **g)
        y, fin, act = oracle.forward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, "tanh")
        ref = oracle.backward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, act,
                              p.grad_outputs, p.grad_final_states, "tanh")
        pairs = [(out["outputs"], y), (out["final_states"], fin), (g["grad_inputs"], ref.grad_inputs),
                 (g["grad_initial_states"], ref.grad_initial_states)]
        for name in ("grad_kernels", "grad_recurrent_kernels", "grad_biases"):
            pairs += list(zip(g[name], getattr(ref, name)))
        return max(oracle.relative_error(a, b) for a, b in pairs)

    def gru_error(shape, dtype):
        B, T, D, H, L = shape
        p = oracle.random_gru_problem(np.random.default_rng(8), *shape, dtype=dtype)
        out = {"outputs": nans(dtype, B, T, H), "final_states": nans(dtype, L, B, H),
               "activations": nans(dtype, L, T, B, H), "gates": nans(dtype, L, T, B, 4 * H)}
        g = {"grad_inputs": nans(dtype, B, T, D),
             "grad_kernels": [nans(dtype, D if l == 0 else H, 3 * H) for l in range(L)],
             "grad_recurrent_kernels": [nans(dtype, H, 3 * H) for _ in range(L)],
             "grad_biases": [nans(dtype, 2, 3 * H) for _ in range(L)], "grad_initial_states": nans(dtype, L, B, H)}
        k.gru_forward_cpu(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, **out)
        k.gru_backward_cpu(p.inputs, p.kernels, p.recurrent_kernels, p.initial_states, out["activations"],
                           out["gates"], p.grad_outputs, p.grad_final_states, **g)
        y, fin, act, gates = oracle.gru_forward(p.inputs, p.kernels, p.recurrent_kernels, p.biases,
                                                p.initial_states)
        ref = oracle.gru_backward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, act, gates,
                                  p.grad_outputs, p.grad_final_states)
        pairs = [(out["outputs"], y), (out["final_states"], fin), (out["gates"], gates),
                 (g["grad_inputs"], ref.grad_inputs), (g["grad_initial_states"], ref.grad_initial_states)]
        for name in ("grad_kernels", "grad_recurrent_kernels", "grad_biases"):
            pairs += list(zip(g[name], getattr(ref, name)))
        return max(oracle.relative_error(a, b) for a, b in pairs)

    errors = {}
    for dtype in (np.float32, np.float64):
        for shape in [(3, 5, 4, 17, 3), (300, 3, 5, 9, 2)]:  # the second runs as batch blocks
            case = f"{np.dtype(dtype).name}-B{shape[0]}-H{shape[3]}"
            errors["rnn-" + case] = rnn_error(shape, dtype)
            errors["gru-" + case] = gru_error(shape, dtype)
    print(json.dumps({"isa": k.cpu_isa(), "errors": errors}))
''')

TOL = {"float32": 5e-5, "float64": 1e-12}


@pytest.mark.parametrize("isa", ["generic", "default"])
def test_cpu_kernels_of_each_instruction_set_match_the_oracle(isa):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO)] + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    env.pop("DEEPRNN_FAST_CPU_ISA", None)
    if isa == "generic":
        env["DEEPRNN_FAST_CPU_ISA"] = "generic"
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if isa == "generic":
        assert report["isa"] == "generic"
    else:
        assert report["isa"] == kernels.cpu_isa()
    for case, error in report["errors"].items():
        assert error <= TOL[case.split("-")[1]], f"{report['isa']} {case}: relative error {error:.3g}"
