// Dropout masks from TensorFlow's stateless Philox4x32-10 stream (deeprnn/dropout_mask.h), vectorised across
// counters: each call of PhiloxBatch runs the ten rounds for kBlocks consecutive counters side by side, one vector
// lane per counter.
#include "deeprnn/dropout_mask.h"

#include <algorithm>
#include <cmath>

#include "engine/cpu/dispatch.h"

#if defined(__x86_64__) && defined(__GNUC__) && !DEEPRNN_CPU_GENERIC_ONLY
#define DEEPRNN_PHILOX_AVX2 1
#include <immintrin.h>
#else
#define DEEPRNN_PHILOX_AVX2 0
#endif

namespace deeprnn {

namespace {

// Philox4x32's multipliers and key increments (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", 2011),
// as TensorFlow's random::PhiloxRandom uses them.
constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
constexpr int kRounds = 10;

constexpr int kBlocks = 16;             // counters per batch
constexpr int kBatch = 4 * kBlocks;     // numbers per batch

// The counters of the blocks first_block .. first_block + kBlocks - 1, word by word: block b is at the stream's
// counter plus b, a 128-bit sum.
void BlockCounters(const PhiloxStream& stream, uint64_t first_block, uint32_t (&c)[4][kBlocks]) {
  const uint64_t low = uint64_t(stream.counter[1]) << 32 | stream.counter[0];
  const uint64_t high = uint64_t(stream.counter[3]) << 32 | stream.counter[2];
  for (int j = 0; j < kBlocks; ++j) {
    const uint64_t lo = low + first_block + uint64_t(j);
    const uint64_t hi = high + (lo < low ? 1 : 0);
    c[0][j] = uint32_t(lo);
    c[1][j] = uint32_t(lo >> 32);
    c[2][j] = uint32_t(hi);
    c[3][j] = uint32_t(hi >> 32);
  }
}

// The 4 x kBlocks numbers of those blocks, in TensorFlow's order: bits[4 j + w] = word w of block first_block + j.
void PhiloxBatchGeneric(const PhiloxStream& stream, uint64_t first_block, uint32_t* bits) {
  uint32_t c[4][kBlocks];
  BlockCounters(stream, first_block, c);
  uint32_t *x0 = c[0], *x1 = c[1], *x2 = c[2], *x3 = c[3];
  uint32_t k0 = stream.key[0], k1 = stream.key[1];
  for (int r = 0; r < kRounds; ++r) {
    // Kept a loop: GCC vectorises it only while it is one (fully unrolled, it tries the rounds' loop and fails).
#pragma GCC unroll 1
    for (int j = 0; j < kBlocks; ++j) {
      const uint64_t p0 = uint64_t(kM0) * x0[j];
      const uint64_t p1 = uint64_t(kM1) * x2[j];
      const uint32_t y0 = uint32_t(p1 >> 32) ^ x1[j] ^ k0;
      const uint32_t y2 = uint32_t(p0 >> 32) ^ x3[j] ^ k1;
      x1[j] = uint32_t(p1);
      x3[j] = uint32_t(p0);
      x0[j] = y0;
      x2[j] = y2;
    }
    k0 += kW0;
    k1 += kW1;
  }
  for (int j = 0; j < kBlocks; ++j) {
    bits[4 * j] = x0[j];
    bits[4 * j + 1] = x1[j];
    bits[4 * j + 2] = x2[j];
    bits[4 * j + 3] = x3[j];
  }
}

#if DEEPRNN_PHILOX_AVX2
// The same with AVX2 intrinsics, 8 counters per register and two registers in flight. GCC's own vectorisation of
// the loop above spends most of its instructions shuffling the 64-bit products back into 32-bit lanes (2.2 ns a
// number here); a product's high and low words are two blends instead.
__attribute__((target("avx2"))) inline void MulHiLo(__m256i a, __m256i m, __m256i* hi, __m256i* lo) {
  const __m256i even = _mm256_mul_epu32(a, m);                         // words 0, 2, 4, 6: full 64-bit products
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);  // words 1, 3, 5, 7
  *lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

__attribute__((target("avx2"))) void PhiloxBatchAvx2(const PhiloxStream& stream, uint64_t first_block,
                                                     uint32_t* bits) {
  constexpr int kGroups = kBlocks / 8;
  alignas(32) uint32_t c[4][kBlocks];
  BlockCounters(stream, first_block, c);
  __m256i x[kGroups][4];
  for (int g = 0; g < kGroups; ++g)
    for (int w = 0; w < 4; ++w) x[g][w] = _mm256_load_si256(reinterpret_cast<const __m256i*>(&c[w][8 * g]));
  const __m256i m0 = _mm256_set1_epi32(int(kM0)), m1 = _mm256_set1_epi32(int(kM1));
  uint32_t k0 = stream.key[0], k1 = stream.key[1];
  for (int r = 0; r < kRounds; ++r) {
    const __m256i key0 = _mm256_set1_epi32(int(k0)), key1 = _mm256_set1_epi32(int(k1));
    for (int g = 0; g < kGroups; ++g) {
      __m256i hi0, lo0, hi1, lo1;
      MulHiLo(x[g][0], m0, &hi0, &lo0);
      MulHiLo(x[g][2], m1, &hi1, &lo1);
      const __m256i y0 = _mm256_xor_si256(_mm256_xor_si256(hi1, x[g][1]), key0);
      const __m256i y2 = _mm256_xor_si256(_mm256_xor_si256(hi0, x[g][3]), key1);
      x[g][0] = y0;
      x[g][1] = lo1;
      x[g][2] = y2;
      x[g][3] = lo0;
    }
    k0 += kW0;
    k1 += kW1;
  }
  // Words side by side -> blocks one after the other (a 4 x 8 transpose; unpacks work within 128-bit halves).
  for (int g = 0; g < kGroups; ++g) {
    const __m256i t0 = _mm256_unpacklo_epi32(x[g][0], x[g][1]), t1 = _mm256_unpackhi_epi32(x[g][0], x[g][1]);
    const __m256i t2 = _mm256_unpacklo_epi32(x[g][2], x[g][3]), t3 = _mm256_unpackhi_epi32(x[g][2], x[g][3]);
    const __m256i b04 = _mm256_unpacklo_epi64(t0, t2), b15 = _mm256_unpackhi_epi64(t0, t2);
    const __m256i b26 = _mm256_unpacklo_epi64(t1, t3), b37 = _mm256_unpackhi_epi64(t1, t3);
    __m256i* out = reinterpret_cast<__m256i*>(bits + 32 * g);
    _mm256_store_si256(out, _mm256_permute2x128_si256(b04, b15, 0x20));
    _mm256_store_si256(out + 1, _mm256_permute2x128_si256(b26, b37, 0x20));
    _mm256_store_si256(out + 2, _mm256_permute2x128_si256(b04, b15, 0x31));
    _mm256_store_si256(out + 3, _mm256_permute2x128_si256(b26, b37, 0x31));
  }
}
#endif

using PhiloxBatchFn = void (*)(const PhiloxStream&, uint64_t, uint32_t*);

// Chosen once: AVX2 where the processor has it, unless DEEPRNN_FAST_CPU_ISA=generic asks for the baseline (so that
// the tests can check both against TensorFlow's bits; every version gives the same ones). AVX-512 processors run
// the AVX2 version: the masks are a small part of a step.
PhiloxBatchFn ChoosePhiloxBatch() {
#if DEEPRNN_PHILOX_AVX2
  if (cpu::ChosenIsa().kind != cpu::IsaKind::kGeneric && __builtin_cpu_supports("avx2")) return PhiloxBatchAvx2;
#endif
  return PhiloxBatchGeneric;
}

void PhiloxBatch(const PhiloxStream& stream, uint64_t first_block, uint32_t* bits) {
  static const PhiloxBatchFn batch = ChoosePhiloxBatch();
  batch(stream, first_block, bits);
}

// Calls emit(bits of the batch, first index of the batch, from, to) over the batches covering [begin, end), where
// [from, to) is the part of the batch inside the range.
template <typename Emit>
void ForEachBatch(const PhiloxStream& stream, int64_t begin, int64_t end, Emit emit) {
  alignas(64) uint32_t bits[kBatch];
  for (int64_t first = begin - begin % kBatch; first < end; first += kBatch) {
    PhiloxBatch(stream, uint64_t(first / 4), bits);
    emit(bits, first, std::max<int64_t>(begin - first, 0), std::min<int64_t>(end - first, kBatch));
  }
}

}  // namespace

PhiloxStream PhiloxStreamOfSeed(int64_t seed0, int64_t seed1) {
  // TensorFlow's GenerateKey (core/kernels/stateless_random_ops.cc): one Philox block of the seed under a fixed key
  // gives the stream's key and the high half of its counter, so that neither half of the seed has to be strong.
  // (The first block of one batch; the batch's other blocks are a few nanoseconds, once per mask.)
  const uint64_t s0 = uint64_t(seed0), s1 = uint64_t(seed1);
  const PhiloxStream of_seed{{0x3ec8f720u, 0x02461e29u}, {uint32_t(s0), uint32_t(s0 >> 32), uint32_t(s1),
                                                          uint32_t(s1 >> 32)}};
  uint32_t mix[kBatch];
  PhiloxBatchGeneric(of_seed, 0, mix);
  return PhiloxStream{{mix[0], mix[1]}, {0, 0, mix[2], mix[3]}};
}

uint32_t DropoutThreshold(double rate) {
  if (!(rate > 0)) return 0;
  return uint32_t(std::min(std::ceil(rate * 4294967296.0), 4294967295.0));
}

template <typename T>
void DropoutMaskCpu(const PhiloxStream& stream, uint32_t threshold, T scale, int64_t begin, int64_t end, T* out) {
  ForEachBatch(stream, begin, end, [&](const uint32_t* bits, int64_t first, int64_t from, int64_t to) {
    T* dst = out + (first - begin);
    for (int64_t k = from; k < to; ++k) dst[k] = bits[k] >= threshold ? scale : T(0);
  });
}

void PhiloxBitsCpu(const PhiloxStream& stream, int64_t begin, int64_t end, uint32_t* out) {
  ForEachBatch(stream, begin, end, [&](const uint32_t* bits, int64_t first, int64_t from, int64_t to) {
    std::copy(bits + from, bits + to, out + (first - begin) + from);
  });
}

template void DropoutMaskCpu<float>(const PhiloxStream&, uint32_t, float, int64_t, int64_t, float*);
template void DropoutMaskCpu<double>(const PhiloxStream&, uint32_t, double, int64_t, int64_t, double*);

}  // namespace deeprnn
