// The CPU engine for the baseline instruction set (x86-64's SSE2, or any other target): 16-byte vectors and a 4-row
// register tile, for processors without AVX2 + FMA.
#include "engine/cpu/engine_deps.h"

#define DEEPRNN_ENGINE_CPU_ISA_TRANSLATION_UNIT
#include "engine/cpu/copied_partial_vectors.h"

namespace deeprnn {
namespace cpu {

struct IsaGeneric : CopiedPartialVectors<IsaGeneric> {
  static constexpr const char* kName = "generic";
  static constexpr int kVectorBytes = 16;
  static constexpr int kMr = 4;
  static constexpr bool kStreamingStores = false;
};

}  // namespace cpu
}  // namespace deeprnn

#include "engine/cpu/instantiate.h"

DEEPRNN_DEFINE_ISA_ENTRY_POINTS(Generic, IsaGeneric)
