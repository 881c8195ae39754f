// The GRU's elementwise passes (cpu/gru_pointwise.h) as templates over the instruction set, compiled by
// gru_pointwise_avx2.cc and gru_pointwise_generic.cc. The same include rules as cpu/simd_kernels.h apply.
#ifndef DEEPRNN_CPU_GRU_POINTWISE_SIMD_H_
#define DEEPRNN_CPU_GRU_POINTWISE_SIMD_H_

#include "cpu/gru_pointwise.h"
#include "cpu/simd_kernels.h"

namespace deeprnn {
namespace cpu {

template <typename T, typename Isa>
struct GruPointwise {
  using K = IsaKernels<T, Isa>;
  using V = typename K::V;
  static constexpr int kLanes = K::kLanes;

  // Loads / stores `count` <= kLanes values, zero filled past count.
  static inline V LoadN(const T* p, int64_t count) {
    if (count == kLanes) return K::Load(p);
    T buf[kLanes] = {};
    for (int64_t i = 0; i < count; ++i) buf[i] = p[i];
    return K::Load(buf);
  }
  static inline void StoreN(T* p, int64_t count, V v) {
    if (count == kLanes) return K::Store(p, v);
    T buf[kLanes];
    K::Store(buf, v);
    for (int64_t i = 0; i < count; ++i) p[i] = buf[i];
  }

  // sigmoid lane by lane in double (float takes SigmoidPair's vector path).
  static inline V SigmoidScalar(V x) {
    T buf[kLanes];
    K::Store(buf, x);
    for (int i = 0; i < kLanes; ++i) buf[i] = T(1) / (T(1) + std::exp(-buf[i]));
    return K::Load(buf);
  }

  // exp(-|x|) for float, in (0, 1], with the exp of cpu::IsaKernels' TanhFloat.
  static inline V ExpNegAbsFloat(V x) {
    using VI = typename VecOf<T>::itype;
    const VI sign_mask = VI{} + static_cast<int32_t>(0x80000000u);
    V two_n, expm1_r;
    K::ExpPartsFloat((V)((VI)x | sign_mask), two_n, expm1_r);
    return two_n * (expm1_r + 1.0f);
  }

  // z = sigmoid(a) and r = sigmoid(b) with one division instead of two (divisions dominate the gates' cost):
  // sigmoid(x) = num / (1 + e), e = exp(-|x|), num = 1 for x >= 0 and e below (so neither tail loses its
  // relative precision), and both denominators lie in
  // [1, 2], so 1 / (d_a d_b) serves both without overflow and costs a rounding or two. A NaN stays in its own gate.
  static inline void SigmoidPair(V a, V b, V& sa, V& sb) {
    if constexpr (std::is_same<T, float>::value) {
      const V ca = a == a ? a : V{}, cb = b == b ? b : V{};
      const V ea = ExpNegAbsFloat(ca), eb = ExpNegAbsFloat(cb);
      const V da = 1.0f + ea, db = 1.0f + eb;
      const V inv = 1.0f / (da * db);
      const V za = (ca >= 0.0f ? V{} + 1.0f : ea) * (db * inv);
      const V zb = (cb >= 0.0f ? V{} + 1.0f : eb) * (da * inv);
      sa = a == a ? za : a;
      sb = b == b ? zb : b;
    } else {
      sa = SigmoidScalar(a);
      sb = SigmoidScalar(b);
    }
  }

  static inline V Tanh(V x) {
    if constexpr (std::is_same<T, float>::value) {
      return K::TanhFloat(x);
    } else {
      T buf[kLanes];
      K::Store(buf, x);
      for (int i = 0; i < kLanes; ++i) buf[i] = std::tanh(buf[i]);
      return K::Load(buf);
    }
  }

