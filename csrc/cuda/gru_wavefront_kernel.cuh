// The wavefront kernel of the stacked GRU, forward and backward, for both schedules (deeprnn/stacked_gru_cuda.h).
// It is the tanh RNN's kernel (cuda/wavefront_kernel.cuh: the same block structure, staging, reduction slices,
// schedules and ordering rules) with the GRU's cell:
//
// forward, tile of cell (l, t), per row m and unit j, x = H_t^(l-1), h = H_{t-1}^(l):
//   acc_z = x Wx_z + h Wh_z,  acc_r = x Wx_r + h Wh_r,  acc_xn = x Wx_n,  acc_q = h Wh_n   (columns j, H+j, 2H+j)
//   z = sigmoid(acc_z + bx_z + bh_z), r likewise, q = acc_q + bh_n, n = tanh(acc_xn + bx_n + r q),
//   h' = z h + (1 - z) n   -> activations, gates [z | r | n | q], outputs / final states
//   (layer 0: x Wx + bx for all t was computed before the wavefront into the gates' z, r, n slots, which the same
//   thread reads and overwrites).
// backward, per row m and unit j (notation of cpu/gru_backward.cc):
//   dh = [l == L-1] dY_t + ([t == T-1] ? dFinal^(l) : carry(l, t+1))
//        + gg(l, t+1)[dz | dr | dn r] Wh(l)^T + gg(l+1, t)[dn | dz | dr] Wx(l+1)^T (columns permuted to z | r | n)
//   gg(l, t) = [da_n | da_z | da_r | da_n r],  carry(l, t) = dh z (into grad_initial_states at t = 0).
//
// Ordering: as in the tanh kernel, a cell reads only what earlier wavefront steps wrote (through __ldcg: L2, never a
// stale L1 line) and what its own thread wrote (layer 0's projection). The carry of layer l has two slots: cell
// (l, t) reads slot (t + 1) % 2 and writes slot t % 2, which cell (l, t + 2) wrote two steps earlier.
#ifndef DEEPRNN_CUDA_GRU_WAVEFRONT_KERNEL_CUH_
#define DEEPRNN_CUDA_GRU_WAVEFRONT_KERNEL_CUH_

#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "cuda/gru_kernel_params.cuh"
#include "cuda/wavefront_kernel.cuh"  // TanhOf, Fma, DynamicSharedMemory, ResidentSlot
#include "deeprnn/stacked_gru_cuda.h"

