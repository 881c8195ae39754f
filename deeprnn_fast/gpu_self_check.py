"""The CUDA kernels check themselves once per (device, cell, dtype) in a process, before they are trusted.

The CUDA kernels are compiled, not yet run on a GPU. So that a wrong build cannot hand a user silent garbage, the
first fused call on a GPU runs both the fused backend and the plain reference on one small random problem, forward
and backward, and compares every output, final state and gradient; then the same with a mask and all three dropouts
(make_problem(..., modifiers=True)), so that the masked and dropped paths of the kernels are checked too. On a
mismatch, or when the fused side raises (a
CUDA error), that (device, cell, dtype) runs the reference for the rest of the process, after one warning that
names the worst quantity and its error. The logic here is framework-free: both sides are callables
problem -> {name: array}, so that the same check runs over the TF op (deeprnn_fast/_gpu_self_check_tf.py) and over
the pybind CUDA entry points on the CPU emulation of CUDA (deeprnn_fast/testing/emulated_self_check.py).

DEEPRNN_FAST_GPU_SELF_CHECK: unset, "" or "1" runs the check (the default); "0" skips it and trusts the kernels.
Any other value is an error naming the variable and the accepted values (a typo must not silently turn a safety
check off, nor silently leave it on when someone meant to disable it).
"""
import os
import threading
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

__all__ = ["ENV", "enabled", "Problem", "make_problem", "compare", "CheckResult", "SelfCheck", "TOLERANCE", "TF32_TOLERANCE",
           "PROBLEM_SIZE",
           "named_results"]

ENV = "DEEPRNN_FAST_GPU_SELF_CHECK"

# (B, T, D, H, L). T = 5 > 1 and L = 3 > 1: the wavefront has T + L - 1 = 7 steps, with cells of several layers in
# flight in one step; H = 33 is one past a multiple of every tile width (8, 16, 32), so every tile path and its
# ragged edge run; B = 3 and D = 7 are off every tile too. Small enough that even the reference's Python loop over
# 15 cells costs milliseconds.
PROBLEM_SIZE = (3, 5, 7, 33, 3)

# Largest |fused - reference| over an array, relative to that array's largest |reference|. Both sides compute in
# the same dtype on this problem (sums of at most 40 products, 7 wavefront steps deep): float32 agrees to ~1e-6
# and float64 to ~1e-14, while one wrong index, a lost tile or one corrupted value moves some entry by O(1).
TOLERANCE = {"float32": 2e-4, "float64": 1e-9}
# float32 with TF32 allowed (TensorFlow's default on GPUs): the fused op may then run the tensor-core tile and TF's own
# products in the reference use TF32 too (10-bit mantissas, ~1e-3 relative); a wrong index still moves O(1).
TF32_TOLERANCE = 5e-3

# Gate blocks per cell: kernels are [in, G*H].
_GATES = {"tanh": 1, "relu": 1, "gru": 3, "lstm": 4}


def enabled(environ=None):
    """Whether the self-check runs (see the module's docstring for the accepted values)."""
    value = (os.environ if environ is None else environ).get(ENV, "").strip()
    if value in ("", "1"):
        return True
    if value == "0":
        return False
    raise ValueError(f"{ENV} must be 0 (skip the GPU self-check) or 1 (run it, the default); got {value!r}")


@dataclass
class Problem:
    """One random problem in one dtype: the forward's arguments and the cotangents of its two results."""
    cell: str
    inputs: np.ndarray                 # [B, T, D]
    kernels: List[np.ndarray]          # L: [D, G*H], then [H, G*H]
    recurrent_kernels: List[np.ndarray]  # L: [H, G*H]
    biases: List[np.ndarray]           # L: [G*H] ([2, 3H] for the GRU)
    initial_states: List[object]       # L: [B, H] (pairs (h, c) for the LSTM)
    grad_outputs: np.ndarray           # [B, T, H]
    grad_final_states: List[object]    # as initial_states
    # Keyword arguments of the call (mask, input_dropout, recurrent_dropout, between_dropout), or none.
    modifiers: Dict[str, object] = field(default_factory=dict)

    @property
    def dtype(self):
        return self.inputs.dtype.name


