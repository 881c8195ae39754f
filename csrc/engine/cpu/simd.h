// Vectors of the CPU engine, written once over the instruction set and compiled by one translation unit per set
// (engine/cpu/isa_*.cc).
//
// ISA rule (it keeps code of a wider instruction set from ever running on a processor without it): this header and
// every header that includes it (the products, the cells' pointwise passes, the forward and backward schedules)
// hold only templates with the instruction set `Isa` among their parameters, and are included only after the
// translation unit's `#pragma GCC target`. Everything else (the standard library, the non-template helpers of
// engine/cpu) is included before the pragma: GCC compiles a template instantiation for the target of the template's
// definition, so a std::vector used here stays baseline code, while every function of Simd<Isa, T> is a distinct
// symbol per instruction set.
//
// An `Isa` type supplies:
//   kName                   e.g. "avx512"
//   kVectorBytes            the width of one vector: 16 (baseline SSE2), 32 (AVX2), 64 (AVX-512)
//   kMr                     rows of the products' register tile (its columns are two vectors)
//   kStreamingStores        whether Stream() bypasses the caches
//   LoadPartial<V>(p, n)    the first n <= lanes values at p, zeros after; never reads past p + n
//   StorePartial<V>(p, n, v) the first n lanes of v to p; never writes past p + n
//   Stream<V>(p, v)         a whole vector to vector-aligned p, bypassing the caches where kStreamingStores
//   Fence()                 orders streaming stores before what follows
// (copied_partial_vectors.h supplies the last four, through copies, for the sets without masked loads and stores.)
#ifndef DEEPRNN_ENGINE_CPU_SIMD_H_
#define DEEPRNN_ENGINE_CPU_SIMD_H_

#ifndef DEEPRNN_ENGINE_CPU_ISA_TRANSLATION_UNIT
#error "engine/cpu/simd.h belongs to the per-instruction-set translation units (engine/cpu/isa_*.cc) only"
#endif

namespace deeprnn {
namespace cpu {

template <typename T, int kBytes>
struct VecOf;
template <>
struct VecOf<float, 16> {
  typedef float type __attribute__((vector_size(16)));
  typedef int32_t itype __attribute__((vector_size(16)));
};
template <>
struct VecOf<float, 32> {
  typedef float type __attribute__((vector_size(32)));
  typedef int32_t itype __attribute__((vector_size(32)));
};
template <>
struct VecOf<float, 64> {
  typedef float type __attribute__((vector_size(64)));
  typedef int32_t itype __attribute__((vector_size(64)));
};
template <>
struct VecOf<double, 16> {
  typedef double type __attribute__((vector_size(16)));
  typedef int64_t itype __attribute__((vector_size(16)));
};
template <>
struct VecOf<double, 32> {
  typedef double type __attribute__((vector_size(32)));
  typedef int64_t itype __attribute__((vector_size(32)));
};
template <>
struct VecOf<double, 64> {
  typedef double type __attribute__((vector_size(64)));
  typedef int64_t itype __attribute__((vector_size(64)));
};

template <typename Isa, typename T>
struct Simd {
  using V = typename VecOf<T, Isa::kVectorBytes>::type;
  using VI = typename VecOf<T, Isa::kVectorBytes>::itype;
  static constexpr int kLanes = Isa::kVectorBytes / static_cast<int>(sizeof(T));

  static inline V Load(const T* p) {
    V v;
    __builtin_memcpy(&v, p, sizeof(V));
    return v;
  }
  static inline void Store(T* p, V v) { __builtin_memcpy(p, &v, sizeof(V)); }
  // count <= kLanes values (count may be 0 or negative: nothing), zeros after.
  static inline V LoadN(const T* p, int64_t count) {
    if (count >= kLanes) return Load(p);
    if (count <= 0) return V{};
    return Isa::template LoadPartial<V>(p, static_cast<int>(count));
  }
  static inline void StoreN(T* p, int64_t count, V v) {
    if (count >= kLanes) return Store(p, v);
    if (count > 0) Isa::template StorePartial<V>(p, static_cast<int>(count), v);
  }
  static inline V Splat(T x) { return V{} + x; }

