// Host-only planning of the CUDA stacked RNN (see deeprnn/launch_plan.h): no CUDA headers, unit-tested without a GPU.
#include "deeprnn/launch_plan.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include "cuda/plan_arithmetic.h"
#include "deeprnn/stacked_rnn_cuda.h"

namespace deeprnn {

namespace {

using plan::CeilDiv;
using plan::kInt32Max;
using plan::kMaxColumns;
using plan::MulOrNeg;
using plan::RoundUp;
using plan::Str;

int64_t Product(std::initializer_list<int64_t> values) {
  int64_t p = 1;
  for (int64_t v : values) {
    p = MulOrNeg(p, v);
    if (p < 0) return -1;
  }
  return p;
}

// The tile that covers the batch with the least padding: B = 1 computes one row, larger batches more rows per tile.
int SmallTileFor(int64_t batch) {
  if (batch <= 1) return 0;
  if (batch <= 4) return 1;
  if (batch <= 16) return 2;
  if (batch <= 32) return 3;
  return 4;
}

}  // namespace

int EstimateBlocksPerSm(const DeviceProps& props, int64_t smem_bytes, int threads, int regs_per_thread) {
  if (threads <= 0 || smem_bytes > props.smem_per_block_optin) return 0;
  int64_t blocks = props.max_blocks_per_sm > 0 ? props.max_blocks_per_sm : 32;
  blocks = std::min<int64_t>(blocks, props.max_threads_per_sm / threads);
  if (props.regs_per_sm > 0 && regs_per_thread > 0)
    blocks = std::min<int64_t>(blocks, props.regs_per_sm / (int64_t{regs_per_thread} * threads));
  if (smem_bytes > 0 || props.reserved_smem_per_block > 0)
    blocks = std::min<int64_t>(blocks, props.smem_per_sm / (smem_bytes + props.reserved_smem_per_block));
  return static_cast<int>(std::max<int64_t>(0, blocks));
}

CudaStatus ValidateDeviceProps(const DeviceProps& p) {
  struct Field {
    const char* name;
    int64_t value;
    int64_t min;
  };
  const Field fields[] = {{"sm_count", p.sm_count, 1},
                          {"smem_per_block_optin", p.smem_per_block_optin, 1},
                          {"smem_per_sm", p.smem_per_sm, 1},
                          {"reserved_smem_per_block", p.reserved_smem_per_block, 0},
                          {"max_threads_per_sm", p.max_threads_per_sm, 1},
                          {"max_blocks_per_sm", p.max_blocks_per_sm, 1},
                          {"regs_per_sm", p.regs_per_sm, 1},
                          {"cc_major", p.cc_major, 1},
                          {"cc_minor", p.cc_minor, 0}};
  for (const Field& f : fields) {
    if (f.value < f.min || f.value > kInt32Max)
      return CudaStatus::Error("device property " + std::string(f.name) + " must be in [" + Str(f.min) +
                               ", 2^31 - 1]; got " + Str(f.value));
  }
  if (p.smem_per_block_optin > p.smem_per_sm)
    return CudaStatus::Error("device property smem_per_block_optin (" + Str(p.smem_per_block_optin) +
                             ") must not exceed smem_per_sm (" + Str(p.smem_per_sm) + "): a block lives on one SM");
  if (p.reserved_smem_per_block > p.smem_per_sm)
    return CudaStatus::Error("device property reserved_smem_per_block (" + Str(p.reserved_smem_per_block) +
                             ") must not exceed smem_per_sm (" + Str(p.smem_per_sm) + ")");
  return CudaStatus::Ok();
}

CudaStatus ValidateCudaShape(const Shape& s) {
  if (s.batch < 0) return CudaStatus::Error("batch must be >= 0; got " + Str(s.batch));
  if (s.time < 0) return CudaStatus::Error("time must be >= 0; got " + Str(s.time));
  if (s.input < 1) return CudaStatus::Error("input features must be >= 1; got " + Str(s.input));
  if (s.hidden < 1) return CudaStatus::Error("hidden units must be >= 1; got " + Str(s.hidden));
  if (s.layers < 1) return CudaStatus::Error("layers must be >= 1; got " + Str(s.layers));
  const int64_t rows = MulOrNeg(s.batch, s.time);
  if (rows < 0 || rows > kInt32Max)
    return CudaStatus::Error("batch * time must be at most 2^31 - 1 (the CUDA kernels index rows with 32 bits); got " +
                             Str(s.batch) + " * " + Str(s.time));
  if (s.hidden > kMaxColumns || s.input > kMaxColumns)
    return CudaStatus::Error("hidden and input sizes must be at most " + Str(kMaxColumns) +
                             " for the CUDA kernels; got hidden " + Str(s.hidden) + ", input " + Str(s.input));
  if (s.layers > kInt32Max - s.time)
    return CudaStatus::Error("time + layers must be below 2^31; got " + Str(s.time) + " + " + Str(s.layers));
  const int64_t cells = Product({s.layers, s.time, s.batch, s.hidden});
  const int64_t inputs = Product({s.batch, s.time, s.input});
  const int64_t weights = Product({s.hidden, std::max(s.hidden, s.input)});
  constexpr int64_t kMaxElems = int64_t{1} << 60;  // leaves room for byte offsets of doubles
  if (cells < 0 || cells > kMaxElems || inputs < 0 || inputs > kMaxElems || weights < 0 || weights > kMaxElems)
    return CudaStatus::Error("the tensors of this shape have more than 2^60 elements (batch " + Str(s.batch) +
                             ", time " + Str(s.time) + ", input " + Str(s.input) + ", hidden " + Str(s.hidden) +
                             ", layers " + Str(s.layers) + ")");
  return CudaStatus::Ok();
}

namespace {

int64_t TanhSmemBytes(const WavefrontTile& tile, int64_t hidden, int64_t layers, bool resident, bool /*backward*/,
                      int64_t element_bytes) {
  return WavefrontSmemBytes(tile, hidden, layers, resident, element_bytes);
}

constexpr WavefrontCell kTanhCell = {"", 64, &WavefrontTileShape, &TanhSmemBytes};

}  // namespace

CudaStatus PlanWavefront(const Shape& shape, int element_bytes, Direction direction, const DeviceProps& props,
                         CudaSchedule requested, const OccupancyFn& occupancy, WavefrontPlan* plan) {
  CudaStatus status = ValidateCudaShape(shape);
  if (!status.ok()) return status;
  return PlanCellWavefront(kTanhCell, shape, element_bytes, direction, props, requested, occupancy, plan);
}

CudaStatus PlanCellWavefront(const WavefrontCell& cell, const Shape& shape, int element_bytes, Direction direction,
                             const DeviceProps& props, CudaSchedule requested, const OccupancyFn& occupancy,
                             WavefrontPlan* plan) {
  if (element_bytes != 4 && element_bytes != 8)
    return CudaStatus::Error("element size must be 4 (float32) or 8 (float64) bytes; got " + Str(element_bytes));
  CudaStatus device = ValidateDeviceProps(props);
  if (!device.ok()) return device;
  *plan = WavefrontPlan();
  const bool backward = direction == Direction::kBackward;
  const int64_t B = shape.batch, T = shape.time, H = shape.hidden, L = shape.layers;
  const std::string pass = std::string(cell.pass_prefix) + (backward ? "backward" : "forward");
  if (B == 0 || T == 0) {
    plan->reason = "nothing to compute: batch or time is 0";
    return CudaStatus::Ok();
  }
  const OccupancyFn occ = occupancy ? occupancy : OccupancyFn([&props](int, int64_t smem) {
    return EstimateBlocksPerSm(props, smem, kWavefrontThreads, 64);
  });
  const int64_t sms = std::max(1, props.sm_count);
  const int64_t steps = T + L - 1;
  const int64_t max_active = std::min(L, T);

  // Weights on chip: block (l, c) keeps columns [16c, 16c + 16) of layer l's weights; the tile covers the batch.
  const int tile_r = SmallTileFor(B);
  const WavefrontTile shape_r = cell.tile_shape(tile_r);
  const int64_t rows_r = CeilDiv(B, shape_r.bm), cols_r = CeilDiv(H, shape_r.bn);
  const int64_t blocks_r = L * cols_r;
  const int64_t smem_r = cell.smem_bytes(shape_r, H, L, true, backward, element_bytes);
  int64_t occ_r = 0;
  std::string why_not_r;
  if (!props.cooperative_launch) {
    why_not_r = "the device does not support cooperative launch (grid barriers)";
  } else if (smem_r > props.smem_per_block_optin) {
    why_not_r = "a block's weight slice needs " + Str(smem_r) + " bytes of shared memory; the device allows " +
                Str(props.smem_per_block_optin) + " per block";
  } else {
    occ_r = occ(tile_r, smem_r);
    if (occ_r * sms < blocks_r)
      why_not_r = "weights on chip need " + Str(blocks_r) + " co-resident blocks of " + Str(smem_r) +
                  " bytes; the device holds " + Str(occ_r) + " per SM x " + Str(sms) + " SMs";
  }
  const bool r_ok = why_not_r.empty();

  // Streaming (persistent without weights on chip) and stepwise share the tile chosen for the batch.
  const int tile_s = (B >= 64 && H >= cell.wide_tile_min_hidden) ? 5 : tile_r;
  const WavefrontTile shape_s = cell.tile_shape(tile_s);
  const int64_t rows_s = CeilDiv(B, shape_s.bm), cols_s = CeilDiv(H, shape_s.bn);
  const int64_t items_s = MulOrNeg(MulOrNeg(max_active, rows_s), cols_s);
  if (items_s < 0 || items_s > kInt32Max)
    return CudaStatus::Error("a wavefront step of this shape has more than 2^31 - 1 tiles (layers " + Str(L) +
                             ", batch " + Str(B) + ", hidden " + Str(H) + ")");
  const int64_t smem_s = cell.smem_bytes(shape_s, H, L, false, backward, element_bytes);
  // Stepwise launches need this too: never for the tiles there are (at most 110 KB), but say so rather than fail at
  // launch.
  if (smem_s > props.smem_per_block_optin)
    return CudaStatus::Error(pass + ": a block needs " + Str(smem_s) + " bytes of shared memory; the device allows " +
                             Str(props.smem_per_block_optin));
  int64_t occ_s = 0;
  std::string why_not_s;
  if (!props.cooperative_launch) {
    why_not_s = "the device does not support cooperative launch (grid barriers)";
  } else {
    occ_s = occ(tile_s, smem_s);
    if (occ_s < 1) why_not_s = "no block of the persistent kernel fits on an SM";
  }
  const bool s_ok = why_not_s.empty();

  auto use_resident = [&](const std::string& why) {
    plan->schedule = CudaSchedule::kPersistent;
    plan->weights_on_chip = true;
    plan->tile = tile_r;
    plan->row_tiles = rows_r;
    plan->col_tiles = cols_r;
    plan->grid = blocks_r;
    plan->smem_bytes = smem_r;
    plan->blocks_per_sm = occ_r;
    plan->launches = 1;
    plan->reason = pass + ": persistent, weights on chip (" + Str(blocks_r) + " blocks x " + Str(smem_r) +
                   " B shared memory): " + why;
  };
  auto use_streaming = [&](const std::string& why) {
    plan->schedule = CudaSchedule::kPersistent;
    plan->weights_on_chip = false;
    plan->tile = tile_s;
    plan->row_tiles = rows_s;
    plan->col_tiles = cols_s;
    plan->grid = std::min(items_s, occ_s * sms);
    plan->smem_bytes = smem_s;
    plan->blocks_per_sm = occ_s;
    plan->launches = 1;
    plan->reason = pass + ": persistent, weights streamed (" + Str(plan->grid) + " blocks): " + why;
  };
  auto use_stepwise = [&](const std::string& why) {
    plan->schedule = CudaSchedule::kStepwise;
    plan->weights_on_chip = false;
    plan->tile = tile_s;
    plan->row_tiles = rows_s;
    plan->col_tiles = cols_s;
    plan->grid = items_s;
    plan->smem_bytes = smem_s;
    plan->blocks_per_sm = 0;
    plan->launches = steps;
    plan->reason = pass + ": stepwise (" + Str(steps) + " launches): " + why;
  };

  // Weights on chip pay off while a block has few row tiles to walk through per step; beyond that, or when they
  // do not fit, streaming tiles over all blocks. Stepwise launches win once a step holds many times the tiles the
  // GPU runs at once: the launch gap is then small next to the step, and no block waits at a barrier.
  const bool few_rows = rows_r <= 2;
  switch (requested) {
    case CudaSchedule::kStepwise:
      use_stepwise("requested");
      break;
    case CudaSchedule::kPersistentResident:
      if (!r_ok) return CudaStatus::Error(pass + ": weights cannot stay on chip: " + why_not_r);
      use_resident("requested");
      break;
    case CudaSchedule::kPersistentStreaming:
      if (!s_ok) return CudaStatus::Error(pass + ": persistent schedule unavailable: " + why_not_s);
      use_streaming("requested");
      break;
    case CudaSchedule::kPersistent:
      if (r_ok && few_rows) {
        use_resident("requested persistent; weights fit");
      } else if (s_ok) {
        use_streaming(r_ok ? "requested persistent; " + Str(rows_r) + " row tiles per block favour streaming"
                           : "requested persistent; " + why_not_r);
      } else if (r_ok) {
        use_resident("requested persistent; weights fit");
      } else {
        return CudaStatus::Error(pass + ": persistent schedule unavailable: " + why_not_s);
      }
      break;
    case CudaSchedule::kAuto:
    default:
      if (r_ok && few_rows) {
        use_resident("weights fit and the batch is small");
      } else if (s_ok && items_s <= 4 * occ_s * sms) {
        use_streaming(r_ok ? Str(rows_r) + " row tiles per block favour streaming" : why_not_r);
      } else {
        use_stepwise(!s_ok ? why_not_s
                           : Str(items_s) + " tiles per step exceed 4x the " + Str(occ_s * sms) +
                                 " co-resident blocks; launch gaps are small next to a step");
      }
      break;
  }
  return CudaStatus::Ok();
}

ReductionSplit PlanGemmSplit(int64_t m, int64_t n, int64_t k) {
  ReductionSplit split;
  if (k <= 0 || m <= 0 || n <= 0) return split;
  const int64_t tiles = CeilDiv(m, kGemmTile) * CeilDiv(n, kGemmTile);
  const int64_t want = CeilDiv(512, tiles);
  const int64_t splits = std::max<int64_t>(1, std::min({want, CeilDiv(k, 256), int64_t{64}}));
  split.k_per_split = RoundUp(CeilDiv(k, splits), kGemmChunk);
  split.splits = CeilDiv(k, split.k_per_split);  // never an empty slice
  return split;
}

ReductionSplit PlanColumnSumSplit(int64_t m, int64_t n) {
  ReductionSplit split;
  if (m <= 0 || n <= 0) return split;
  const int64_t blocks = CeilDiv(n, kColumnSumCols);
  const int64_t want = CeilDiv(512, blocks);
  const int64_t splits = std::max<int64_t>(1, std::min({want, CeilDiv(m, 256), int64_t{64}}));
  split.k_per_split = CeilDiv(m, splits);
  split.splits = CeilDiv(m, split.k_per_split);
  return split;
}

int64_t GemmPartialElems(int64_t m, int64_t n, int64_t k) {
  const ReductionSplit s = PlanGemmSplit(m, n, k);
  return s.splits > 1 ? s.splits * m * n : 0;
}

namespace {

using plan::kAlign;

WorkspaceLayout MakeLayout(int64_t table_bytes, int64_t partial_bytes) {
  WorkspaceLayout w;
  w.table_offset = 0;
  w.table_bytes = table_bytes;
  w.partial_offset = RoundUp(table_bytes, kAlign);
  w.partial_bytes = partial_bytes;
  w.total_bytes = w.partial_offset + RoundUp(partial_bytes, kAlign);
  return w;
}

}  // namespace

WorkspaceLayout ForwardWorkspaceLayout(const Shape& shape, int element_bytes) {
  (void)element_bytes;
  return MakeLayout(3 * std::max<int64_t>(1, shape.layers) * static_cast<int64_t>(sizeof(void*)), 0);
}

WorkspaceLayout BackwardWorkspaceLayout(const Shape& shape, int element_bytes) {
  const int64_t B = shape.batch, T = shape.time, D = shape.input, H = shape.hidden, L = shape.layers;
  int64_t partial = 0;
  if (B > 0 && T > 0) {
    const int64_t rows = T * B;
    partial = std::max(partial, GemmPartialElems(D, H, rows));                    // grad of kernels[0]
    if (L > 1) partial = std::max(partial, GemmPartialElems(H, H, rows));         // grad of kernels[l > 0]
    partial = std::max(partial, GemmPartialElems(H, H, B));                       // recurrent, t = 0 part
    partial = std::max(partial, GemmPartialElems(H, H, (T - 1) * B));             // recurrent, t > 0 part
    const ReductionSplit bias = PlanColumnSumSplit(rows, H);                     // grad of biases
    if (bias.splits > 1) partial = std::max(partial, bias.splits * H);
  }
  return MakeLayout(2 * std::max<int64_t>(1, L) * static_cast<int64_t>(sizeof(void*)), partial * element_bytes);
}

int64_t StackedRnnForwardCudaWorkspaceBytes(const Shape& shape, int element_bytes) {
  return ForwardWorkspaceLayout(shape, element_bytes).total_bytes;
}

int64_t StackedRnnBackwardCudaWorkspaceBytes(const Shape& shape, int element_bytes) {
  return BackwardWorkspaceLayout(shape, element_bytes).total_bytes;
}

const char* ScheduleName(CudaSchedule schedule) {
  switch (schedule) {
    case CudaSchedule::kAuto: return "auto";
    case CudaSchedule::kStepwise: return "stepwise";
    case CudaSchedule::kPersistent: return "persistent";
    case CudaSchedule::kPersistentResident: return "persistent_resident";
    case CudaSchedule::kPersistentStreaming: return "persistent_streaming";
  }
  return "unknown";
}

CudaStatus ParseSchedule(const std::string& name, CudaSchedule* schedule) {
  for (CudaSchedule s : {CudaSchedule::kAuto, CudaSchedule::kStepwise, CudaSchedule::kPersistent,
                         CudaSchedule::kPersistentResident, CudaSchedule::kPersistentStreaming}) {
    if (name == ScheduleName(s)) {
      *schedule = s;
      return CudaStatus::Ok();
    }
  }
  return CudaStatus::Error("schedule must be one of 'auto', 'stepwise', 'persistent', 'persistent_resident', "
                           "'persistent_streaming'; got '" + name + "'");
}

}  // namespace deeprnn