namespace deeprnn {
namespace cuda {

__device__ __forceinline__ float SigmoidOf(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ double SigmoidOf(double x) { return 1.0 / (1.0 + exp(-x)); }

// Column of Wx / Wh (row n of the transposed product) that backward reduction index k of a segment multiplies:
// the recurrent segment reads grad_gates' columns [H, 4H) = (dz, dr, dn r) in Wh's column order; the input segment
// reads columns [0, 3H) = (dn, dz, dr), whose Wx columns are (2H.., 0.., H..).
template <int kSeg>
__device__ __forceinline__ int64_t GruBackwardColumn(int64_t k, int64_t hidden) {
  return kSeg == 1 ? k : (k < hidden ? k + 2 * hidden : k - hidden);
}

// Adds one forward segment of a tile to acc: x Wx^(l) (kSeg 0) or h Wh^(l) (kSeg 1), both [., H] x [H, 3H]. Gates z
// and r go to slots 0 and 1 of both segments; the n gate to slot 2 (x Wx_n) or 3 (q = h Wh_n). `a` is row 0 of the
// [B, H] operand; `resident` the on-chip slice of this segment's weights, or null to stage chunks from `w`.
template <typename T, int kTile, int kSeg>
__device__ __forceinline__ void GruForwardSegment(const GruWavefrontParams<T>& p, const T* a, const T* w,
                                                  const T* resident, int m0, int n0, T* as, T* bs,
                                                  T (&acc)[4][GruTileShape(kTile).tm][GruTileShape(kTile).tn]) {
  constexpr WavefrontTile kShape = GruTileShape(kTile);
  constexpr int BM = kShape.bm, BN = kShape.bn, TM = kShape.tm, TN = kShape.tn, BK = kShape.bk;
  constexpr int TX = BN / TN, TY = BM / TM, KS = WavefrontKs(kShape);
  constexpr int W = static_cast<int>(GruWeightRowElems(kShape, false));  // 3 BN + 1
  constexpr int kNSlot = kSeg == 0 ? 2 : 3;
  const int B = p.batch, H = p.hidden;
  const int64_t ldw = 3 * static_cast<int64_t>(H);
  const int tid = threadIdx.x;
  const int kz = tid / (TX * TY), rem = tid % (TX * TY), ty = rem / TX, tx = rem % TX;

  for (int k0 = 0; k0 < H; k0 += BK) {
    const int kc = min(BK, H - k0);
    for (int idx = tid; idx < BM * BK; idx += kWavefrontThreads) {
      const int mm = idx / BK, kk = idx % BK;  // consecutive threads along k: coalesced rows of A
      const int m = m0 + mm;
      as[kk * (BM + 1) + mm] = (m < B && kk < kc) ? __ldcg(a + static_cast<int64_t>(m) * H + (k0 + kk)) : T(0);
    }
    const T* bchunk;
    if (resident != nullptr) {
      bchunk = resident + static_cast<int64_t>(k0) * W;
    } else {
      for (int idx = tid; idx < BK * 3 * BN; idx += kWavefrontThreads) {
        const int kk = idx / (3 * BN), c = idx % (3 * BN);  // consecutive threads along a gate's units
        const int g = c / BN, n = n0 + c % BN;
        bs[kk * W + c] = (kk < kc && n < H)
                             ? __ldg(w + static_cast<int64_t>(k0 + kk) * ldw + static_cast<int64_t>(g) * H + n)
                             : T(0);
      }
      bchunk = bs;
    }
    __syncthreads();
#pragma unroll 2
    for (int kk = kz; kk < kc; kk += KS) {
      T av[TM];
#pragma unroll
      for (int i = 0; i < TM; ++i) av[i] = as[kk * (BM + 1) + ty + i * TY];
#pragma unroll
      for (int g = 0; g < 3; ++g) {  // one gate's columns at a time: fewer live registers
        const int slot = g < 2 ? g : kNSlot;
        T bv[TN];
#pragma unroll
        for (int j = 0; j < TN; ++j) bv[j] = bchunk[kk * W + g * BN + tx + j * TX];
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
          for (int j = 0; j < TN; ++j) acc[slot][i][j] = Fma(av[i], bv[j], acc[slot][i][j]);
      }
    }
    __syncthreads();
  }
}

// Adds one backward segment of a tile to acc: grad_gates(l+1, t)[:, 0:3H] Wx^(l+1)^T (kSeg 0, columns permuted by
// GruBackwardColumn) or grad_gates(l, t+1)[:, H:4H] Wh^(l)^T (kSeg 1). `a` is row 0's first column; rows are 4H
// apart.
template <typename T, int kTile, int kSeg>
__device__ __forceinline__ void GruBackwardSegment(const GruWavefrontParams<T>& p, const T* a, const T* w,
                                                   const T* resident, int m0, int n0, T* as, T* bs,
                                                   T (&acc)[GruTileShape(kTile).tm][GruTileShape(kTile).tn]) {
  constexpr WavefrontTile kShape = GruTileShape(kTile);
  constexpr int BM = kShape.bm, BN = kShape.bn, TM = kShape.tm, TN = kShape.tn, BK = kShape.bk;
  constexpr int TX = BN / TN, TY = BM / TM, KS = WavefrontKs(kShape);
  const int B = p.batch, H = p.hidden;
  const int K = 3 * H;
  const int64_t lda = 4 * static_cast<int64_t>(H), ldw = 3 * static_cast<int64_t>(H);
  const int tid = threadIdx.x;
  const int kz = tid / (TX * TY), rem = tid % (TX * TY), ty = rem / TX, tx = rem % TX;

  for (int k0 = 0; k0 < K; k0 += BK) {
    const int kc = min(BK, K - k0);
    for (int idx = tid; idx < BM * BK; idx += kWavefrontThreads) {
      const int mm = idx / BK, kk = idx % BK;
      const int m = m0 + mm;
      as[kk * (BM + 1) + mm] = (m < B && kk < kc) ? __ldcg(a + static_cast<int64_t>(m) * lda + (k0 + kk)) : T(0);
    }
    const T* bchunk;
    if (resident != nullptr) {
      bchunk = resident + static_cast<int64_t>(k0) * (BN + 1);
    } else {
      for (int idx = tid; idx < BK * BN; idx += kWavefrontThreads) {
        const int kk = idx % BK, nn = idx / BK;  // consecutive threads along k: coalesced rows of W
        const int n = n0 + nn;
        bs[kk * (BN + 1) + nn] =
            (kk < kc && n < H) ? __ldg(w + static_cast<int64_t>(n) * ldw + GruBackwardColumn<kSeg>(k0 + kk, H))
                               : T(0);
      }
      bchunk = bs;
    }
    __syncthreads();
#pragma unroll 4
    for (int kk = kz; kk < kc; kk += KS) {
      T av[TM], bv[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) av[i] = as[kk * (BM + 1) + ty + i * TY];
#pragma unroll
      for (int j = 0; j < TN; ++j) bv[j] = bchunk[kk * (BN + 1) + tx + j * TX];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = Fma(av[i], bv[j], acc[i][j]);
    }
    __syncthreads();
  }
}

// Loads the on-chip weight slice of block (layer l, units [n0, n0 + BN)): forward [slot][k < H][g * BN + nn] =
// W[k][g H + n0 + nn]; backward [slot][k < 3H][nn] = W[n0 + nn][column(k)] (zero past H).
template <typename T, int kTile, bool kBackward>
__device__ void LoadGruResidentWeights(const GruWavefrontParams<T>& p, int l, int n0, T* bs) {
  constexpr WavefrontTile kShape = GruTileShape(kTile);
  constexpr int BN = kShape.bn;
  constexpr int64_t W = GruWeightRowElems(kShape, kBackward);
  const int H = p.hidden;
  const int64_t ldw = 3 * static_cast<int64_t>(H);
  const int64_t seg_len = GruSegmentLength(H, kBackward);
  for (int seg = 0; seg < 2; ++seg) {
    const bool present = seg == 1 || (kBackward ? l < p.layers - 1 : l > 0);
    if (!present) continue;
    const T* w = seg == 1 ? p.wh[l] : (kBackward ? p.wx[l + 1] : p.wx[l]);
    T* dst = bs + static_cast<int64_t>(ResidentSlot(seg, p.layers)) * seg_len * W;
    for (int64_t idx = threadIdx.x; idx < seg_len * BN * (kBackward ? 1 : 3); idx += kWavefrontThreads) {
      if (!kBackward) {
        const int64_t k = idx / (3 * BN);
        const int c = static_cast<int>(idx % (3 * BN));
        const int n = n0 + c % BN;
        dst[k * W + c] = n < H ? __ldg(w + k * ldw + static_cast<int64_t>(c / BN) * H + n) : T(0);
      } else {
        const int64_t k = idx % seg_len;
        const int nn = static_cast<int>(idx / seg_len);
        const int n = n0 + nn;
        const int64_t col = seg == 1 ? GruBackwardColumn<1>(k, H) : GruBackwardColumn<0>(k, H);
        dst[k * W + nn] = n < H ? __ldg(w + static_cast<int64_t>(n) * ldw + col) : T(0);
      }
    }
  }
}

// Adds the partial sums of the KS reduction slices of a tile (kCount accumulators per thread, fully unrolled so
// that they stay in registers) in a fixed order; afterwards slice 0 holds the sums. `red` is laid out [kCount][256]
// so that a warp's accesses hit distinct banks.
template <int KS, int kSlice, int kCount, typename T>
__device__ __forceinline__ void AddReductionSlices(T* acc, T* red, int kz, int rem) {
  if (KS == 1) return;
  const int tid = threadIdx.x;
#pragma unroll
  for (int e = 0; e < kCount; ++e) red[e * kWavefrontThreads + tid] = acc[e];
  __syncthreads();
  if (kz == 0)
    for (int z = 1; z < KS; ++z)
#pragma unroll
      for (int e = 0; e < kCount; ++e) acc[e] += red[e * kWavefrontThreads + z * kSlice + rem];
  __syncthreads();  // `red` is written again by the next tile
}

// Computes the tile (rows [m0, m0 + BM), units [n0, n0 + BN)) of cell (l, t) and writes its outputs.
template <typename T, int kTile>
__device__ void GruForwardCellTile(const GruWavefrontParams<T>& p, int l, int t, int m0, int n0, T* as, T* red,
                                   T* bs, bool resident) {
  constexpr WavefrontTile kShape = GruTileShape(kTile);
  constexpr int BM = kShape.bm, BN = kShape.bn, TM = kShape.tm, TN = kShape.tn;
  constexpr int TX = BN / TN, TY = BM / TM, KS = WavefrontKs(kShape);
  constexpr int64_t W = GruWeightRowElems(kShape, false);
  const int B = p.batch, H = p.hidden, L = p.layers;
  const int tid = threadIdx.x;
  const int kz = tid / (TX * TY), rem = tid % (TX * TY), ty = rem / TX, tx = rem % TX;
  const int64_t cell = static_cast<int64_t>(B) * H;

  T acc[4][TM][TN];
#pragma unroll
  for (int s = 0; s < 4; ++s)
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j) acc[s][i][j] = T(0);

  if (l > 0)
    GruForwardSegment<T, kTile, 0>(p, p.activations + (static_cast<int64_t>(l - 1) * p.time + t) * cell, p.wx[l],
                                   resident ? bs + ResidentSlot(0, L) * H * W : nullptr, m0, n0, as, bs, acc);
  const T* h_prev = t == 0 ? p.initial_states + static_cast<int64_t>(l) * cell
                           : p.activations + (static_cast<int64_t>(l) * p.time + (t - 1)) * cell;
  GruForwardSegment<T, kTile, 1>(p, h_prev, p.wh[l], resident ? bs + ResidentSlot(1, L) * H * W : nullptr, m0, n0,
                                 as, bs, acc);
  AddReductionSlices<KS, TX * TY, 4 * TM * TN>(&acc[0][0][0], red, kz, rem);
  if (kz != 0) return;

  const int64_t G = 4 * static_cast<int64_t>(H);
  const T* bias = p.bias[l];  // [bx | bh], each z | r | n
  T* cell_h = p.activations + (static_cast<int64_t>(l) * p.time + t) * cell;
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int m = m0 + ty + i * TY;
    if (m >= B) continue;
    T* g = p.gates + ((static_cast<int64_t>(l) * p.time + t) * B + m) * G;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int n = n0 + tx + j * TX;
      if (n >= H) continue;
      T zp = acc[0][i][j] + __ldg(bias + 3 * H + n);
      T rp = acc[1][i][j] + __ldg(bias + 4 * H + n);
      T xn;
      if (l == 0) {  // x Wx + bx, precomputed into this row's gates
        zp += __ldcg(g + n);
        rp += __ldcg(g + H + n);
        xn = __ldcg(g + 2 * H + n);
      } else {
        zp += __ldg(bias + n);
        rp += __ldg(bias + H + n);
        xn = acc[2][i][j] + __ldg(bias + 2 * H + n);
      }
      const T q = acc[3][i][j] + __ldg(bias + 5 * H + n);
      const T z = SigmoidOf(zp), r = SigmoidOf(rp);
      const T nv = TanhOf(xn + r * q);
      const T hp = __ldcg(h_prev + static_cast<int64_t>(m) * H + n);
      const T h = z * hp + (T(1) - z) * nv;  // Keras' order of operations
      g[n] = z;
      g[H + n] = r;
      g[2 * H + n] = nv;
      g[3 * H + n] = q;
      cell_h[static_cast<int64_t>(m) * H + n] = h;
      if (l == L - 1) p.outputs[(static_cast<int64_t>(m) * p.time + t) * H + n] = h;
      if (t == p.time - 1) p.final_states[(static_cast<int64_t>(l) * B + m) * H + n] = h;
    }
  }
}

