// The non-recurrent parts of the CUDA passes, for every cell: a tiled matrix product over "sequence rows" (layer 0's
// input projection, the data gradients of the inputs and initial states, the weight gradients over all T*B rows),
// the deterministic addition of split-reduction partials, column sums and their arrangement into bias gradients,
// and the pointer-table writer. Plain fp32/fp64 FMA on CUDA cores: simple and exact to the element order; no
// tensor cores yet.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "engine/cuda/device_math.cuh"
#include "engine/cuda/kernel_params.h"

namespace deeprnn {
namespace cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kBM = kGemmTile, kBN = kGemmTile, kBK = kGemmChunk;  // 64 x 64 outputs, chunks of 16
constexpr int kTM = 4, kTN = 4;                                    // per thread, rows ty + 16 i, columns tx + 16 j
static_assert((kBM / kTM) * (kBN / kTN) == kThreads, "tile must use every thread");
static_assert(kBM * kBK == 4 * kThreads && kBN * kBK == 4 * kThreads, "each thread stages 4 elements per operand");

__device__ __forceinline__ int64_t SeqOffset(const SeqIndex& s, int32_t r) {
  if (s.batch == 1) return static_cast<int64_t>(r) * s.stride_t;
  const int32_t t = r / s.batch;
  const int32_t b = r - t * s.batch;
  return static_cast<int64_t>(t) * s.stride_t + static_cast<int64_t>(b) * s.stride_b;
}

// The product of A's scales (dropout masks) at the element a_rows(row) + col of A's storage (dropped operands are
// rare: the scales' offsets are computed when they are read, not kept in registers).
template <typename T>
__device__ __forceinline__ T AScale(const GemmParams<T>& p, int32_t row, int col) {
  // Spelled out: an indexed parameter array can be copied to local memory (a stack frame).
  T s = T(1);
  if (p.a_scale[0] != nullptr) s *= p.a_scale[0][SeqOffset(p.a_scale_rows[0], row) + col];
  if (p.a_scale[1] != nullptr) s *= p.a_scale[1][SeqOffset(p.a_scale_rows[1], row) + col];
  return s;
}

// Staging: every thread loads 4 elements of each operand per chunk. For an operand read along its reduction index
// (A not transposed, B transposed) thread (ty, tx) loads rows ty + 16 r at reduction offset tx, so its row offsets
// are computed once; otherwise it loads reduction offsets tid / 64 + 4 r at row tid % 64 (coalesced either way).
template <typename T, bool kTransA, bool kTransB>
__global__ void __launch_bounds__(kThreads) GemmKernel(const GemmParams<T> p) {
  __shared__ T as[kBK][kBM + 1];
  __shared__ T bs[kBK][kBN + 1];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int m0 = blockIdx.x * kBM, n0 = blockIdx.y * kBN;
  const int k_begin = blockIdx.z * p.k_per_split;
  const int k_end = min(p.k, k_begin + p.k_per_split);

  int64_t a_off[4], b_off[4];
  bool a_ok[4], b_ok[4];
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int m = m0 + ty + 16 * r, n = n0 + ty + 16 * r;
    a_ok[r] = !kTransA && m < p.m;
    b_ok[r] = kTransB && n < p.n;
    a_off[r] = a_ok[r] ? SeqOffset(p.a_rows, m) : 0;
    b_off[r] = b_ok[r] ? SeqOffset(p.b_rows, n) : 0;
  }

  T acc[kTM][kTN];
#pragma unroll
  for (int i = 0; i < kTM; ++i)
#pragma unroll
    for (int j = 0; j < kTN; ++j) acc[i][j] = T(0);
  const bool a_scaled = p.a_scale[0] != nullptr || p.a_scale[1] != nullptr;

