// CPU emulation of the part of CUDA's WMMA API (nvcuda::wmma, <mma.h>) that the tensor-core kernels use: m16n16k8
// fragments of TF32 inputs (stored as float) with float accumulators, fill_fragment, load_matrix_sync,
// store_matrix_sync, mma_sync, and __float_to_tf32 (see cuda_runtime.h beside this file for how threads and warps
// are emulated).
//
// The layout of a fragment's elements over the lanes of a warp is opaque in CUDA, so this emulation chooses its
// own: element i of the (row-major) fragment matrix lives in lane i % 32, slot i / 32 of x[]. A kernel that reads a
// fragment element's row or column from x[] gets wrong results here, as it might on some GPU; only elementwise
// operations that treat every element alike are legal on x[]. The loads, stores and mma_sync are collective: each
// lane of the warp must call them (a barrier per warp: a lane waiting elsewhere leaves its warp waiting, which the
// fiber scheduler reports as a deadlock; divergent WMMA code is undefined on a GPU); mma_sync exchanges the
// operands through the warp's exchange area and computes each element of the product once.
//
// TF32: __float_to_tf32 rounds to the nearest value with a 10-bit mantissa, ties away from zero (cvt.rna.tf32.f32);
// mma_sync, like the tensor cores, reads only the TF32 bits of its inputs (the 13 low mantissa bits dropped) and
// accumulates the products in float in a fixed order. DEEPRNN_EMULATION_TF32=exact (read once per process) makes
// both exact (no rounding, fp32 products), so that tests can check the kernels' indexing to float32 accuracy
// without the TF32 tolerance hiding a wrong element.
//
// Checked: the operand pointers must be 32-byte aligned and ldm a multiple of 4 floats (the API's rules), every
// lane of the warp must pass the same pointer and ldm, and a warp must have all 32 lanes.
#ifndef DEEPRNN_TESTS_CUDA_EMULATION_MMA_H_
#define DEEPRNN_TESTS_CUDA_EMULATION_MMA_H_

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "cuda_runtime.h"

namespace emulation {

inline bool ExactTf32() {
  static const bool exact = [] {
    const char* env = std::getenv("DEEPRNN_EMULATION_TF32");
    if (env == nullptr || *env == '\0' || std::strcmp(env, "tf32") == 0) return false;
    if (std::strcmp(env, "exact") == 0) return true;
    Fail("DEEPRNN_EMULATION_TF32 must be tf32 or exact (or unset)");
    return false;
  }();
  return exact;
}

inline uint32_t Bits(float v) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  return b;
}
inline float FromBits(uint32_t b) {
  float v;
  std::memcpy(&v, &b, 4);
  return v;
}

// Round to nearest, ties away from zero, on the 13 dropped mantissa bits (NaN and infinity unchanged).
inline float RoundToTf32(float v) {
  if (!std::isfinite(v)) return v;
  return FromBits((Bits(v) + 0x1000u) & ~0x1fffu);
}
// What the tensor cores read of an fp32 input: its TF32 bits.
inline float TruncateToTf32(float v) { return std::isfinite(v) ? FromBits(Bits(v) & ~0x1fffu) : v; }

inline void WarpSync() {
  if (current_thread == nullptr || Current().warps == nullptr) Fail("WMMA operation outside a kernel launch");
  ThreadState& t = Current();
  if (t.warps->sizes[LinearThreadIndex() / kWarpSize] != kWarpSize)
    Fail("WMMA operation in a partial warp (the block's threads are not a multiple of 32)");
  t.scheduler->Wait(t.warp_barrier);
}
inline unsigned Lane() { return LinearThreadIndex() % kWarpSize; }
inline float* WarpScratch() { return Current().warps->scratch.data() + (LinearThreadIndex() / kWarpSize) * kWarpScratchFloats; }

// Every lane must name the same operand: each lane posts its pointer and ldm in its own slot of the warp's
// exchange area, and after the warp's barrier compares lane 0's with its own. The caller's trailing barrier keeps
// the slots until every lane has compared.
inline void CheckSameOperand(const void* ptr, unsigned ldm, const char* what) {
  if (reinterpret_cast<uintptr_t>(ptr) % 32 != 0) {
    std::fprintf(stderr, "CUDA emulation: %s: pointer %p is not 32-byte aligned\n", what, ptr);
    std::abort();
  }
  if (ldm % 4 != 0) {
    std::fprintf(stderr, "CUDA emulation: %s: ldm %u is not a multiple of 4 floats (16 bytes)\n", what, ldm);
    std::abort();
  }
  struct Operand {
    uintptr_t ptr;
    uintptr_t ldm;
  };
  static_assert(sizeof(Operand) * kWarpSize <= sizeof(float) * kWarpScratchFloats, "slots fit the exchange area");
  Operand* slots = reinterpret_cast<Operand*>(WarpScratch());
  slots[Lane()] = {reinterpret_cast<uintptr_t>(ptr), ldm};
  WarpSync();
  if (slots[0].ptr != reinterpret_cast<uintptr_t>(ptr) || slots[0].ldm != ldm) {
    std::fprintf(stderr, "CUDA emulation: %s: the lanes of a warp passed different pointers or ldm\n", what);
    std::abort();
  }
}

}  // namespace emulation

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
namespace precision {
struct tf32 {};
}  // namespace precision
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K>
struct FragmentShape;
template <int M, int N, int K>
struct FragmentShape<matrix_a, M, N, K> {
  static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct FragmentShape<matrix_b, M, N, K> {
  static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct FragmentShape<accumulator, M, N, K> {
  static constexpr int rows = M, cols = N;
};

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && K == 8, "the emulation has the m16n16k8 shape only");
  static_assert(std::is_same_v<T, precision::tf32> || std::is_same_v<T, float>, "TF32 inputs, float accumulators");
  static constexpr int rows = FragmentShape<Use, M, N, K>::rows;
  static constexpr int cols = FragmentShape<Use, M, N, K>::cols;
  static constexpr int num_elements = rows * cols / emulation::kWarpSize;
  static constexpr bool col_layout = std::is_same_v<Layout, col_major>;
  float x[num_elements];
  // Row and column of slot i of this lane (the emulation's own layout; not for kernels).
  static int RowOf(unsigned lane, int i) { return static_cast<int>((lane + emulation::kWarpSize * i) / cols); }
  static int ColOf(unsigned lane, int i) { return static_cast<int>((lane + emulation::kWarpSize * i) % cols); }
};

