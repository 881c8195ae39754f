"""The GRU entry points of deeprnn_fast._kernels: the CPU passes against the float64 oracle, argument checks, the GRU's
CUDA launch planner on made-up device properties (no GPU needed) and its workspace sizes, and the CUDA entry points'
behaviour on a machine without a GPU. (The CUDA passes themselves are checked by the emulation tests,
tests/test_cuda_emulation.py, and on a GPU by benchmarks/gpu/check.sh.)"""
import numpy as np
import pytest

from deeprnn_fast.testing import oracle
from deeprnn_fast.testing.gpu_check import H200_PROPS, FakeCudaArray

kernels = pytest.importorskip("deeprnn_fast._kernels",
                              reason="deeprnn_fast._kernels is not built (python setup.py build_ext --inplace)")
if not hasattr(kernels, "gru_forward_cpu"):
    pytest.skip("deeprnn_fast._kernels predates the GRU entry points; rebuild it", allow_module_level=True)

# The CPU GRU's float32 sigmoid / tanh are polynomial approximations (csrc/cpu/gru_pointwise_simd.h).
TOL = {np.float32: 5e-5, np.float64: 1e-12}


def _outputs(shape, dtype):
    B, T, D, H, L = shape
    nan = lambda *s: np.full(s, np.nan, dtype)  # noqa: E731
    out = {"outputs": nan(B, T, H), "final_states": nan(L, B, H), "activations": nan(L, T, B, H),
           "gates": nan(L, T, B, 4 * H)}
    grads = {"grad_inputs": nan(B, T, D), "grad_kernels": [nan(D if l == 0 else H, 3 * H) for l in range(L)],
             "grad_recurrent_kernels": [nan(H, 3 * H) for _ in range(L)],
             "grad_biases": [nan(2, 3 * H) for _ in range(L)], "grad_initial_states": nan(L, B, H)}
    return out, grads


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 5, 3, 7, 3), (1, 4, 6, 16, 2), (3, 1, 2, 5, 1), (2, 2, 3, 4, 4),
                                   (2, 0, 3, 4, 2), (0, 3, 2, 4, 2)])
def test_gru_cpu_passes_match_oracle(dtype, shape):
    p = oracle.random_gru_problem(np.random.default_rng(), *shape, dtype=dtype)
    out, g = _outputs(shape, dtype)
    kernels.gru_forward_cpu(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, **out)
    kernels.gru_backward_cpu(p.inputs, p.kernels, p.recurrent_kernels, p.initial_states, out["activations"],
                             out["gates"], p.grad_outputs, p.grad_final_states, **g)
    y, fin, act, gates = oracle.gru_forward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states)
    ref = oracle.gru_backward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, act, gates,
                              p.grad_outputs, p.grad_final_states)
    tol = TOL[dtype]
    for name, got, want in [("outputs", out["outputs"], y), ("final_states", out["final_states"], fin),
                            ("activations", out["activations"], act), ("gates", out["gates"], gates),
                            ("grad_inputs", g["grad_inputs"], ref.grad_inputs),
                            ("grad_initial_states", g["grad_initial_states"], ref.grad_initial_states)]:
        assert oracle.relative_error(got, want) <= tol, name
    for name in ("grad_kernels", "grad_recurrent_kernels", "grad_biases"):
        for got, want in zip(g[name], getattr(ref, name)):
            assert oracle.relative_error(got, want) <= tol, name


def _problem(shape=(2, 5, 3, 7, 3)):
    return oracle.random_gru_problem(np.random.default_rng(1), *shape, dtype=np.float32)


def _forward(p, **overrides):
    out, _ = _outputs(p.shape, p.inputs.dtype)
    args = dict(inputs=p.inputs, kernels=p.kernels, recurrent_kernels=p.recurrent_kernels, biases=p.biases,
                initial_states=p.initial_states, **out)
    args.update(overrides)
    kernels.gru_forward_cpu(**args)


def test_gru_cpu_argument_errors_name_the_argument():
    p = _problem()
    with pytest.raises(ValueError, match=r"kernels\[0\] must have shape \(3, 3 \* units\)"):
        _forward(p, kernels=[np.ascontiguousarray(p.kernels[0][:, :20])] + p.kernels[1:])
    with pytest.raises(ValueError, match=r"recurrent_kernels\[1\] must have shape \(7, 21\); got \(7, 7\)"):
        _forward(p, recurrent_kernels=[p.recurrent_kernels[0], np.ascontiguousarray(p.recurrent_kernels[1][:, :7]),
                                       p.recurrent_kernels[2]])
    with pytest.raises(ValueError, match=r"biases\[2\] must have shape \(2, 21\); got \(21,\)"):
        _forward(p, biases=p.biases[:2] + [p.biases[2][0]])
    with pytest.raises(ValueError, match=r"gates must have shape \(3, 5, 2, 28\)"):
        _forward(p, gates=np.zeros((3, 5, 2, 21), np.float32))
    with pytest.raises(TypeError, match=r"kernels\[1\] must be float32"):
        _forward(p, kernels=[p.kernels[0], p.kernels[1].astype(np.float64), p.kernels[2]])
    out, g = _outputs(p.shape, np.float32)
    with pytest.raises(ValueError, match=r"grad_biases\[0\] must have shape \(2, 21\)"):
        kernels.gru_backward_cpu(p.inputs, p.kernels, p.recurrent_kernels, p.initial_states, out["activations"],
                                 out["gates"], p.grad_outputs, p.grad_final_states,
                                 **dict(g, grad_biases=[np.zeros(21, np.float32)] + g["grad_biases"][1:]))