def make_problem(cell, dtype, seed=0, size=PROBLEM_SIZE, modifiers=False):
    """Fresh random data (never zeros) in a range where no activation saturates: weights U(-s, s), s = 1/sqrt(H)
    (half that for relu, which does not squash), inputs and cotangents U(-1, 1), states U(-0.5, 0.5). With
    `modifiers`, also a mask with holes, a left-padded row and a row that takes no step, and dropout masks (0 or
    1 / 0.7) of every kind, per gate for the gated cells (Keras' recurrent_dropout draws one per gate)."""
    if cell not in _GATES:
        raise ValueError(f"cell must be one of {sorted(_GATES)}; got {cell!r}")
    rng = np.random.default_rng(seed)
    B, T, D, H, L = size
    G = _GATES[cell]
    s = (0.5 if cell == "relu" else 1.0) / np.sqrt(H)

    def u(shape, scale):
        return rng.uniform(-scale, scale, size=shape).astype(dtype)

    def states(scale):
        if cell == "lstm":
            return [(u((B, H), scale), u((B, H), scale)) for _ in range(L)]
        return [u((B, H), scale) for _ in range(L)]

    problem = Problem(
        cell=cell,
        inputs=u((B, T, D), 1.0),
        kernels=[u((D if l == 0 else H, G * H), s) for l in range(L)],
        recurrent_kernels=[u((H, G * H), s) for _ in range(L)],
        biases=[u((2, 3 * H) if cell == "gru" else (G * H,), 0.2) for _ in range(L)],
        initial_states=states(0.5),
        grad_outputs=u((B, T, H), 1.0),
        grad_final_states=states(1.0),
    )
    if modifiers:
        mask = rng.random((B, T)) > 0.3
        mask[0, :2], mask[0, 2:] = False, True  # left-padded
        mask[-1] = False                         # no step at all

        def drop(*shape):
            return ((rng.random(shape) > 0.3) / 0.7).astype(dtype)

        problem.modifiers = {"mask": mask, "input_dropout": [drop(G, B, D if l == 0 else H) for l in range(L)],
                             "recurrent_dropout": [drop(G, B, H) for _ in range(L)],
                             "between_dropout": drop(L - 1, T, B, H)}
    return problem


def flat_states(states, prefix):
    """{prefix[l]: [B, H]}, or {prefix[l].h, prefix[l].c} for the LSTM's pairs: names for the warning."""
    out = {}
    for l, s in enumerate(states):
        if isinstance(s, (tuple, list)):
            out[f"{prefix}[{l}].h"], out[f"{prefix}[{l}].c"] = s
        else:
            out[f"{prefix}[{l}]"] = s
    return out


def named_results(outputs, final_states, grad_inputs, grad_kernels, grad_recurrent_kernels, grad_biases,
                  grad_initial_states):
    """The one naming of every quantity both runners return (the warning quotes these names); per-layer lists
    become name[l], the LSTM's state pairs name[l].h and name[l].c."""
    out = {"outputs": outputs, "grad_inputs": grad_inputs}
    out.update(flat_states(final_states, "final_states"))
    for name, arrays in (("grad_kernels", grad_kernels), ("grad_recurrent_kernels", grad_recurrent_kernels),
                         ("grad_biases", grad_biases)):
        out.update({f"{name}[{l}]": a for l, a in enumerate(arrays)})
    out.update(flat_states(grad_initial_states, "grad_initial_states"))
    return out


