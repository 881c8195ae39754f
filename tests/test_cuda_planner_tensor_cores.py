"""The planner's choice of the tensor-core tile (csrc/engine/plan/planner.cc, tensor_core_tile.h) and the per-step
cost model (csrc/deeprnn/cost_model.h, csrc/engine/cuda/COST_MODEL.md), through deeprnn_fast._kernels on made-up
device properties: no GPU needed. The tile runs only when the caller allows TF32, for float32 at B <= 32, on a
schedule that keeps weights on chip; every refusal says why in plan['reason']."""
import math

import pytest

from deeprnn_fast.testing.gpu_check import H200_PROPS

kernels = pytest.importorskip("deeprnn_fast._kernels",
                              reason="deeprnn_fast._kernels is not built (python setup.py build_ext --inplace)")

GATES = {"tanh": 1, "relu": 1, "gru": 3, "lstm": 4}
CELLS = list(GATES)


def plan(cell, B, T, H, L, dtype="float32", direction="forward", schedule="auto", allow_tf32=True, **props):
    return kernels.plan(B, T, H, H, L, dtype, direction, schedule, dict(H200_PROPS, **props), cell=cell,
                        allow_tf32=allow_tf32)


def tc_smem_bytes(G, H, L, backward):
    """tensor_core_tile.h: weights [segments][K padded to 8][16 (x G forward) + 4], A [32][260], partials
    [2][8][16 x 16], floats."""
    k = G * H if backward else H
    k_padded = -(-k // 8) * 8
    ld = (16 if backward else 16 * G) + 4
    return ((2 if L > 1 else 1) * k_padded * ld + 32 * 260 + 2 * 8 * 256) * 4


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("B,H,L", [(1, 256, 4), (8, 100, 2), (32, 37, 1), (17, 64, 3)])
def test_tf32_small_batches_take_the_tensor_core_tile(cell, direction, B, H, L):
    backward = direction == "backward"
    p = plan(cell, B, 128, H, L, direction=direction)
    assert p["tensor_cores"] and p["tile"] == 6 and p["schedule"] == "persistent" and p["weights_on_chip"]
    assert "tensor cores (TF32 WMMA" in p["reason"] and p["launches"] == 1
    # One block per (layer, 16-unit slice); one or two 16-row fragments cover the batch.
    assert p["grid"] == L * math.ceil(H / 16) and p["col_tiles"] == math.ceil(H / 16) and p["row_tiles"] == 1
    assert p["bm"] == (16 if B <= 16 else 32) and p["bn"] == 16 and p["bk"] == 256
    frags = (p["bm"] // 16) * (1 if backward else GATES[cell])
    assert p["ks"] == (8 // frags if frags < 8 else 1)
    assert p["smem_bytes"] == tc_smem_bytes(GATES[cell], H, L, backward)


@pytest.mark.parametrize("cell", CELLS)
def test_exact_float32_is_the_default_and_tf32_needs_float32_small_batches(cell):
    exact = plan(cell, 32, 64, 256, 4, allow_tf32=False)
    assert not exact["tensor_cores"] and exact["tile"] == 3 and "TF32 not allowed" in exact["reason"]
    # The library's default (no allow_tf32 given) is exact too.
    default = kernels.plan(32, 64, 256, 256, 4, "float32", "forward", "auto", H200_PROPS, cell=cell)
    assert not default["tensor_cores"]
    f64 = plan(cell, 32, 64, 128, 2, dtype="float64")
    assert not f64["tensor_cores"] and "float64 keeps the exact scalar tiles" in f64["reason"]
    big = plan(cell, 33, 64, 128, 2)
    assert not big["tensor_cores"] and "batch 33 > 32" in big["reason"]
    old = plan(cell, 8, 64, 128, 2, cc_major=7, cc_minor=5)
    assert not old["tensor_cores"] and "compute capability 8.0; the device has 7.5" in old["reason"]
    for schedule in ("stepwise", "persistent_streaming"):
        p = plan(cell, 8, 64, 128, 2, schedule=schedule)
        assert not p["tensor_cores"] and f"tensor cores not used: schedule {schedule} requested" in p["reason"]
    for schedule in ("persistent", "persistent_resident"):
        assert plan(cell, 8, 64, 128, 2, schedule=schedule)["tensor_cores"]
    no_coop = plan(cell, 8, 64, 128, 2, cooperative_launch=False)
    assert not no_coop["tensor_cores"] and no_coop["schedule"] == "stepwise"


@pytest.mark.parametrize("cell,too_big", [("tanh", 2048), ("gru", 512), ("lstm", 512)])
def test_weights_too_big_for_the_tensor_core_tile_fall_back_with_the_reason(cell, too_big):
    p = plan(cell, 8, 64, too_big, 2)
    assert not p["tensor_cores"] and "tensor cores not used: its weight slice needs" in p["reason"]
    # Fits per block but not all blocks at once on a small device.
    p = plan(cell, 8, 64, 128, 4, sm_count=2)
    assert not p["tensor_cores"] and "co-resident blocks" in p["reason"]


def test_cost_model_predicts_the_tensor_core_tile_faster_and_counts_products_and_barriers():
    B, T, H, L = 32, 128, 256, 4
    tc = plan("tanh", B, T, H, L)["cost"]
    exact = plan("tanh", B, T, H, L, allow_tf32=False)["cost"]
    assert tc["unit"] == "tf32 tensor cores" and exact["unit"] == "fp32 FFMA"
    # 2 B x H x H per product, two products per layer, L layers active in a steady step.
    assert tc["flop_per_step"] == exact["flop_per_step"] == 2 * B * H * H * 2 * L
    # Every block stages its layer's two [B, H] operands: L x 16 column slices of them per step.
    assert tc["state_bytes_per_step"] == L * (H // 16) * B * 2 * H * 4 and tc["weight_bytes_per_step"] == 0
    assert tc["products_us"] < exact["products_us"] / 4 and tc["step_us"] < exact["step_us"]
    for c in (tc, exact):
        assert c["floor_us"] == pytest.approx((T + L - 1) * c["sync_us"])
        assert c["sequence_us"] == pytest.approx((T + L - 1) * c["step_us"])
        assert c["x_floor"] == pytest.approx(c["sequence_us"] / c["floor_us"]) and c["x_floor"] > 1
        parts = c["products_us"] + c["staging_us"] + c["epilogue_us"] + c["sync_us"]
        assert c["step_us"] == pytest.approx(parts)
    # The gated cells do G times the products of the tanh RNN at the same H.
    assert plan("lstm", B, T, H, L)["cost"]["flop_per_step"] == 4 * tc["flop_per_step"]
    # Streamed weights are counted per step.
    streamed = plan("tanh", 256, T, 1024, L, allow_tf32=False)["cost"]
    assert streamed["weight_bytes_per_step"] > 0 and streamed["weights_fit_l2"]