  for (int k0 = k_begin; k0 < k_end; k0 += kBK) {
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      if (!kTransA) {
        const int k = k0 + tx;
        as[tx][ty + 16 * r] = (a_ok[r] && k < k_end) ? p.a[a_off[r] + k] : T(0);
      } else {
        const int kk = tid / kBM + 4 * r, mm = tid % kBM;
        const int k = k0 + kk, m = m0 + mm;
        as[kk][mm] = (k < k_end && m < p.m) ? p.a[SeqOffset(p.a_rows, k) + m] : T(0);
      }
      if (kTransB) {
        const int k = k0 + tx;
        bs[tx][ty + 16 * r] = (b_ok[r] && k < k_end) ? p.b[b_off[r] + k] : T(0);
      } else {
        const int kk = tid / kBN + 4 * r, nn = tid % kBN;
        const int k = k0 + kk, n = n0 + nn;
        bs[kk][nn] = (k < k_end && n < p.n) ? p.b[SeqOffset(p.b_rows, k) + n] : T(0);
      }
    }
    if (a_scaled) {  // dropout masks of A, applied to the staged elements in place (each thread its own)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        if (!kTransA) {
          const int k = k0 + tx, m = m0 + ty + 16 * r;
          if (m < p.m && k < k_end) as[tx][ty + 16 * r] *= AScale(p, m, k);
        } else {
          const int kk = tid / kBM + 4 * r, mm = tid % kBM;
          const int k = k0 + kk, m = m0 + mm;
          if (k < k_end && m < p.m) as[kk][mm] *= AScale(p, k, m);
        }
      }
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      T av[kTM], bv[kTN];
#pragma unroll
      for (int i = 0; i < kTM; ++i) av[i] = as[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < kTN; ++j) bv[j] = bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < kTM; ++i)
#pragma unroll
        for (int j = 0; j < kTN; ++j) acc[i][j] = Fma(av[i], bv[j], acc[i][j]);
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < kTM; ++i) {
    const int m = m0 + ty + 16 * i;
    if (m >= p.m) continue;
    const int64_t c_row = gridDim.z > 1 ? 0 : SeqOffset(p.c_rows, m);
#pragma unroll
    for (int j = 0; j < kTN; ++j) {
      const int n = n0 + tx + 16 * j;
      if (n >= p.n) continue;
      if (gridDim.z > 1) {
        p.partial[(static_cast<int64_t>(blockIdx.z) * p.m + m) * p.n + n] = acc[i][j];
      } else {
        T v = acc[i][j];
        if (p.c_scale != nullptr) v *= p.c_scale[SeqOffset(p.c_scale_rows, m) + n];
        if (p.bias != nullptr) v += p.bias[n];
        if (p.accumulate) v += p.c[c_row + n];
        p.c[c_row + n] = v;
      }
    }
  }
}

// Element (i, j) of the m x n output at c[i * ldc + j], summed over the splits in order (deterministic).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    ReducePartialsKernel(const T* partial, int32_t splits, int64_t m, int64_t n, int64_t ldc, int32_t accumulate,
                         T* c) {
  const int64_t total = m * n;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t i = idx / n, j = idx - i * n;
    T* out = c + i * ldc + j;
    T v = accumulate ? *out : T(0);
    for (int z = 0; z < splits; ++z) v += partial[static_cast<int64_t>(z) * total + idx];
    *out = v;
  }
}

// bias[r][g * H + u] = sums[source[r][g] * H + u] (0 where a row has no source).
template <typename T>
__global__ void __launch_bounds__(kThreads) BiasGradKernel(const T* sums, int64_t hidden, const SlotMap map, T* bias) {
  const int64_t width = map.gates * hidden;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; idx < map.rows * width;
       idx += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t r = idx / width, j = idx - r * width;
    const int64_t g = j / hidden, u = j - g * hidden;
    // Selected with constant indices: indexing the parameter's array with run-time ones would copy it to local
    // memory.
    int source = -1;
#pragma unroll
    for (int rr = 0; rr < 2; ++rr)
#pragma unroll
      for (int gg = 0; gg < 4; ++gg)
        if (rr == r && gg == g) source = map.source[rr][gg];
    bias[idx] = source >= 0 ? sums[source * hidden + u] : T(0);
  }
}

