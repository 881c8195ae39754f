// The wavefront kernel of the CUDA engine, forward and backward, for any cell and both schedules
// (deeprnn/launch_plan.h). A cell brings its description (cells/<cell>/cell.h, read through cell_tables.h) and its
// pointwise maths (Cell::Cuda<T>, cells/<cell>/cuda_pointwise.cuh); everything else is here.
//
// One call of ForwardTile / BackwardTile computes a BM x BN tile (batch rows x units) of one cell (l, t):
//   forward   for each pre-activation slot p and unit j: acc_p = x Wx[:, gate x_gate(p)] + h Wh[:, gate h_gate(p)]
//             (x = H_t^(l-1), h = H_{t-1}^(l); each staged weight row holds the G gates' BN columns side by side,
//             and gate g's products go to the slot the description names), then pre_p = acc_p + its bias blocks
//             (layer 0: + the input projection computed before the wavefront, bias row 0 included), and the cell's
//             pointwise forward turns pre and the previous states into the saved gates and the new states;
//   backward  dh = [l == L-1] dY_t + ([t == T-1] dFinal^(l) : carry_h(l, t+1) for cells with a direct h path)
//                  + gh(l, t+1) Wh^(l)^T + gx(l+1, t) Wx^(l+1)^T
//             (gh, gx: the recurrent and input sides of the grad slots, G*H wide, their gates in the description's
//             order), then the cell's pointwise backward turns dh (and dc, for a second state) into the cell's grad
//             slots, the direct part of dh for h_{t-1} and dc_{t-1}, kept in two-slot carries per layer (t = 0:
//             straight into grad_initial_states).
// Each product is one "segment" (a [B, H] or [B, G*H] operand times a weight), reduced in chunks of BK staged in
// shared memory.
//
// Masks and dropout (deeprnn/stacked.h Modifiers; runtime pointers, one kernel for every combination): a dropped
// operand is staged times its masks (forward; masks per gate: one pass over the reduction per gate, each adding
// that gate's columns), and the gradient of a dropped product is scaled by the same masks on its outputs
// (backward; per gate, each gate's part of the reduction apart). A row that does not take step t keeps its states
// and repeats (or zeroes) its output; backward it has no grad slots and carries dh and dc to t - 1 whole, so with
// a mask every cell uses the h carry. A tile none of whose rows takes the step (forward), or step t nor t + 1
// (backward: the grad slots it reads are zero), skips its products.
//
// Ordering: cell (l, t) only reads cells of the previous wavefront step (written by other blocks before the grid
// barrier or the kernel boundary) and its own rows of layer 0's projection (read and overwritten by the same
// thread). Reads of data other blocks of the same launch wrote go through __ldcg (L2, never a possibly stale L1
// line). The carries have two slots: cell (l, t) reads slot (t + 1) % 2 and writes slot t % 2, which cell (l, t + 2)
// wrote two steps earlier and cell (l, t + 1) read one step earlier. Weights are read-only.
#ifndef DEEPRNN_ENGINE_CUDA_WAVEFRONT_KERNEL_CUH_
#define DEEPRNN_ENGINE_CUDA_WAVEFRONT_KERNEL_CUH_

#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <string>
#include <type_traits>

#include "deeprnn/stacked.h"
#include "engine/cuda/cell_epilogue.cuh"
#include "engine/cuda/cell_tables.h"
#include "engine/cuda/device_math.cuh"
#include "engine/cuda/kernel_params.h"
#include "engine/cuda/tensor_core_tile.cuh"
#include "engine/cuda/wavefront_launch.h"
#include "engine/plan/tiles.h"

