// The GRU's elementwise passes compiled for the baseline instruction set.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/gru_pointwise_simd.h"

namespace deeprnn {
namespace cpu {

struct GruIsaGeneric {};

const GruKernelTable<float>& GruKernelTableGeneric(float) { return GruKernelTableFor<float, GruIsaGeneric>(); }
const GruKernelTable<double>& GruKernelTableGeneric(double) { return GruKernelTableFor<double, GruIsaGeneric>(); }

}  // namespace cpu
}  // namespace deeprnn
