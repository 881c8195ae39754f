// The device functions every cell's CUDA maths and the engine's kernels use: nonlinearities, FMA per dtype, and the
// block's dynamic shared memory.
#ifndef DEEPRNN_ENGINE_CUDA_DEVICE_MATH_CUH_
#define DEEPRNN_ENGINE_CUDA_DEVICE_MATH_CUH_

#include <cuda_runtime.h>

namespace deeprnn {
namespace cuda {

__device__ __forceinline__ float TanhOf(float x) { return tanhf(x); }
__device__ __forceinline__ double TanhOf(double x) { return tanh(x); }

__device__ __forceinline__ float SigmoidOf(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ double SigmoidOf(double x) { return 1.0 / (1.0 + exp(-x)); }

__device__ __forceinline__ float Fma(float a, float b, float c) { return fmaf(a, b, c); }
__device__ __forceinline__ double Fma(double a, double b, double c) { return fma(a, b, c); }

// The block's dynamic shared memory, 128-byte aligned (WMMA operands need 32 bytes). (A function rather than an extern array in the kernel, so that the CPU
// emulation used by the tests, tests/cuda_emulation/, can supply it; CUDA builds never define
// DEEPRNN_CUDA_EMULATION.)
__device__ __forceinline__ unsigned char* DynamicSharedMemory() {
#if defined(DEEPRNN_CUDA_EMULATION)
  return emulation::BlockSharedMemory();
#else
  extern __shared__ __align__(128) unsigned char smem_raw[];
  return smem_raw;
#endif
}

}  // namespace cuda
}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_CUDA_DEVICE_MATH_CUH_
