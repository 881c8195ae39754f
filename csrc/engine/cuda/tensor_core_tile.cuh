// The tensor-core wavefront kernel, forward and backward, for any cell (float32, TF32 products, B <= 32): the
// persistent schedule with weights on chip of wavefront_kernel.cuh (one block per (layer, 16-unit column slice),
// a grid barrier per wavefront step), with the products on tensor cores through the WMMA API (m16n16k8 TF32
// fragments, float accumulators). Geometry and shared memory: engine/plan/tensor_core_tile.h; cost model:
// engine/cuda/COST_MODEL.md. The cell enters only through its description (cell_tables.h) and its pointwise maths
// (Cell::Cuda<float>), called on the accumulated sums exactly as the scalar kernel does.
//
// Per step, a block whose layer is active:
//   for each product (forward: x Wx^(l) for l > 0, then h_{t-1} Wh^(l); backward: gx(l+1, t) Wx^(l+1)^T for
//   l < L-1, then gh(l, t+1) Wh^(l)^T for t < T-1): the left operand's rows (all B rows, zero past B, the
//   reduction zero-padded to whole fragments) are staged in chunks of kTcChunk with plain loads (__ldcg: other
//   blocks wrote them before the barrier), rounded to TF32 as they are stored; warp w owns output fragment w % F
//   and the reduction steps w / F, w / F + KS, ... (KS = 8 / F warps per fragment) and keeps its accumulator in
//   registers across the chunks; it then stores the fragment to shared memory (the only way to learn an
//   element's row and column: the fragment layout is opaque);
//   the epilogue adds each element's partial sums in a fixed order (deterministic), then runs the per-element work
//   every tile shares (cell_epilogue.cuh: biases, the cell's pointwise maths, where the results go).
// The state is staged with plain loads, not cp.async: the chunk is consumed right after one __syncthreads, so an
// asynchronous copy would only pay with double buffering (a second A region), left for after the first GPU run
// says whether staging or the barrier dominates.
//
// Masks and dropout: none (the planner keeps the exact tiles when they are given; LaunchTensorCoreWavefront
// refuses them). bf16: none (the library has no bf16 dtype). wgmma (sm_90a): not used; it needs the sm_90a target
// (nvcc 13.0 here assembled it only in the -gencode form, device/HOPPER.md) and warpgroup-wide tiles of 64 rows,
// four times B = 16.
#ifndef DEEPRNN_ENGINE_CUDA_TENSOR_CORE_TILE_CUH_
#define DEEPRNN_ENGINE_CUDA_TENSOR_CORE_TILE_CUH_

#include <cooperative_groups.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <string>

#include "deeprnn/stacked.h"
#include "engine/cuda/cell_epilogue.cuh"
#include "engine/cuda/cell_tables.h"
#include "engine/cuda/device_math.cuh"
#include "engine/cuda/kernel_params.h"
#include "engine/cuda/wavefront_launch.h"
#include "engine/plan/tensor_core_tile.h"

namespace deeprnn {
namespace cuda {

// The WMMA fragments of the tile. (The emulation, tests/cuda_emulation/mma.h, provides the same names.)
namespace tc {
namespace wmma = nvcuda::wmma;
using FragA = wmma::fragment<wmma::matrix_a, kTcFragment, kTcFragment, kTcK, wmma::precision::tf32, wmma::row_major>;
using FragB = wmma::fragment<wmma::matrix_b, kTcFragment, kTcFragment, kTcK, wmma::precision::tf32, wmma::row_major>;
using FragC = wmma::fragment<wmma::accumulator, kTcFragment, kTcFragment, kTcK, float>;
}  // namespace tc

template <typename Cell, bool kBackward>
struct TensorCoreWavefront {
  using C = CellTables<Cell>;
  using Maths = typename Cell::template Cuda<float>;
  static constexpr int G = C::G, NP = C::NP, S = C::S, SS = C::SS, GS = C::GS;
  static constexpr int NG = kBackward ? 1 : G;  // output fragments per row fragment
  static constexpr int WLD = static_cast<int>(TcWeightLd(G, kBackward));
  static constexpr int kFrag = kTcFragment * kTcFragment;

