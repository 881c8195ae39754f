// Dropout masks for the layers' dropouts (Keras' input and recurrent dropout, the dropout between layers), drawn on
// the CPU from TensorFlow's own stateless random bits, computed here in vector registers.
//
// Why: TensorFlow's CPU random ops cost about 3.6 ns per number on the project's 2-core machines (AMD EPYC, AVX2,
// 2026-12-03), so a training step of the book's shape spent 1.3 ms (tanh) to 2.4 ms (GRU) drawing its masks, a tenth
// of the step. The numbers themselves are cheap: Philox4x32-10 is ten rounds of two 32x32->64 products per four
// numbers, which vectorise across counters.
//
// What a mask is, exactly: for a seed (s0, s1) (a Keras SeedGenerator's state, int64 [2]) and a rate in [0, 1),
// element i of the flattened mask is
//     bits_i >= DropoutThreshold(rate) ? scale : 0,   scale = 1 / (1 - rate) computed in T,
// where bits = tf.random.stateless_uniform(shape, seed=[s0, s1], minval=None, maxval=None, dtype=tf.uint32): the
// Philox4x32-10 stream TensorFlow's stateless ops draw (key and counter from the seed as TensorFlow's GenerateKey
// scrambles it, number i = word i % 4 of the block at counter + i / 4). A plain-TensorFlow fallback therefore draws
// the very same masks, and the tests compare with TensorFlow's own bits.
//
// Nothing here knows TensorFlow; callers own the buffers. Results never depend on the instruction set or on how the
// range is split across threads (each element depends on its index only).
#ifndef DEEPRNN_DROPOUT_MASK_H_
#define DEEPRNN_DROPOUT_MASK_H_

#include <cstdint>

namespace deeprnn {

// A Philox4x32-10 stream: its key and the counter of its first block.
struct PhiloxStream {
  uint32_t key[2];
  uint32_t counter[4];
};

// The stream TensorFlow's stateless random ops draw for the seed (s0, s1).
PhiloxStream PhiloxStreamOfSeed(int64_t seed0, int64_t seed1);

// The number below which an element is dropped: ceil(rate * 2^32), so that an element is kept with probability
// 1 - rate to within 2^-32. rate must be in [0, 1) (0: every element kept).
uint32_t DropoutThreshold(double rate);

// out[i - begin] for i in [begin, end) of the mask described above. T is float or double.
template <typename T>
void DropoutMaskCpu(const PhiloxStream& stream, uint32_t threshold, T scale, int64_t begin, int64_t end, T* out);

// The mask's random bits themselves, out[i - begin] = bits_i (what the tests compare with TensorFlow's).
void PhiloxBitsCpu(const PhiloxStream& stream, int64_t begin, int64_t end, uint32_t* out);

}  // namespace deeprnn

#endif  // DEEPRNN_DROPOUT_MASK_H_
