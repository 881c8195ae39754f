// Overflow-aware size arithmetic and message formatting shared by the host-only planner (engine/plan/*.cc).
#ifndef DEEPRNN_ENGINE_PLAN_ARITHMETIC_H_
#define DEEPRNN_ENGINE_PLAN_ARITHMETIC_H_

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>

namespace deeprnn {
namespace plan {

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
// Every workspace region starts on this boundary.
constexpr int64_t kAlign = 256;

inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t RoundUp(int64_t a, int64_t b) { return CeilDiv(a, b) * b; }
inline std::string Str(int64_t v) { return std::to_string(v); }

// a * b, or -1 when the product overflows int64_t (both arguments non-negative).
inline int64_t MulOrNeg(int64_t a, int64_t b) {
  if (a == 0 || b == 0) return 0;
  if (a < 0 || b < 0 || a > std::numeric_limits<int64_t>::max() / b) return -1;
  return a * b;
}

// The product of all values, or -1 on overflow.
inline int64_t Product(std::initializer_list<int64_t> values) {
  int64_t p = 1;
  for (int64_t v : values) {
    p = MulOrNeg(p, v);
    if (p < 0) return -1;
  }
  return p;
}

}  // namespace plan
}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_PLAN_ARITHMETIC_H_
