"""deeprnn_fast._kernels, the TF-free pybind11 module: the CPU passes against the float64 oracle, argument checks,
the CUDA launch planner on made-up device properties (no GPU needed), and the CUDA entry points' behaviour on a
machine without a GPU."""
import numpy as np
import pytest

from deeprnn_fast.testing import oracle
from deeprnn_fast.testing.gpu_check import H200_PROPS, FakeCudaArray

kernels = pytest.importorskip("deeprnn_fast._kernels",
                              reason="deeprnn_fast._kernels is not built (python setup.py build_ext --inplace)")

TOL = {np.float32: 2e-5, np.float64: 1e-12}


def _outputs(shape, dtype):
    B, T, D, H, L = shape
    nan = lambda *s: np.full(s, np.nan, dtype)  # noqa: E731
    out = {"outputs": nan(B, T, H), "final_states": nan(L, B, H), "activations": nan(L, T, B, H)}
    grads = {"grad_inputs": nan(B, T, D), "grad_kernels": [nan(D if l == 0 else H, H) for l in range(L)],
             "grad_recurrent_kernels": [nan(H, H) for _ in range(L)], "grad_biases": [nan(H) for _ in range(L)],
             "grad_initial_states": nan(L, B, H), "grad_preactivations": nan(L, T, B, H)}
    return out, grads


def _run_cpu(p, dtype):
    out, g = _outputs(p.shape, dtype)
    kernels.forward_cpu(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, **out,
                        activation=p.activation)
    kernels.backward_cpu(p.inputs, p.kernels, p.recurrent_kernels, p.initial_states, out["activations"],
                         p.grad_outputs, p.grad_final_states, **g, activation=p.activation)
    return out, g


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("shape", [(2, 5, 3, 7, 3), (1, 4, 6, 16, 2), (3, 1, 2, 5, 1), (4, 6, 5, 33, 1),
                                   (2, 2, 3, 4, 4), (2, 0, 3, 4, 2), (0, 3, 2, 4, 2),
                                   # rows of 4 KB: the backward pads its grad slots' rows (AliasFreeRowStride)
                                   (2, 3, 4, 1024, 2)])
def test_cpu_passes_match_oracle(dtype, activation, shape):
    rng = np.random.default_rng()
    p = oracle.random_problem(rng, *shape, dtype=dtype, activation=activation)
    out, g = _run_cpu(p, dtype)
    y, fin, act = oracle.forward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, activation)
    ref = oracle.backward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, act,
                          p.grad_outputs, p.grad_final_states, activation)
    tol = TOL[dtype]
    for got, want in [(out["outputs"], y), (out["final_states"], fin), (out["activations"], act),
                      (g["grad_inputs"], ref.grad_inputs), (g["grad_initial_states"], ref.grad_initial_states)]:
        assert oracle.relative_error(got, want) <= tol
    if shape[0] and shape[1]:
        assert oracle.relative_error(g["grad_preactivations"], ref.grad_preactivations) <= tol
    for name in ("grad_kernels", "grad_recurrent_kernels", "grad_biases"):
        for got, want in zip(g[name], getattr(ref, name)):
            assert oracle.relative_error(got, want) <= tol, name


def _problem(dtype=np.float32, shape=(2, 5, 3, 7, 3)):
    return oracle.random_problem(np.random.default_rng(1), *shape, dtype=dtype)


def _forward(p, **overrides):
    out, _ = _outputs(p.shape, p.inputs.dtype)
    args = dict(inputs=p.inputs, kernels=p.kernels, recurrent_kernels=p.recurrent_kernels, biases=p.biases,
                initial_states=p.initial_states, **out)
    args.update(overrides)
    kernels.forward_cpu(**args)


