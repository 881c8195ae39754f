// The CPU engine for the baseline instruction set (x86-64's SSE2, or any other target): 16-byte vectors and a 4-row
// register tile, for processors without AVX2 + FMA.
#include "engine/cpu/engine_deps.h"

#define DEEPRNN_ENGINE_CPU_ISA_TRANSLATION_UNIT

namespace deeprnn {
namespace cpu {

struct IsaGeneric {
  static constexpr const char* kName = "generic";
  static constexpr int kVectorBytes = 16;
  static constexpr int kMr = 4;
  static constexpr bool kStreamingStores = false;
  template <typename V, typename T>
  static V LoadPartial(const T* p, int n) {
    V v = {};
    std::memcpy(&v, p, sizeof(T) * n);
    return v;
  }
  template <typename V, typename T>
  static void StorePartial(T* p, int n, V v) {
    std::memcpy(p, &v, sizeof(T) * n);
  }
  template <typename V, typename T>
  static void Stream(T* p, V v) {
    std::memcpy(p, &v, sizeof(V));
  }
  static void Fence() {}
};

}  // namespace cpu
}  // namespace deeprnn

#include "engine/cpu/instantiate.h"

DEEPRNN_DEFINE_ISA_ENTRY_POINTS(Generic, IsaGeneric)
