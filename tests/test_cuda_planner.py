"""The CUDA launch planner and workspace sizes of every cell (csrc/engine/plan/), through deeprnn_fast._kernels on
made-up device properties: no GPU needed. Each cell's tiles, shared memory and the layer sizes up to which its
weights stay on chip follow from its gates and pre-activation slots; the schedule rules are shared."""
import numpy as np
import pytest

from deeprnn_fast.testing.gpu_check import H200_PROPS

kernels = pytest.importorskip("deeprnn_fast._kernels",
                              reason="deeprnn_fast._kernels is not built (python setup.py build_ext --inplace)")

# Gate blocks G and pre-activation slots per cell (cells/<cell>/cell.h).
GATES = {"tanh": 1, "relu": 1, "gru": 3, "lstm": 4}
SLOTS = {"tanh": 1, "relu": 1, "gru": 4, "lstm": 4}
CELLS = list(GATES)


def plan(cell, B, T, H, L, dtype="float32", direction="forward", schedule="auto", **props):
    return kernels.plan(B, T, H, H, L, dtype, direction, schedule, dict(H200_PROPS, **props), cell=cell)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_small_batch_keeps_weights_on_chip_with_the_cells_shared_memory(cell, direction):
    G, NP = GATES[cell], SLOTS[cell]
    p = plan(cell, 1, 256, 128, 4, direction=direction)
    assert p["schedule"] == "persistent" and p["weights_on_chip"] and p["launches"] == 1
    assert (p["bm"], p["bn"], p["ks"], p["bk"]) == (1, 16, 16, 256) and p["grid"] == 4 * 8
    # A staging [BK][BM+1] + reduction slices (NP accumulators per unit forward, 1 backward) + two segments of
    # the weight slice: forward [H][G*BN+1], backward [G*H][BN+1].
    backward = direction == "backward"
    red = 256 * (1 if backward else NP)
    segment = 2 * (G * 128 * 17 if backward else 128 * (G * 16 + 1))
    assert p["smem_bytes"] == (256 * 2 + red + segment) * 4
    assert plan(cell, 1, 256, 128, 4, "float64", direction)["smem_bytes"] == 2 * p["smem_bytes"]


@pytest.mark.parametrize("cell,fits,too_big", [("tanh", 1024, 2048), ("relu", 1024, 2048), ("gru", 512, 1024),
                                               ("lstm", 256, 512)])
def test_wider_cells_keep_weights_on_chip_up_to_smaller_layers(cell, fits, too_big):
    assert plan(cell, 1, 64, fits, 2)["weights_on_chip"]
    p = plan(cell, 1, 64, too_big, 2)
    assert p["schedule"] == "persistent" and not p["weights_on_chip"] and "shared memory" in p["reason"]
    with pytest.raises(ValueError, match="weights cannot stay on chip.*shared memory"):
        plan(cell, 1, 64, too_big, 2, schedule="persistent_resident")


@pytest.mark.parametrize("cell", CELLS)
def test_large_batches_take_the_cells_wide_tile(cell):
    p = plan(cell, 256, 256, 1024, 8, schedule="stepwise")
    wide = (64, 64, 4, 4) if SLOTS[cell] == 1 else (64, 32, 4, 2)  # gated cells: four accumulators per unit
    assert p["schedule"] == "stepwise" and (p["bm"], p["bn"], p["tm"], p["tn"]) == wide
    assert p["row_tiles"] == 4 and p["col_tiles"] == 1024 // wide[1] and p["launches"] == 256 + 7
    assert p["grid"] == 8 * 4 * (1024 // wide[1])
    # The wide tile starts where a layer fills it; narrower layers keep tile 4.
    assert plan(cell, 256, 8, wide[1], 2, schedule="stepwise")["tile"] == 5
    assert plan(cell, 256, 8, wide[1] - 1, 2, schedule="stepwise")["tile"] == 4


@pytest.mark.parametrize("cell", CELLS)
def test_schedules_without_cooperative_launch_and_empty_problems(cell):
    p = plan(cell, 1, 100, 256, 4, cooperative_launch=False)
    assert p["schedule"] == "stepwise" and p["launches"] == 103 and "cooperative" in p["reason"]
    with pytest.raises(ValueError, match="cooperative launch"):
        plan(cell, 1, 100, 256, 4, schedule="persistent", cooperative_launch=False)
    assert plan(cell, 0, 10, 8, 2)["launches"] == 0 and plan(cell, 3, 0, 8, 2)["launches"] == 0
    # Fits per block, but not all blocks at once on a small device: streaming instead.
    p = plan(cell, 1, 64, 128, 4, sm_count=2)
    assert not p["weights_on_chip"] and "co-resident" in p["reason"]


def test_messages_name_the_cell():
    small_device = dict(H200_PROPS, smem_per_block_optin=1024)
    for cell, label in (("tanh", "tanh"), ("relu", "relu"), ("gru", "GRU"), ("lstm", "LSTM")):
        with pytest.raises(ValueError, match=label + r" forward: a block needs \d+ bytes of shared memory"):
            kernels.plan(100, 10, 100, 100, 3, "float32", "forward", "auto", small_device, cell=cell)
    with pytest.raises(ValueError, match=r"at most \d+ for the CUDA LSTM \(its matrices have 4 \* hidden"):
        plan("lstm", 1, 1, 2**21, 1)
    with pytest.raises(ValueError, match="cell must be 'tanh', 'relu', 'gru' or 'lstm'"):
        plan("lstmx", 1, 1, 8, 1)
    # The old name of the tanh / relu RNN's plans stays an alias.
    assert plan("rnn", 1, 16, 64, 2) == plan("tanh", 1, 16, 64, 2)


def test_lstm_workspace_sizes():
    f32 = 4
    # Forward: the three tables of L weight pointers and the two of L dropout mask pointers, as every cell.
    assert kernels.workspace_bytes("forward", 2, 3, 4, 5, 3, "float32", cell="lstm") == 256
    # Backward: the pointer table, the [L,2,B,H] carry of dh (which a mask gives every cell: a masked step passes
    # dh on whole) and the [L,2,1,B,H] carry of dc; no column-sum buffer (the bias gradient is the column sums as
    # they are); no split partials.
    assert kernels.workspace_bytes("backward", 2, 3, 4, 5, 3, "float32", cell="lstm") == 256 * 3
    big = kernels.workspace_bytes("backward", 64, 100, 4, 8, 2, "float32", cell="lstm")  # split reductions
    assert big > 256 + 2 * 2 * 64 * 8 * f32
    assert kernels.workspace_bytes("backward", 64, 100, 4, 8, 2, "float64", cell="lstm") > big


@pytest.mark.parametrize("cell", CELLS)
def test_token_inputs_need_room_to_sort_rows_by_token(cell):
    dense = kernels.workspace_bytes("backward", 2, 3, 40, 5, 2, "float32", cell=cell)
    tokens = kernels.workspace_bytes("backward", 2, 3, 40, 5, 2, "float32", cell=cell, tokens=True)
    # starts [V+1], cursors [V] and rows [T*B] as int32, each region 256-aligned.
    assert tokens - dense == 256 * (int(np.ceil(41 * 4 / 256)) + int(np.ceil(40 * 4 / 256)) + 1)
    assert kernels.workspace_bytes("forward", 2, 3, 40, 5, 2, "float32", cell=cell) == 256
