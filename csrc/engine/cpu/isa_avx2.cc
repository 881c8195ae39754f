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
  // n in [1, lanes): the first n lanes through a masked load, which reads (and faults on) nothing past p + n. The
  // copy through the stack that it replaces stalls on every call (a wide load of narrow stores cannot be forwarded),
  // and partial rows are common here: the book's 28 input features are 3.5 vectors (the copy was hot in a profile of
  // layer 0's dropped inputs; the step's time did not move measurably). Partial stores stay copies: a spilled vector
  // read back narrow forwards.
  template <typename V, typename T>
  static V LoadPartial(const T* p, int n) {
    if constexpr (sizeof(T) == 4) {
      const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      return reinterpret_cast<V>(_mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lanes)));
    } else {
      const __m256i lanes = _mm256_setr_epi64x(0, 1, 2, 3);
      return reinterpret_cast<V>(_mm256_maskload_pd(p, _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), lanes)));
    }
  }
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
