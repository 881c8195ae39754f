// The CPU entry points of deeprnn/stacked.h: the instruction set chosen once per process, then the pass compiled for
// it (isa_*.cc).
#include "engine/cpu/dispatch.h"

#include <cstdlib>
#include <cstring>

#include "cells/gru/cell.h"
#include "cells/lstm/cell.h"
#include "cells/rnn/cell.h"

namespace deeprnn {

void SerialFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n > 0) fn(0, n);
}

namespace cpu {

bool IsaSupported(IsaKind kind) {
#if defined(DEEPRNN_CPU_GENERIC_ONLY)
  // A build of the generic engine alone (the CUDA emulation's, where the CPU library is only the reference the
  // emulated kernels are checked against): the other instruction sets' translation units are not compiled.
  return kind == IsaKind::kGeneric;
#elif defined(__x86_64__) && defined(__GNUC__)
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  switch (kind) {
    case IsaKind::kGeneric: return true;
    case IsaKind::kAvx2: return avx2;
    case IsaKind::kAvx512Emulated: return avx2;
    case IsaKind::kAvx512:
      return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
  }
  return false;
#else
  return kind == IsaKind::kGeneric;
#endif
}

const char* IsaName(IsaKind kind) {
  switch (kind) {
    case IsaKind::kGeneric: return "generic";
    case IsaKind::kAvx2: return "avx2";
    case IsaKind::kAvx512: return "avx512";
    case IsaKind::kAvx512Emulated: return "avx512emu";
  }
  return "?";
}

const IsaChoice& ChosenIsa() {
  static const IsaChoice choice = [] {
    IsaChoice c;
    c.kind = IsaSupported(IsaKind::kAvx512) ? IsaKind::kAvx512
             : IsaSupported(IsaKind::kAvx2) ? IsaKind::kAvx2
                                            : IsaKind::kGeneric;
    const char* forced = std::getenv("DEEPRNN_FAST_CPU_ISA");
    if (forced == nullptr || *forced == '\0') return c;
    for (IsaKind kind : {IsaKind::kGeneric, IsaKind::kAvx2, IsaKind::kAvx512, IsaKind::kAvx512Emulated}) {
      if (std::strcmp(forced, IsaName(kind)) != 0) continue;
      if (IsaSupported(kind)) {
        c.kind = kind;
      } else {
        c.error = std::string("DEEPRNN_FAST_CPU_ISA=") + forced + ": this processor cannot run the " + forced +
                  " kernels (it has " + IsaName(c.kind) + ")";
      }
      return c;
    }
    c.error = std::string("DEEPRNN_FAST_CPU_ISA must be one of avx512, avx2, generic, avx512emu; got '") + forced +
              "'";
    return c;
  }();
  return choice;
}

}  // namespace cpu

const char* CpuKernelIsa() { return cpu::IsaName(cpu::ChosenIsa().kind); }
std::string CpuKernelIsaError() { return cpu::ChosenIsa().error; }

std::vector<std::string> CpuKernelIsas() {
  std::vector<std::string> names;
  for (cpu::IsaKind kind : {cpu::IsaKind::kAvx512, cpu::IsaKind::kAvx2, cpu::IsaKind::kAvx512Emulated,
                            cpu::IsaKind::kGeneric})
    if (cpu::IsaSupported(kind)) names.push_back(cpu::IsaName(kind));
  return names;
}

template <typename T>
void StackedForwardCpu(const ForwardArgs<T>& args, const ParallelFor& parallel_for) {
#if defined(DEEPRNN_CPU_GENERIC_ONLY)
  return cpu::ForwardGeneric(args, parallel_for);
#else
  switch (cpu::ChosenIsa().kind) {
    case cpu::IsaKind::kAvx512: return cpu::ForwardAvx512(args, parallel_for);
    case cpu::IsaKind::kAvx2: return cpu::ForwardAvx2(args, parallel_for);
    case cpu::IsaKind::kAvx512Emulated: return cpu::ForwardAvx512Emulated(args, parallel_for);
    case cpu::IsaKind::kGeneric: return cpu::ForwardGeneric(args, parallel_for);
  }
#endif
}

template <typename T>
void StackedBackwardCpu(const BackwardArgs<T>& args, T* scratch, const ParallelFor& parallel_for) {
#if defined(DEEPRNN_CPU_GENERIC_ONLY)
  return cpu::BackwardGeneric(args, scratch, parallel_for);
#else
  switch (cpu::ChosenIsa().kind) {
    case cpu::IsaKind::kAvx512: return cpu::BackwardAvx512(args, scratch, parallel_for);
    case cpu::IsaKind::kAvx2: return cpu::BackwardAvx2(args, scratch, parallel_for);
    case cpu::IsaKind::kAvx512Emulated: return cpu::BackwardAvx512Emulated(args, scratch, parallel_for);
    case cpu::IsaKind::kGeneric: return cpu::BackwardGeneric(args, scratch, parallel_for);
  }
#endif
}

template void StackedForwardCpu<float>(const ForwardArgs<float>&, const ParallelFor&);
template void StackedForwardCpu<double>(const ForwardArgs<double>&, const ParallelFor&);
template void StackedBackwardCpu<float>(const BackwardArgs<float>&, float*, const ParallelFor&);
template void StackedBackwardCpu<double>(const BackwardArgs<double>&, double*, const ParallelFor&);

}  // namespace deeprnn