# ---- planning and workspaces, on made-up devices ----

def plan(B, T, H, L, dtype="float32", direction="forward", schedule="auto", **props):
    return kernels.plan(B, T, H, H, L, dtype, direction, schedule, dict(H200_PROPS, **props), cell="gru")


def test_gru_small_batch_keeps_weights_on_chip():
    for direction, segment, row in (("forward", 256, 3 * 16 + 1), ("backward", 3 * 256, 16 + 1)):
        p = plan(1, 256, 256, 4, direction=direction)
        assert p["schedule"] == "persistent" and p["weights_on_chip"]
        assert (p["bm"], p["bn"], p["ks"]) == (1, 16, 16) and p["grid"] == 4 * 16
        # A staging + reduction slices (4 accumulators forward) + two segments of the weight slice, float32.
        red = 256 * (4 if direction == "forward" else 1)
        assert p["smem_bytes"] == (p["bk"] * 2 + red + 2 * segment * row) * 4


def test_gru_weights_fit_on_chip_up_to_smaller_layers_than_the_rnn():
    # H = 1024, 2 layers: the tanh RNN's slice fits in 227 KB, the GRU's (three gates) does not.
    rnn = kernels.plan(1, 64, 1024, 1024, 2, "float32", "forward", "auto", H200_PROPS)
    assert rnn["weights_on_chip"]
    p = plan(1, 64, 1024, 2)
    assert p["schedule"] == "persistent" and not p["weights_on_chip"] and "shared memory" in p["reason"]
    with pytest.raises(ValueError, match="cannot stay on chip.*shared memory"):
        plan(1, 64, 1024, 2, schedule="persistent_resident")
    assert plan(1, 64, 512, 2)["weights_on_chip"]


def test_gru_large_batch_tile_and_stepwise():
    p = plan(256, 256, 1024, 8, schedule="stepwise")
    assert p["schedule"] == "stepwise" and (p["bm"], p["bn"], p["tm"], p["tn"]) == (64, 32, 4, 2)
    assert p["row_tiles"] == 4 and p["col_tiles"] == 32 and p["grid"] == 8 * 4 * 32 and p["launches"] == 256 + 7
    p = plan(1, 100, 256, 4, cooperative_launch=False)
    assert p["schedule"] == "stepwise" and "cooperative" in p["reason"]
    assert plan(0, 10, 8, 2)["launches"] == 0 and plan(3, 0, 8, 2)["launches"] == 0


def test_gru_plan_and_workspace_errors():
    with pytest.raises(ValueError, match="cell must be 'tanh', 'relu', 'gru' or 'lstm'"):
        kernels.plan(1, 1, 8, 8, 1, "float32", "forward", "auto", H200_PROPS, cell="lstmx")
    with pytest.raises(ValueError, match="at most .* for the CUDA GRU"):
        plan(1, 1, 2**21, 1)
    with pytest.raises(ValueError, match="hidden units must be >= 1"):
        kernels.workspace_bytes("forward", 1, 1, 1, 0, 1, "float32", cell="gru")


def test_gru_workspace_sizes():
    # Forward: the three tables of L weight pointers, as the RNN.
    assert kernels.workspace_bytes("forward", 2, 3, 4, 5, 3, "float32", cell="gru") == 256
    # Backward: pointer table, the [L,2,B,H] carry and the [4H] column sums (each 256-aligned), no split partials.
    assert kernels.workspace_bytes("backward", 2, 3, 4, 5, 3, "float32", cell="gru") == 256 * 3
    small = kernels.workspace_bytes("backward", 2, 3, 4, 5, 3, "float32", cell="gru")
    big = kernels.workspace_bytes("backward", 64, 100, 4, 8, 2, "float32", cell="gru")  # split reductions
    assert big > small + 2 * 2 * 64 * 8 * 4
    assert kernels.workspace_bytes("backward", 64, 100, 4, 8, 2, "float64", cell="gru") > big


# ---- CUDA entry points on a machine without a GPU ----

@pytest.mark.skipif(kernels.cuda_available(), reason="these check the behaviour without a GPU")
def test_gru_cuda_entry_points_without_gpu():
    p = _problem()
    out, _ = _outputs(p.shape, np.float32)
    if not kernels.has_cuda_build():
        with pytest.raises(RuntimeError, match="built without CUDA"):
            kernels.gru_forward_cuda(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, **out,
                                     workspace=np.zeros(256, np.uint8))
        return
    with pytest.raises(TypeError, match="__cuda_array_interface__"):
        kernels.gru_forward_cuda(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, **out,
                                 workspace=np.zeros(256, np.uint8))
    fake = FakeCudaArray
    args = dict(inputs=fake(p.inputs), kernels=[fake(w) for w in p.kernels],
                recurrent_kernels=[fake(w) for w in p.recurrent_kernels], biases=[fake(b) for b in p.biases],
                initial_states=fake(p.initial_states), workspace=fake(np.zeros(512, np.uint8)),
                **{k: fake(v) for k, v in out.items()})
    with pytest.raises(ValueError, match=r"gates must have shape \(3, 5, 2, 28\)"):
        kernels.gru_forward_cuda(**dict(args, gates=fake(np.zeros((3, 5, 2, 7), np.float32))))
    with pytest.raises(ValueError, match="workspace must hold at least"):
        kernels.gru_forward_cuda(**dict(args, workspace=fake(np.zeros(8, np.uint8))))
    with pytest.raises(RuntimeError, match="cuda"):
        kernels.gru_forward_cuda(**args)
