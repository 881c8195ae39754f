// Token inputs on CUDA: layer 0's projection gathered from the tokens' rows of kernels[0], and its weight gradient
// summed per token without atomics on floating-point values (so deterministic): the rows are first sorted by token
// (a stable counting sort, in one block), then every (token, column) sums its rows in order. Ids outside
// [0, vocabulary) are never used as an index: they read a zero row, their gradient rows are dropped, and they are
// counted into the caller's device counter (deeprnn/stacked_cuda.h).
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "engine/cuda/kernel_params.h"

namespace deeprnn {
namespace cuda {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ bool ValidToken(int32_t id, int64_t vocabulary) { return id >= 0 && id < vocabulary; }

// out[r * ld + c] = kernel[id * cols + c] * drop + bias[c], r = t * B + b, id = tokens[b * T + t]; a zero row for a
// bad id.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    TokenGatherKernel(const int32_t* tokens, int64_t batch, int64_t time, const T* kernel, int64_t vocabulary,
                      int64_t cols, const T* bias, const TokenDropout<T> dropout, T* out, int64_t ld,
                      int32_t* invalid) {
  const int64_t total = batch * time * cols;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t r = idx / cols, c = idx - r * cols;
    const int64_t t = r / batch, b = r - t * batch;
    const int32_t id = tokens[b * time + t];
    const bool valid = ValidToken(id, vocabulary);
    if (!valid && c == 0 && invalid != nullptr) atomicAdd(invalid, 1);
    T v = valid ? kernel[static_cast<int64_t>(id) * cols + c] : T(0);
    if (valid && dropout.drop != nullptr) {
      const int64_t part = dropout.parts > 1 ? c / dropout.hidden : 0;
      v *= dropout.drop[(part * batch + b) * vocabulary + id];
    }
    out[r * ld + c] = v + bias[c];
  }
}

// One block. starts[v + 1] counts the rows of token v, then becomes the prefix sums; rows are placed in chunks of
// kThreads, each at cursor[v] + its rank among the chunk's earlier rows of the same token (stable: rows of one token
// stay in increasing order), and the last row of a token in a chunk moves that token's cursor on.
__global__ void __launch_bounds__(kThreads)
    TokenSortKernel(const int32_t* tokens, int64_t batch, int64_t time, int64_t vocabulary, int32_t* starts,
                    int32_t* cursor, int32_t* rows, int32_t* invalid) {
  __shared__ int32_t chunk[kThreads];
  __shared__ int32_t carry;
  const int tid = threadIdx.x;
  const int64_t n = batch * time;
  for (int64_t v = tid; v <= vocabulary; v += kThreads) starts[v] = 0;
  __syncthreads();
  for (int64_t r = tid; r < n; r += kThreads) {
    const int64_t t = r / batch, b = r - t * batch;
    const int32_t id = tokens[b * time + t];
    if (ValidToken(id, vocabulary)) {
      atomicAdd(starts + id + 1, 1);
    } else if (invalid != nullptr) {
      atomicAdd(invalid, 1);
    }
  }
  __syncthreads();
  // Inclusive prefix sums of starts[1..V], kThreads values at a time (Hillis-Steele in shared memory).
  if (tid == 0) carry = 0;
  __syncthreads();
  for (int64_t base = 1; base <= vocabulary; base += kThreads) {
    const int64_t v = base + tid;
    chunk[tid] = v <= vocabulary ? starts[v] : 0;
    __syncthreads();
    for (int offset = 1; offset < kThreads; offset *= 2) {
      const int32_t add = tid >= offset ? chunk[tid - offset] : 0;
      __syncthreads();
      chunk[tid] += add;
      __syncthreads();
    }
    if (v <= vocabulary) starts[v] = carry + chunk[tid];
    __syncthreads();
    if (tid == kThreads - 1) carry += chunk[tid];
    __syncthreads();
  }
  for (int64_t v = tid; v < vocabulary; v += kThreads) cursor[v] = starts[v];
  __syncthreads();
  for (int64_t base = 0; base < n; base += kThreads) {
    const int64_t r = base + tid;
    int32_t id = -1;
    if (r < n) {
      const int64_t t = r / batch, b = r - t * batch;
      id = tokens[b * time + t];
      if (!ValidToken(id, vocabulary)) id = -1;
    }
    chunk[tid] = id;
    __syncthreads();
    int rank = 0;
    bool last = id >= 0;
    for (int j = 0; j < kThreads; ++j) {
      if (chunk[j] != id) continue;
      if (j < tid) ++rank;
      if (j > tid) last = false;
    }
    if (id >= 0) rows[cursor[id] + rank] = static_cast<int32_t>(r);
    __syncthreads();  // every row of the chunk has read the cursors
    if (last) cursor[id] += rank + 1;
    __syncthreads();
  }
}

