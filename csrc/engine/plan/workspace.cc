// The CUDA passes' workspace layouts and reduction splits (engine/plan/workspace.h), and the public sizes of
// deeprnn/stacked_cuda.h, which need no device.
#include "engine/plan/workspace.h"

#include <algorithm>
#include <cstdint>

#include "deeprnn/stacked_cuda.h"
#include "engine/plan/arithmetic.h"
#include "engine/plan/cell_geometry.h"

namespace deeprnn {

using plan::CeilDiv;
using plan::kAlign;
using plan::RoundUp;

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

ForwardWorkspace ForwardWorkspaceLayout(Cell, const Shape& shape, int) {
  ForwardWorkspace w;
  w.table_offset = 0;
  // 3L weight pointers and 2L dropout mask pointers (deeprnn/stacked.h Modifiers), whether or not a call has any.
  w.total_bytes = RoundUp(5 * std::max<int64_t>(1, shape.layers) * static_cast<int64_t>(sizeof(void*)), kAlign);
  return w;
}

BackwardWorkspace BackwardWorkspaceLayout(Cell cell, const Shape& shape, int element_bytes, bool token_inputs) {
  const CellGeometry geo = GeometryOf(cell);
  const int64_t B = shape.batch, T = shape.time, D = shape.input, H = shape.hidden, L = shape.layers;
  const int64_t eb = element_bytes;
  // The partial sums of the backward pass's split reductions (engine/cuda/backward_pass.cuh): the weight
  // gradients per run of consecutive gates of each side, and the column sums of the grad slots.
  int64_t partial = 0;
  if (B > 0 && T > 0) {
    const int64_t rows = T * B;
    for (const GateRun& run : GateRuns(geo.x_gates, geo.gates))
      for (int64_t l = token_inputs ? 1 : 0; l < L; ++l)
        partial = std::max(partial, GemmPartialElems(l == 0 ? D : H, run.length * H, rows));
    for (const GateRun& run : GateRuns(geo.h_gates, geo.gates))
      partial = std::max({partial, GemmPartialElems(H, run.length * H, B),
                          GemmPartialElems(H, run.length * H, (T - 1) * B)});
    const ReductionSplit sums = PlanColumnSumSplit(rows, geo.grad_slots * H);
    if (sums.splits > 1) partial = std::max(partial, sums.splits * geo.grad_slots * H);
  }
  BackwardWorkspace w;
  int64_t at = 0;
  auto region = [&at](int64_t bytes) {
    const int64_t offset = at;
    at += RoundUp(bytes, kAlign);
    return offset;
  };
  w.table_offset = region(4 * std::max<int64_t>(1, L) * static_cast<int64_t>(sizeof(void*)));
  // With a mask every cell has a direct h path (a masked step passes dh on whole), so every cell gets the carry.
  w.carry_h_offset = region(L * 2 * B * H * eb);
  w.carry_c_offset = region(L * 2 * (geo.states - 1) * B * H * eb);
  w.sums_offset = region(BiasGradIsColumnSums(geo) ? 0 : geo.grad_slots * H * eb);
  w.partial_bytes = partial * eb;
  int64_t shared = w.partial_bytes;
  if (token_inputs && B > 0 && T > 0) {
    w.token_starts_offset = 0;
    w.token_cursor_offset = RoundUp((D + 1) * 4, kAlign);
    w.token_rows_offset = w.token_cursor_offset + RoundUp(D * 4, kAlign);
    shared = std::max(shared, w.token_rows_offset + T * B * 4);
  }
  w.partial_offset = region(shared);
  w.token_starts_offset += w.partial_offset;
  w.token_cursor_offset += w.partial_offset;
  w.token_rows_offset += w.partial_offset;
  w.total_bytes = at;
  return w;
}

int64_t StackedForwardCudaWorkspaceBytes(Cell cell, const Shape& shape, int element_bytes) {
  return ForwardWorkspaceLayout(cell, shape, element_bytes).total_bytes;
}

int64_t StackedBackwardCudaWorkspaceBytes(Cell cell, const Shape& shape, int element_bytes, bool token_inputs) {
  return BackwardWorkspaceLayout(cell, shape, element_bytes, token_inputs).total_bytes;
}

int64_t StackedBackwardCudaScratchSize(Cell cell, const Shape& shape) {
  return shape.layers * shape.time * shape.batch * GeometryOf(cell).grad_slots * shape.hidden;
}

}  // namespace deeprnn
