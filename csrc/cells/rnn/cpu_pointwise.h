// The tanh / relu RNN's pointwise backward pass on the CPU (cells/rnn/cell.h), for the schedules where dh is computed
// on its own (masks, dropout); otherwise the products' epilogue does the same. Per-instruction-set code: see the ISA
// rule in engine/cpu/simd.h.
#ifndef DEEPRNN_CELLS_RNN_CPU_POINTWISE_H_
#define DEEPRNN_CELLS_RNN_CPU_POINTWISE_H_

#include "cells/rnn/cell.h"
#include "engine/cpu/pointwise.h"
#include "engine/cpu/products.h"

namespace deeprnn {

template <Cell kCellKind>
template <typename Isa, typename T>
struct RnnCell<kCellKind>::Cpu {
  using P = cpu::Products<Isa, T>;
  using S = cpu::Simd<Isa, T>;

  // dZ = dh phi'(z), written with h = phi(z) as the products' epilogue does (Products::ActivationGradV).
  static void Backward(const cpu::PointwiseBackward<T>& tile, int64_t m, int64_t j0, int64_t j1) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = j0; j < j1; j += S::kLanes) {
        const int64_t c = j1 - j;
        const typename S::V g = S::LoadN(tile.dh + i * tile.dh_ld + j, c);
        S::StoreN(tile.grad + i * tile.grad_ld + j, c,
                  P::ActivationGradV(kActivation, g, S::LoadN(tile.h + i * tile.h_ld + j, c)));
      }
  }
};

}  // namespace deeprnn

#endif  // DEEPRNN_CELLS_RNN_CPU_POINTWISE_H_
