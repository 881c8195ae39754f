// The LSTM's pointwise passes on the CPU (cells/lstm/cell.h), over the instruction set. Per-instruction-set code:
// see the ISA rule in engine/cpu/simd.h.
#ifndef DEEPRNN_CELLS_LSTM_CPU_POINTWISE_H_
#define DEEPRNN_CELLS_LSTM_CPU_POINTWISE_H_

#include "cells/lstm/cell.h"
#include "engine/cpu/pointwise.h"
#include "engine/cpu/simd.h"

namespace deeprnn {

template <typename Isa, typename T>
struct LstmCell::Cpu {
  using S = cpu::Simd<Isa, T>;
  using V = typename S::V;
  static constexpr int kLanes = S::kLanes;

  // One vector of units: the products have left [a_i | a_f | a_g | a_o]; saved gets [i | f | g | o], the states
  // c' and h' their destinations. Keras' order of operations (c' = f c + i g, h' = o tanh(c')).
  static inline void Unit(const cpu::PointwiseForward<T>& tile, int64_t i, int64_t j, int64_t count,
                          bool stream) {
    const int64_t H = tile.hidden;
    const T* pre = tile.pre + i * tile.pre_ld;
    T* g = tile.saved + i * tile.saved_ld;
    V in_gate, forget;
    S::SigmoidPair(S::LoadN(pre + j, count), S::LoadN(pre + H + j, count), in_gate, forget);
    const V cand = S::Tanh(S::LoadN(pre + 2 * H + j, count));
    const V out_gate = S::Sigmoid(S::LoadN(pre + 3 * H + j, count));
    const V c = forget * S::LoadN(tile.prev[1] + i * tile.prev_ld[1] + j, count) + in_gate * cand;
    const V h = out_gate * S::Tanh(c);
    const V gates[4] = {in_gate, forget, cand, out_gate};
    for (int s = 0; s < 4; ++s) {
      if (stream)
        Isa::template Stream<V>(g + s * H + j, gates[s]);
      else
        S::StoreN(g + s * H + j, count, gates[s]);
    }
    for (int d = 0; d < cpu::kStateDestinations; ++d) {
      if (tile.out[1][d]) S::StoreN(tile.out[1][d] + i * tile.out_ld[1][d] + j, count, c);
      if (tile.out[0][d]) S::StoreN(tile.out[0][d] + i * tile.out_ld[0][d] + j, count, h);
    }
  }

  static void Forward(const cpu::PointwiseForward<T>& tile, int64_t m, int64_t j0, int64_t j1) {
    const int64_t H = tile.hidden;
    // Streaming stores for the four gates (not for c', which the next step reads): whole aligned vectors only.
    const bool stream = Isa::kStreamingStores && tile.stream_saved && H % kLanes == 0 &&
                        tile.saved_ld % kLanes == 0 && j0 % kLanes == 0 &&
                        reinterpret_cast<uintptr_t>(tile.saved) % sizeof(V) == 0;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = j0; j < j1; j += kLanes) Unit(tile, i, j, j1 - j, stream && j + kLanes <= j1);
    if (stream) Isa::Fence();
  }

  // Backward, with tc = tanh(c') (recomputed from the saved c'):
  //   dc_total = dc + dh o (1 - tc^2),  da_o = dh tc o (1 - o),  da_i = dc_total g i (1 - i),
  //   da_f = dc_total c f (1 - f),  da_g = dc_total i (1 - g^2),  dc_prev = dc_total f.
  static void Backward(const cpu::PointwiseBackward<T>& tile, int64_t m, int64_t j0, int64_t j1) {
    const int64_t H = tile.hidden;
    for (int64_t i = 0; i < m; ++i) {
      const T* g = tile.saved + i * tile.saved_ld;
      const T* c_prev = tile.prev[1] + i * tile.prev_ld[1];
      const T* dh_row = tile.dh + i * tile.dh_ld;
      const T* dc_row = tile.dc + i * tile.dc_ld;
      T* dc_prev_row = tile.dc_prev + i * tile.dc_prev_ld;
      T* gg = tile.grad + i * tile.grad_ld;
      for (int64_t j = j0; j < j1; j += kLanes) {
        const int64_t n = j1 - j;
        const V in_gate = S::LoadN(g + j, n), forget = S::LoadN(g + H + j, n);
        const V cand = S::LoadN(g + 2 * H + j, n), out_gate = S::LoadN(g + 3 * H + j, n);
        const V tc = S::Tanh(S::LoadN(g + 4 * H + j, n));
        const V dh = S::LoadN(dh_row + j, n);
        const V dc = S::LoadN(dc_row + j, n) + dh * out_gate * (T(1) - tc * tc);
        S::StoreN(gg + j, n, dc * cand * in_gate * (T(1) - in_gate));
        S::StoreN(gg + H + j, n, dc * S::LoadN(c_prev + j, n) * forget * (T(1) - forget));
        S::StoreN(gg + 2 * H + j, n, dc * in_gate * (T(1) - cand * cand));
        S::StoreN(gg + 3 * H + j, n, dh * tc * out_gate * (T(1) - out_gate));
        S::StoreN(dc_prev_row + j, n, dc * forget);
      }
    }
  }
};

}  // namespace deeprnn

#endif  // DEEPRNN_CELLS_LSTM_CPU_POINTWISE_H_
