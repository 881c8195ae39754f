// The hot loops compiled for the baseline instruction set, for processors without AVX2 + FMA.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/simd_kernels.h"

namespace deeprnn {
namespace cpu {

struct IsaGeneric {};

const CpuKernelTable<float>& KernelTableGeneric(float) { return KernelTableFor<float, IsaGeneric>(); }
const CpuKernelTable<double>& KernelTableGeneric(double) { return KernelTableFor<double, IsaGeneric>(); }

}  // namespace cpu
}  // namespace deeprnn