template <typename T, int kTile>
__device__ void GruBackwardCellTile(const GruWavefrontParams<T>& p, int l, int t, int m0, int n0, T* as, T* red,
                                    T* bs, bool resident) {
  constexpr WavefrontTile kShape = GruTileShape(kTile);
  constexpr int BM = kShape.bm, BN = kShape.bn, TM = kShape.tm, TN = kShape.tn;
  constexpr int TX = BN / TN, TY = BM / TM, KS = WavefrontKs(kShape);
  const int B = p.batch, H = p.hidden, L = p.layers;
  const int tid = threadIdx.x;
  const int kz = tid / (TX * TY), rem = tid % (TX * TY), ty = rem / TX, tx = rem % TX;
  const int64_t G = 4 * static_cast<int64_t>(H);
  const int64_t cell_g = static_cast<int64_t>(B) * G;
  const int64_t slice = 3 * static_cast<int64_t>(H) * (BN + 1);

  T acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = T(0);

  if (l < L - 1)
    GruBackwardSegment<T, kTile, 0>(p, p.grad_gates + (static_cast<int64_t>(l + 1) * p.time + t) * cell_g,
                                    p.wx[l + 1], resident ? bs + ResidentSlot(0, L) * slice : nullptr, m0, n0, as,
                                    bs, acc);
  if (t < p.time - 1)
    GruBackwardSegment<T, kTile, 1>(p, p.grad_gates + (static_cast<int64_t>(l) * p.time + t + 1) * cell_g + H,
                                    p.wh[l], resident ? bs + ResidentSlot(1, L) * slice : nullptr, m0, n0, as, bs,
                                    acc);
  AddReductionSlices<KS, TX * TY, TM * TN>(&acc[0][0], red, kz, rem);
  if (kz != 0) return;

#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int m = m0 + ty + i * TY;
    if (m >= B) continue;
    const int64_t row = (static_cast<int64_t>(l) * p.time + t) * B + m;  // row of cell (l, t) in [L,T,B,.]
    const T* g = p.gates + row * G;
    T* gg = p.grad_gates + row * G;
    const int64_t state = (static_cast<int64_t>(l) * B + m) * H;  // row m of layer l in [L,B,H]
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int n = n0 + tx + j * TX;
      if (n >= H) continue;
      T dh = acc[i][j];
      if (l == L - 1) dh += p.grad_outputs[(static_cast<int64_t>(m) * p.time + t) * H + n];
      dh += t == p.time - 1 ? p.grad_final_states[state + n]
                            : __ldcg(p.carry + ((static_cast<int64_t>(l) * 2 + (t + 1) % 2) * B + m) * H + n);
      const T z = g[n], r = g[H + n], nv = g[2 * H + n], q = g[3 * H + n];
      const T hp = t == 0 ? p.initial_states[state + n]
                          : p.activations[(row - B) * H + n];  // H_{t-1}^(l): the same row one time step back
      const T da_n = dh * (T(1) - z) * (T(1) - nv * nv);
      const T da_z = dh * (hp - nv) * z * (T(1) - z);
      const T da_r = da_n * q * r * (T(1) - r);
      gg[n] = da_n;
      gg[H + n] = da_z;
      gg[2 * H + n] = da_r;
      gg[3 * H + n] = da_n * r;
      T* direct = t == 0 ? p.grad_initial_states + state
                         : p.carry + ((static_cast<int64_t>(l) * 2 + t % 2) * B + m) * H;
      direct[n] = dh * z;
    }
  }
}