def test_cpu_argument_errors_name_the_argument():
    p = _problem()
    with pytest.raises(TypeError, match=r"kernels\[1\] must be float32"):
        _forward(p, kernels=[p.kernels[0], p.kernels[1].astype(np.float64), p.kernels[2]])
    with pytest.raises(ValueError, match=r"outputs must have shape \(2, 5, 7\); got \(2, 5, 6\)"):
        _forward(p, outputs=np.zeros((2, 5, 6), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        _forward(p, inputs=np.asfortranarray(p.inputs))
    readonly = np.zeros((2, 5, 7), np.float32)
    readonly.setflags(write=False)
    with pytest.raises(ValueError, match="outputs is an output and must be writable"):
        _forward(p, outputs=readonly)
    with pytest.raises(ValueError, match=r"recurrent_kernels must hold one array per layer \(3\); got 2"):
        _forward(p, recurrent_kernels=p.recurrent_kernels[:2])
    with pytest.raises(TypeError, match="numpy.ndarray"):
        _forward(p, initial_states=p.initial_states.tolist())
    with pytest.raises(ValueError, match="activation must be 'tanh' or 'relu'"):
        _forward(p, activation="sigmoid")
    with pytest.raises(ValueError, match=r"kernels\[0\] must have shape \(3, units\)"):
        _forward(p, kernels=[p.kernels[0][:2]] + p.kernels[1:])


# ---- planning, on made-up devices ----

def plan(B, T, H, L, dtype="float32", direction="forward", schedule="auto", **props):
    return kernels.plan(B, T, H, H, L, dtype, direction, schedule, dict(H200_PROPS, **props))


def _smem(tile_bm, tile_bn, bk, ks, tm_tn, H, L, resident, elem):
    a = bk * (tile_bm + 1)
    red = 256 * tm_tn if ks > 1 else 0
    b = (2 if L > 1 else 1) * H * (tile_bn + 1) if resident else bk * (tile_bn + 1)
    return (a + red + b) * elem


def test_small_batch_keeps_weights_on_chip():
    for direction in ("forward", "backward"):
        p = plan(1, 256, 256, 4, direction=direction)
        assert p["schedule"] == "persistent" and p["weights_on_chip"]
        assert (p["bm"], p["bn"], p["ks"]) == (1, 16, 16)
        assert p["grid"] == 4 * 16 and p["launches"] == 1
        assert p["smem_bytes"] == _smem(1, 16, p["bk"], 16, 1, 256, 4, True, 4)
    assert plan(32, 256, 256, 4)["bm"] == 32
    assert plan(3, 256, 256, 4)["bm"] == 4


def test_hidden_not_a_multiple_of_the_tile():
    p = plan(1, 10, 100, 3)
    assert p["col_tiles"] == 7 and p["grid"] == 3 * 7 and p["weights_on_chip"]
    p = plan(70, 10, 100, 3, schedule="stepwise")
    assert (p["bm"], p["bn"]) == (64, 64) and p["row_tiles"] == 2 and p["col_tiles"] == 2
    assert p["grid"] == 3 * 2 * 2 and p["launches"] == 10 + 3 - 1


def test_weights_that_do_not_fit_stream_from_memory():
    p = plan(1, 64, 4096, 2)
    assert p["schedule"] == "persistent" and not p["weights_on_chip"]
    assert "shared memory" in p["reason"]
    assert p["grid"] <= 132 * p["blocks_per_sm"]
    with pytest.raises(ValueError, match="cannot stay on chip.*shared memory"):
        plan(1, 64, 4096, 2, schedule="persistent_resident")
    # Fits per block, but not all blocks at once on a small device.
    p = plan(1, 64, 256, 4, sm_count=4)
    assert not p["weights_on_chip"] and "co-resident" in p["reason"]


def test_co_residency_uses_the_occupancy_given():
    assert plan(1, 16, 1024, 2, blocks_per_sm=1)["weights_on_chip"]      # 128 blocks <= 132
    assert not plan(1, 16, 1024, 3, blocks_per_sm=1)["weights_on_chip"]  # 192 blocks > 132
    assert plan(1, 16, 1024, 3, blocks_per_sm=2)["weights_on_chip"]


def test_float64_doubles_shared_memory():
    p32, p64 = plan(1, 16, 256, 2), plan(1, 16, 256, 2, dtype="float64")
    assert p64["smem_bytes"] == 2 * p32["smem_bytes"]


def test_large_batch_streams_or_steps():
    p = plan(256, 256, 1024, 8)
    assert not p["weights_on_chip"] and (p["bm"], p["bn"]) == (64, 64)
    if p["schedule"] == "persistent":
        assert p["grid"] <= 132 * p["blocks_per_sm"]
    p = plan(256, 256, 1024, 8, schedule="persistent")
    assert p["schedule"] == "persistent" and p["grid"] <= 132 * p["blocks_per_sm"]


def test_without_cooperative_launch_only_stepwise_runs():
    p = plan(1, 100, 256, 4, cooperative_launch=False)
    assert p["schedule"] == "stepwise" and p["launches"] == 103 and "cooperative" in p["reason"]
    with pytest.raises(ValueError, match="cooperative launch"):
        plan(1, 100, 256, 4, schedule="persistent", cooperative_launch=False)


@pytest.mark.parametrize("cell,prefix", [("rnn", ""), ("gru", "GRU ")])
def test_a_block_too_large_for_the_device_is_an_error_not_a_failed_launch(cell, prefix):
    # Every schedule needs the streaming tile's shared memory; a device that cannot give it gets a clear error.
    small_device = dict(H200_PROPS, smem_per_block_optin=1024)
    with pytest.raises(ValueError, match=prefix + r"forward: a block needs \d+ bytes of shared memory; the device "
                                                  r"allows 1024"):
        kernels.plan(100, 10, 100, 100, 3, "float32", "forward", "auto", small_device, cell=cell)


def test_empty_problems_plan_no_launch():
    assert plan(0, 10, 8, 2)["launches"] == 0
    assert plan(3, 0, 8, 2)["launches"] == 0


def test_bad_and_huge_shapes_are_rejected_clearly():
    with pytest.raises(ValueError, match=r"batch \* time must be at most 2\^31 - 1"):
        plan(2**20, 2**12, 8, 2)
    with pytest.raises(ValueError, match="hidden units must be >= 1"):
        kernels.plan(1, 1, 1, 0, 1, "float32", "forward", "auto", H200_PROPS)
    with pytest.raises(ValueError, match="hidden and input sizes must be at most"):
        plan(1, 1, 2**23, 1)
    with pytest.raises(ValueError, match="schedule must be one of"):
        plan(1, 1, 8, 1, schedule="fast")
    with pytest.raises(ValueError, match="unknown device property"):
        kernels.plan(1, 1, 8, 8, 1, "float32", "forward", "auto", {"sm_count": 1, "smem": 3})
    with pytest.raises(TypeError, match="float32 or float64"):
        plan(1, 1, 8, 1, dtype="float16")


def test_workspace_sizes():
    f = kernels.workspace_bytes("forward", 2, 3, 4, 5, 3, "float32")
    assert f == 256  # five tables of three pointers (weights, recurrent weights, biases, two dropout masks): 120 B
    small = kernels.workspace_bytes("backward", 2, 3, 4, 5, 3, "float32")
    big = kernels.workspace_bytes("backward", 64, 100, 4, 8, 2, "float32")  # split reductions need partial sums
    # Four tables of three pointers (96 B) and the dh carry [L, 2, B, H] (240 B; every cell has one since masks),
    # each in its own 256-byte piece.
    assert small == 512 and big > small
    assert kernels.workspace_bytes("backward", 64, 100, 4, 8, 2, "float64") > big
    with pytest.raises(ValueError, match="layers must be >= 1"):
        kernels.workspace_bytes("forward", 1, 1, 1, 1, 0, "float32")


# ---- CUDA entry points on a machine without a GPU ----

@pytest.mark.skipif(kernels.cuda_available(), reason="these check the behaviour without a GPU")
def test_cuda_entry_points_without_gpu():
    p = _problem()
    out, _ = _outputs(p.shape, np.float32)
    if not kernels.has_cuda_build():
        with pytest.raises(RuntimeError, match="built without CUDA"):
            kernels.forward_cuda(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, **out,
                                 workspace=np.zeros(256, np.uint8))
        return
    with pytest.raises(TypeError, match="__cuda_array_interface__"):
        kernels.forward_cuda(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, **out,
                             workspace=np.zeros(256, np.uint8))
    fake = lambda a: FakeCudaArray(a)  # noqa: E731
    args = dict(inputs=fake(p.inputs), kernels=[fake(w) for w in p.kernels],
                recurrent_kernels=[fake(w) for w in p.recurrent_kernels], biases=[fake(b) for b in p.biases],
                initial_states=fake(p.initial_states), workspace=fake(np.zeros(512, np.uint8)),
                **{k: fake(v) for k, v in out.items()})
    # Shapes and dtypes are checked before any CUDA call...
    with pytest.raises(ValueError, match=r"final_states must have shape \(3, 2, 7\)"):
        kernels.forward_cuda(**dict(args, final_states=fake(np.zeros((3, 2, 6), np.float32))))
    with pytest.raises(ValueError, match="workspace must hold at least"):
        kernels.forward_cuda(**dict(args, workspace=fake(np.zeros(8, np.uint8))))
    with pytest.raises(ValueError, match="schedule must be one of"):
        kernels.forward_cuda(**args, schedule="fastest")
    # ...and the first CUDA call reports the missing driver or device, naming the call.
    with pytest.raises(RuntimeError, match="cuda"):
        kernels.forward_cuda(**args)
    with pytest.raises(RuntimeError, match="no|none"):
        kernels.plan(1, 2, 3, 4, 1)