namespace deeprnn {
namespace cuda {

// Where segment `seg` (0: input product, 1: recurrent product) of a layer's weights sits in the on-chip slice.
__device__ __forceinline__ int ResidentSlot(int seg, int layers) { return layers > 1 ? seg : 0; }

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

template <typename Cell, typename T, int kTile, bool kBackward>
struct Wavefront {
  using C = CellTables<Cell>;
  using Maths = typename Cell::template Cuda<T>;
  static constexpr int G = C::G, NP = C::NP, S = C::S, SS = C::SS, GS = C::GS;
  static constexpr WavefrontTile kShape = WavefrontTileShape(NP, kTile);
  static constexpr int BM = kShape.bm, BN = kShape.bn, TM = kShape.tm, TN = kShape.tn, BK = kShape.bk;
  static constexpr int TX = BN / TN, TY = BM / TM, KS = WavefrontKs(kShape);
  // The three regions of the block's dynamic shared memory (engine/plan/tiles.h).
  static constexpr int64_t kAElems = WavefrontSmemAElems(kShape);
  static constexpr int64_t kRedElems = WavefrontSmemRedElems(kShape, NP, kBackward);
  static constexpr int W = static_cast<int>(WeightRowElems(kShape, G, kBackward));  // a staged weight row
  // The forward products of several slots unroll less: their accumulators already fill the registers.
  static constexpr int kUnroll = NP == 1 ? 4 : 2;
  static_assert(TX * TY * KS == kWavefrontThreads, "a tile must use every thread");
  static_assert(C::kProjectionInSaved || G == 1, "layer 0's projection needs G*H values per row");

  // The thread's place in the tile: reduction slice kz, rows ty + i * TY, units tx + j * TX.
  struct Place {
    int kz, rem, ty, tx;
  };
  __device__ static Place ThreadPlace() {
    const int tid = threadIdx.x;
    const int rem = tid % (TX * TY);
    return {tid / (TX * TY), rem, rem / TX, rem % TX};
  }

  // Column of a weight (row n of the transposed product) that backward reduction index k of segment kSeg
  // multiplies: position k / H of the side holds the gate named in the description. 32-bit arithmetic (G*H is
  // bounded by ValidateCudaShape): a 64-bit division is a long subroutine that costs the kernel registers.
  template <int kSeg>
  __device__ static int BackwardColumn(int k, int hidden) {
    int position = 0;
#pragma unroll
    for (int i = 1; i < G; ++i) position += k >= i * hidden;
    return Entry(kSeg == 0 ? C::kXGateAt : C::kHGateAt, position) * hidden + (k - position * hidden);
  }

  // Stages rows [m0, m0 + BM) x reduction chunk [k0, k0 + kc) of an operand with rows `ld` apart into `as`, times
  // the dropout masks s1 and s2 ([B, H] each, rows H apart) where given.
  __device__ static void StageA(const T* a, int64_t ld, int batch, int m0, int k0, int kc, T* as,
                                const T* s1 = nullptr, const T* s2 = nullptr, int hidden = 0) {
    for (int idx = threadIdx.x; idx < BM * BK; idx += kWavefrontThreads) {
      const int mm = idx / BK, kk = idx % BK;  // consecutive threads along k: coalesced rows of A
      const int m = m0 + mm;
      T v = T(0);
      if (m < batch && kk < kc) {
        v = __ldcg(a + static_cast<int64_t>(m) * ld + (k0 + kk));
        const int64_t at = static_cast<int64_t>(m) * hidden + (k0 + kk);
        if (s1 != nullptr) v *= __ldg(s1 + at);
        if (s2 != nullptr) v *= __ldg(s2 + at);
      }
      as[kk * (BM + 1) + mm] = v;
    }
  }

  // The dropout of one product's [B, H] operand: `mask` [parts, B, H] (part g multiplies the operand of gate g's
  // columns where parts = G, every gate's where parts = 1) and `extra` [B, H] for every gate (between layers).
  struct OperandDrop {
    const T* mask;
    int parts;
    const T* extra;
  };

  // Whether some row of the tile's rows [m0, m0 + BM) takes step t (every thread reads the same bytes, so the
  // answer is the same in the whole block and may decide around __syncthreads).
  __device__ static bool TileTakes(const WavefrontParams<T>& p, int m0, int t) {
    for (int mm = 0; mm < BM && m0 + mm < p.batch; ++mm)
      if (p.mask[static_cast<int64_t>(m0 + mm) * p.time + t] != 0) return true;
    return false;
  }

