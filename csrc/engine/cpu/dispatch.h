// The run-time choice of instruction set for the CPU engine, and the entry points each per-instruction-set
// translation unit (isa_*.cc) provides. Plain C++, no instruction set in it.
#ifndef DEEPRNN_ENGINE_CPU_DISPATCH_H_
#define DEEPRNN_ENGINE_CPU_DISPATCH_H_

#include <string>

#include "deeprnn/stacked.h"

namespace deeprnn {
namespace cpu {

enum class IsaKind : int { kGeneric = 0, kAvx2 = 1, kAvx512 = 2, kAvx512Emulated = 3 };

struct IsaChoice {
  IsaKind kind;       // what runs: the forced instruction set, or the best this processor has
  std::string error;  // why the forced one cannot run here (then `kind` is the best one that can), else empty
};

// Chosen once per process from the processor and DEEPRNN_FAST_CPU_ISA (deeprnn/stacked.h).
const IsaChoice& ChosenIsa();
const char* IsaName(IsaKind kind);
// Whether this processor can run `kind`.
bool IsaSupported(IsaKind kind);

// The entry points of one instruction set: Forward<Name> / Backward<Name> for float and double.
#define DEEPRNN_DECLARE_ISA_ENTRY_POINTS(Name)                                                         \
  void Forward##Name(const ForwardArgs<float>& args, const ParallelFor& parallel_for);                \
  void Forward##Name(const ForwardArgs<double>& args, const ParallelFor& parallel_for);               \
  void Backward##Name(const BackwardArgs<float>& args, float* scratch, const ParallelFor& parallel_for); \
  void Backward##Name(const BackwardArgs<double>& args, double* scratch, const ParallelFor& parallel_for);

DEEPRNN_DECLARE_ISA_ENTRY_POINTS(Generic)
DEEPRNN_DECLARE_ISA_ENTRY_POINTS(Avx2)
DEEPRNN_DECLARE_ISA_ENTRY_POINTS(Avx512)
DEEPRNN_DECLARE_ISA_ENTRY_POINTS(Avx512Emulated)

}  // namespace cpu
}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_CPU_DISPATCH_H_
