// The CPU engine for AVX-512 (F, VL, BW, DQ): 64-byte vectors, a 12-row register tile (24 accumulators of the 32
// registers) and masked loads and stores for every partial vector.
#include "engine/cpu/engine_deps.h"

#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
#endif

#define DEEPRNN_ENGINE_CPU_ISA_TRANSLATION_UNIT

namespace deeprnn {
namespace cpu {

struct IsaAvx512 {
  static constexpr const char* kName = "avx512";
  static constexpr int kVectorBytes = 64;
  static constexpr int kMr = 12;
  static constexpr bool kStreamingStores = true;
  // n in [1, lanes): the mask of the first n lanes.
  template <typename V, typename T>
  static V LoadPartial(const T* p, int n) {
    if constexpr (sizeof(T) == 4)
      return reinterpret_cast<V>(_mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1), p));
    else
      return reinterpret_cast<V>(_mm512_maskz_loadu_pd(static_cast<__mmask8>((1u << n) - 1), p));
  }
  template <typename V, typename T>
  static void StorePartial(T* p, int n, V v) {
    if constexpr (sizeof(T) == 4)
      _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1), reinterpret_cast<__m512>(v));
    else
      _mm512_mask_storeu_pd(p, static_cast<__mmask8>((1u << n) - 1), reinterpret_cast<__m512d>(v));
  }
  // p must be 64-byte aligned.
  template <typename V, typename T>
  static void Stream(T* p, V v) {
    if constexpr (sizeof(T) == 4)
      _mm512_stream_ps(p, reinterpret_cast<__m512>(v));
    else
      _mm512_stream_pd(p, reinterpret_cast<__m512d>(v));
  }
  static void Fence() { _mm_sfence(); }
};

}  // namespace cpu
}  // namespace deeprnn

#include "engine/cpu/instantiate.h"

DEEPRNN_DEFINE_ISA_ENTRY_POINTS(Avx512, IsaAvx512)