  __device__ static float Round(float v) { return nvcuda::wmma::__float_to_tf32(v); }

  // Column of a weight that backward reduction index k of product kSeg multiplies (as the scalar kernel's
  // BackwardColumn): position k / H of the side holds the gate named in the description.
  template <int kSeg>
  __device__ static int BackwardColumn(int k, int hidden) {
    int position = 0;
#pragma unroll
    for (int i = 1; i < G; ++i) position += k >= i * hidden;
    return Entry(kSeg == 0 ? C::kXGateAt : C::kHGateAt, position) * hidden + (k - position * hidden);
  }

  // The block's slice of its layer's weights, rounded to TF32 once: forward [seg][k][g * 16 + nn] =
  // W[k][g H + n0 + nn]; backward [seg][k][nn] = W[n0 + nn][column(k)]; zero past H, past G*H and in the pads.
  __device__ static void LoadResidentWeights(const WavefrontParams<float>& p, int l, int n0, float* ws) {
    const int H = p.hidden;
    const int64_t ldw = static_cast<int64_t>(G) * H;
    const int kp = static_cast<int>(TcSegmentK(H, G, kBackward));
    const int k_valid = kBackward ? G * H : H;
    for (int seg = 0; seg < 2; ++seg) {
      const bool present = seg == 1 || (kBackward ? l < p.layers - 1 : l > 0);
      if (!present) continue;
      const float* w = seg == 1 ? p.wh[l] : (kBackward ? p.wx[l + 1] : p.wx[l]);
      float* dst = ws + static_cast<int64_t>(p.layers > 1 ? seg : 0) * kp * WLD;
      for (int idx = threadIdx.x; idx < kp * WLD; idx += kWavefrontThreads) {
        const int k = idx / WLD, c = idx % WLD;
        float v = 0.0f;
        if (c < NG * kTcUnits && k < k_valid) {
          const int n = n0 + c % kTcUnits;
          if (n < H) {
            if (!kBackward) {
              v = __ldg(w + static_cast<int64_t>(k) * ldw + static_cast<int64_t>(c / kTcUnits) * H + n);
            } else {
              const int col = seg == 1 ? BackwardColumn<1>(k, H) : BackwardColumn<0>(k, H);
              v = __ldg(w + static_cast<int64_t>(n) * ldw + col);
            }
          }
        }
        dst[idx] = Round(v);
      }
    }
  }

  // Adds one product to the block's partial sums: rows [0, 16 * row_frags) of the operand at `a` (rows `lda`
  // apart, `k_valid` values each) times the on-chip weight segment `w`, into partial slot `seg` (one fragment per
  // warp). Every thread of the block calls it (it stages and synchronises).
  __device__ static void Product(int seg, const float* a, int64_t lda, int k_valid, int kp, int batch,
                                 int row_frags, const float* w, float* as, float* partials) {
    const int warp = threadIdx.x / 32;
    const int frags = row_frags * NG;
    const int ksplit = TcKSplit(frags);
    const bool active = warp < frags * ksplit;  // the same for all lanes of a warp, as WMMA needs
    const int f = warp % frags, kz = warp / frags;
    const int mf = f / NG, col = (f % NG) * kTcUnits;
    const int rows = row_frags * kTcFragment;
    tc::FragC acc;
    nvcuda::wmma::fill_fragment(acc, 0.0f);
    for (int k0 = 0; k0 < kp; k0 += kTcChunk) {
      const int kc = min(kTcChunk, kp - k0);
      for (int idx = threadIdx.x; idx < rows * kc; idx += kWavefrontThreads) {
        const int m = idx / kc, kk = idx % kc;  // consecutive threads along a row: coalesced
        const int k = k0 + kk;
        as[m * kTcALd + kk] =
            (m < batch && k < k_valid) ? Round(__ldcg(a + static_cast<int64_t>(m) * lda + k)) : 0.0f;
      }
      __syncthreads();
      if (active) {
        for (int kk = kz * kTcK; kk < kc; kk += ksplit * kTcK) {
          tc::FragA fa;
          tc::FragB fb;
          nvcuda::wmma::load_matrix_sync(fa, as + mf * kTcFragment * kTcALd + kk, kTcALd);
          nvcuda::wmma::load_matrix_sync(fb, w + static_cast<int64_t>(k0 + kk) * WLD + col, WLD);
          nvcuda::wmma::mma_sync(acc, fa, fb, acc);
        }
      }
      __syncthreads();  // `as` is staged again by the next chunk
    }
    if (active)
      nvcuda::wmma::store_matrix_sync(partials + (seg * kTcWarps + warp) * kFrag, acc, kTcFragment,
                                      nvcuda::wmma::mem_row_major);
  }