  // Adds one forward segment of a tile to acc: x Wx^(l) (kSeg 0) or h Wh^(l) (kSeg 1), [., H] x [H, G*H]. `a` is
  // row 0 of the [B, H] operand; `resident` the on-chip slice of this segment's weights, or null to stage chunks
  // from `w`.
  // With dropout the operand is staged times its masks; masks per gate take one pass over the reduction per gate,
  // each accumulating that gate's columns only.
  template <int kSeg>
  __device__ static void ForwardSegment(const WavefrontParams<T>& p, const T* a, const T* w, const T* resident,
                                        int m0, int n0, T* as, T* bs, T (&acc)[NP][TM][TN], const OperandDrop& drop) {
    const int H = p.hidden;
    const int64_t ldw = static_cast<int64_t>(G) * H;
    const Place pl = ThreadPlace();
    const int parts = drop.mask != nullptr ? drop.parts : 1;
    for (int part = 0; part < parts; ++part)
    for (int k0 = 0; k0 < H; k0 += BK) {
      const int kc = min(BK, H - k0);
      StageA(a, H, p.batch, m0, k0, kc, as,
             drop.mask != nullptr ? drop.mask + static_cast<int64_t>(part) * p.batch * H : nullptr, drop.extra, H);
      const T* bchunk;
      if (resident != nullptr) {
        bchunk = resident + static_cast<int64_t>(k0) * W;
      } else {
        for (int idx = threadIdx.x; idx < BK * G * BN; idx += kWavefrontThreads) {
          const int kk = idx / (G * BN), c = idx % (G * BN);  // consecutive threads along a gate's units
          const int g = c / BN, n = n0 + c % BN;
          bs[kk * W + c] = (kk < kc && n < H)
                               ? __ldg(w + static_cast<int64_t>(k0 + kk) * ldw + static_cast<int64_t>(g) * H + n)
                               : T(0);
        }
        bchunk = bs;
      }
      __syncthreads();
#pragma unroll kUnroll
      for (int kk = pl.kz; kk < kc; kk += KS) {
        T av[TM];
#pragma unroll
        for (int i = 0; i < TM; ++i) av[i] = as[kk * (BM + 1) + pl.ty + i * TY];
#pragma unroll
        for (int g = 0; g < G; ++g) {  // one gate's columns at a time: fewer live registers
          if (parts > 1 && g != part) continue;
          const int slot = Entry(kSeg == 0 ? C::kXSlotOfGate : C::kHSlotOfGate, g);
          T bv[TN];
#pragma unroll
          for (int j = 0; j < TN; ++j) bv[j] = bchunk[kk * W + g * BN + pl.tx + j * TX];
#pragma unroll
          for (int i = 0; i < TM; ++i)
#pragma unroll
            for (int j = 0; j < TN; ++j) acc[slot][i][j] = Fma(av[i], bv[j], acc[slot][i][j]);
        }
      }
      __syncthreads();
    }
  }

  // Adds one backward segment of a tile to acc: gx(l+1, t) Wx^(l+1)^T (kSeg 0) or gh(l, t+1) Wh^(l)^T (kSeg 1),
  // both [., G*H] x [G*H, H], over the reduction indices [kb, ke) of G*H. `a` is row 0's first column of the side;
  // rows are GS*H apart.
  template <int kSeg>
  __device__ static void BackwardSegment(const WavefrontParams<T>& p, const T* a, const T* w, const T* resident,
                                         int m0, int n0, T* as, T* bs, T (&acc)[TM][TN], int kb, int ke) {
    const int H = p.hidden;
    const int64_t lda = static_cast<int64_t>(GS) * H, ldw = static_cast<int64_t>(G) * H;
    const Place pl = ThreadPlace();
    for (int k0 = kb; k0 < ke; k0 += BK) {
      const int kc = min(BK, ke - k0);
      StageA(a, lda, p.batch, m0, k0, kc, as);
      const T* bchunk;
      if (resident != nullptr) {
        bchunk = resident + static_cast<int64_t>(k0) * W;
      } else {
        for (int idx = threadIdx.x; idx < BK * BN; idx += kWavefrontThreads) {
          const int kk = idx % BK, nn = idx / BK;  // consecutive threads along k: coalesced rows of W
          const int n = n0 + nn;
          bs[kk * W + nn] =
              (kk < kc && n < H) ? __ldg(w + static_cast<int64_t>(n) * ldw + BackwardColumn<kSeg>(k0 + kk, H)) : T(0);
        }
        bchunk = bs;
      }
      __syncthreads();
#pragma unroll 4
      for (int kk = pl.kz; kk < kc; kk += KS) {
        T av[TM], bv[TN];
#pragma unroll
        for (int i = 0; i < TM; ++i) av[i] = as[kk * (BM + 1) + pl.ty + i * TY];
#pragma unroll
        for (int j = 0; j < TN; ++j) bv[j] = bchunk[kk * W + pl.tx + j * TX];
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
          for (int j = 0; j < TN; ++j) acc[i][j] = Fma(av[i], bv[j], acc[i][j]);
      }
      __syncthreads();
    }
  }

