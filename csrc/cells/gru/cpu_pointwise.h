// The GRU's pointwise passes on the CPU (cells/gru/cell.h), over the instruction set. Per-instruction-set code: see
// the ISA rule in engine/cpu/simd.h.
#ifndef DEEPRNN_CELLS_GRU_CPU_POINTWISE_H_
#define DEEPRNN_CELLS_GRU_CPU_POINTWISE_H_

#include "cells/gru/cell.h"
#include "engine/cpu/pointwise.h"
#include "engine/cpu/simd.h"

namespace deeprnn {

template <typename Isa, typename T>
struct GruCell::Cpu {
  using S = cpu::Simd<Isa, T>;
  using V = typename S::V;
  static constexpr int kLanes = S::kLanes;

  // Forward: the products have left, per row of `pre`, [z_pre | r_pre | xn | q]; the pass writes [z | r | n | q]
  // to the saved gates and h' = z * h + (1 - z) * n to the state's destinations. Four vectors per step where the
  // range allows: the nonlinearities are long dependency chains (exp, then a division, then n needs r), and
  // independent chains side by side keep the pipelines busy.
  static void Forward(const cpu::PointwiseForward<T>& tile, int64_t m, int64_t j0, int64_t j1) {
    const int64_t H = tile.hidden;
    // Streaming stores need every vector of the gates aligned: whole vectors per slot and row, aligned rows.
    const bool stream = Isa::kStreamingStores && tile.stream_saved && H % kLanes == 0 &&
                        tile.saved_ld % kLanes == 0 && j0 % kLanes == 0 &&
                        reinterpret_cast<uintptr_t>(tile.saved) % sizeof(V) == 0;
    auto store_gate = [stream](T* p, int64_t count, V v) {
      if (stream)
        Isa::template Stream<V>(p, v);
      else
        S::StoreN(p, count, v);
    };
    for (int64_t i = 0; i < m; ++i) {
      const T* pre = tile.pre + i * tile.pre_ld;
      T* g = tile.saved + i * tile.saved_ld;
      const T* hp = tile.prev[0] + i * tile.prev_ld[0];
      int64_t j = j0;
      for (; j + 4 * kLanes <= j1; j += 4 * kLanes) {
        V z[4], r[4], h[4];
#pragma GCC unroll 4
        for (int v = 0; v < 4; ++v)
          S::SigmoidPair(S::Load(pre + j + v * kLanes), S::Load(pre + H + j + v * kLanes), z[v], r[v]);
#pragma GCC unroll 4
        for (int v = 0; v < 4; ++v) {
          const int64_t c = j + v * kLanes;
          const V q = S::Load(pre + 3 * H + c);
          const V n = S::Tanh(S::Load(pre + 2 * H + c) + r[v] * q);
          h[v] = z[v] * S::Load(hp + c) + (T(1) - z[v]) * n;  // Keras' order of operations
          store_gate(g + c, kLanes, z[v]);
          store_gate(g + H + c, kLanes, r[v]);
          store_gate(g + 2 * H + c, kLanes, n);
          store_gate(g + 3 * H + c, kLanes, q);
        }
        for (int d = 0; d < cpu::kStateDestinations; ++d)
          if (tile.out[0][d]) {
            T* row = tile.out[0][d] + i * tile.out_ld[0][d] + j;
            for (int v = 0; v < 4; ++v) S::Store(row + v * kLanes, h[v]);
          }
      }
      for (; j < j1; j += kLanes) {
        const int64_t c = j1 - j;
        V z, r;
        S::SigmoidPair(S::LoadN(pre + j, c), S::LoadN(pre + H + j, c), z, r);
        const V q = S::LoadN(pre + 3 * H + j, c);
        const V n = S::Tanh(S::LoadN(pre + 2 * H + j, c) + r * q);
        const V h = z * S::LoadN(hp + j, c) + (T(1) - z) * n;
        store_gate(g + j, c, z);
        store_gate(g + H + j, c, r);
        store_gate(g + 2 * H + j, c, n);
        store_gate(g + 3 * H + j, c, q);
        for (int d = 0; d < cpu::kStateDestinations; ++d)
          if (tile.out[0][d]) S::StoreN(tile.out[0][d] + i * tile.out_ld[0][d] + j, c, h);
      }
    }
    // Streaming stores are weakly ordered: make them visible before the caller reports the tile done.
    if (stream) Isa::Fence();
  }

  static constexpr int64_t kPrefetchRows = 6;
  static constexpr int64_t kLineValues = 64 / sizeof(T);

  // Backward: h' = z h + (1 - z) n;  n = tanh(a_n), a_n = xn + r q;  z = sigmoid(a_z);  r = sigmoid(a_r):
  //   da_n = dh (1 - z) (1 - n^2),  da_z = dh (h - n) z (1 - z),  da_r = da_n q r (1 - r),
  // written as [da_n | da_z | da_r | da_n r]; dh is overwritten with dh z, its direct path to h_{t-1}.
  static void Backward(const cpu::PointwiseBackward<T>& tile, int64_t m, int64_t j0, int64_t j1) {
    const int64_t H = tile.hidden;
    for (int64_t i = 0; i < m; ++i) {
      const T* g = tile.saved + i * tile.saved_ld;
      const T* hp = tile.prev[0] + i * tile.prev_ld[0];
      T* dh_row = tile.dh + i * tile.dh_ld;
      T* gg = tile.grad + i * tile.grad_ld;
      if (i + kPrefetchRows < m) {
        // The gates and states were written long ago by the forward pass and are in no cache: ask for a later
        // row's now, a few rows at a time (a whole tile's requests at once would stall on the miss buffers).
        const T* later_gates = g + kPrefetchRows * tile.saved_ld;
        const T* later_state = hp + kPrefetchRows * tile.prev_ld[0];
        for (int64_t j = j0; j < j1; j += kLineValues) {
          for (int slot = 0; slot < 4; ++slot) __builtin_prefetch(later_gates + slot * H + j, 0, 1);
          __builtin_prefetch(later_state + j, 0, 1);
        }
      }
      for (int64_t j = j0; j < j1; j += kLanes) {
        const int64_t c = j1 - j;
        const V z = S::LoadN(g + j, c), r = S::LoadN(g + H + j, c), n = S::LoadN(g + 2 * H + j, c);
        const V q = S::LoadN(g + 3 * H + j, c);
        const V dh = S::LoadN(dh_row + j, c);
        const V da_n = dh * (T(1) - z) * (T(1) - n * n);
        const V da_z = dh * (S::LoadN(hp + j, c) - n) * z * (T(1) - z);
        const V da_r = da_n * q * r * (T(1) - r);
        S::StoreN(gg + j, c, da_n);
        S::StoreN(gg + H + j, c, da_z);
        S::StoreN(gg + 2 * H + j, c, da_r);
        S::StoreN(gg + 3 * H + j, c, da_n * r);
        S::StoreN(dh_row + j, c, dh * z);
      }
    }
  }
};

}  // namespace deeprnn

#endif  // DEEPRNN_CELLS_GRU_CPU_POINTWISE_H_
