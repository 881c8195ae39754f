// The CPU hot loops, written once as templates and compiled twice: for AVX2+FMA (simd_avx2.cc) and for the
// baseline x86-64 / any other target (simd_generic.cc). Every function is a static member of Kernels<T, Isa>, so
// the two compilations produce different symbols and never collide (no ODR hazard between instruction sets).
//
// A translation unit that includes this file must include <algorithm>, <cmath>, <cstdint>, <cstring> and
// <type_traits> first, before any `#pragma GCC target`, so that standard inline functions are not compiled for a
// wider instruction set than the rest of the program.
#ifndef DEEPRNN_CPU_SIMD_KERNELS_H_
#define DEEPRNN_CPU_SIMD_KERNELS_H_

#include "cpu/gemm.h"

namespace deeprnn {
namespace cpu {

template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
  typedef float type __attribute__((vector_size(32)));
  typedef int32_t itype __attribute__((vector_size(32)));
};
template <>
struct VecOf<double> {
  typedef double type __attribute__((vector_size(32)));
  typedef int64_t itype __attribute__((vector_size(32)));
};

template <typename T, typename Isa>
struct IsaKernels {
  using V = typename VecOf<T>::type;
  using VI = typename VecOf<T>::itype;
  static constexpr int kLanes = kNr<T> / 2;
  static constexpr int kMr = kGemmMr;

  static inline V Load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
  }
  static inline void Store(T* p, V v) { std::memcpy(p, &v, sizeof(V)); }