  // A backward segment whose forward operand was dropped out: its gradient goes back through the same masks, which
  // multiply the product's outputs (m, n), so each gate's part of the reduction (all G*H at once with one mask) is
  // reduced in acc alone and then scaled into the outputs so far. Those wait meanwhile outside the registers (a
  // second set of accumulators would spill): in this thread's slots of `red` when the tile has reduction slices,
  // else in this thread's own elements of the cell's first grad slot (`cell_slots`, row 0 of cell (l, t)), which
  // nothing reads before the tile writes them at its end.
  template <int kSeg>
  __device__ static void DroppedBackwardSegment(const WavefrontParams<T>& p, const T* a, const T* w,
                                                const T* resident, int m0, int n0, T* as, T* red, T* bs,
                                                T (&acc)[TM][TN], const OperandDrop& drop, T* cell_slots) {
    const int H = p.hidden;
    if (drop.mask == nullptr && drop.extra == nullptr) {
      BackwardSegment<kSeg>(p, a, w, resident, m0, n0, as, bs, acc, 0, G * H);
      return;
    }
    const Place pl = ThreadPlace();
    const int64_t gsh = static_cast<int64_t>(GS) * H;
    // Where output (i, j) of this thread waits; null for an output outside the cell (its value is never used).
    auto waiting = [&](int i, int j) -> T* {
      if (KS > 1) return red + (i * TN + j) * kWavefrontThreads + threadIdx.x;
      const int m = m0 + pl.ty + i * TY, n = n0 + pl.tx + j * TX;
      return (m < p.batch && n < H) ? cell_slots + static_cast<int64_t>(m) * gsh + n : nullptr;
    };
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j) {
        if (T* at = waiting(i, j)) *at = acc[i][j];
        acc[i][j] = T(0);
      }
    const int parts = drop.mask != nullptr ? drop.parts : 1;
    const int span = G * H / parts;
    for (int part = 0; part < parts; ++part) {
      BackwardSegment<kSeg>(p, a, w, resident, m0, n0, as, bs, acc, part * span, (part + 1) * span);
      // Position `part` of the side holds the gate named in the description: its mask.
      const int gate = parts > 1 ? Entry(kSeg == 0 ? C::kXGateAt : C::kHGateAt, part) : 0;
      const T* mask = drop.mask != nullptr ? drop.mask + static_cast<int64_t>(gate) * p.batch * H : nullptr;
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) {
          const int m = m0 + pl.ty + i * TY, n = n0 + pl.tx + j * TX;
          T* at = waiting(i, j);
          if (at != nullptr && m < p.batch && n < H) {
            const int64_t e = static_cast<int64_t>(m) * H + n;
            T v = acc[i][j];
            if (mask != nullptr) v *= __ldg(mask + e);
            if (drop.extra != nullptr) v *= __ldg(drop.extra + e);
            *at += v;
          }
          acc[i][j] = T(0);
        }
    }
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j) {
        const T* at = waiting(i, j);
        acc[i][j] = at != nullptr ? *at : T(0);
      }
  }

  // The weight segments of the block's layer l and units [n0, n0 + BN), staged once for the whole run: forward
  // [slot][k < H][g * BN + nn] = W[k][g H + n0 + nn]; backward [slot][k < G*H][nn] = W[n0 + nn][column(k)] (zero
  // past H).
  __device__ static void LoadResidentWeights(const WavefrontParams<T>& p, int l, int n0, T* bs) {
    const int H = p.hidden;
    const int64_t ldw = static_cast<int64_t>(G) * H;
    // The slice has at most 2 * G*H * (G*BN + 1) elements, which fit on chip: 32-bit indices.
    const int seg_len = static_cast<int>(SegmentLength(H, G, kBackward));
    for (int seg = 0; seg < 2; ++seg) {
      const bool present = seg == 1 || (kBackward ? l < p.layers - 1 : l > 0);
      if (!present) continue;
      const T* w = seg == 1 ? p.wh[l] : (kBackward ? p.wx[l + 1] : p.wx[l]);
      T* dst = bs + ResidentSlot(seg, p.layers) * seg_len * W;
      for (int idx = threadIdx.x; idx < seg_len * BN * (kBackward ? 1 : G); idx += kWavefrontThreads) {
        if (!kBackward) {
          const int k = idx / (G * BN), c = idx % (G * BN);
          const int n = n0 + c % BN;
          dst[k * W + c] = n < H ? __ldg(w + k * ldw + static_cast<int64_t>(c / BN) * H + n) : T(0);
        } else {
          const int k = idx % seg_len;
          const int n = n0 + idx / seg_len;
          const int col = seg == 1 ? BackwardColumn<1>(k, H) : BackwardColumn<0>(k, H);
          dst[k * W + (n - n0)] = n < H ? __ldg(w + static_cast<int64_t>(n) * ldw + col) : T(0);
        }
      }
    }
  }

  // Computes the tile (rows [m0, m0 + BM), units [n0, n0 + BN)) of cell (l, t) and writes its outputs.
  __device__ static void ForwardTile(const WavefrontParams<T>& p, int l, int t, int m0, int n0, T* as, T* red,
                                     T* bs, bool resident) {
    const int B = p.batch, H = p.hidden, L = p.layers;
    const Place pl = ThreadPlace();
    const int64_t cell = static_cast<int64_t>(B) * H;
    const int64_t slice = static_cast<int64_t>(H) * W;

    T acc[NP][TM][TN];
#pragma unroll
    for (int s = 0; s < NP; ++s)
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[s][i][j] = T(0);

    // A tile none of whose rows takes step t keeps its states: no products.
    if (p.mask == nullptr || TileTakes(p, m0, t)) {
      if (l > 0) {
        const OperandDrop drop{p.input_dropout != nullptr ? p.input_dropout[l] : nullptr, p.x_parts,
                               p.between_dropout != nullptr
                                   ? p.between_dropout + (static_cast<int64_t>(l - 1) * p.time + t) * cell
                                   : nullptr};
        ForwardSegment<0>(p, p.activations + (static_cast<int64_t>(l - 1) * p.time + t) * cell, p.wx[l],
                          resident ? bs + ResidentSlot(0, L) * slice : nullptr, m0, n0, as, bs, acc, drop);
      }
      const T* h_prev = t == 0 ? p.initial_states + static_cast<int64_t>(l) * S * cell
                               : p.activations + (static_cast<int64_t>(l) * p.time + (t - 1)) * cell;
      const OperandDrop drop{p.recurrent_dropout != nullptr ? p.recurrent_dropout[l] : nullptr, p.h_parts, nullptr};
      ForwardSegment<1>(p, h_prev, p.wh[l], resident ? bs + ResidentSlot(1, L) * slice : nullptr, m0, n0, as, bs,
                        acc, drop);
    }
    AddReductionSlices<KS, TX * TY, NP * TM * TN>(&acc[0][0][0], red, pl.kz, pl.rem);
    if (pl.kz != 0) return;

    const T* bias = p.bias[l];
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      const int m = m0 + pl.ty + i * TY;
      if (m >= B) continue;
      const RowStep step = RowStepOf(p, l, t, m);
#pragma unroll
      for (int j = 0; j < TN; ++j) {
        const int n = n0 + pl.tx + j * TX;
        if (n >= H) continue;
        T pre[NP];
#pragma unroll
        for (int s = 0; s < NP; ++s) pre[s] = acc[s][i][j];
        CellEpilogue<Cell, T>::Forward(p, bias, l, t, m, n, pre, step);
      }
    }
  }

  __device__ static void BackwardTile(const WavefrontParams<T>& p, int l, int t, int m0, int n0, T* as, T* red,
                                      T* bs, bool resident) {
    const int B = p.batch, H = p.hidden, L = p.layers;
    const Place pl = ThreadPlace();
    const int64_t gsh = static_cast<int64_t>(GS) * H;
    const int64_t cell_g = static_cast<int64_t>(B) * gsh;
    const int64_t slice = static_cast<int64_t>(G) * H * W;

    T acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j) acc[i][j] = T(0);

    // The grad slots of a row are zero at the steps it does not take: a tile none of whose rows takes step t (cell
    // (l+1, t) above) or t + 1 (cell (l, t+1)) has no products.
    if (p.mask == nullptr || TileTakes(p, m0, t) || (t < p.time - 1 && TileTakes(p, m0, t + 1))) {
      const int64_t cell = static_cast<int64_t>(B) * H;
      T* cell_slots = p.grad_slots + (static_cast<int64_t>(l) * p.time + t) * cell_g;
      if (l < L - 1) {
        const OperandDrop drop{p.input_dropout != nullptr ? p.input_dropout[l + 1] : nullptr, p.x_parts,
                               p.between_dropout != nullptr
                                   ? p.between_dropout + (static_cast<int64_t>(l) * p.time + t) * cell
                                   : nullptr};
        DroppedBackwardSegment<0>(
            p, p.grad_slots + (static_cast<int64_t>(l + 1) * p.time + t) * cell_g + C::kXFirst * H, p.wx[l + 1],
            resident ? bs + ResidentSlot(0, L) * slice : nullptr, m0, n0, as, red, bs, acc, drop, cell_slots);
      }
      if (t < p.time - 1) {
        const OperandDrop drop{p.recurrent_dropout != nullptr ? p.recurrent_dropout[l] : nullptr, p.h_parts,
                               nullptr};
        DroppedBackwardSegment<1>(
            p, p.grad_slots + (static_cast<int64_t>(l) * p.time + t + 1) * cell_g + C::kHFirst * H, p.wh[l],
            resident ? bs + ResidentSlot(1, L) * slice : nullptr, m0, n0, as, red, bs, acc, drop, cell_slots);
      }
    }
    AddReductionSlices<KS, TX * TY, TM * TN>(&acc[0][0], red, pl.kz, pl.rem);
    if (pl.kz != 0) return;

