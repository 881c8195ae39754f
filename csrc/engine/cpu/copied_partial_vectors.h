// Partial vectors through copies, for the instruction sets without masked loads and stores (the baseline, and the
// AVX-512 engine compiled for AVX2; AVX2 itself hides LoadPartial with its masked load and keeps StorePartial): GCC
// turns each small fixed-size memcpy into a few moves. An `Isa` type (simd.h) derives from
// CopiedPartialVectors<itself> for LoadPartial, StorePartial and a plain, cached Stream with no Fence; one with
// streaming stores or masked loads defines its own, which hide these.
//
// Under the ISA rule of simd.h: a template over the instruction set, included after the translation unit's
// `#pragma GCC target`, so that each set's copies are distinct functions compiled for that set.
#ifndef DEEPRNN_ENGINE_CPU_COPIED_PARTIAL_VECTORS_H_
#define DEEPRNN_ENGINE_CPU_COPIED_PARTIAL_VECTORS_H_

#ifndef DEEPRNN_ENGINE_CPU_ISA_TRANSLATION_UNIT
#error "engine/cpu/copied_partial_vectors.h belongs to the per-instruction-set translation units (isa_*.cc) only"
#endif

namespace deeprnn {
namespace cpu {

template <typename Isa>
struct CopiedPartialVectors {
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

#endif  // DEEPRNN_ENGINE_CPU_COPIED_PARTIAL_VECTORS_H_