  // acc[0:mr] += A[0:mr, 0:kc] * P[0:kc, 0:kNr], with A(i, k) = a[i * rs + k * cs] and P a panel whose rows are
  // ldp apart (kNr when packed). Rows past mr repeat row mr-1 and are discarded, so every k step runs the same
  // register-resident code.
  __attribute__((always_inline)) static inline void Accumulate(V (&acc0)[kMr], V (&acc1)[kMr], int64_t kc,
                                                              const T* a, int64_t rs, int64_t cs, const T* panel,
                                                              int64_t ldp, int mr) {
    const T* row[kMr];
#pragma GCC unroll 8
    for (int r = 0; r < kMr; ++r) row[r] = a + (r < mr ? r : mr - 1) * rs;
    if (cs == 1) {
      for (int64_t k = 0; k < kc; ++k) {
        const V b0 = Load(panel + k * ldp), b1 = Load(panel + k * ldp + kLanes);
#pragma GCC unroll 8
        for (int r = 0; r < kMr; ++r) {
          const T av = row[r][k];
          acc0[r] += av * b0;
          acc1[r] += av * b1;
        }
      }
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        const V b0 = Load(panel + k * ldp), b1 = Load(panel + k * ldp + kLanes);
        const int64_t off = k * cs;
#pragma GCC unroll 8
        for (int r = 0; r < kMr; ++r) {
          const T av = row[r][off];
          acc0[r] += av * b0;
          acc1[r] += av * b1;
        }
      }
    }
  }

  // Loads / stores nr <= kNr values as two vectors, zero filled past nr.
  static inline void LoadRow(const T* p, int nr, V& v0, V& v1) {
    if (nr == kNr<T>) {
      v0 = Load(p);
      v1 = Load(p + kLanes);
      return;
    }
    T buf[kNr<T>] = {};
    std::memcpy(buf, p, sizeof(T) * nr);
    v0 = Load(buf);
    v1 = Load(buf + kLanes);
  }
  static inline void StoreRow(T* p, int nr, V v0, V v1) {
    if (nr == kNr<T>) {
      Store(p, v0);
      Store(p + kLanes, v1);
      return;
    }
    T buf[kNr<T>];
    Store(buf, v0);
    Store(buf + kLanes, v1);
    std::memcpy(p, buf, sizeof(T) * nr);
  }

  static inline V ActivateV(Activation activation, V x) {
    if (activation == Activation::kRelu) return x < T(0) ? V{} : x;  // NaN stays NaN
    if constexpr (std::is_same<T, float>::value) {
      return TanhFloat(x);
    } else {
      T buf[kLanes];
      Store(buf, x);
      for (int i = 0; i < kLanes; ++i) buf[i] = std::tanh(buf[i]);
      return Load(buf);
    }
  }

  // g * phi'(z), written with the activation's output h = phi(z): 1 - h^2 for tanh, [h > 0] for relu.
  static inline V ActivationGradV(Activation activation, V g, V h) {
    if (activation == Activation::kRelu) return h > T(0) ? g : V{};
    return g * (T(1) - h * h);
  }

  static void CellTile(const TileSpec<T>& spec, int64_t m, int64_t n, int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t j0 = p * kNr<T>;
      const int nr = static_cast<int>(std::min<int64_t>(kNr<T>, n - j0));
      V bias0 = V{}, bias1 = V{};
      if (spec.bias) LoadRow(spec.bias + j0, nr, bias0, bias1);
      for (int64_t i = 0; i < m; i += kMr) {
        const int mr = static_cast<int>(std::min<int64_t>(kMr, m - i));
        V acc0[kMr], acc1[kMr];
#pragma GCC unroll 8
        for (int r = 0; r < kMr; ++r) {
          acc0[r] = bias0;
          acc1[r] = bias1;
        }
        for (int s = 0; s < spec.num_products; ++s) {
          const TileProduct<T>& prod = spec.products[s];
          Accumulate(acc0, acc1, prod.b->k, prod.a.data + i * prod.a.rs, prod.a.rs, prod.a.cs,
                     prod.b->data + p * prod.b->k * kNr<T>, kNr<T>, mr);
        }
        for (int r = 0; r < mr; ++r) {
          const int64_t row = i + r;
          V v0 = acc0[r], v1 = acc1[r];
          for (int s = 0; s < 2; ++s) {
            if (!spec.add[s]) continue;
            V a0, a1;
            LoadRow(spec.add[s] + row * spec.add_ld[s] + j0, nr, a0, a1);
            v0 += a0;
            v1 += a1;
          }
          if (spec.epilogue == Epilogue::kActivate) {
            v0 = ActivateV(spec.activation, v0);
            v1 = ActivateV(spec.activation, v1);
          } else if (spec.epilogue == Epilogue::kActivationGrad) {
            V h0, h1;
            LoadRow(spec.h + row * spec.h_ld + j0, nr, h0, h1);
            v0 = ActivationGradV(spec.activation, v0, h0);
            v1 = ActivationGradV(spec.activation, v1, h1);
          }
          for (int d = 0; d < 3; ++d)
            if (spec.dst[d]) StoreRow(spec.dst[d] + row * spec.dst_ld[d] + j0, nr, v0, v1);
        }
      }
    }
  }

  // C_o[0:m_o, panels p0..p1) += A_o[0:m_o, 0:k] * B[0:k, :] for every output o, B(k, j) = b[k * b_rs + j]: the
  // weight gradients, where each A_o is a transposed activation matrix and k runs over every (t, b). The outputs
  // share B (dz of one layer serves dW_x and dW_h), so each kKc-deep slab of B is packed once and read from cache
  // by all of them: these products stream T * B rows from memory and are bound by that, not by arithmetic.
  // A_o is packed too, in kMc-row blocks, where its k stride is long: without it the 4 KB strides of wide layers
  // alias in L1.
  // If col_sums is not null, the column sums of B over [0, k) are added to col_sums[j] for the columns of the
  // panels (the bias gradient), as a by-product of packing B; blocks of kKc rows are summed in T, then in double.
  static void GemmSharedB(const GemmOutput<T>* outs, int num_outs, int64_t k, const T* b, int64_t b_rs, int64_t n,
                          int64_t p0, int64_t p1, T* scratch, double* col_sums) {
    T* packed_b = scratch;
    T* packed_a = scratch + (p1 - p0) * kKc<T> * kNr<T>;
    for (int64_t k0 = 0; k0 < k; k0 += kKc<T>) {
      const int64_t kc = std::min<int64_t>(kKc<T>, k - k0);
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t j0 = p * kNr<T>;
        const int nr = static_cast<int>(std::min<int64_t>(kNr<T>, n - j0));
        T* dst = packed_b + (p - p0) * kc * kNr<T>;
        V sum0 = V{}, sum1 = V{};
        for (int64_t kk = 0; kk < kc; ++kk) {
          const T* src = b + (k0 + kk) * b_rs + j0;
          V v0, v1;
          LoadRow(src, nr, v0, v1);
          Store(dst + kk * kNr<T>, v0);
          Store(dst + kk * kNr<T> + kLanes, v1);
          sum0 += v0;
          sum1 += v1;
        }
        if (col_sums) {
          T sums[kNr<T>];
          Store(sums, sum0);
          Store(sums + kLanes, sum1);
          for (int j = 0; j < nr; ++j) col_sums[j0 + j] += sums[j];
        }
      }
      for (int o = 0; o < num_outs; ++o) {
        const GemmA<T>& a = outs[o].a;
        const int64_t m = outs[o].m;
        // A is read in place when its k stride is short (narrow layers, where packing costs more than it saves).
        const bool pack_a = a.cs * static_cast<int64_t>(sizeof(T)) > 512;
        for (int64_t i0 = 0; i0 < m; i0 += kMc) {
          const int64_t mc = std::min<int64_t>(kMc, m - i0);
          // packed_a[tile][kk][r] = A(i0 + tile * kMr + r, k0 + kk); rows past m repeat the last row.
          for (int64_t tile = 0; pack_a && tile * kMr < mc; ++tile) {
            T* dst = packed_a + tile * kc * kMr;
            for (int64_t kk = 0; kk < kc; ++kk)
              for (int r = 0; r < kMr; ++r) {
                const int64_t i = std::min(m - 1, i0 + tile * kMr + r);
                dst[kk * kMr + r] = a.data[i * a.rs + (k0 + kk) * a.cs];
              }
          }
          for (int64_t p = p0; p < p1; ++p) {
            const int64_t j0 = p * kNr<T>;
            const int nr = static_cast<int>(std::min<int64_t>(kNr<T>, n - j0));
            const T* panel = packed_b + (p - p0) * kc * kNr<T>;
            for (int64_t i = 0; i < mc; i += kMr) {
              const int mr = static_cast<int>(std::min<int64_t>(kMr, mc - i));
              V acc0[kMr], acc1[kMr];
#pragma GCC unroll 8
              for (int r = 0; r < kMr; ++r) acc0[r] = acc1[r] = V{};
              if (pack_a) {
                Accumulate(acc0, acc1, kc, packed_a + (i / kMr) * kc * kMr, 1, kMr, panel, kNr<T>, kMr);
              } else {
                Accumulate(acc0, acc1, kc, a.data + (i0 + i) * a.rs + k0 * a.cs, a.rs, a.cs, panel, kNr<T>, mr);
              }
              for (int r = 0; r < mr; ++r) {
                T* cr = outs[o].c + (i0 + i + r) * outs[o].ldc + j0;
                V c0, c1;
                LoadRow(cr, nr, c0, c1);
                StoreRow(cr, nr, c0 + acc0[r], c1 + acc1[r]);
              }
            }
          }
        }
      }
    }
  }

  static void Gemm(const GemmA<T>& a, int64_t m, int64_t k, const T* b, int64_t b_rs, int64_t n, int64_t p0,
                   int64_t p1, T* c, int64_t ldc, T* scratch) {
    const GemmOutput<T> out = {a, m, c, ldc};
    GemmSharedB(&out, 1, k, b, b_rs, n, p0, p1, scratch, nullptr);
  }

  // exp(y) for float y <= 0 in two parts, two_n = 2^n and expm1_r = expm1(r), y = n ln2 + r, |r| <= ln2 / 2,
  // y clamped at -87: exp(y) = two_n (expm1_r + 1) and expm1(y) = two_n expm1_r + (two_n - 1), expm1(r) by its
  // Taylor series to r^7. Shared by tanh here and by the GRU's sigmoids (gru_pointwise_simd.h).
  static inline void ExpPartsFloat(V y, V& two_n, V& expm1_r) {
    y = y < -87.0f ? V{} - 87.0f : y;
    const VI n = __builtin_convertvector(y * 1.44269504088896341f - 0.5f, VI);  // round(y / ln2), y <= 0
    const V nf = __builtin_convertvector(n, V);
    const V r = (y - nf * 0.693145751953125f) - nf * 1.428606765330187045e-06f;
    V p = V{} + (1.0f / 5040.0f);
    p = p * r + (1.0f / 720.0f);
    p = p * r + (1.0f / 120.0f);
    p = p * r + (1.0f / 24.0f);
    p = p * r + (1.0f / 6.0f);
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    two_n = (V)((n + 127) << 23);
    expm1_r = p * r;
  }

  // tanh(x) for float, branch free: tanh(|x|) = -m / (2 + m) with m = expm1(-2|x|), the sign put back after. No
  // cancellation anywhere, so tiny |x| keep their full relative precision. A few ulp; NaN gives NaN.
  static inline V TanhFloat(V x) {
    const VI sign_mask = VI{} + static_cast<int32_t>(0x80000000u);
    const V ax = (V)((VI)x & ~sign_mask);
    V two_n, expm1_r;
    ExpPartsFloat(ax * -2.0f, two_n, expm1_r);
    const V m = two_n * expm1_r + (two_n - 1.0f);
    const V t = -m / (2.0f + m);
    const V result = (V)((VI)t | ((VI)x & sign_mask));
    return x == x ? result : x;
  }
};

template <typename T, typename Isa>
const CpuKernelTable<T>& KernelTableFor() {
  static const CpuKernelTable<T> table = {&IsaKernels<T, Isa>::CellTile, &IsaKernels<T, Isa>::Gemm,
                                          &IsaKernels<T, Isa>::GemmSharedB};
  return table;
}

}  // namespace cpu
}  // namespace deeprnn

#endif  // DEEPRNN_CPU_SIMD_KERNELS_H_
