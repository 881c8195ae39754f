// The two small kernels the GRU's backward pass adds to the tanh RNN's matrix products (gemm_kernels.cu): the sum of
// split-reduction partials into a column block of a weight gradient (a strided output), and the scatter of
// grad_gates' column sums into the bias gradient's [2, 3H] layout.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "cuda/gru_kernel_params.cuh"
#include "cuda/kernel_params.h"

namespace deeprnn {
namespace cuda {

namespace {

constexpr int kThreads = 256;

// Element (i, j) of the m x n output at c[i * ldc + j], summed over the splits in order (deterministic).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    ReducePartialsStridedKernel(const T* partial, int32_t splits, int64_t m, int64_t n, int64_t ldc,
                                int32_t accumulate, T* c) {
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

// grad_bias[0] = (s_dz, s_dr, s_dn), grad_bias[1] = (s_dz, s_dr, s_dnr) with s = [s_dn | s_dz | s_dr | s_dnr].
template <typename T>
__global__ void __launch_bounds__(kThreads) GruBiasGradKernel(const T* sums, int64_t hidden, T* grad_bias) {
  const int64_t three_h = 3 * hidden;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; j < three_h;
       j += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t gate = j / hidden, unit = j - gate * hidden;
    const T input_side = gate == 2 ? sums[unit] : sums[j + hidden];                     // dn | dz, dr
    const T recurrent_side = gate == 2 ? sums[3 * hidden + unit] : sums[j + hidden];    // dn r | dz, dr
    grad_bias[j] = input_side;
    grad_bias[three_h + j] = recurrent_side;
  }
}

unsigned BlocksFor(int64_t total) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((total + kThreads - 1) / kThreads, 4096)));
}

}  // namespace

template <typename T>
CudaStatus LaunchReducePartialsStrided(const T* partial, int64_t splits, int64_t m, int64_t n, int64_t ldc,
                                       bool accumulate, T* c, cudaStream_t stream) {
  if (m <= 0 || n <= 0) return CudaStatus::Ok();
  int32_t splits32 = static_cast<int32_t>(splits), accumulate32 = accumulate ? 1 : 0;
  void* args[] = {&partial, &splits32, &m, &n, &ldc, &accumulate32, &c};
  const cudaError_t err = cudaLaunchKernel(ReducePartialsStridedKernel<T>, dim3(BlocksFor(m * n)), dim3(kThreads),
                                           args, 0, stream);
  if (err != cudaSuccess)
    return CudaStatus::Error(CudaErrorText("cudaLaunchKernel(strided split-reduction sum kernel)", err));
  return CudaStatus::Ok();
}

template <typename T>
CudaStatus LaunchGruBiasGrad(const T* sums, int64_t hidden, T* grad_bias, cudaStream_t stream) {
  void* args[] = {&sums, &hidden, &grad_bias};
  const cudaError_t err =
      cudaLaunchKernel(GruBiasGradKernel<T>, dim3(BlocksFor(3 * hidden)), dim3(kThreads), args, 0, stream);
  if (err != cudaSuccess) return CudaStatus::Error(CudaErrorText("cudaLaunchKernel(GRU bias-gradient kernel)", err));
  return CudaStatus::Ok();
}

#define DEEPRNN_INSTANTIATE_GRU_REDUCTIONS(T)                                                                   \
  template CudaStatus LaunchReducePartialsStrided<T>(const T*, int64_t, int64_t, int64_t, int64_t, bool, T*,   \
                                                     cudaStream_t);                                            \
  template CudaStatus LaunchGruBiasGrad<T>(const T*, int64_t, T*, cudaStream_t);
DEEPRNN_INSTANTIATE_GRU_REDUCTIONS(float)
DEEPRNN_INSTANTIATE_GRU_REDUCTIONS(double)
#undef DEEPRNN_INSTANTIATE_GRU_REDUCTIONS

}  // namespace cuda
}  // namespace deeprnn
