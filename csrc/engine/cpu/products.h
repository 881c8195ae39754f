// The products of the CPU engine, over the instruction set: a register-tiled kernel for a cell's products with its
// fused epilogue, and the weight-gradient products. Per-instruction-set code: see the ISA rule in simd.h.
//
// The register tile is Isa::kMr rows of C by kNr = two vectors of columns; op(B) is packed in panels of kNr columns
// (engine/cpu/tiles.h), so a k step loads two vectors of a panel, broadcasts kMr values of A and issues 2 kMr FMAs.
#ifndef DEEPRNN_ENGINE_CPU_PRODUCTS_H_
#define DEEPRNN_ENGINE_CPU_PRODUCTS_H_

#include <utility>

#include "engine/cpu/simd.h"

namespace deeprnn {
namespace cpu {

template <typename Isa, typename T>
struct Products {
  using S = Simd<Isa, T>;
  using V = typename S::V;
  static constexpr int kLanes = S::kLanes;
  static constexpr int kNr = 2 * kLanes;
  static constexpr int kMr = Isa::kMr;
  // Depth of one k block of the weight-gradient product: 1 KB of values per column, so that a block of kNr-wide
  // panels stays in L1 (GemmScratchSize in packing.cc sizes the scratch for the same blocks).
  static constexpr int64_t kKc = 1024 / static_cast<int64_t>(sizeof(T));
  // Rows of A packed per block by the weight-gradient product (192 x kKc values stay in L2).
  static constexpr int64_t kMc = 192 / kMr * kMr;

  // acc[0:mr] += A[0:mr, 0:kc] * P[0:kc, 0:kNr], with A(i, k) = a[i * rs + k * cs] and P a panel whose rows are
  // ldp apart (kNr when packed). Rows past mr repeat row mr-1 and are discarded, so every k step runs the same
  // register-resident code.
  __attribute__((always_inline)) static inline void Accumulate(V (&acc0)[kMr], V (&acc1)[kMr], int64_t kc,
                                                              const T* a, int64_t rs, int64_t cs, const T* panel,
                                                              int64_t ldp, int mr) {
    if (rs == 1) {
      AccumulateAdjacentRows(acc0, acc1, kc, a, cs, panel, ldp, mr, std::make_integer_sequence<int, kMr>{});
      return;
    }
    const T* row[kMr];
#pragma GCC unroll 16
    for (int r = 0; r < kMr; ++r) row[r] = a + (r < mr ? r : mr - 1) * rs;
    if (cs == 1) {
      for (int64_t k = 0; k < kc; ++k) {
        const V b0 = S::Load(panel + k * ldp), b1 = S::Load(panel + k * ldp + kLanes);
#pragma GCC unroll 16
        for (int r = 0; r < kMr; ++r) {
          const T av = row[r][k];
          acc0[r] += av * b0;
          acc1[r] += av * b1;
        }
      }
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        const V b0 = S::Load(panel + k * ldp), b1 = S::Load(panel + k * ldp + kLanes);
        const int64_t off = k * cs;
#pragma GCC unroll 16
        for (int r = 0; r < kMr; ++r) {
          const T av = row[r][off];
          acc0[r] += av * b0;
          acc1[r] += av * b1;
        }
      }
    }
  }

