// Host-only planning of the CUDA stacked GRU (deeprnn/stacked_gru_cuda.h): shape checks, the wavefront's schedule and
// tiles, workspace layouts. No CUDA headers, so it is unit-tested without a GPU (through deeprnn_fast._kernels.plan).
//
// The schedule rules are the tanh RNN's (PlanCellWavefront in launch_plan.cc, whose comments explain them); only the
// tiles and the shared-memory sizes differ: a GRU block stages three gates' weight columns per unit forward and a
// 3H-long reduction backward, so weights fit on chip up to about H = 512 (float32, two segments) instead of 1024.
#include <algorithm>
#include <cstdint>
#include <string>

#include "cuda/plan_arithmetic.h"
#include "deeprnn/launch_plan.h"
#include "deeprnn/stacked_gru_cuda.h"

namespace deeprnn {

namespace {

using plan::kAlign;
using plan::kMaxColumns;
using plan::MulOrNeg;
using plan::RoundUp;
using plan::Str;

// Tile 5 of the GRU is 32 units wide, so streaming and stepwise take it from H = 32 on.
constexpr WavefrontCell kGruCell = {"GRU ", 32, &GruTileShape, &GruSmemBytes};

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
  return PlanCellWavefront(kGruCell, shape, element_bytes, direction, props, requested, occupancy, plan);
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
