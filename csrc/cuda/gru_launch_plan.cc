// Host-only planning of the CUDA stacked GRU (deeprnn/stacked_gru_cuda.h): shape checks, the wavefront's schedule and
// tiles, workspace layouts. No CUDA headers, so it is unit-tested without a GPU (through deeprnn_fast._kernels.plan).
//
// The schedule rules are the tanh RNN's (PlanWavefront in launch_plan.cc, whose comments explain them); only the
// tiles and the shared-memory sizes differ: a GRU block stages three gates' weight columns per unit forward and a
// 3H-long reduction backward, so weights fit on chip up to about H = 512 (float32, two segments) instead of 1024.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include "deeprnn/launch_plan.h"
#include "deeprnn/stacked_gru_cuda.h"

namespace deeprnn {

namespace {

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
// The matrix-product kernels put output column tiles on gridDim.y (at most 65535 tiles of 64 columns); the GRU's
// widest product has 3H columns.
constexpr int64_t kMaxColumns = int64_t{65535} * kGemmTile;
constexpr int64_t kAlign = 256;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t RoundUp(int64_t a, int64_t b) { return CeilDiv(a, b) * b; }
std::string Str(int64_t v) { return std::to_string(v); }

int64_t MulOrNeg(int64_t a, int64_t b) {
  if (a == 0 || b == 0) return 0;
  if (a > std::numeric_limits<int64_t>::max() / b) return -1;
  return a * b;
}

// The tanh RNN's choice of small tile for a batch (launch_plan.cc).
int SmallTileFor(int64_t batch) {
  if (batch <= 1) return 0;
  if (batch <= 4) return 1;
  if (batch <= 16) return 2;
  if (batch <= 32) return 3;
  return 4;
}

int64_t GemmPartialElems(int64_t m, int64_t n, int64_t k) {
  const ReductionSplit s = PlanGemmSplit(m, n, k);
  return s.splits > 1 ? s.splits * m * n : 0;
}

}  // namespace

CudaStatus ValidateGruCudaShape(const Shape& s) {
  CudaStatus status = ValidateCudaShape(s);
  if (!status.ok()) return status;
  if (3 * s.hidden > kMaxColumns)
    return CudaStatus::Error("hidden units must be at most " + Str(kMaxColumns / 3) +
                             " for the CUDA GRU (its matrices have 3 * hidden columns); got " + Str(s.hidden));
  // ValidateCudaShape bounds L*T*B*H by 2^60; the gates are 4x that.
  const int64_t cells = MulOrNeg(MulOrNeg(MulOrNeg(s.layers, s.time), s.batch), 4 * s.hidden);
  if (cells < 0 || cells > (int64_t{1} << 60))
    return CudaStatus::Error("the gates tensor of this shape has more than 2^60 elements");
  return CudaStatus::Ok();
}

CudaStatus PlanGruWavefront(const Shape& shape, int element_bytes, Direction direction, const DeviceProps& props,
                            CudaSchedule requested, const OccupancyFn& occupancy, WavefrontPlan* plan) {
  CudaStatus status = ValidateGruCudaShape(shape);
  if (!status.ok()) return status;
  if (element_bytes != 4 && element_bytes != 8)
    return CudaStatus::Error("element size must be 4 (float32) or 8 (float64) bytes; got " + Str(element_bytes));
  *plan = WavefrontPlan();
  const bool backward = direction == Direction::kBackward;
  const int64_t B = shape.batch, T = shape.time, H = shape.hidden, L = shape.layers;
  const std::string pass = backward ? "GRU backward" : "GRU forward";
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

  // Weights on chip: block (l, c) keeps units [16c, 16c + 16) of layer l's weights; the tile covers the batch.
  const int tile_r = SmallTileFor(B);
  const WavefrontTile shape_r = GruTileShape(tile_r);
  const int64_t rows_r = CeilDiv(B, shape_r.bm), cols_r = CeilDiv(H, shape_r.bn);
  const int64_t blocks_r = L * cols_r;
  const int64_t smem_r = GruSmemBytes(shape_r, H, L, true, backward, element_bytes);
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

  // Streaming and stepwise share the tile chosen for the batch (tile 5 is 32 units wide).
  const int tile_s = (B >= 64 && H >= 32) ? 5 : tile_r;
  const WavefrontTile shape_s = GruTileShape(tile_s);
  const int64_t rows_s = CeilDiv(B, shape_s.bm), cols_s = CeilDiv(H, shape_s.bn);
  const int64_t items_s = MulOrNeg(MulOrNeg(max_active, rows_s), cols_s);
  if (items_s < 0 || items_s > kInt32Max)
    return CudaStatus::Error("a wavefront step of this shape has more than 2^31 - 1 tiles (layers " + Str(L) +
                             ", batch " + Str(B) + ", hidden " + Str(H) + ")");
  const int64_t smem_s = GruSmemBytes(shape_s, H, L, false, backward, element_bytes);
  int64_t occ_s = 0;
  std::string why_not_s;
  if (smem_s > props.smem_per_block_optin) {
    // Never for the tiles above (at most 110 KB), but say so rather than fail at launch.
    return CudaStatus::Error(pass + ": a block needs " + Str(smem_s) + " bytes of shared memory; the device allows " +
                             Str(props.smem_per_block_optin));
  } else if (!props.cooperative_launch) {
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

GruBackwardWorkspace GruBackwardWorkspaceLayout(const Shape& shape, int element_bytes) {
  const int64_t B = shape.batch, T = shape.time, D = shape.input, H = shape.hidden, L = shape.layers;
  const int64_t eb = element_bytes;
  int64_t partial = 0;
  if (B > 0 && T > 0) {
    const int64_t rows = T * B;
    // Weight gradients (GruBackward in gru_backward.cu): kernels' columns z|r and n, recurrent kernels' t = 0 and
    // t > 0 parts, and the column sums of grad_gates.
    partial = std::max({GemmPartialElems(D, 2 * H, rows), GemmPartialElems(D, H, rows),
                        GemmPartialElems(H, 3 * H, B), GemmPartialElems(H, 3 * H, (T - 1) * B)});
    if (L > 1) partial = std::max({partial, GemmPartialElems(H, 2 * H, rows), GemmPartialElems(H, H, rows)});
    const ReductionSplit sums = PlanColumnSumSplit(rows, 4 * H);
    if (sums.splits > 1) partial = std::max(partial, sums.splits * 4 * H);
  }
  GruBackwardWorkspace w;
  w.table_offset = 0;
  w.carry_offset = RoundUp(2 * std::max<int64_t>(1, L) * static_cast<int64_t>(sizeof(void*)), kAlign);
  w.sums_offset = w.carry_offset + RoundUp(L * 2 * B * H * eb, kAlign);
  w.partial_offset = w.sums_offset + RoundUp(4 * H * eb, kAlign);
  w.partial_bytes = partial * eb;
  w.total_bytes = w.partial_offset + RoundUp(w.partial_bytes, kAlign);
  return w;
}

int64_t StackedGruForwardCudaWorkspaceBytes(const Shape& shape, int element_bytes) {
  return ForwardWorkspaceLayout(shape, element_bytes).total_bytes;
}

int64_t StackedGruBackwardCudaWorkspaceBytes(const Shape& shape, int element_bytes) {
  return GruBackwardWorkspaceLayout(shape, element_bytes).total_bytes;
}

}  // namespace deeprnn
