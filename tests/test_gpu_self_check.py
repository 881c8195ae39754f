"""The GPU self-check (deeprnn_fast/gpu_self_check.py): its decision logic and cache with NumPy fakes, its TF wiring
(ops.py routes to the reference after a failed check, and CPU calls never check), and, opt-in with
DEEPRNN_FAST_EMULATION_TESTS=1 (as tests/test_cuda_emulation.py, whose cached build it shares), the real check over
the CUDA kernels on the CPU emulation of CUDA, healthy and with injected faults (DEEPRNN_FAST_EMULATION_FAULT)."""
import glob
import json
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

from deeprnn_fast import gpu_self_check
from deeprnn_fast.testing.emulated_self_check import oracle_runner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- the decision logic, with NumPy fakes (always on, milliseconds) ----

def _cast(results, dtype):
    return {k: v.astype(dtype) for k, v in results.items()}


def correct_fake(problem):
    """What a correct kernel returns: the float64 oracle rounded to the problem's dtype."""
    return _cast(oracle_runner(problem), problem.dtype)


def wrong_index_fake(problem):
    """A kernel that reads the recurrent weights' rows backwards (W_h[H-1-k, n] for W_h[k, n]): one wrong index."""
    swapped = gpu_self_check.Problem(**{**problem.__dict__,
                                        "recurrent_kernels": [w[::-1].copy() for w in problem.recurrent_kernels]})
    return _cast(oracle_runner(swapped), problem.dtype)


