// Run-time choice of the GRU's elementwise passes: the same instruction set as the matrix kernels (cpu/gemm.cc).
#include "cpu/gru_pointwise.h"

#include <cstring>

#include "cpu/gemm.h"

namespace deeprnn {
namespace cpu {

const GruKernelTable<float>& GruKernelTableAvx2(float);
const GruKernelTable<double>& GruKernelTableAvx2(double);
const GruKernelTable<float>& GruKernelTableGeneric(float);
const GruKernelTable<double>& GruKernelTableGeneric(double);

template <typename T>
const GruKernelTable<T>& GruKernels() {
  static const bool avx2 = std::strcmp(KernelIsa(), "avx2+fma") == 0;
  return avx2 ? GruKernelTableAvx2(T()) : GruKernelTableGeneric(T());
}
template const GruKernelTable<float>& GruKernels<float>();
template const GruKernelTable<double>& GruKernels<double>();

}  // namespace cpu
}  // namespace deeprnn