  // Accumulate for A(i, k) = a[i + k * cs], a tile's rows adjacent values (the weight gradients' transposed
  // activations, and packed A): one pointer and constant offsets address all mr rows. The general loop keeps a
  // pointer per row, and kMr of them do not fit the general-purpose registers beside the loop's own: they spill, and
  // the reloads cost more than the FMAs (measured on AVX-512, whose kMr is 12). One loop per row count, so that the
  // offsets are constants and a short tile reads no row past its last.
  template <int MR>
  __attribute__((always_inline)) static inline void AccumulateRows(V (&acc0)[kMr], V (&acc1)[kMr], int64_t kc,
                                                                  const T* a, int64_t cs, const T* panel,
                                                                  int64_t ldp) {
    for (int64_t k = 0; k < kc; ++k) {
      const V b0 = S::Load(panel + k * ldp), b1 = S::Load(panel + k * ldp + kLanes);
      const T* ak = a + k * cs;
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const T av = ak[r];
        acc0[r] += av * b0;
        acc1[r] += av * b1;
      }
    }
  }
  template <int... R>
  __attribute__((always_inline)) static inline void AccumulateAdjacentRows(V (&acc0)[kMr], V (&acc1)[kMr],
                                                                          int64_t kc, const T* a, int64_t cs,
                                                                          const T* panel, int64_t ldp, int mr,
                                                                          std::integer_sequence<int, R...>) {
    // mr in [1, kMr]: the loop for R + 1 == mr rows.
    (void)((R + 1 == mr && (AccumulateRows<R + 1>(acc0, acc1, kc, a, cs, panel, ldp), true)) || ...);
  }

  // nr <= kNr values as two vectors, zero filled past nr (masked where the instruction set has masks).
  static inline void LoadRow(const T* p, int nr, V& v0, V& v1) {
    v0 = S::LoadN(p, nr);
    v1 = S::LoadN(p + kLanes, nr - kLanes);
  }
  static inline void StoreRow(T* p, int nr, V v0, V v1) {
    S::StoreN(p, nr, v0);
    S::StoreN(p + kLanes, nr - kLanes, v1);
  }

  static inline V ActivateV(Activation activation, V x) {
    if (activation == Activation::kRelu) return x < T(0) ? V{} : x;  // NaN stays NaN
    return S::Tanh(x);
  }

  // g * phi'(z), written with the activation's output h = phi(z): 1 - h^2 for tanh, [h > 0] for relu.
  static inline V ActivationGradV(Activation activation, V g, V h) {
    if (activation == Activation::kRelu) return h > T(0) ? g : V{};
    return g * (T(1) - h * h);
  }