  // Four vectors per step where the range allows: the nonlinearities are long dependency chains (exp, then a
  // division, then n needs r), and independent chains side by side keep the pipelines busy.
  static void Forward(const GruForwardTile<T>& tile, int64_t m, int64_t j0, int64_t j1) {
    const int64_t H = tile.hidden;
    // Streaming stores need every vector of the gates aligned: whole vectors per slot and row, aligned rows.
    const bool stream = Isa::kStreamingStores && tile.pre != tile.gates && H % kLanes == 0 &&
                        tile.gates_ld % kLanes == 0 && j0 % kLanes == 0 &&
                        reinterpret_cast<uintptr_t>(tile.gates) % sizeof(V) == 0;
    auto store_gate = [stream](T* p, int64_t count, V v) {
      if (stream)
        Isa::Stream(p, v);
      else
        StoreN(p, count, v);
    };
    for (int64_t i = 0; i < m; ++i) {
      const T* pre = tile.pre + i * tile.pre_ld;
      T* g = tile.gates + i * tile.gates_ld;
      const T* hp = tile.h_prev + i * tile.h_prev_ld;
      int64_t j = j0;
      for (; j + 4 * kLanes <= j1; j += 4 * kLanes) {
        V z[4], r[4], h[4];
#pragma GCC unroll 4
        for (int v = 0; v < 4; ++v)
          SigmoidPair(K::Load(pre + j + v * kLanes), K::Load(pre + H + j + v * kLanes), z[v], r[v]);
#pragma GCC unroll 4
        for (int v = 0; v < 4; ++v) {
          const int64_t c = j + v * kLanes;
          const V q = K::Load(pre + 3 * H + c);
          const V n = Tanh(K::Load(pre + 2 * H + c) + r[v] * q);
          h[v] = z[v] * K::Load(hp + c) + (T(1) - z[v]) * n;  // Keras' order of operations
          store_gate(g + c, kLanes, z[v]);
          store_gate(g + H + c, kLanes, r[v]);
          store_gate(g + 2 * H + c, kLanes, n);
          store_gate(g + 3 * H + c, kLanes, q);
        }
        for (int d = 0; d < 3; ++d)
          if (tile.dst[d]) {
            T* row = tile.dst[d] + i * tile.dst_ld[d] + j;
            for (int v = 0; v < 4; ++v) K::Store(row + v * kLanes, h[v]);
          }
      }
      for (; j < j1; j += kLanes) {
        const int64_t c = std::min<int64_t>(kLanes, j1 - j);
        V z, r;
        SigmoidPair(LoadN(pre + j, c), LoadN(pre + H + j, c), z, r);
        const V q = LoadN(pre + 3 * H + j, c);
        const V n = Tanh(LoadN(pre + 2 * H + j, c) + r * q);
        const V h = z * LoadN(hp + j, c) + (T(1) - z) * n;
        store_gate(g + j, c, z);
        store_gate(g + H + j, c, r);
        store_gate(g + 2 * H + j, c, n);
        store_gate(g + 3 * H + j, c, q);
        for (int d = 0; d < 3; ++d)
          if (tile.dst[d]) StoreN(tile.dst[d] + i * tile.dst_ld[d] + j, c, h);
      }
    }
    // Streaming stores are weakly ordered: make them visible before the caller reports the tile done.
    if (stream) Isa::Fence();
  }

  static constexpr int64_t kPrefetchRows = 6;
  static constexpr int64_t kLineValues = 64 / sizeof(T);

  static void Backward(const GruBackwardTile<T>& tile, int64_t m, int64_t j0, int64_t j1) {
    const int64_t H = tile.hidden;
    for (int64_t i = 0; i < m; ++i) {
      const T* g = tile.gates + i * tile.gates_ld;
      const T* hp = tile.h_prev + i * tile.h_prev_ld;
      T* dh_row = tile.dh + i * tile.dh_ld;
      T* gg = tile.grad_gates + i * tile.grad_gates_ld;
      if (i + kPrefetchRows < m) {
        // The gates and states were written long ago by the forward pass and are in no cache: ask for a later
        // row's now, a few rows at a time (a whole tile's requests at once would stall on the miss buffers).
        const T* later_gates = g + kPrefetchRows * tile.gates_ld;
        const T* later_state = hp + kPrefetchRows * tile.h_prev_ld;
        for (int64_t j = j0; j < j1; j += kLineValues) {
          for (int slot = 0; slot < 4; ++slot) __builtin_prefetch(later_gates + slot * H + j, 0, 1);
          __builtin_prefetch(later_state + j, 0, 1);
        }
      }
      for (int64_t j = j0; j < j1; j += kLanes) {
        const int64_t c = std::min<int64_t>(kLanes, j1 - j);
        const V z = LoadN(g + j, c), r = LoadN(g + H + j, c), n = LoadN(g + 2 * H + j, c);
        const V q = LoadN(g + 3 * H + j, c);
        const V dh = LoadN(dh_row + j, c);
        // h' = z h + (1 - z) n;  n = tanh(a_n), a_n = xn + r q;  z = sigmoid(a_z);  r = sigmoid(a_r).
        const V da_n = dh * (T(1) - z) * (T(1) - n * n);
        const V da_z = dh * (LoadN(hp + j, c) - n) * z * (T(1) - z);
        const V da_r = da_n * q * r * (T(1) - r);
        StoreN(gg + j, c, da_n);
        StoreN(gg + H + j, c, da_z);
        StoreN(gg + 2 * H + j, c, da_r);
        StoreN(gg + 3 * H + j, c, da_n * r);
        StoreN(dh_row + j, c, dh * z);
      }
    }
  }
};

template <typename T, typename Isa>
const GruKernelTable<T>& GruKernelTableFor() {
  static const GruKernelTable<T> table = {&GruPointwise<T, Isa>::Forward, &GruPointwise<T, Isa>::Backward};
  return table;
}

}  // namespace cpu
}  // namespace deeprnn

#endif  // DEEPRNN_CPU_GRU_POINTWISE_SIMD_H_