// Blocks per SM the register budget is set for: two (at most 128 registers per thread), as the tanh kernel, except
// for the forward double tile 5, whose 32 double accumulators (64 registers) spilled under 128 (ptxas: 80 bytes of
// stack); it gets one block per SM and up to 255 registers instead.
template <typename T, int kTile, bool kBackward>
constexpr int GruMinBlocksPerSm() {
  return (sizeof(T) == 8 && !kBackward && GruTileShape(kTile).tm * GruTileShape(kTile).tn >= 8) ? 1 : 2;
}

// Runs p.num_steps wavefront steps from p.first_step (counting down backward), exactly as WavefrontKernel does:
// with more than one step the launch is cooperative and a grid barrier separates the steps. The register bound is
// that of the tanh kernel (no spills; see benchmarks/gpu/RESOURCES.md), with the exception above.
template <typename T, int kTile, bool kBackward>
__global__ void __launch_bounds__(kWavefrontThreads, (GruMinBlocksPerSm<T, kTile, kBackward>()))
    GruWavefrontKernel(const GruWavefrontParams<T> p) {
  constexpr WavefrontTile kShape = GruTileShape(kTile);
  static_assert((kShape.bm / kShape.tm) * (kShape.bn / kShape.tn) * WavefrontKs(kShape) == kWavefrontThreads,
                "a tile must use every thread");
  T* as = reinterpret_cast<T*>(DynamicSharedMemory());
  T* red = as + WavefrontSmemAElems(kShape);
  T* bs = red + GruSmemRedElems(kShape, kBackward);

  int own_layer = 0, own_col = 0;
  if (p.resident) {  // block (layer, column tile) for the whole run
    own_layer = blockIdx.x / p.col_tiles;
    own_col = blockIdx.x % p.col_tiles;
    LoadGruResidentWeights<T, kTile, kBackward>(p, own_layer, own_col * kShape.bn, bs);
    __syncthreads();
  }
  const int per_cell = p.row_tiles * p.col_tiles;
  for (int i = 0; i < p.num_steps; ++i) {
    const int s = kBackward ? p.first_step - i : p.first_step + i;
    const int first_layer = max(0, s - (p.time - 1));
    const int last_layer = min(p.layers - 1, s);
    if (p.resident) {
      if (own_layer >= first_layer && own_layer <= last_layer) {
        for (int rt = 0; rt < p.row_tiles; ++rt) {
          if (kBackward)
            GruBackwardCellTile<T, kTile>(p, own_layer, s - own_layer, rt * kShape.bm, own_col * kShape.bn, as, red,
                                          bs, true);
          else
            GruForwardCellTile<T, kTile>(p, own_layer, s - own_layer, rt * kShape.bm, own_col * kShape.bn, as, red,
                                         bs, true);
        }
      }
    } else {
      const int items = (last_layer - first_layer + 1) * per_cell;
      for (int item = blockIdx.x; item < items; item += gridDim.x) {
        const int l = first_layer + item / per_cell;
        const int r = item % per_cell;
        const int m0 = (r / p.col_tiles) * kShape.bm, n0 = (r % p.col_tiles) * kShape.bn;
        if (kBackward)
          GruBackwardCellTile<T, kTile>(p, l, s - l, m0, n0, as, red, bs, false);
        else
          GruForwardCellTile<T, kTile>(p, l, s - l, m0, n0, as, red, bs, false);
      }
    }
    if (i + 1 < p.num_steps) cooperative_groups::this_grid().sync();
  }
}