def max_relative_error(got, want):
    """max |got - want| / max |want| in float64 (the absolute error when want is all zeros); inf for a NaN or an
    infinity in got, or a shape that differs, so that an unwritten or misshaped output never passes."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    if got.shape != want.shape or not np.all(np.isfinite(got)):
        return float("inf")
    if got.size == 0:
        return 0.0
    scale = float(np.max(np.abs(want)))
    error = float(np.max(np.abs(got - want)))
    return error / scale if scale > 0 else error


def compare(fused, reference, dtype, tf32=False):
    """(passed, worst name, worst error, tolerance) over every quantity the reference holds; a quantity the fused
    side lacks counts as wrong. tf32: float32 products may have run in TF32 (TF32_TOLERANCE)."""
    tolerance = TF32_TOLERANCE if (tf32 and dtype == "float32") else TOLERANCE[dtype]
    worst, worst_error = None, -1.0
    for name, want in reference.items():
        error = max_relative_error(fused[name], want) if name in fused else float("inf")
        if error > worst_error:
            worst, worst_error = name, error
    return worst_error <= tolerance, worst, worst_error, tolerance


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    detail: str  # what failed, with the numbers; "" when passed


Runner = Callable[[Problem], Dict[str, np.ndarray]]


class SelfCheck:
    """The per-process verdicts, keyed by (device, cell, dtype). `use_fused` runs the check the first time a key is
    asked for and answers from the cache afterwards; a failing key warns once."""

    def __init__(self, seed=0, tf32=lambda: False):
        self._seed = seed
        self._tf32 = tf32  # asked at each check: whether float32 products may run in TF32 now
        self._lock = threading.Lock()
        self._results: Dict[Tuple[str, str, str], CheckResult] = {}
        self.runs = 0  # checks actually run (the tests count them)

    def result(self, device, cell, dtype) -> Optional[CheckResult]:
        with self._lock:
            return self._results.get((device, cell, dtype))

    def use_fused(self, device, cell, dtype, fused: Runner, reference: Runner, environ=None, executor=None,
                  stacklevel=2):
        """True when the fused kernels may run for this key; False: run the reference instead. `executor(work)`
        runs the check where it must run (default: here); the warning is always raised on the calling thread,
        `stacklevel` frames above this method's caller."""
        if not enabled(environ):
            return True
        key = (device, cell, dtype)
        # One check per key even with several threads calling at once: the lock is held through the check, which
        # costs well under a second and happens once per key per process.
        with self._lock:
            result = self._results.get(key)
            if result is None:
                result = (executor or (lambda work: work()))(lambda: self._run(key, fused, reference))
                self._results[key] = result
                self.runs += 1
                if not result.passed:
                    warnings.warn(
                        f"deeprnn_fast: the CUDA kernels' self-check failed on {device} for the {cell} cell in "
                        f"{dtype}: {result.detail}. Running the plain-TensorFlow reference (same results, slower) "
                        f"for {cell}/{dtype} on this device for the rest of the process; please report this. "
                        f"{ENV}=0 skips the check.", RuntimeWarning, stacklevel=stacklevel + 1)
        return result.passed

    def _run(self, key, fused, reference):
        device, cell, dtype = key
        for modifiers in (False, True):  # the plain problem first: a broken build fails there, in one call
            problem = make_problem(cell, dtype, self._seed, modifiers=modifiers)
            case = " with a mask and dropout" if modifiers else ""
            want = reference(problem)
            try:
                got = fused(problem)
            except Exception as e:  # a CUDA error surfaces as whatever the binding raises
                return CheckResult(False, f"the fused kernels raised {type(e).__name__}{case}: "
                                          f"{str(e).strip()[:500]}")
            passed, name, error, tolerance = compare(got, want, dtype, self._tf32())
            if not passed:
                return CheckResult(False, f"{name} differs from the reference{case} by a relative error of "
                                          f"{error:.3g} (largest |difference| / largest |reference|; tolerance "
                                          f"{tolerance:g})")
        return CheckResult(True, "")