  // The sum of partial slot `seg` at row m, column c of the fragment columns (forward: gate c / 16): its ksplit
  // warps' fragments in warp order.
  __device__ static float PartialSum(const float* partials, int seg, int row_frags, int m, int c) {
    const int frags = row_frags * NG;
    const int ksplit = TcKSplit(frags);
    const int f = (m / kTcFragment) * NG + c / kTcUnits;
    const int at = (m % kTcFragment) * kTcFragment + c % kTcUnits;
    float sum = 0.0f;
    for (int z = 0; z < ksplit; ++z) sum += partials[(seg * kTcWarps + z * frags + f) * kFrag + at];
    return sum;
  }

  __device__ static void ForwardCell(const WavefrontParams<float>& p, int l, int t, int n0, float* ws, float* as,
                                     float* partials) {
    const int B = p.batch, H = p.hidden, L = p.layers;
    const int row_frags = TcRowFragments(B);
    const int kp = static_cast<int>(TcSegmentK(H, G, false));
    const int64_t cell = static_cast<int64_t>(B) * H;
    const int64_t slice = static_cast<int64_t>(kp) * WLD;
    if (l > 0)
      Product(0, p.activations + (static_cast<int64_t>(l - 1) * p.time + t) * cell, H, H, kp, B, row_frags, ws, as,
              partials);
    const float* h_prev = t == 0 ? p.initial_states + static_cast<int64_t>(l) * S * cell
                                 : p.activations + (static_cast<int64_t>(l) * p.time + (t - 1)) * cell;
    Product(1, h_prev, H, H, kp, B, row_frags, ws + (L > 1 ? slice : 0), as, partials);
    __syncthreads();

    const float* bias = p.bias[l];
    for (int e = threadIdx.x; e < B * kTcUnits; e += kWavefrontThreads) {
      const int m = e / kTcUnits, nn = e % kTcUnits;
      const int n = n0 + nn;
      if (n >= H) continue;
      float pre[NP];
#pragma unroll
      for (int s = 0; s < NP; ++s) pre[s] = 0.0f;
#pragma unroll
      for (int g = 0; g < G; ++g) {
        if (l > 0) pre[Entry(C::kXSlotOfGate, g)] += PartialSum(partials, 0, row_frags, m, g * kTcUnits + nn);
        pre[Entry(C::kHSlotOfGate, g)] += PartialSum(partials, 1, row_frags, m, g * kTcUnits + nn);
      }
      CellEpilogue<Cell, float>::Forward(p, bias, l, t, m, n, pre, RowStep{true, true});  // no masks here
    }
  }

