// The CUDA passes' workspace layouts and the splits of their long reductions, for any cell: pure functions of the
// cell, the shape and the element size (and, backward, whether layer 0 reads tokens), so that sizes are known
// without a device. Host-only; the tiling constants are shared with the product kernels (engine/cuda/products.cu).
#ifndef DEEPRNN_ENGINE_PLAN_WORKSPACE_H_
#define DEEPRNN_ENGINE_PLAN_WORKSPACE_H_

#include <cstdint>

#include "deeprnn/stacked.h"

namespace deeprnn {

// The tiled matrix products (layer 0's input projection, the data and weight gradients) use 64 x 64 output tiles
// with a reduction chunk of 16; a long reduction (over all T*B rows, for weight gradients) is split into `splits`
// slices of `k_per_split` whose partial sums go to the workspace and are added in a fixed order (deterministic).
constexpr int kGemmTile = 64;
constexpr int kGemmChunk = 16;
constexpr int kColumnSumCols = 32;  // columns per block of the bias gradients' column sums
// The product kernels put output column tiles on gridDim.y (at most 65535 tiles of 64 columns).
constexpr int64_t kMaxGemmColumns = int64_t{65535} * kGemmTile;

struct ReductionSplit {
  int64_t splits = 1;
  int64_t k_per_split = 0;
};

// Split of the reduction of an m x n product over k: enough blocks to fill a large GPU (about 512), at least 256
// reduction rows per slice, at most 64 slices.
ReductionSplit PlanGemmSplit(int64_t m, int64_t n, int64_t k);
// Split of the column sums of an m x n matrix (bias gradients) over its m rows.
ReductionSplit PlanColumnSumSplit(int64_t m, int64_t n);
// Elements of workspace the split reduction of an [m, k] x [k, n] product needs for its partial sums (0 unsplit).
int64_t GemmPartialElems(int64_t m, int64_t n, int64_t k);

// Byte layouts; every region starts on a 256-byte boundary.
struct ForwardWorkspace {
  int64_t table_offset = 0;  // device copies of the 3L weight pointers (kernels, recurrent kernels, biases) and the
                             // 2L dropout mask pointers (input, recurrent)
  int64_t total_bytes = 0;
};

struct BackwardWorkspace {
  int64_t table_offset = 0;    // device copies of the 2L weight pointers (kernels, recurrent kernels) and the 2L
                               // dropout mask pointers (input, recurrent)
  int64_t carry_h_offset = 0;  // [L,2,B,H] (cells whose h' reads h directly, or any with a mask): dh's direct part
  int64_t carry_c_offset = 0;  // [L,2,S-1,B,H] (cells with a second state): dc of the cell, slot t % 2
  int64_t sums_offset = 0;     // [GS*H]: column sums of one layer's grad slots, when the bias gradient rearranges them
  // Shared, one after the other on the stream: the partial sums of split reductions, and with tokens the
  // rows of layer 0 sorted by token for its weight gradient (int32 starts [D+1], cursors [D], rows [T*B]).
  int64_t partial_offset = 0;
  int64_t partial_bytes = 0;
  int64_t token_starts_offset = 0;
  int64_t token_cursor_offset = 0;
  int64_t token_rows_offset = 0;
  int64_t total_bytes = 0;
};

ForwardWorkspace ForwardWorkspaceLayout(Cell cell, const Shape& shape, int element_bytes);
BackwardWorkspace BackwardWorkspaceLayout(Cell cell, const Shape& shape, int element_bytes, bool token_inputs);

}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_PLAN_WORKSPACE_H_