  // The fused pass of TileSpec over rows [0, m) and column panels [p0, p1) of an output with n columns.
  static void CellTile(const TileSpec<T>& spec, int64_t m, int64_t n, int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t j0 = p * kNr;
      const int nr = static_cast<int>(n - j0 < kNr ? n - j0 : kNr);
      V bias0 = V{}, bias1 = V{};
      if (spec.bias) LoadRow(spec.bias + j0, nr, bias0, bias1);
      for (int64_t i = 0; i < m; i += kMr) {
        const int mr = static_cast<int>(m - i < kMr ? m - i : kMr);
        V acc0[kMr], acc1[kMr];
#pragma GCC unroll 16
        for (int r = 0; r < kMr; ++r) {
          acc0[r] = bias0;
          acc1[r] = bias1;
        }
        for (int s = 0; s < spec.num_products; ++s) {
          const TileProduct<T>& prod = spec.products[s];
          if (prod.scale[0]) continue;
          Accumulate(acc0, acc1, prod.b->k, prod.a.data + i * prod.a.rs, prod.a.rs, prod.a.cs,
                     prod.b->data + p * prod.b->stride(), kNr, mr);
        }
        // A scaled product: the sum so far set aside (in L1, not a pass over the tile), the product accumulated
        // on its own, scaled row by row, and the sum added back.
        for (int s = 0; s < spec.num_products; ++s) {
          const TileProduct<T>& prod = spec.products[s];
          if (!prod.scale[0]) continue;
          V kept0[kMr], kept1[kMr];
#pragma GCC unroll 16
          for (int r = 0; r < kMr; ++r) {
            kept0[r] = acc0[r];
            kept1[r] = acc1[r];
            acc0[r] = acc1[r] = V{};
          }
          Accumulate(acc0, acc1, prod.b->k, prod.a.data + i * prod.a.rs, prod.a.rs, prod.a.cs,
                     prod.b->data + p * prod.b->stride(), kNr, mr);
          for (int r = 0; r < mr; ++r) {
            for (int c = 0; c < 2 && prod.scale[c]; ++c) {
              V m0, m1;
              LoadRow(prod.scale[c] + (i + r) * prod.scale_ld[c] + j0, nr, m0, m1);
              acc0[r] *= m0;
              acc1[r] *= m1;
            }
            acc0[r] += kept0[r];
            acc1[r] += kept1[r];
          }
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
          if (spec.gather) {
            V a0, a1;
            LoadRow(spec.gather[row] + j0, nr, a0, a1);
            if (spec.gather_scale) {
              a0 *= spec.gather_scale[row];
              a1 *= spec.gather_scale[row];
            }
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
          } else if (spec.epilogue == Epilogue::kMaskedActivationGrad) {
            const bool takes = spec.takes[row * spec.takes_stride] != 0;
            V h0, h1, g0 = V{}, g1 = V{};
            if (takes) {
              LoadRow(spec.h + row * spec.h_ld + j0, nr, h0, h1);
              g0 = ActivationGradV(spec.activation, v0, h0);
              g1 = ActivationGradV(spec.activation, v1, h1);
            }
            StoreRow(spec.dst[0] + row * spec.dst_ld[0] + j0, nr, g0, g1);
            StoreRow(spec.dst[1] + row * spec.dst_ld[1] + j0, nr, takes ? V{} : v0, takes ? V{} : v1);
            continue;
          }
          for (int d = 0; d < kTileDestinations; ++d)
            if (spec.dst[d]) StoreRow(spec.dst[d] + row * spec.dst_ld[d] + j0, nr, v0, v1);
        }
      }
    }
  }

  // C_o[0:m_o, panels p0..p1) += A_o[0:m_o, 0:k] * B[0:k, :] for every output o, B(k, j) = b[k * b_rs + j]: the
  // weight gradients, where each A_o is a transposed activation matrix and k runs over the rows (t, b). The outputs
  // share B (the gradient of one layer's gates serves dW_x and dW_h), so each kKc-deep slab of B is packed once and
  // read from cache by all of them: these products stream their rows from memory and are bound by that, not by
  // arithmetic. A_o is packed too, in kMc-row blocks, where its k stride is long: without it the 4 KB strides of
  // wide layers alias in L1.
  // If col_sums is not null, the column sums of B over [0, k) are added to col_sums[j] for the columns of the
  // panels (the bias gradient), as a by-product of packing B; blocks of kKc rows are summed in T, then in double.
  static void GemmSharedB(const GemmOutput<T>* outs, int num_outs, int64_t k, const T* b, int64_t b_rs, int64_t n,
                          int64_t p0, int64_t p1, T* scratch, double* col_sums) {
    T* packed_b = scratch;
    T* packed_a = scratch + (p1 - p0) * kKc * kNr;
    for (int64_t k0 = 0; k0 < k; k0 += kKc) {
      const int64_t kc = k - k0 < kKc ? k - k0 : kKc;
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t j0 = p * kNr;
        const int nr = static_cast<int>(n - j0 < kNr ? n - j0 : kNr);
        T* dst = packed_b + (p - p0) * kc * kNr;
        V sum0 = V{}, sum1 = V{};
        for (int64_t kk = 0; kk < kc; ++kk) {
          const T* src = b + (k0 + kk) * b_rs + j0;
          V v0, v1;
          LoadRow(src, nr, v0, v1);
          S::Store(dst + kk * kNr, v0);
          S::Store(dst + kk * kNr + kLanes, v1);
          sum0 += v0;
          sum1 += v1;
        }
        if (col_sums) {
          T sums[kNr];
          S::Store(sums, sum0);
          S::Store(sums + kLanes, sum1);
          for (int j = 0; j < nr; ++j) col_sums[j0 + j] += sums[j];
        }
      }
      for (int o = 0; o < num_outs; ++o) {
        const GemmA<T>& a = outs[o].a;
        const int64_t m = outs[o].m;
        // A is read in place when its k stride is short (narrow layers, where packing costs more than it saves).
        const bool pack_a = a.cs * static_cast<int64_t>(sizeof(T)) > 512;
        for (int64_t i0 = 0; i0 < m; i0 += kMc) {
          const int64_t mc = m - i0 < kMc ? m - i0 : kMc;
          // packed_a[tile][kk][r] = A(i0 + tile * kMr + r, k0 + kk); rows past m repeat the last row.
          for (int64_t tile = 0; pack_a && tile * kMr < mc; ++tile) {
            T* dst = packed_a + tile * kc * kMr;
            for (int64_t kk = 0; kk < kc; ++kk)
              for (int r = 0; r < kMr; ++r) {
                const int64_t want = i0 + tile * kMr + r;
                const int64_t i = want < m ? want : m - 1;
                dst[kk * kMr + r] = a.data[i * a.rs + (k0 + kk) * a.cs];
              }
          }
          for (int64_t p = p0; p < p1; ++p) {
            const int64_t j0 = p * kNr;
            const int nr = static_cast<int>(n - j0 < kNr ? n - j0 : kNr);
            const T* panel = packed_b + (p - p0) * kc * kNr;
            for (int64_t i = 0; i < mc; i += kMr) {
              const int mr = static_cast<int>(mc - i < kMr ? mc - i : kMr);
              V acc0[kMr], acc1[kMr];
#pragma GCC unroll 16
              for (int r = 0; r < kMr; ++r) acc0[r] = acc1[r] = V{};
              if (pack_a) {
                Accumulate(acc0, acc1, kc, packed_a + (i / kMr) * kc * kMr, 1, kMr, panel, kNr, kMr);
              } else {
                Accumulate(acc0, acc1, kc, a.data + (i0 + i) * a.rs + k0 * a.cs, a.rs, a.cs, panel, kNr, mr);
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

  // dst[0:m, j0:j1) = src * a (* b where b is not null), elementwise, every operand with its own row stride: an
  // operand with dropout applied (a dropout mask in a, a second one in b).
  static void Multiply(T* dst, int64_t dst_ld, const T* src, int64_t src_ld, const T* a, int64_t a_ld, const T* b,
                       int64_t b_ld, int64_t m, int64_t j0, int64_t j1) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = j0; j < j1; j += kLanes) {
        const int64_t c = j1 - j;
        V v = S::LoadN(src + i * src_ld + j, c) * S::LoadN(a + i * a_ld + j, c);
        if (b) v *= S::LoadN(b + i * b_ld + j, c);
        S::StoreN(dst + i * dst_ld + j, c, v);
      }
  }



  // C[index[r], j0:j1) += B[r, j0:j1) for r in [0, k), in order of r: the gradient of a gathered (token) input
  // product, X^T B with X one-hot. The column sums of B over the rows go to col_sums[j] as in GemmSharedB.
  // With `scale`, row r of B counts scale[r * scale_stride] times (input dropout of the one-hot input).
  static void ScatterAddRows(const int32_t* index, int64_t index_stride, int64_t k, const T* b, int64_t b_rs,
                             int64_t j0, int64_t j1, T* c, int64_t ldc, double* col_sums, const T* scale = nullptr,
                             int64_t scale_stride = 0) {
    for (int64_t k0 = 0; k0 < k; k0 += kKc) {
      const int64_t kc = k - k0 < kKc ? k - k0 : kKc;
      for (int64_t j = j0; j < j1; j += kLanes) {
        const int64_t count = j1 - j;
        V sum = V{};
        for (int64_t r = k0; r < k0 + kc; ++r) {
          const V v = S::LoadN(b + r * b_rs + j, count);
          T* cr = c + index[r * index_stride] * ldc + j;
          S::StoreN(cr, count, S::LoadN(cr, count) + (scale ? v * scale[r * scale_stride] : v));
          sum += v;
        }
        if (col_sums) {
          T sums[kLanes];
          S::Store(sums, sum);
          for (int64_t jj = 0; jj < kLanes && jj < count; ++jj) col_sums[j + jj] += sums[jj];
        }
      }
    }
  }
};

}  // namespace cpu
}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_CPU_PRODUCTS_H_