inline float __float_to_tf32(float v) { return emulation::ExactTf32() ? v : emulation::RoundToTf32(v); }

template <typename Use, int M, int N, int K, typename T, typename Layout>
void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, float value) {
  for (int i = 0; i < f.num_elements; ++i) f.x[i] = value;  // each lane its own elements: nothing to exchange
}

template <typename Use, int M, int N, int K, typename Layout>
void load_matrix_sync(fragment<Use, M, N, K, precision::tf32, Layout>& f, const float* ptr, unsigned ldm) {
  using F = fragment<Use, M, N, K, precision::tf32, Layout>;
  emulation::CheckSameOperand(ptr, ldm, "load_matrix_sync");
  const unsigned lane = emulation::Lane();
  for (int i = 0; i < F::num_elements; ++i) {
    const int r = F::RowOf(lane, i), c = F::ColOf(lane, i);
    f.x[i] = F::col_layout ? ptr[static_cast<size_t>(c) * ldm + r] : ptr[static_cast<size_t>(r) * ldm + c];
  }
  emulation::WarpSync();
}

template <int M, int N, int K>
void store_matrix_sync(float* ptr, const fragment<accumulator, M, N, K, float>& f, unsigned ldm, layout_t layout) {
  using F = fragment<accumulator, M, N, K, float>;
  emulation::CheckSameOperand(ptr, ldm, "store_matrix_sync");
  const unsigned lane = emulation::Lane();
  for (int i = 0; i < F::num_elements; ++i) {
    const int r = F::RowOf(lane, i), c = F::ColOf(lane, i);
    (layout == mem_col_major ? ptr[static_cast<size_t>(c) * ldm + r] : ptr[static_cast<size_t>(r) * ldm + c]) =
        f.x[i];
  }
  emulation::WarpSync();
}

// D = A B + C for the whole warp: every lane posts its elements of A, B and C, then computes its own elements of
// D from the posted matrices (each element once, its products added in k order).
template <int M, int N, int K, typename LayoutA, typename LayoutB>
void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, precision::tf32, LayoutA>& a,
              const fragment<matrix_b, M, N, K, precision::tf32, LayoutB>& b,
              const fragment<accumulator, M, N, K, float>& c) {
  using FA = fragment<matrix_a, M, N, K, precision::tf32, LayoutA>;
  using FB = fragment<matrix_b, M, N, K, precision::tf32, LayoutB>;
  using FC = fragment<accumulator, M, N, K, float>;
  float* sa = emulation::WarpScratch();  // [M][K]
  float* sb = sa + 256;                  // [K][N]
  float* sc = sb + 256;                  // [M][N]
  const unsigned lane = emulation::Lane();
  for (int i = 0; i < FA::num_elements; ++i) sa[FA::RowOf(lane, i) * K + FA::ColOf(lane, i)] = a.x[i];
  for (int i = 0; i < FB::num_elements; ++i) sb[FB::RowOf(lane, i) * N + FB::ColOf(lane, i)] = b.x[i];
  for (int i = 0; i < FC::num_elements; ++i) sc[FC::RowOf(lane, i) * N + FC::ColOf(lane, i)] = c.x[i];
  emulation::WarpSync();
  const bool exact = emulation::ExactTf32();
  for (int i = 0; i < FC::num_elements; ++i) {
    const int r = FC::RowOf(lane, i), col = FC::ColOf(lane, i);
    float acc = sc[r * N + col];
    for (int k = 0; k < K; ++k) {
      const float x = sa[r * K + k], y = sb[k * N + col];
      acc = exact ? std::fma(x, y, acc) : acc + emulation::TruncateToTf32(x) * emulation::TruncateToTf32(y);
    }
    d.x[i] = acc;
  }
  emulation::WarpSync();  // the exchange area is reused by the next operation
}

}  // namespace wmma
}  // namespace nvcuda

#endif  // DEEPRNN_TESTS_CUDA_EMULATION_MMA_H_