unsigned BlocksFor(int64_t total) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((total + kThreads - 1) / kThreads, 4096)));
}

// Block (x, y): columns [32 x, 32 x + 32), rows [y * rows_per_split, ...) summed by 8 row lanes, then added in order.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    ColumnSumKernel(const T* x, int32_t m, int32_t n, int32_t rows_per_split, T* partial, T* out) {
  constexpr int kLanes = kThreads / kColumnSumCols;
  __shared__ T sums[kLanes][kColumnSumCols];
  const int cx = threadIdx.x % kColumnSumCols, ry = threadIdx.x / kColumnSumCols;
  const int col = blockIdx.x * kColumnSumCols + cx;
  const int r_begin = blockIdx.y * rows_per_split;
  const int r_end = min(m, r_begin + rows_per_split);
  T s = T(0);
  if (col < n)
    for (int r = r_begin + ry; r < r_end; r += kLanes) s += x[static_cast<int64_t>(r) * n + col];
  sums[ry][cx] = s;
  __syncthreads();
  if (ry == 0 && col < n) {
    T total = T(0);
    for (int lane = 0; lane < kLanes; ++lane) total += sums[lane][cx];
    if (gridDim.y > 1) {
      partial[static_cast<int64_t>(blockIdx.y) * n + col] = total;
    } else {
      out[col] = total;
    }
  }
}

constexpr int kPointersPerLaunch = 64;

struct PointerChunk {
  const void* pointers[kPointersPerLaunch];
  int32_t count;
};

__global__ void WritePointerTableKernel(const PointerChunk chunk, const void** table) {
  if (static_cast<int>(threadIdx.x) < chunk.count) table[threadIdx.x] = chunk.pointers[threadIdx.x];
}

CudaStatus LaunchError(cudaError_t err, const std::string& what) {
  if (err != cudaSuccess) return CudaStatus::Error(CudaErrorText(("cudaLaunchKernel(" + what + ")").c_str(), err));
  return CudaStatus::Ok();
}

}  // namespace

template <typename T>
CudaStatus LaunchGemm(GemmLayout layout, const GemmParams<T>& p, int64_t splits, cudaStream_t stream) {
  if (p.m <= 0 || p.n <= 0) return CudaStatus::Ok();
  if (p.c_scale != nullptr && splits > 1)  // the partial sums are added after the kernel, unscaled
    return CudaStatus::Error("matrix-product kernel: an output scale needs an unsplit reduction");
  const dim3 grid(static_cast<unsigned>((p.m + kBM - 1) / kBM), static_cast<unsigned>((p.n + kBN - 1) / kBN),
                  static_cast<unsigned>(std::max<int64_t>(1, splits)));
  GemmParams<T> params = p;
  void* args[] = {&params};
  cudaError_t err = cudaErrorInvalidValue;
  switch (layout) {
    case GemmLayout::kNN: err = cudaLaunchKernel(GemmKernel<T, false, false>, grid, dim3(kThreads), args, 0, stream); break;
    case GemmLayout::kNT: err = cudaLaunchKernel(GemmKernel<T, false, true>, grid, dim3(kThreads), args, 0, stream); break;
    case GemmLayout::kTN: err = cudaLaunchKernel(GemmKernel<T, true, false>, grid, dim3(kThreads), args, 0, stream); break;
  }
  return LaunchError(err, "matrix-product kernel (" + std::to_string(p.m) + " x " + std::to_string(p.n) + " x " +
                         std::to_string(p.k) + ", " + std::to_string(splits) + " splits)");
}

template <typename T>
CudaStatus LaunchReducePartials(const T* partial, int64_t splits, int64_t m, int64_t n, int64_t ldc, bool accumulate,
                                T* c, cudaStream_t stream) {
  if (m <= 0 || n <= 0) return CudaStatus::Ok();
  int32_t splits32 = static_cast<int32_t>(splits), accumulate32 = accumulate ? 1 : 0;
  void* args[] = {&partial, &splits32, &m, &n, &ldc, &accumulate32, &c};
  return LaunchError(
      cudaLaunchKernel(ReducePartialsKernel<T>, dim3(BlocksFor(m * n)), dim3(kThreads), args, 0, stream),
      "split-reduction sum kernel");
}

