// Overflow-aware size arithmetic and message formatting shared by the host-only planners (launch_plan.cc,
// gru_launch_plan.cc). Internal to csrc/cuda.
#ifndef DEEPRNN_CUDA_PLAN_ARITHMETIC_H_
#define DEEPRNN_CUDA_PLAN_ARITHMETIC_H_

#include <cstdint>
#include <limits>
#include <string>

#include "deeprnn/launch_plan.h"

namespace deeprnn {
namespace plan {

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
// The matrix-product kernels put output column tiles on gridDim.y (at most 65535 tiles of 64 columns).
constexpr int64_t kMaxColumns = int64_t{65535} * kGemmTile;
// Every workspace region starts on this boundary.
constexpr int64_t kAlign = 256;

inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t RoundUp(int64_t a, int64_t b) { return CeilDiv(a, b) * b; }
inline std::string Str(int64_t v) { return std::to_string(v); }

// a * b, or -1 when the product overflows int64_t (both arguments non-negative).
inline int64_t MulOrNeg(int64_t a, int64_t b) {
  if (a == 0 || b == 0) return 0;
  if (a > std::numeric_limits<int64_t>::max() / b) return -1;
  return a * b;
}

}  // namespace plan
}  // namespace deeprnn

#endif  // DEEPRNN_CUDA_PLAN_ARITHMETIC_H_
