"""Masks and dropout through deeprnn_fast._kernels' entry points (forward_cpu / backward_cpu here; the CUDA ones
share the same argument code and run in tests/test_cuda_emulation.py): results against the float64 oracle of them,
and one-line errors that name the argument for every way the modifiers can be wrong."""
import numpy as np
import pytest

from deeprnn_fast.testing import gpu_check, masked_oracle
from kernels_testing import load_kernels

kernels = load_kernels()

SHAPE = (4, 5, 3, 6, 3)  # B, T, D, H, L


def _call(cell, problem, mods, dtype):
    """Both CPU passes with `mods`; returns their results by the oracle's names."""
    case = gpu_check.CELL_CASES[cell]
    p = gpu_check._upload(gpu_check.CpuBackend(kernels), problem, dtype, cell)
    p["modifiers"] = mods
    got, _, _ = gpu_check._run_both_passes(gpu_check.CpuBackend(kernels), p, dtype, "cpu")
    assert case.name == cell
    return got


@pytest.mark.parametrize("cell,tokens", [("tanh", False), ("gru", True), ("lstm", False)])
def test_modifiers_match_the_oracle(rng, cell, tokens):
    case = gpu_check.CELL_CASES[cell]
    problem = case.random_problem(rng, SHAPE, np.float64, tokens)
    variant = gpu_check.MODIFIER_VARIANTS[-1]  # all of them, per gate, with holes
    mods = gpu_check._modifiers(rng, variant, SHAPE, case.gates, np.float64)
    assert mods["mask"][-1].sum() == 0 and mods["input_dropout"][0].shape[0] == case.gates
    got = _call(cell, problem, mods, np.float64)
    want = masked_oracle.run(cell, problem.inputs, problem.kernels, problem.recurrent_kernels, problem.biases,
                             problem.initial_states, problem.grad_outputs, problem.grad_final_states, **mods)
    errors = gpu_check._errors(got, {k: v for k, v in want.items() if v is not None})
    assert set(errors) >= {"outputs", "final_states", "activations", "grad_kernels", "grad_recurrent_kernels",
                           "grad_biases", "grad_initial_states"}
    assert max(errors.values()) <= 1e-10, errors


def _modifier_error(rng, cell, **mods):
    case = gpu_check.CELL_CASES[cell]
    problem = case.random_problem(rng, SHAPE, np.float32, False)
    return _call(cell, problem, mods, np.float32)


def test_bad_modifiers_are_one_line_errors_naming_them(rng):
    B, T, D, H, L = SHAPE
    ones = lambda *s: np.ones(s, np.float32)  # noqa: E731
    with pytest.raises(TypeError, match=r"^mask must be bool \(True: the step is taken\); got float32$"):
        _modifier_error(rng, "tanh", mask=ones(B, T))
    with pytest.raises(ValueError, match=r"^mask must have shape \(4, 5\); got \(5, 4\)$"):
        _modifier_error(rng, "tanh", mask=np.ones((T, B), bool))
    with pytest.raises(ValueError, match=r"^input_dropout\[0\] must have shape \(masks, batch, width\) with masks 1 "
                                         r"or 3 \(one per gate\); got \(2, 4, 3\)$"):
        _modifier_error(rng, "gru", input_dropout=[ones(2, B, D)] + [ones(2, B, H)] * (L - 1))
    with pytest.raises(ValueError, match=r"^recurrent_dropout\[1\] must have shape \(4, 4, 6\); got \(1, 4, 6\)$"):
        _modifier_error(rng, "lstm", recurrent_dropout=[ones(4, B, H), ones(1, B, H), ones(4, B, H)])
    with pytest.raises(ValueError, match=r"^input_dropout must hold one array per layer \(3\); got 1"):
        _modifier_error(rng, "tanh", input_dropout=[ones(1, B, D)])
    with pytest.raises(ValueError, match=r"^between_dropout must have shape \(2, 5, 4, 6\)"):
        _modifier_error(rng, "tanh", between_dropout=ones(L, T, B, H))
    with pytest.raises(TypeError, match=r"^zero_output_for_mask must be a bool; got int$"):
        _modifier_error(rng, "tanh", mask=np.ones((B, T), bool), zero_output_for_mask=1)
    with pytest.raises(TypeError, match=r"^input_dropout\[0\] must be float32"):
        _modifier_error(rng, "tanh", input_dropout=[np.ones((1, B, D))] + [ones(1, B, H)] * (L - 1))


# Several column panels per cell, split into tiles across the threads (few rows, H = 40), and many rows in batch
# blocks (B = 200, small weights): a dropped operand is written by the tiles of the state it comes from, each over
# its own rows and units, and read whole by the next step's tiles (engine/cpu/forward.h).
@pytest.mark.parametrize("shape", [(6, 5, 4, 40, 3), (200, 4, 3, 12, 2)], ids=["split-tiles", "batch-blocks"])
@pytest.mark.parametrize("cell", ["tanh", "gru", "lstm"])
@pytest.mark.parametrize("variant", gpu_check.MODIFIER_VARIANTS[3:], ids=lambda v: v[0].replace(" ", "-"))
def test_dropout_on_multi_tile_shapes_matches_the_oracle(rng, shape, cell, variant):
    case = gpu_check.CELL_CASES[cell]
    problem = case.random_problem(rng, shape, np.float64, False)
    mods = gpu_check._modifiers(rng, variant, shape, case.gates, np.float64)
    got = _call(cell, problem, mods, np.float64)
    want = masked_oracle.run(cell, problem.inputs, problem.kernels, problem.recurrent_kernels, problem.biases,
                             problem.initial_states, problem.grad_outputs, problem.grad_final_states, **mods)
    errors = gpu_check._errors(got, {k: v for k, v in want.items() if v is not None})
    assert max(errors.values()) <= 1e-10, errors