// Block (x, y): columns [32 x, 32 x + 32) of tokens 8 y .. 8 y + 7 (and every 8 gridDim.y further on); each
// thread sums its token's rows in order.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    TokenScatterKernel(const int32_t* starts, const int32_t* rows, int64_t vocabulary, int64_t batch, const T* grad,
                       int64_t ld, int64_t hidden, const SlotMap map, const TokenDropout<T> dropout,
                       T* grad_kernel) {
  const int64_t width = map.gates * hidden;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x % 32;
  if (c >= width) return;
  const int64_t g = c / hidden, u = c - g * hidden;
  int source = 0;  // selected with constant indices: run-time ones would copy the parameter to local memory
#pragma unroll
  for (int gg = 0; gg < 4; ++gg)
    if (gg == g) source = map.source[0][gg];
  const T* column = grad + static_cast<int64_t>(source) * hidden + u;
  // Row b's dropout of this gate's copy of the one-hot input: drop[b * V + v].
  const T* drop = dropout.drop == nullptr ? nullptr
                                          : dropout.drop + (dropout.parts > 1 ? g : 0) * batch * vocabulary;
  for (int64_t v = static_cast<int64_t>(blockIdx.y) * 8 + threadIdx.x / 32; v < vocabulary;
       v += static_cast<int64_t>(gridDim.y) * 8) {
    T sum = T(0);
    for (int32_t i = starts[v]; i < starts[v + 1]; ++i) {
      const T value = column[static_cast<int64_t>(rows[i]) * ld];
      sum += drop == nullptr ? value : value * drop[(rows[i] % batch) * vocabulary + v];
    }
    grad_kernel[v * width + c] = sum;
  }
}

unsigned BlocksFor(int64_t total) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((total + kThreads - 1) / kThreads, 4096)));
}

CudaStatus LaunchError(cudaError_t err, const char* what) {
  if (err != cudaSuccess) return CudaStatus::Error(CudaErrorText(what, err));
  return CudaStatus::Ok();
}

}  // namespace

template <typename T>
CudaStatus LaunchTokenGather(const int32_t* tokens, int64_t batch, int64_t time, const T* kernel, int64_t vocabulary,
                             int64_t cols, const T* bias, const TokenDropout<T>& dropout, T* out, int64_t ld,
                             int32_t* invalid, cudaStream_t stream) {
  if (batch * time * cols <= 0) return CudaStatus::Ok();
  TokenDropout<T> drop = dropout;
  void* args[] = {&tokens, &batch, &time, &kernel, &vocabulary, &cols, &bias, &drop, &out, &ld, &invalid};
  // A copy: eight elements per thread are enough to keep the memory busy, with fewer blocks to schedule.
  return LaunchError(cudaLaunchKernel(TokenGatherKernel<T>, dim3(BlocksFor((batch * time * cols + 7) / 8)),
                                      dim3(kThreads), args, 0, stream),
                     "cudaLaunchKernel(token gather kernel)");
}

CudaStatus LaunchTokenSort(const int32_t* tokens, int64_t batch, int64_t time, int64_t vocabulary, int32_t* starts,
                           int32_t* cursor, int32_t* rows, int32_t* invalid, cudaStream_t stream) {
  void* args[] = {&tokens, &batch, &time, &vocabulary, &starts, &cursor, &rows, &invalid};
  return LaunchError(cudaLaunchKernel(TokenSortKernel, dim3(1), dim3(kThreads), args, 0, stream),
                     "cudaLaunchKernel(token sort kernel)");
}

template <typename T>
CudaStatus LaunchTokenScatter(const int32_t* starts, const int32_t* rows, int64_t vocabulary, int64_t batch,
                              const T* grad, int64_t ld, int64_t hidden, const SlotMap& map,
                              const TokenDropout<T>& dropout, T* grad_kernel, cudaStream_t stream) {
  const int64_t width = map.gates * hidden;
  const int64_t token_blocks = std::min<int64_t>((vocabulary + 7) / 8, 65535);
  SlotMap m = map;
  TokenDropout<T> drop = dropout;
  void* args[] = {&starts, &rows, &vocabulary, &batch, &grad, &ld, &hidden, &m, &drop, &grad_kernel};
  const dim3 grid(static_cast<unsigned>((width + 31) / 32), static_cast<unsigned>(token_blocks));
  return LaunchError(cudaLaunchKernel(TokenScatterKernel<T>, grid, dim3(kThreads), args, 0, stream),
                     "cudaLaunchKernel(token scatter kernel)");
}

#define DEEPRNN_INSTANTIATE_TOKEN_KERNELS(T)                                                                    \
  template CudaStatus LaunchTokenGather<T>(const int32_t*, int64_t, int64_t, const T*, int64_t, int64_t,        \
                                           const T*, const TokenDropout<T>&, T*, int64_t, int32_t*,             \
                                           cudaStream_t);                                                       \
  template CudaStatus LaunchTokenScatter<T>(const int32_t*, const int32_t*, int64_t, int64_t, const T*,         \
                                            int64_t, int64_t, const SlotMap&, const TokenDropout<T>&, T*,       \
                                            cudaStream_t);
DEEPRNN_INSTANTIATE_TOKEN_KERNELS(float)
DEEPRNN_INSTANTIATE_TOKEN_KERNELS(double)
#undef DEEPRNN_INSTANTIATE_TOKEN_KERNELS

}  // namespace cuda
}  // namespace deeprnn