@pytest.mark.parametrize("cell", ["tanh", "relu", "gru"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_correct_fake_passes_and_wrong_index_fails(cell, dtype):
    problem = gpu_self_check.make_problem(cell, dtype, seed=7)
    want = oracle_runner(problem)
    passed, _, error, tolerance = gpu_self_check.compare(correct_fake(problem), want, dtype)
    assert passed and error <= tolerance
    passed, name, error, tolerance = gpu_self_check.compare(wrong_index_fake(problem), want, dtype)
    assert not passed and error > 100 * tolerance, (name, error)


def _tf32(array):
    """Rounds float32 values to TF32 (10-bit mantissa, to nearest), as the tensor cores read them."""
    bits = np.asarray(array, np.float32).view(np.uint32)
    return ((bits + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)


@pytest.mark.parametrize("cell", ["tanh", "gru"])
def test_tf32_tolerance_passes_tf32_rounding_and_still_fails_a_wrong_index(cell):
    """With TF32 allowed the fused op may run the tensor-core tile: a kernel whose weights and states were read as
    TF32 passes the TF32 tolerance (not the float32 one), a wrong index fails both."""
    problem = gpu_self_check.make_problem(cell, "float32", seed=11)
    want = oracle_runner(problem)
    rounded = gpu_self_check.Problem(**{**problem.__dict__,
                                        "recurrent_kernels": [_tf32(w) for w in problem.recurrent_kernels],
                                        "kernels": [_tf32(w) for w in problem.kernels]})
    got = _cast(oracle_runner(rounded), np.float32)
    passed, _, error, tolerance = gpu_self_check.compare(got, want, "float32", tf32=True)
    assert passed and tolerance == gpu_self_check.TF32_TOLERANCE and error > gpu_self_check.TOLERANCE["float32"] / 10
    passed, _, error, _ = gpu_self_check.compare(wrong_index_fake(problem), want, "float32", tf32=True)
    assert not passed and error > 10 * gpu_self_check.TF32_TOLERANCE
    assert gpu_self_check.compare(got, want, "float64", tf32=True)[3] == gpu_self_check.TOLERANCE["float64"]


def test_one_corrupted_value_fails_and_is_named():
    problem = gpu_self_check.make_problem("tanh", "float32", seed=3)
    want = oracle_runner(problem)
    got = correct_fake(problem)
    got["grad_recurrent_kernels[1]"][4, 20] += 0.01 * np.abs(want["grad_recurrent_kernels[1]"]).max()
    passed, name, error, _ = gpu_self_check.compare(got, want, "float32")
    assert not passed and name == "grad_recurrent_kernels[1]" and 0.009 < error < 0.011
    got = correct_fake(problem)
    got["outputs"][0, 0, 0] = np.nan  # an unwritten (poisoned) output
    assert gpu_self_check.compare(got, want, "float32")[:2] == (False, "outputs")
    del got["outputs"]
    assert gpu_self_check.compare(got, want, "float32")[:2] == (False, "outputs")


def test_problem_reaches_the_wavefront_and_is_random():
    B, T, D, H, L = gpu_self_check.PROBLEM_SIZE
    assert T > 1 and L > 1 and H % 32 == 1
    for cell, gates in (("tanh", 1), ("gru", 3), ("lstm", 4)):
        p = gpu_self_check.make_problem(cell, "float64", seed=1)
        assert p.inputs.shape == (B, T, D) and p.kernels[0].shape == (D, gates * H)
        assert [w.shape for w in p.recurrent_kernels] == [(H, gates * H)] * L
        states = np.asarray(p.initial_states)
        assert states.shape == ((L, 2, B, H) if cell == "lstm" else (L, B, H)) and np.all(states != 0)
    a, b = (gpu_self_check.make_problem("tanh", "float32", seed=s).inputs for s in (1, 2))
    assert not np.allclose(a, b)


def test_checks_once_per_key_and_warns_once_with_numbers():
    checks = gpu_self_check.SelfCheck()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            assert checks.use_fused("/GPU:0", "tanh", "float32", correct_fake, oracle_runner, environ={})
            assert not checks.use_fused("/GPU:0", "tanh", "float64", wrong_index_fake, oracle_runner, environ={})
        assert not checks.use_fused("/GPU:1", "tanh", "float32", wrong_index_fake, oracle_runner, environ={})
    assert checks.runs == 3  # (GPU:0, tanh, float32), (GPU:0, tanh, float64), (GPU:1, tanh, float32)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert "/GPU:0 for the tanh cell in float64" in messages[0] and "/GPU:1" in messages[1]
    match = re.search(r": (\w+(\[\d\](\.[hc])?)?) differs from the reference by a relative error of ([0-9.e+-]+)",
                      messages[0])
    assert match and float(match.group(4)) > 1e-3, messages[0]
    assert checks.result("/GPU:0", "tanh", "float64").passed is False


def test_an_error_of_the_fused_side_is_a_failure():
    def launch_fails(problem):
        raise RuntimeError("stacked RNN forward: cudaLaunchCooperativeKernel failed: cudaErrorLaunchFailure")

    checks = gpu_self_check.SelfCheck()
    with pytest.warns(RuntimeWarning, match="raised RuntimeError: .*cudaErrorLaunchFailure"):
        assert not checks.use_fused("/GPU:0", "gru", "float32", launch_fails, oracle_runner, environ={})
    assert not checks.use_fused("/GPU:0", "gru", "float32", launch_fails, oracle_runner, environ={})
    assert checks.runs == 1


def test_environment_switch():
    def must_not_run(problem):
        raise AssertionError("the check ran although it is switched off")

    checks = gpu_self_check.SelfCheck()
    env = gpu_self_check.ENV
    assert checks.use_fused("/GPU:0", "tanh", "float32", must_not_run, must_not_run, environ={env: "0"})
    assert checks.runs == 0
    for on in ({}, {env: ""}, {env: "1"}, {env: " 1 "}):
        assert gpu_self_check.enabled(on)
    for bad in ("yes", "off", "2", "true"):
        with pytest.raises(ValueError, match=f"{env} must be 0 .* or 1 .*got '{bad}'"):
            gpu_self_check.enabled({env: bad})


# ---- the TF wiring (the fused op on the CPU stands for the GPU's; the library must be built) ----

class _BrokenLibrary:
    """The compiled library with its forward ops broken as a bad CUDA build would be: `corrupt` adds 1e-3 to one
    output value, `error` raises the op's error for a failed launch. Everything else is the real library."""

    def __init__(self, library, fault):
        self._library, self._fault = library, fault
        self.forward_calls = 0

    def __getattr__(self, name):
        op = getattr(self._library, name)
        if not name.startswith("deeprnn_fast_stacked_") or name.endswith("_grad"):
            return op

        def broken(*args, **kwargs):
            import tensorflow as tf
            self.forward_calls += 1
            if self._fault == "error":
                raise tf.errors.InternalError(None, None, "deeprnn_fast: forward: cudaErrorLaunchFailure")
            results = list(op(*args, **kwargs))
            outputs = results[0]
            bump = tf.scatter_nd([[0, 1, 2]], tf.constant([1e-3], outputs.dtype), tf.shape(outputs))
            return [outputs + bump] + results[1:]

        return broken


@pytest.fixture
def tf_wiring(monkeypatch, require_library):
    """A fresh cache, and TensorFlow told there is one GPU: TF soft-places the check's ops, asked for /GPU:0, on
    the CPU, so the check runs for real on the CPU kernels."""
    from deeprnn_fast import _gpu_self_check_tf as wiring
    monkeypatch.delenv(gpu_self_check.ENV, raising=False)
    monkeypatch.setattr(wiring, "_CHECKS", gpu_self_check.SelfCheck())
    monkeypatch.setattr(wiring, "visible_gpus", lambda: ["/GPU:0 (pretended)"])
    return wiring


def _call(problem):
    import deeprnn_fast
    function = deeprnn_fast.stacked_gru if problem.cell == "gru" else deeprnn_fast.stacked_rnn
    return function(problem.inputs, problem.kernels, problem.recurrent_kernels, problem.biases,
                    problem.initial_states)


def _fused_op_types(concrete):
    return {op.type for op in concrete.graph.get_operations() if op.type.startswith("DeeprnnFast")}


@pytest.mark.parametrize("fault", ["corrupt", "error"])
def test_failed_check_routes_to_the_reference_inside_tf_function(tf_wiring, monkeypatch, fault):
    import tensorflow as tf
    from deeprnn_fast import _library, reference
    broken = _BrokenLibrary(_library.library(), fault)
    monkeypatch.setattr(_library, "library", lambda: broken)
    problem = gpu_self_check.make_problem("tanh", "float32", seed=11)

    @tf.function
    def step(x):
        return _call(gpu_self_check.Problem(**{**problem.__dict__, "inputs": x}))[0]

    with pytest.warns(RuntimeWarning, match="self-check failed on /GPU:0 for the tanh cell in float32: "
                                            + ("outputs differs .* relative error of" if fault == "corrupt"
                                               else "the fused kernels raised InternalError")):
        concrete = step.get_concrete_function(tf.TensorSpec(problem.inputs.shape, tf.float32))
    assert broken.forward_calls == 1  # the check's one call, outside the traced graph
    assert _fused_op_types(concrete) == set()
    got = step(tf.constant(problem.inputs)).numpy()
    want = reference.stacked_rnn(problem.inputs, problem.kernels, problem.recurrent_kernels, problem.biases,
                                 problem.initial_states)[0].numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning, no second check
        _call(problem)
    assert tf_wiring._CHECKS.runs == 1 and broken.forward_calls == 1


def test_failed_check_inside_keras_fit_trains_on_the_reference(tf_wiring, monkeypatch, rng):
    import keras
    from deeprnn_fast import StackedRNN, _library
    broken = _BrokenLibrary(_library.library(), "corrupt")
    monkeypatch.setattr(_library, "library", lambda: broken)
    model = keras.Sequential([keras.Input((4, 3)), StackedRNN(8, 2), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = rng.standard_normal((6, 4, 3)).astype("float32"), rng.standard_normal((6, 1)).astype("float32")
    with pytest.warns(RuntimeWarning, match="self-check failed on /GPU:0 for the tanh cell in float32"):
        history = model.fit(x, y, batch_size=3, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert tf_wiring._CHECKS.runs == 1 and broken.forward_calls == 1  # the check's call only; fit ran the reference


def test_passing_check_keeps_the_fused_op(tf_wiring):
    import tensorflow as tf
    problem = gpu_self_check.make_problem("gru", "float64", seed=5)

    @tf.function
    def step(x):
        return _call(gpu_self_check.Problem(**{**problem.__dict__, "inputs": x}))[0]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        concrete = step.get_concrete_function(tf.TensorSpec(problem.inputs.shape, tf.float64))
    assert _fused_op_types(concrete) == {"DeeprnnFast>StackedGru"}
    assert tf_wiring._CHECKS.result("/GPU:0", "gru", "float64").passed and tf_wiring._CHECKS.runs == 1


def test_masks_and_dropout_on_a_gpu_use_the_fused_op_after_the_check(tf_wiring, rng):
    # The CUDA passes take masks and dropout: on a GPU such calls reach the fused op (after the device's one
    # self-check), with no warning, to the reference's results.
    import tensorflow as tf
    import deeprnn_fast
    from deeprnn_fast import reference
    problem = gpu_self_check.make_problem("gru", "float32", seed=3)
    B, T = problem.inputs.shape[:2]
    mask = rng.random((B, T)) > 0.3
    mask[:, 0] = True

    @tf.function
    def step(x):
        return deeprnn_fast.stacked_gru(x, problem.kernels, problem.recurrent_kernels, problem.biases,
                                        problem.initial_states, mask=mask)[0]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        concrete = step.get_concrete_function(tf.TensorSpec(problem.inputs.shape, tf.float32))
    assert _fused_op_types(concrete) == {"DeeprnnFast>StackedGru"}
    want = reference.stacked_gru(problem.inputs, problem.kernels, problem.recurrent_kernels, problem.biases,
                                 problem.initial_states, mask=mask)[0].numpy()
    np.testing.assert_allclose(step(tf.constant(problem.inputs)).numpy(), want, rtol=1e-5, atol=1e-5)
    assert tf_wiring._CHECKS.result("/GPU:0", "gru", "float32").passed and tf_wiring._CHECKS.runs == 1


def test_cpu_calls_never_check(require_library, monkeypatch):
    import tensorflow as tf
    from deeprnn_fast import _gpu_self_check_tf as wiring
    checks = gpu_self_check.SelfCheck()
    monkeypatch.setattr(wiring, "_CHECKS", checks)
    problem = gpu_self_check.make_problem("tanh", "float32", seed=2)
    if not tf.config.list_logical_devices("GPU"):
        _call(problem)  # the real predicate: no GPU here
        assert wiring.gpu_device_for_call() is None
    monkeypatch.setattr(wiring, "visible_gpus", lambda: ["/GPU:0 (pretended)"])
    with tf.device("/CPU:0"):
        _call(problem)
        assert wiring.gpu_device_for_call() is None
    with tf.device("/GPU:1"):
        assert wiring.gpu_device_for_call() == "/GPU:1"
    assert checks.runs == 0


# ---- the real check over the CUDA kernels on the emulated CUDA runtime (opt-in) ----

emulation = pytest.mark.skipif(os.environ.get("DEEPRNN_FAST_EMULATION_TESTS") != "1",
                               reason="opt-in (builds the CUDA emulation): set DEEPRNN_FAST_EMULATION_TESTS=1")


@pytest.fixture(scope="module")
def emulated_module():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from test_cuda_emulation import _build
    return glob.glob(os.path.join(_build(), "_kernels*.so"))[0]


def _emulated_check(module, fault, cells, dtypes="float32,float64"):
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("DEEPRNN_FAST_EMULATION_FAULT", None)
    if fault:
        env["DEEPRNN_FAST_EMULATION_FAULT"] = fault
    cmd = [sys.executable, "-m", "deeprnn_fast.testing.emulated_self_check", "--kernels", module, "--cells", cells,
           "--dtypes", dtypes]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# Kept lean (each emulated check is thousands of emulated threads): the healthy run covers both kernel families (the tanh
# RNN's, which relu shares, and the GRU's) in both dtypes; the faults one key per family or one dtype.

@emulation
def test_emulated_healthy_build_passes(emulated_module):
    report = _emulated_check(emulated_module, None, "tanh,gru")
    assert set(report["results"]) == {f"{c}/{d}" for c in ("tanh", "gru") for d in ("float32", "float64")}
    assert all(r["passed"] and r["answers"] == [True, True] for r in report["results"].values()), report
    assert report["warnings"] == [] and report["checks_run"] == 4


@emulation
def test_emulated_corrupt_value_switches_with_one_warning(emulated_module):
    report = _emulated_check(emulated_module, "corrupt", "tanh,gru", "float32")
    assert set(report["results"]) == {"tanh/float32", "gru/float32"}
    assert all(not r["passed"] and r["answers"] == [False, False] for r in report["results"].values()), report
    assert len(report["warnings"]) == 2 and report["checks_run"] == 2  # one per key, though each key ran twice
    for message, cell in zip(report["warnings"], ("tanh", "gru")):
        assert f"emulated-cuda:0 for the {cell} cell in float32" in message, message
        error = float(re.search(r"differs from the reference by a relative error of ([0-9.e+-]+)", message).group(1))
        assert error > 1e-2, message


@emulation
def test_emulated_launch_error_switches(emulated_module):
    report = _emulated_check(emulated_module, "launch_error", "relu,gru", "float64")
    assert all(not r["passed"] and r["answers"] == [False, False] for r in report["results"].values()), report
    assert len(report["warnings"]) == 2
    assert all("raised RuntimeError" in m and "cudaErrorLaunchFailure" in m for m in report["warnings"]), report
