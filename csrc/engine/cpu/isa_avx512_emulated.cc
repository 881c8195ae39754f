// The AVX-512 engine's code - 64-byte vectors, the 12-row register tile, partial vectors through the same masked
// paths - compiled for AVX2 + FMA, where GCC runs each 64-byte vector as two 32-byte halves and the masked loads and
// stores become copies. Not for speed: it lets the tests check the AVX-512 engine's tiles, panels and tails on
// processors without AVX-512 (DEEPRNN_FAST_CPU_ISA=avx512emu); only the few intrinsics of IsaAvx512 differ.
#include "engine/cpu/engine_deps.h"

#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#endif

#define DEEPRNN_ENGINE_CPU_ISA_TRANSLATION_UNIT
#include "engine/cpu/copied_partial_vectors.h"

namespace deeprnn {
namespace cpu {

struct IsaAvx512Emulated : CopiedPartialVectors<IsaAvx512Emulated> {
  static constexpr const char* kName = "avx512emu";
  static constexpr int kVectorBytes = 64;
  static constexpr int kMr = 12;
  static constexpr bool kStreamingStores = true;
};

}  // namespace cpu
}  // namespace deeprnn

#include "engine/cpu/instantiate.h"

DEEPRNN_DEFINE_ISA_ENTRY_POINTS(Avx512Emulated, IsaAvx512Emulated)