template <typename T>
CudaStatus LaunchBiasGrad(const T* sums, int64_t hidden, const SlotMap& map, T* bias, cudaStream_t stream) {
  SlotMap m = map;
  void* args[] = {&sums, &hidden, &m, &bias};
  return LaunchError(cudaLaunchKernel(BiasGradKernel<T>, dim3(BlocksFor(map.rows * map.gates * hidden)),
                                      dim3(kThreads), args, 0, stream),
                     "bias-gradient kernel");
}

template <typename T>
CudaStatus LaunchColumnSum(const T* x, int64_t m, int64_t n, const ReductionSplit& split, T* partial, T* out,
                           cudaStream_t stream) {
  if (n <= 0) return CudaStatus::Ok();
  if (m <= 0) {
    const cudaError_t err = cudaMemsetAsync(out, 0, sizeof(T) * n, stream);
    if (err != cudaSuccess) return CudaStatus::Error(CudaErrorText("cudaMemsetAsync(column sums of no rows)", err));
    return CudaStatus::Ok();
  }
  const dim3 grid(static_cast<unsigned>((n + kColumnSumCols - 1) / kColumnSumCols),
                  static_cast<unsigned>(split.splits));
  int32_t m32 = static_cast<int32_t>(m), n32 = static_cast<int32_t>(n);
  int32_t rows32 = static_cast<int32_t>(split.k_per_split);
  void* args[] = {&x, &m32, &n32, &rows32, &partial, &out};
  DEEPRNN_RETURN_IF_NOT_OK(
      LaunchError(cudaLaunchKernel(ColumnSumKernel<T>, grid, dim3(kThreads), args, 0, stream), "column-sum kernel"));
  if (split.splits > 1) return LaunchReducePartials(partial, split.splits, 1, n, n, false, out, stream);
  return CudaStatus::Ok();
}

CudaStatus LaunchWritePointerTable(const void* const* host_pointers, int64_t count, const void** table,
                                   cudaStream_t stream) {
  for (int64_t begin = 0; begin < count; begin += kPointersPerLaunch) {
    PointerChunk chunk{};
    chunk.count = static_cast<int32_t>(std::min<int64_t>(kPointersPerLaunch, count - begin));
    for (int i = 0; i < chunk.count; ++i) chunk.pointers[i] = host_pointers[begin + i];
    const void** dst = table + begin;
    void* args[] = {&chunk, &dst};
    DEEPRNN_RETURN_IF_NOT_OK(LaunchError(
        cudaLaunchKernel(WritePointerTableKernel, dim3(1), dim3(kPointersPerLaunch), args, 0, stream),
        "pointer-table kernel"));
  }
  return CudaStatus::Ok();
}

#define DEEPRNN_INSTANTIATE_GEMM(T)                                                                              \
  template CudaStatus LaunchGemm<T>(GemmLayout, const GemmParams<T>&, int64_t, cudaStream_t);                   \
  template CudaStatus LaunchReducePartials<T>(const T*, int64_t, int64_t, int64_t, int64_t, bool, T*,            \
                                              cudaStream_t);                                                    \
  template CudaStatus LaunchColumnSum<T>(const T*, int64_t, int64_t, const ReductionSplit&, T*, T*, cudaStream_t); \
  template CudaStatus LaunchBiasGrad<T>(const T*, int64_t, const SlotMap&, T*, cudaStream_t);
DEEPRNN_INSTANTIATE_GEMM(float)
DEEPRNN_INSTANTIATE_GEMM(double)
#undef DEEPRNN_INSTANTIATE_GEMM

}  // namespace cuda
}  // namespace deeprnn
