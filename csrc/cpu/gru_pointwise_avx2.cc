// The GRU's elementwise passes compiled for AVX2 + FMA. Standard headers come before the target pragma (see
// simd_kernels.h).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#endif

#include "cpu/gru_pointwise_simd.h"

namespace deeprnn {
namespace cpu {

struct GruIsaAvx2 {};

const GruKernelTable<float>& GruKernelTableAvx2(float) { return GruKernelTableFor<float, GruIsaAvx2>(); }
const GruKernelTable<double>& GruKernelTableAvx2(double) { return GruKernelTableFor<double, GruIsaAvx2>(); }

}  // namespace cpu
}  // namespace deeprnn