  __device__ static void BackwardCell(const WavefrontParams<float>& p, int l, int t, int n0, float* ws, float* as,
                                      float* partials) {
    const int B = p.batch, H = p.hidden, L = p.layers;
    const int row_frags = TcRowFragments(B);
    const int kp = static_cast<int>(TcSegmentK(H, G, true));
    const int64_t gsh = static_cast<int64_t>(GS) * H;
    const int64_t cell_g = static_cast<int64_t>(B) * gsh;
    const int64_t slice = static_cast<int64_t>(kp) * WLD;
    const bool has_x = l < L - 1, has_h = t < p.time - 1;
    if (has_x)
      Product(0, p.grad_slots + (static_cast<int64_t>(l + 1) * p.time + t) * cell_g + C::kXFirst * H, gsh, G * H,
              kp, B, row_frags, ws, as, partials);
    if (has_h)
      Product(1, p.grad_slots + (static_cast<int64_t>(l) * p.time + t + 1) * cell_g + C::kHFirst * H, gsh, G * H,
              kp, B, row_frags, ws + (L > 1 ? slice : 0), as, partials);
    __syncthreads();

    for (int e = threadIdx.x; e < B * kTcUnits; e += kWavefrontThreads) {
      const int m = e / kTcUnits, nn = e % kTcUnits;
      const int n = n0 + nn;
      if (n >= H) continue;
      float dh = 0.0f;
      if (has_x) dh += PartialSum(partials, 0, row_frags, m, nn);
      if (has_h) dh += PartialSum(partials, 1, row_frags, m, nn);
      CellEpilogue<Cell, float>::Backward(p, l, t, m, n, dh, RowStep{true, true});  // no masks here
    }
    // The partial sums are stored again by the next step's products only after a grid barrier: no block-level
    // barrier is needed here.
  }
};

// Runs every wavefront step (one cooperative launch, grid barrier between steps), block (layer, column slice).
template <typename Cell, bool kBackward>
__global__ void __launch_bounds__(kWavefrontThreads, 1) TensorCoreWavefrontKernel(const WavefrontParams<float> p) {
  using F = TensorCoreWavefront<Cell, kBackward>;
  float* ws = reinterpret_cast<float*>(DynamicSharedMemory());
  float* as = ws + TcWeightElems(F::G, p.hidden, p.layers, kBackward);
  float* partials = as + TcAElems();
  const int own_layer = blockIdx.x / p.col_tiles;
  const int n0 = (blockIdx.x % p.col_tiles) * kTcUnits;
  F::LoadResidentWeights(p, own_layer, n0, ws);
  __syncthreads();
  for (int i = 0; i < p.num_steps; ++i) {
    const int s = kBackward ? p.first_step - i : p.first_step + i;
    const int first_layer = max(0, s - (p.time - 1));
    const int last_layer = min(p.layers - 1, s);
    if (own_layer >= first_layer && own_layer <= last_layer) {
      if (kBackward) {
        F::BackwardCell(p, own_layer, s - own_layer, n0, ws, as, partials);
      } else {
        F::ForwardCell(p, own_layer, s - own_layer, n0, ws, as, partials);
      }
    }
    if (i + 1 < p.num_steps) cooperative_groups::this_grid().sync();
  }
}

inline std::string TensorCoreName(Cell cell, bool backward) {
  return std::string(CellName(cell)) + " tensor-core wavefront " + (backward ? "backward" : "forward") + " kernel";
}

template <typename Cell, bool kBackward>
CudaStatus TensorCoreOccupancy(int64_t smem_bytes, int* blocks_per_sm) {
  return KernelOccupancy(TensorCoreWavefrontKernel<Cell, kBackward>, TensorCoreName(Cell::kCell, kBackward),
                         smem_bytes, blocks_per_sm);
}

// Launches the planned tensor-core wavefront. It has no masks or dropout: `has_modifiers` gets a clear error.
template <typename Cell, bool kBackward>
CudaStatus LaunchTensorCoreWavefront(const WavefrontParams<float>& params, const WavefrontPlan& plan,
                                     bool has_modifiers, cudaStream_t stream, int64_t* launches) {
  *launches = 0;
  const std::string name = TensorCoreName(Cell::kCell, kBackward);
  if (has_modifiers) return CudaStatus::Error(name + ": masks and dropout have no tensor-core tile; plan without TF32");
  if (!plan.tensor_cores || !plan.weights_on_chip || plan.schedule != CudaSchedule::kPersistent ||
      params.batch > kTcMaxBatch)
    return CudaStatus::Error(name + ": needs a persistent plan with weights on chip and batch <= 32 (got batch " +
                             std::to_string(params.batch) + ", schedule " + ScheduleName(plan.schedule) + ")");
  if (params.batch == 0 || params.time == 0) return CudaStatus::Ok();
  DEEPRNN_RETURN_IF_NOT_OK(EnsureKernelSmemLimit(TensorCoreWavefrontKernel<Cell, kBackward>, name));
  return LaunchPlannedWavefront(TensorCoreWavefrontKernel<Cell, kBackward>, params, plan, kBackward, name, stream,
                                launches);
}

}  // namespace cuda
}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_CUDA_TENSOR_CORE_TILE_CUH_
