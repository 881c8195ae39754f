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

struct GruIsaGeneric {
  static constexpr bool kStreamingStores = false;
  template <typename T, typename V>
  static void Stream(T*, V) {}
  static void Fence() {}
};

const GruKernelTable<float>& GruKernelTableGeneric(float) { return GruKernelTableFor<float, GruIsaGeneric>(); }
const GruKernelTable<double>& GruKernelTableGeneric(double) { return GruKernelTableFor<double, GruIsaGeneric>(); }

}  // namespace cpu
}  // namespace deeprnn
