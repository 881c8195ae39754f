// The body of every per-instruction-set translation unit (isa_*.cc): the engine's passes for every cell, behind the
// entry points of dispatch.h. Per-instruction-set code: see the ISA rule in simd.h. The one list of the cells the
// CPU engine runs is here (and in engine_deps.h's includes).
#ifndef DEEPRNN_ENGINE_CPU_INSTANTIATE_H_
#define DEEPRNN_ENGINE_CPU_INSTANTIATE_H_

#include "cells/gru/cpu_pointwise.h"
#include "cells/lstm/cpu_pointwise.h"
#include "cells/rnn/cpu_pointwise.h"
#include "engine/cpu/backward.h"
#include "engine/cpu/forward.h"

namespace deeprnn {
namespace cpu {

template <typename Isa, typename T>
void ForwardWith(const ForwardArgs<T>& a, const ParallelFor& parallel_for) {
  switch (a.cell) {
    case Cell::kTanh: return ForwardPass<Isa, RnnCell<Cell::kTanh>, T>::Run(a, parallel_for);
    case Cell::kRelu: return ForwardPass<Isa, RnnCell<Cell::kRelu>, T>::Run(a, parallel_for);
    case Cell::kGru: return ForwardPass<Isa, GruCell, T>::Run(a, parallel_for);
    case Cell::kLstm: return ForwardPass<Isa, LstmCell, T>::Run(a, parallel_for);
  }
}

template <typename Isa, typename T>
void BackwardWith(const BackwardArgs<T>& a, T* scratch, const ParallelFor& parallel_for) {
  switch (a.cell) {
    case Cell::kTanh: return BackwardPass<Isa, RnnCell<Cell::kTanh>, T>::Run(a, scratch, parallel_for);
    case Cell::kRelu: return BackwardPass<Isa, RnnCell<Cell::kRelu>, T>::Run(a, scratch, parallel_for);
    case Cell::kGru: return BackwardPass<Isa, GruCell, T>::Run(a, scratch, parallel_for);
    case Cell::kLstm: return BackwardPass<Isa, LstmCell, T>::Run(a, scratch, parallel_for);
  }
}

}  // namespace cpu
}  // namespace deeprnn

// Defines the entry points Forward<Name> / Backward<Name> of dispatch.h for the instruction set `Isa`.
#define DEEPRNN_DEFINE_ISA_ENTRY_POINTS(Name, Isa)                                                          \
  namespace deeprnn {                                                                                       \
  namespace cpu {                                                                                           \
  void Forward##Name(const ForwardArgs<float>& a, const ParallelFor& pf) { ForwardWith<Isa, float>(a, pf); } \
  void Forward##Name(const ForwardArgs<double>& a, const ParallelFor& pf) {                                \
    ForwardWith<Isa, double>(a, pf);                                                                        \
  }                                                                                                         \
  void Backward##Name(const BackwardArgs<float>& a, float* scratch, const ParallelFor& pf) {                \
    BackwardWith<Isa, float>(a, scratch, pf);                                                               \
  }                                                                                                         \
  void Backward##Name(const BackwardArgs<double>& a, double* scratch, const ParallelFor& pf) {              \
    BackwardWith<Isa, double>(a, scratch, pf);                                                              \
  }                                                                                                         \
  }                                                                                                         \
  }

#endif  // DEEPRNN_ENGINE_CPU_INSTANTIATE_H_