#pragma unroll
    for (int i = 0; i < TM; ++i) {
      const int m = m0 + pl.ty + i * TY;
      if (m >= B) continue;
      const RowStep step = RowStepOf(p, l, t, m);
#pragma unroll
      for (int j = 0; j < TN; ++j) {
        const int n = n0 + pl.tx + j * TX;
        if (n < H) CellEpilogue<Cell, T>::Backward(p, l, t, m, n, acc[i][j], step);
      }
    }
  }

  __device__ static void Tile(const WavefrontParams<T>& p, int l, int t, int m0, int n0, T* as, T* red, T* bs,
                              bool resident) {
    if (kBackward)
      BackwardTile(p, l, t, m0, n0, as, red, bs, resident);
    else
      ForwardTile(p, l, t, m0, n0, as, red, bs, resident);
  }
};

// Runs p.num_steps wavefront steps from p.first_step (counting down in the backward pass). With more than one step
// the kernel must have been launched cooperatively: a grid barrier separates the steps. With one step (stepwise)
// the launch boundary is the barrier and the kernel never touches the grid group. The register budget is the
// cell's (Cell::Cuda<T>::MinBlocksPerSm): without a minimum of blocks per SM, ptxas trims registers towards higher
// occupancy and spills the accumulators to local memory.
template <typename Cell, typename T, int kTile, bool kBackward>
__global__ void __launch_bounds__(kWavefrontThreads,
                                  (Cell::template Cuda<T>::MinBlocksPerSm(WavefrontTileShape(Cell::kPreSlots, kTile),
                                                                          kBackward)))
    WavefrontKernel(const WavefrontParams<T> p) {
  using F = Wavefront<Cell, T, kTile, kBackward>;
  T* as = reinterpret_cast<T*>(DynamicSharedMemory());
  T* red = as + F::kAElems;
  T* bs = red + F::kRedElems;

  int own_layer = 0, own_col = 0;
  if (p.resident) {  // block (layer, column tile) for the whole run
    own_layer = blockIdx.x / p.col_tiles;
    own_col = blockIdx.x % p.col_tiles;
    F::LoadResidentWeights(p, own_layer, own_col * F::BN, bs);
    __syncthreads();
  }
  const int per_cell = p.row_tiles * p.col_tiles;
  for (int i = 0; i < p.num_steps; ++i) {
    const int s = kBackward ? p.first_step - i : p.first_step + i;
    const int first_layer = max(0, s - (p.time - 1));
    const int last_layer = min(p.layers - 1, s);
    if (p.resident) {
      if (own_layer >= first_layer && own_layer <= last_layer)
        for (int rt = 0; rt < p.row_tiles; ++rt)
          F::Tile(p, own_layer, s - own_layer, rt * F::BM, own_col * F::BN, as, red, bs, true);
    } else {
      const int items = (last_layer - first_layer + 1) * per_cell;
      for (int item = blockIdx.x; item < items; item += gridDim.x) {
        const int l = first_layer + item / per_cell;
        const int r = item % per_cell;
        F::Tile(p, l, s - l, (r / p.col_tiles) * F::BM, (r % p.col_tiles) * F::BN, as, red, bs, false);
      }
    }
    if (i + 1 < p.num_steps) cooperative_groups::this_grid().sync();
  }
}

