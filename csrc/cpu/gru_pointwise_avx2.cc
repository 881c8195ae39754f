// The GRU's elementwise passes compiled for AVX2 + FMA. Standard headers come before the target pragma (see
// simd_kernels.h).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include <immintrin.h>

#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#endif

#include "cpu/gru_pointwise_simd.h"

namespace deeprnn {
namespace cpu {

struct GruIsaAvx2 {
  static constexpr bool kStreamingStores = true;
  // p must be 32-byte aligned.
  static void Stream(float* p, VecOf<float>::type v) { _mm256_stream_ps(p, reinterpret_cast<__m256>(v)); }
  static void Stream(double* p, VecOf<double>::type v) { _mm256_stream_pd(p, reinterpret_cast<__m256d>(v)); }
  static void Fence() { _mm_sfence(); }
};

const GruKernelTable<float>& GruKernelTableAvx2(float) { return GruKernelTableFor<float, GruIsaAvx2>(); }
const GruKernelTable<double>& GruKernelTableAvx2(double) { return GruKernelTableFor<double, GruIsaAvx2>(); }

}  // namespace cpu
}  // namespace deeprnn
