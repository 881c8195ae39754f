// The GRU's elementwise passes over one tile of a cell (rows x a range of units), run right after the tile's matrix
// products by the same work unit. Internal to the CPU kernel library (the public API is deeprnn/stacked_gru.h).
//
// Like the matrix kernels (cpu/gemm.h) they are compiled once per instruction set (gru_pointwise_avx2.cc,
// gru_pointwise_generic.cc) and picked at run time.
#ifndef DEEPRNN_CPU_GRU_POINTWISE_H_
#define DEEPRNN_CPU_GRU_POINTWISE_H_

#include <cstdint>

namespace deeprnn {
namespace cpu {

// Forward: the products have left, in each row of `pre`, [z_pre | r_pre | xn | q] where z_pre = x Wx_z + bx_z +
// h Wh_z + bh_z (r_pre likewise), xn = x Wx_n + bx_n and q = h Wh_n + bh_n. The pass writes [z | r | n | q] to the
// gates rows and the new state h' = z * h + (1 - z) * n to up to three destinations. `pre` may be `gates` (in
// place). When it is not, the gates are written with streaming stores where the instruction set and the alignment
// allow: nothing reads them before the backward pass, long after they have left every cache, so they bypass the
// caches instead of first reading every line they overwrite.
template <typename T>
struct GruForwardTile {
  const T* pre;         // row 0 of the tile, row stride pre_ld; slots z_pre, r_pre, xn, q at offsets 0, H, 2H, 3H
  int64_t pre_ld;
  T* gates;             // row 0 of the tile, row stride gates_ld; slots z, r, n, q likewise
  int64_t gates_ld;
  const T* h_prev;      // the previous state, row 0 of the tile
  int64_t h_prev_ld;
  T* dst[3] = {nullptr, nullptr, nullptr};  // h'; dst[0] is required
  int64_t dst_ld[3] = {0, 0, 0};
  int64_t hidden;       // H: the distance between gate slots
};

// Backward: dh holds dLoss/dh' of the tile (every path summed); the pass writes the gradients of the gates'
// arguments, as [dn | dz | dr | dn * r] (see deeprnn/stacked_gru.h), and overwrites dh with dh * z, the part of the
// gradient that reaches the previous state directly rather than through the recurrent product.
template <typename T>
struct GruBackwardTile {
  const T* gates;       // [z | r | n | q] rows as written by the forward pass
  int64_t gates_ld;
  const T* h_prev;
  int64_t h_prev_ld;
  T* dh;                // in: dLoss/dh'; out: dLoss/dh' * z
  int64_t dh_ld;
  T* grad_gates;        // out: [dn | dz | dr | dn * r] rows
  int64_t grad_gates_ld;
  int64_t hidden;
};

template <typename T>
struct GruKernelTable {
  // Units [j0, j1) of rows [0, m) of a tile.
  void (*forward)(const GruForwardTile<T>& tile, int64_t m, int64_t j0, int64_t j1);
  void (*backward)(const GruBackwardTile<T>& tile, int64_t m, int64_t j0, int64_t j1);
};

// The table for the instruction set that cpu::Kernels<T>() runs on.
template <typename T>
const GruKernelTable<T>& GruKernels();

}  // namespace cpu
}  // namespace deeprnn

#endif  // DEEPRNN_CPU_GRU_POINTWISE_H_
