// The hot loops compiled for AVX2 + FMA. Standard headers come before the target pragma (see simd_kernels.h).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#endif

#include "cpu/simd_kernels.h"

namespace deeprnn {
namespace cpu {

struct IsaAvx2 {};

const CpuKernelTable<float>& KernelTableAvx2(float) { return KernelTableFor<float, IsaAvx2>(); }
const CpuKernelTable<double>& KernelTableAvx2(double) { return KernelTableFor<double, IsaAvx2>(); }

}  // namespace cpu
}  // namespace deeprnn