  // exp(y) for float y <= 0 in two parts, two_n = 2^n and expm1_r = expm1(r), y = n ln2 + r, |r| <= ln2 / 2,
  // y clamped at -87: exp(y) = two_n (expm1_r + 1) and expm1(y) = two_n expm1_r + (two_n - 1), expm1(r) by its
  // Taylor series to r^7.
  static inline void ExpPartsFloat(V y, V& two_n, V& expm1_r) {
    y = y < -87.0f ? V{} - 87.0f : y;
    const VI n = __builtin_convertvector(y * 1.44269504088896341f - 0.5f, VI);  // round(y / ln2), y <= 0
    const V nf = __builtin_convertvector(n, V);
    const V r = (y - nf * 0.693145751953125f) - nf * 1.428606765330187045e-06f;
    V p = V{} + (1.0f / 5040.0f);
    p = p * r + (1.0f / 720.0f);
    p = p * r + (1.0f / 120.0f);
    p = p * r + (1.0f / 24.0f);
    p = p * r + (1.0f / 6.0f);
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    two_n = (V)((n + 127) << 23);
    expm1_r = p * r;
  }

  // tanh(x) for float, branch free: tanh(|x|) = -m / (2 + m) with m = expm1(-2|x|), the sign put back after. No
  // cancellation anywhere, so tiny |x| keep their full relative precision. A few ulp; NaN gives NaN.
  static inline V TanhFloat(V x) {
    const VI sign_mask = VI{} + static_cast<int32_t>(0x80000000u);
    const V ax = (V)((VI)x & ~sign_mask);
    V two_n, expm1_r;
    ExpPartsFloat(ax * -2.0f, two_n, expm1_r);
    const V m = two_n * expm1_r + (two_n - 1.0f);
    const V t = -m / (2.0f + m);
    const V result = (V)((VI)t | ((VI)x & sign_mask));
    return x == x ? result : x;
  }

  // exp(-|x|) for float, in (0, 1].
  static inline V ExpNegAbsFloat(V x) {
    const VI sign_mask = VI{} + static_cast<int32_t>(0x80000000u);
    V two_n, expm1_r;
    ExpPartsFloat((V)((VI)x | sign_mask), two_n, expm1_r);
    return two_n * (expm1_r + 1.0f);
  }

  static inline V Tanh(V x) {
    if constexpr (sizeof(T) == 4) {
      return TanhFloat(x);
    } else {
      T buf[kLanes];
      Store(buf, x);
      for (int i = 0; i < kLanes; ++i) buf[i] = __builtin_tanh(buf[i]);
      return Load(buf);
    }
  }

  // sigmoid lane by lane with the C library's exp (double).
  static inline V SigmoidScalar(V x) {
    T buf[kLanes];
    Store(buf, x);
    for (int i = 0; i < kLanes; ++i) buf[i] = T(1) / (T(1) + __builtin_exp(-buf[i]));
    return Load(buf);
  }

  // sigmoid(a) and sigmoid(b) with one division instead of two (divisions dominate the gates' cost):
  // sigmoid(x) = num / (1 + e), e = exp(-|x|), num = 1 for x >= 0 and e below (so neither tail loses its relative
  // precision), and both denominators lie in [1, 2], so 1 / (d_a d_b) serves both without overflow and costs a
  // rounding or two. A NaN stays in its own gate.
  static inline void SigmoidPair(V a, V b, V& sa, V& sb) {
    if constexpr (sizeof(T) == 4) {
      const V ca = a == a ? a : V{}, cb = b == b ? b : V{};
      const V ea = ExpNegAbsFloat(ca), eb = ExpNegAbsFloat(cb);
      const V da = 1.0f + ea, db = 1.0f + eb;
      const V inv = 1.0f / (da * db);
      const V za = (ca >= 0.0f ? V{} + 1.0f : ea) * (db * inv);
      const V zb = (cb >= 0.0f ? V{} + 1.0f : eb) * (da * inv);
      sa = a == a ? za : a;
      sb = b == b ? zb : b;
    } else {
      sa = SigmoidScalar(a);
      sb = SigmoidScalar(b);
    }
  }

  static inline V Sigmoid(V a) {
    if constexpr (sizeof(T) == 4) {
      const V ca = a == a ? a : V{};
      const V e = ExpNegAbsFloat(ca);
      const V s = (ca >= 0.0f ? V{} + 1.0f : e) / (1.0f + e);
      return a == a ? s : a;
    } else {
      return SigmoidScalar(a);
    }
  }
};

}  // namespace cpu
}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_CPU_SIMD_H_
