// The wavefront kernel of the stacked RNN, forward and backward, for both schedules (see deeprnn/launch_plan.h).
//
// One call of ComputeCellTile computes a BM x BN tile of one cell (l, t):
//   forward   Z = [l > 0] H_t^(l-1) W_x^(l) + H_{t-1}^(l) W_h^(l) + (l == 0 ? P_t : b^(l)),  H_t^(l) = phi(Z)
//             (P_t = X_t W_x^(0) + b^(0), precomputed into activations[0, t] and overwritten here in place)
//   backward  G = [l < L-1] dZ_t^(l+1) W_x^(l+1)^T + [t < T-1] dZ_{t+1}^(l) W_h^(l)^T
//                 + [l == L-1] dOutputs_t + [t == T-1] dFinal^(l),                   dZ_t^(l) = G * phi'(H_t^(l))
// Each is at most two "segments" (a [B,H] activation or gradient block times an [H,H] weight, transposed in the
// backward pass), reduced in chunks of BK staged in shared memory.
//
// Ordering: cell (l, t) only reads cells of the previous wavefront step (written by other blocks before the grid
// barrier or the kernel boundary) and its own input projection (read and overwritten by the same thread). Reads of
// data other blocks wrote go through __ldcg (L2, never a possibly stale L1 line). Weights are read-only.
#ifndef DEEPRNN_CUDA_WAVEFRONT_KERNEL_CUH_
#define DEEPRNN_CUDA_WAVEFRONT_KERNEL_CUH_

#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "cuda/kernel_params.h"
#include "deeprnn/launch_plan.h"