template <typename T>
using GruWavefrontKernelFn = void (*)(GruWavefrontParams<T>);

template <typename T, bool kBackward>
GruWavefrontKernelFn<T> GruWavefrontKernelFor(int tile) {
  static_assert(kNumGruTiles == 6, "list every tile here");
  switch (tile) {
    case 0: return GruWavefrontKernel<T, 0, kBackward>;
    case 1: return GruWavefrontKernel<T, 1, kBackward>;
    case 2: return GruWavefrontKernel<T, 2, kBackward>;
    case 3: return GruWavefrontKernel<T, 3, kBackward>;
    case 4: return GruWavefrontKernel<T, 4, kBackward>;
    default: return GruWavefrontKernel<T, 5, kBackward>;
  }
}

inline std::string GruWavefrontName(bool backward, int tile) {
  return std::string("GRU wavefront ") + (backward ? "backward" : "forward") + " kernel (tile " +
         std::to_string(tile) + ")";
}

template <typename T, bool kBackward>
CudaStatus GruWavefrontOccupancy(int tile, int64_t smem_bytes, int* blocks_per_sm) {
  return KernelOccupancy(GruWavefrontKernelFor<T, kBackward>(tile), GruWavefrontName(kBackward, tile), smem_bytes,
                         blocks_per_sm);
}

template <typename T, bool kBackward>
CudaStatus LaunchGruWavefront(const GruWavefrontParams<T>& params, const WavefrontPlan& plan, cudaStream_t stream,
                              int64_t* launches) {
  *launches = 0;
  if (params.batch == 0 || params.time == 0) return CudaStatus::Ok();
  const GruWavefrontKernelFn<T> kernel = GruWavefrontKernelFor<T, kBackward>(plan.tile);
  const std::string name = GruWavefrontName(kBackward, plan.tile);
  DEEPRNN_RETURN_IF_NOT_OK(EnsureKernelSmemLimit(kernel, name));
  return LaunchPlannedWavefront(kernel, params, plan, kBackward, name, stream, launches);
}

}  // namespace cuda
}  // namespace deeprnn

#endif  // DEEPRNN_CUDA_GRU_WAVEFRONT_KERNEL_CUH_