template <typename T>
using WavefrontKernelFn = void (*)(WavefrontParams<T>);

template <typename Cell, typename T, bool kBackward>
WavefrontKernelFn<T> WavefrontKernelFor(int tile) {
  static_assert(kNumWavefrontTiles == 6, "list every tile here");
  switch (tile) {
    case 0: return WavefrontKernel<Cell, T, 0, kBackward>;
    case 1: return WavefrontKernel<Cell, T, 1, kBackward>;
    case 2: return WavefrontKernel<Cell, T, 2, kBackward>;
    case 3: return WavefrontKernel<Cell, T, 3, kBackward>;
    case 4: return WavefrontKernel<Cell, T, 4, kBackward>;
    default: return WavefrontKernel<Cell, T, 5, kBackward>;
  }
}

inline std::string WavefrontName(Cell cell, bool backward, int tile) {
  return std::string(CellName(cell)) + " wavefront " + (backward ? "backward" : "forward") + " kernel (tile " +
         std::to_string(tile) + ")";
}

template <typename Cell, typename T, bool kBackward>
CudaStatus WavefrontOccupancy(int tile, int64_t smem_bytes, int* blocks_per_sm) {
  return KernelOccupancy(WavefrontKernelFor<Cell, T, kBackward>(tile), WavefrontName(Cell::kCell, kBackward, tile),
                         smem_bytes, blocks_per_sm);
}