namespace deeprnn {
namespace cuda {

__device__ __forceinline__ float TanhOf(float x) { return tanhf(x); }
__device__ __forceinline__ double TanhOf(double x) { return tanh(x); }

__device__ __forceinline__ float Fma(float a, float b, float c) { return fmaf(a, b, c); }
__device__ __forceinline__ double Fma(double a, double b, double c) { return fma(a, b, c); }

template <typename T>
__device__ __forceinline__ T Activate(int activation, T z) {
  return activation == static_cast<int>(Activation::kTanh) ? TanhOf(z) : (z > T(0) ? z : T(0));
}

// phi'(z) written with h = phi(z): 1 - h^2 for tanh; 1 where h > 0 for relu (h > 0 exactly when z > 0).
template <typename T>
__device__ __forceinline__ T ActivationGradFromOutput(int activation, T h) {
  return activation == static_cast<int>(Activation::kTanh) ? T(1) - h * h : (h > T(0) ? T(1) : T(0));
}

// The block's dynamic shared memory. (A function rather than an extern array in the kernel, so that the CPU
// emulation used by the tests, tests/cuda_emulation/, can supply it; CUDA builds never define
// DEEPRNN_CUDA_EMULATION.)
__device__ __forceinline__ unsigned char* DynamicSharedMemory() {
#if defined(DEEPRNN_CUDA_EMULATION)
  return emulation::BlockSharedMemory();
#else
  extern __shared__ __align__(16) unsigned char smem_raw[];
  return smem_raw;
#endif
}

// Where segment `seg` (0: input product, 1: recurrent product) of a layer's weights sits in the on-chip slice.
__device__ __forceinline__ int ResidentSlot(int seg, int layers) { return layers > 1 ? seg : 0; }

// The A block and weight matrix of segment `seg` of cell (l, t); false when the segment does not exist.
template <typename T, bool kBackward>
__device__ __forceinline__ bool CellSegment(const WavefrontParams<T>& p, int seg, int l, int t, const T** a,
                                            const T** w) {
  const int64_t cell = static_cast<int64_t>(p.batch) * p.hidden;
  if (!kBackward) {
    if (seg == 0) {
      if (l == 0) return false;
      *a = p.activations + (static_cast<int64_t>(l - 1) * p.time + t) * cell;
      *w = p.wx[l];
    } else {
      *a = t == 0 ? p.initial_states + static_cast<int64_t>(l) * cell
                  : p.activations + (static_cast<int64_t>(l) * p.time + (t - 1)) * cell;
      *w = p.wh[l];
    }
  } else {
    if (seg == 0) {
      if (l == p.layers - 1) return false;
      *a = p.grad_pre + (static_cast<int64_t>(l + 1) * p.time + t) * cell;
      *w = p.wx[l + 1];
    } else {
      if (t == p.time - 1) return false;
      *a = p.grad_pre + (static_cast<int64_t>(l) * p.time + (t + 1)) * cell;
      *w = p.wh[l];
    }
  }
  return true;
}

// Weight element B(k, n) of a segment: W[k][n] forward, W[n][k] backward (the transposed product).
template <typename T, bool kBackward>
__device__ __forceinline__ T WeightAt(const T* w, int hidden, int k, int n) {
  return kBackward ? __ldg(w + static_cast<int64_t>(n) * hidden + k) : __ldg(w + static_cast<int64_t>(k) * hidden + n);
}

// Loads columns [n0, n0 + BN) of layer l's weights (both segments) into `bs` as [slot][k][BN + 1] (zero columns
// past H). Called once per block in the resident schedule.
template <typename T, int kTile, bool kBackward>
__device__ void LoadResidentWeights(const WavefrontParams<T>& p, int l, int n0, T* bs) {
  constexpr int BN = WavefrontTileShape(kTile).bn;
  const int H = p.hidden;
  for (int seg = 0; seg < 2; ++seg) {
    const T* w = nullptr;
    bool present;
    if (!kBackward) {
      present = seg == 1 || l > 0;
      if (present) w = seg == 0 ? p.wx[l] : p.wh[l];
    } else {
      present = seg == 1 || l < p.layers - 1;
      if (present) w = seg == 0 ? p.wx[l + 1] : p.wh[l];
    }
    if (!present) continue;
    T* dst = bs + static_cast<int64_t>(ResidentSlot(seg, p.layers)) * H * (BN + 1);
    for (int idx = threadIdx.x; idx < H * BN; idx += kWavefrontThreads) {
      // Consecutive threads read consecutive addresses: along n forward, along k backward.
      const int k = kBackward ? idx % H : idx / BN;
      const int nn = kBackward ? idx / H : idx % BN;
      const int n = n0 + nn;
      dst[k * (BN + 1) + nn] = n < H ? WeightAt<T, kBackward>(w, H, k, n) : T(0);
    }
  }
}

// Computes the tile (rows [m0, m0 + BM), columns [n0, n0 + BN)) of cell (l, t) and writes its outputs.
template <typename T, int kTile, bool kBackward>
__device__ void ComputeCellTile(const WavefrontParams<T>& p, int l, int t, int m0, int n0, T* as, T* red, T* bs,
                                bool resident) {
  constexpr WavefrontTile kShape = WavefrontTileShape(kTile);
  constexpr int BM = kShape.bm, BN = kShape.bn, TM = kShape.tm, TN = kShape.tn, BK = kShape.bk;
  constexpr int TX = BN / TN, TY = BM / TM, KS = WavefrontKs(kShape);
  const int B = p.batch, H = p.hidden;
  const int tid = threadIdx.x;
  const int kz = tid / (TX * TY);  // reduction slice
  const int rem = tid % (TX * TY);
  const int ty = rem / TX, tx = rem % TX;  // thread's rows m0 + ty + i * TY, columns n0 + tx + j * TX

  T acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = T(0);

  for (int seg = 0; seg < 2; ++seg) {
    const T* a = nullptr;
    const T* w = nullptr;
    if (!CellSegment<T, kBackward>(p, seg, l, t, &a, &w)) continue;  // uniform across the block
    const T* resident_slice = bs + static_cast<int64_t>(ResidentSlot(seg, p.layers)) * H * (BN + 1);
    for (int k0 = 0; k0 < H; k0 += BK) {
      const int kc = min(BK, H - k0);
      for (int idx = tid; idx < BM * BK; idx += kWavefrontThreads) {
        const int mm = idx / BK, kk = idx % BK;  // consecutive threads along k: coalesced rows of A
        const int m = m0 + mm;
        as[kk * (BM + 1) + mm] = (m < B && kk < kc) ? __ldcg(a + static_cast<int64_t>(m) * H + (k0 + kk)) : T(0);
      }
      const T* bchunk;
      if (resident) {
        bchunk = resident_slice + static_cast<int64_t>(k0) * (BN + 1);
      } else {
        for (int idx = tid; idx < BK * BN; idx += kWavefrontThreads) {
          const int kk = kBackward ? idx % BK : idx / BN;
          const int nn = kBackward ? idx / BK : idx % BN;
          const int n = n0 + nn;
          bs[kk * (BN + 1) + nn] = (kk < kc && n < H) ? WeightAt<T, kBackward>(w, H, k0 + kk, n) : T(0);
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

  if (KS > 1) {  // add the partial sums of the reduction slices, in a fixed order
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j) red[tid * (TM * TN) + i * TN + j] = acc[i][j];
    __syncthreads();
    if (kz == 0) {
      for (int z = 1; z < KS; ++z)
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
          for (int j = 0; j < TN; ++j) acc[i][j] += red[(z * TX * TY + rem) * (TM * TN) + i * TN + j];
    }
    __syncthreads();  // `red` is written again by the next tile
  }
  if (kz != 0) return;

  const int64_t cell_elems = static_cast<int64_t>(B) * H;
  const int64_t cell_offset = (static_cast<int64_t>(l) * p.time + t) * cell_elems;
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int m = m0 + ty + i * TY;
    if (m >= B) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int n = n0 + tx + j * TX;
      if (n >= H) continue;
      const int64_t off = static_cast<int64_t>(m) * H + n;
      if (!kBackward) {
        T* cell = p.activations + cell_offset;
        const T z = acc[i][j] + (l == 0 ? __ldcg(cell + off) : __ldg(p.bias[l] + n));
        const T h = Activate(p.activation, z);
        cell[off] = h;
        if (l == p.layers - 1) p.outputs[(static_cast<int64_t>(m) * p.time + t) * H + n] = h;
        if (t == p.time - 1) p.final_states[(static_cast<int64_t>(l) * B + m) * H + n] = h;
      } else {
        T g = acc[i][j];
        if (l == p.layers - 1) g += p.grad_outputs[(static_cast<int64_t>(m) * p.time + t) * H + n];
        if (t == p.time - 1) g += p.grad_final_states[(static_cast<int64_t>(l) * B + m) * H + n];
        const T h = p.activations[cell_offset + off];
        p.grad_pre[cell_offset + off] = g * ActivationGradFromOutput(p.activation, h);
      }
    }
  }
}

// Runs p.num_steps wavefront steps from p.first_step (counting down in the backward pass). With more than one step
// the kernel must have been launched cooperatively: a grid barrier separates the steps. With one step (stepwise)
// the launch boundary is the barrier and the kernel never touches the grid group.
// Two blocks per SM in the bounds: without a minimum, ptxas trims registers towards higher occupancy and spills the
// accumulators to local memory; with it every tile fits in at most 128 registers without spills (see
// benchmarks/gpu/RESOURCES.md). The weights-on-chip schedule runs one or two blocks per SM anyway.
template <typename T, int kTile, bool kBackward>
__global__ void __launch_bounds__(kWavefrontThreads, 2) WavefrontKernel(const WavefrontParams<T> p) {
  constexpr WavefrontTile kShape = WavefrontTileShape(kTile);
  static_assert((kShape.bm / kShape.tm) * (kShape.bn / kShape.tn) * WavefrontKs(kShape) == kWavefrontThreads,
                "a tile must use every thread");
  T* as = reinterpret_cast<T*>(DynamicSharedMemory());
  T* red = as + WavefrontSmemAElems(kShape);
  T* bs = red + WavefrontSmemRedElems(kShape);

  int own_layer = 0, own_col = 0;
  if (p.resident) {  // block (layer, column tile) for the whole run
    own_layer = blockIdx.x / p.col_tiles;
    own_col = blockIdx.x % p.col_tiles;
    LoadResidentWeights<T, kTile, kBackward>(p, own_layer, own_col * kShape.bn, bs);
    __syncthreads();
  }
  const int per_cell = p.row_tiles * p.col_tiles;
  for (int i = 0; i < p.num_steps; ++i) {
    const int s = kBackward ? p.first_step - i : p.first_step + i;
    const int first_layer = max(0, s - (p.time - 1));
    const int last_layer = min(p.layers - 1, s);
    if (p.resident) {
      if (own_layer >= first_layer && own_layer <= last_layer) {
        for (int rt = 0; rt < p.row_tiles; ++rt)
          ComputeCellTile<T, kTile, kBackward>(p, own_layer, s - own_layer, rt * kShape.bm, own_col * kShape.bn, as,
                                               red, bs, true);
      }
    } else {
      const int items = (last_layer - first_layer + 1) * per_cell;
      for (int item = blockIdx.x; item < items; item += gridDim.x) {
        const int l = first_layer + item / per_cell;
        const int r = item % per_cell;
        ComputeCellTile<T, kTile, kBackward>(p, l, s - l, (r / p.col_tiles) * kShape.bm,
                                             (r % p.col_tiles) * kShape.bn, as, red, bs, false);
      }
    }
    if (i + 1 < p.num_steps) cooperative_groups::this_grid().sync();
  }
}

template <typename T, bool kBackward>
using WavefrontKernelFn = void (*)(WavefrontParams<T>);

template <typename T, bool kBackward>
WavefrontKernelFn<T, kBackward> WavefrontKernelFor(int tile) {
  static_assert(kNumWavefrontTiles == 6, "list every tile here");
  switch (tile) {
    case 0: return WavefrontKernel<T, 0, kBackward>;
    case 1: return WavefrontKernel<T, 1, kBackward>;
    case 2: return WavefrontKernel<T, 2, kBackward>;
    case 3: return WavefrontKernel<T, 3, kBackward>;
    case 4: return WavefrontKernel<T, 4, kBackward>;
    default: return WavefrontKernel<T, 5, kBackward>;
  }
}

inline std::string WavefrontName(bool backward, int tile) {
  return std::string("wavefront ") + (backward ? "backward" : "forward") + " kernel (tile " + std::to_string(tile) +
         ")";
}

// Raises a kernel's dynamic shared-memory limit to the device's opt-in maximum, once per device. The limit is a
// property of the kernel shared by every thread of the process, so it is only ever raised to one value: lowering
// it for a small launch could make a concurrent large launch of the same kernel fail (two TF ops at once). A high
// limit costs nothing by itself; occupancy follows the shared memory each launch asks for. `name` names the kernel
// in error messages.
template <typename Params>
CudaStatus EnsureKernelSmemLimit(void (*kernel)(Params), const std::string& name) {
  static std::mutex mu;
  static std::set<std::pair<int, const void*>> done;  // (device, kernel)
  DeviceProps props;
  int device = 0;
  DEEPRNN_RETURN_IF_NOT_OK(CurrentDeviceProps(&props, &device));
  std::lock_guard<std::mutex> lock(mu);
  const std::pair<int, const void*> key = {device, reinterpret_cast<const void*>(kernel)};
  if (done.count(key)) return CudaStatus::Ok();
  const std::string what = "cudaFuncSetAttribute(" + name + ", cudaFuncAttributeMaxDynamicSharedMemorySize, " +
                           std::to_string(props.smem_per_block_optin) + ")";
  DEEPRNN_CUDA_RETURN_IF_ERROR(what.c_str(),
                               cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                    static_cast<int>(props.smem_per_block_optin)));
  done.insert(key);
  return CudaStatus::Ok();
}

// Blocks of `kernel` with smem_bytes of dynamic shared memory that fit on one SM of the current device.
template <typename Params>
CudaStatus KernelOccupancy(void (*kernel)(Params), const std::string& name, int64_t smem_bytes, int* blocks_per_sm) {
  *blocks_per_sm = 0;
  DEEPRNN_RETURN_IF_NOT_OK(EnsureKernelSmemLimit(kernel, name));
  const std::string what = "cudaOccupancyMaxActiveBlocksPerMultiprocessor(" + name + ")";
  DEEPRNN_CUDA_RETURN_IF_ERROR(what.c_str(),
                               cudaOccupancyMaxActiveBlocksPerMultiprocessor(blocks_per_sm, kernel, kWavefrontThreads,
                                                                             static_cast<size_t>(smem_bytes)));
  return CudaStatus::Ok();
}

template <typename T, bool kBackward>
CudaStatus WavefrontOccupancy(int tile, int64_t smem_bytes, int* blocks_per_sm) {
  return KernelOccupancy(WavefrontKernelFor<T, kBackward>(tile), WavefrontName(kBackward, tile), smem_bytes,
                         blocks_per_sm);
}

// Runs a planned wavefront with any cell's kernel: one cooperative launch over every step (persistent), or one launch
// per step over that step's active cells (stepwise). Params is the cell's parameter block (WavefrontParams,
// GruWavefrontParams): batch, time and layers are read, the tiling and step fields are filled in here. `name` names
// the kernel in error messages.
template <typename Params>
CudaStatus LaunchPlannedWavefront(void (*kernel)(Params), Params p, const WavefrontPlan& plan, bool backward,
                                  const std::string& name, cudaStream_t stream, int64_t* launches) {
  *launches = 0;
  const int steps = p.time + p.layers - 1;
  p.row_tiles = static_cast<int32_t>(plan.row_tiles);
  p.col_tiles = static_cast<int32_t>(plan.col_tiles);
  if (plan.schedule == CudaSchedule::kPersistent) {
    p.resident = plan.weights_on_chip ? 1 : 0;
    p.first_step = backward ? steps - 1 : 0;
    p.num_steps = steps;
    void* args[] = {&p};
    const std::string what = "cudaLaunchCooperativeKernel(" + name + ", " + std::to_string(plan.grid) + " blocks, " +
                             std::to_string(plan.smem_bytes) + " B shared memory)";
    DEEPRNN_CUDA_RETURN_IF_ERROR(
        what.c_str(), cudaLaunchCooperativeKernel(kernel, dim3(static_cast<unsigned>(plan.grid)),
                                                  dim3(kWavefrontThreads), args,
                                                  static_cast<size_t>(plan.smem_bytes), stream));
    *launches = 1;
    return CudaStatus::Ok();
  }
  p.resident = 0;
  p.num_steps = 1;
  const int per_cell = p.row_tiles * p.col_tiles;
  for (int i = 0; i < steps; ++i) {
    const int s = backward ? steps - 1 - i : i;
    const int active = std::min(p.layers - 1, s) - std::max(0, s - (p.time - 1)) + 1;
    p.first_step = s;
    void* args[] = {&p};
    const cudaError_t err = cudaLaunchKernel(kernel, dim3(static_cast<unsigned>(active * per_cell)),
                                             dim3(kWavefrontThreads), args, static_cast<size_t>(plan.smem_bytes),
                                             stream);
    if (err != cudaSuccess) {
      const std::string what = "launch of " + name + " (stepwise, step " + std::to_string(s) + ")";
      return CudaStatus::Error(CudaErrorText(what.c_str(), err));
    }
    ++*launches;
  }
  return CudaStatus::Ok();
}

template <typename T, bool kBackward>
CudaStatus LaunchWavefront(const WavefrontParams<T>& params, const WavefrontPlan& plan, cudaStream_t stream,
                           int64_t* launches) {
  *launches = 0;
  if (params.batch == 0 || params.time == 0) return CudaStatus::Ok();
  const WavefrontKernelFn<T, kBackward> kernel = WavefrontKernelFor<T, kBackward>(plan.tile);
  const std::string name = WavefrontName(kBackward, plan.tile);
  DEEPRNN_RETURN_IF_NOT_OK(EnsureKernelSmemLimit(kernel, name));
  return LaunchPlannedWavefront(kernel, params, plan, kBackward, name, stream, launches);
}

}  // namespace cuda
}  // namespace deeprnn

#endif  // DEEPRNN_CUDA_WAVEFRONT_KERNEL_CUH_
