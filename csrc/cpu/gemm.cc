// Packing of right operands and the run-time choice of instruction set.
#include "cpu/gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace deeprnn {
namespace cpu {

const CpuKernelTable<float>& KernelTableAvx2(float);
const CpuKernelTable<double>& KernelTableAvx2(double);
const CpuKernelTable<float>& KernelTableGeneric(float);
const CpuKernelTable<double>& KernelTableGeneric(double);

namespace {
bool HasAvx2Fma() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool has = [] {
    const char* forced = std::getenv("DEEPRNN_FAST_CPU_ISA");
    if (forced != nullptr && std::strcmp(forced, "generic") == 0) return false;
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return has;
#else
  return false;
#endif
}
}  // namespace

template <typename T>
const CpuKernelTable<T>& Kernels() {
  return HasAvx2Fma() ? KernelTableAvx2(T()) : KernelTableGeneric(T());
}
template const CpuKernelTable<float>& Kernels<float>();
template const CpuKernelTable<double>& Kernels<double>();

const char* KernelIsa() { return HasAvx2Fma() ? "avx2+fma" : "generic"; }

}  // namespace cpu

const char* CpuKernelIsa() { return cpu::KernelIsa(); }

namespace cpu {

template <typename T>
PackedMatrix<T>::PackedMatrix(const T* b, int64_t ldb, bool transpose, int64_t rows, int64_t cols)
    : k_(rows), n_(cols), panels_(NumPanels<T>(cols)), storage_(panels_ * rows * kNr<T>, T(0)) {
  for (int64_t p = 0; p < panels_; ++p) {
    T* dst = storage_.data() + p * rows * kNr<T>;
    const int64_t j0 = p * kNr<T>;
    const int64_t width = std::min<int64_t>(kNr<T>, cols - j0);
    for (int64_t k = 0; k < rows; ++k)
      for (int64_t j = 0; j < width; ++j)
        dst[k * kNr<T> + j] = transpose ? b[(j0 + j) * ldb + k] : b[k * ldb + j0 + j];
  }
}
template class PackedMatrix<float>;
template class PackedMatrix<double>;

}  // namespace cpu
}  // namespace deeprnn