template <typename Cell, typename T, bool kBackward>
CudaStatus LaunchWavefront(const WavefrontParams<T>& params, const WavefrontPlan& plan, cudaStream_t stream,
                           int64_t* launches) {
  *launches = 0;
  if (plan.tensor_cores) {  // float32 only (the planner's rule); the TF32 tile has its own kernel
    if constexpr (std::is_same_v<T, float>) {
      const bool has_modifiers = params.mask != nullptr || params.input_dropout != nullptr ||
                                 params.recurrent_dropout != nullptr || params.between_dropout != nullptr;
      return LaunchTensorCoreWavefront<Cell, kBackward>(params, plan, has_modifiers, stream, launches);
    } else {
      return CudaStatus::Error(WavefrontName(Cell::kCell, kBackward, plan.tile) +
                               ": the tensor-core tile is float32 only");
    }
  }
  if (params.batch == 0 || params.time == 0) return CudaStatus::Ok();
  const WavefrontKernelFn<T> kernel = WavefrontKernelFor<Cell, T, kBackward>(plan.tile);
  const std::string name = WavefrontName(Cell::kCell, kBackward, plan.tile);
  DEEPRNN_RETURN_IF_NOT_OK(EnsureKernelSmemLimit(kernel, name));
  return LaunchPlannedWavefront(kernel, params, plan, kBackward, name, stream, launches);
}

// Plans one pass of the cell's wavefront for the current device with its kernels' real occupancy.
template <typename Cell, typename T, bool kBackward>
CudaStatus PlanCell(const Shape& shape, CudaSchedule schedule, WavefrontPlan* plan, const PlanOptions& options) {
  DeviceProps props;
  DEEPRNN_RETURN_IF_NOT_OK(CurrentDeviceProps(&props, nullptr));
  CudaStatus occupancy_error;
  const OccupancyFn occupancy = [&](int tile, int64_t smem_bytes) {
    int blocks = 0;
    CudaStatus st;
    if (tile == kTensorCoreTile) {
      if constexpr (std::is_same_v<T, float>) st = TensorCoreOccupancy<Cell, kBackward>(smem_bytes, &blocks);
    } else {
      st = WavefrontOccupancy<Cell, T, kBackward>(tile, smem_bytes, &blocks);
    }
    if (!st.ok() && occupancy_error.ok()) occupancy_error = st;
    return st.ok() ? blocks : 0;
  };
  DEEPRNN_RETURN_IF_NOT_OK(PlanWavefront(Cell::kCell, shape, sizeof(T),
                                         kBackward ? Direction::kBackward : Direction::kForward, props, schedule,
                                         occupancy, plan, options));
  return occupancy_error;
}

}  // namespace cuda
}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_CUDA_WAVEFRONT_KERNEL_CUH_
