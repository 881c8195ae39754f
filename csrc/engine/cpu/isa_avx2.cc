// The CPU engine for AVX2 + FMA: 32-byte vectors and a 6-row register tile (12 accumulators of the 16 registers).
#include "engine/cpu/engine_deps.h"

#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#endif

#define DEEPRNN_ENGINE_CPU_ISA_TRANSLATION_UNIT
#include "engine/cpu/copied_partial_vectors.h"

namespace deeprnn {
namespace cpu {

struct IsaAvx2 : CopiedPartialVectors<IsaAvx2> {
  static constexpr const char* kName = "avx2";
  static constexpr int kVectorBytes = 32;
  static constexpr int kMr = 6;
  static constexpr bool kStreamingStores = true;
  // p must be 32-byte aligned.
  template <typename V, typename T>
  static void Stream(T* p, V v) {
    if constexpr (sizeof(T) == 4)
      _mm256_stream_ps(p, reinterpret_cast<__m256>(v));
    else
      _mm256_stream_pd(p, reinterpret_cast<__m256d>(v));
  }
  static void Fence() { _mm_sfence(); }
};

}  // namespace cpu
}  // namespace deeprnn

#include "engine/cpu/instantiate.h"

DEEPRNN_DEFINE_ISA_ENTRY_POINTS(Avx2, IsaAvx2)
