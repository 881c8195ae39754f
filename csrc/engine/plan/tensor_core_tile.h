// The tensor-core wavefront tile's geometry and shared memory (engine/cuda/tensor_core_tile.cuh), for any cell: one
// definition that the kernel and the host planner both compile, as engine/plan/tiles.h is for the scalar tiles.
//
// A block owns one (layer, 16-unit column slice) for the whole run, as the scalar resident schedule does, and
// computes that slice of every batch row (B <= 32: one or two 16-row fragments, rows past B zero) with WMMA
// m16n16k8 TF32 fragments: forward one 16 x 16 output fragment per (row fragment, gate), backward one per row
// fragment. The 8 warps split each product's reduction between them when there are fewer fragments than warps.
#ifndef DEEPRNN_ENGINE_PLAN_TENSOR_CORE_TILE_H_
#define DEEPRNN_ENGINE_PLAN_TENSOR_CORE_TILE_H_

#include <cstdint>

#include "engine/plan/tiles.h"

namespace deeprnn {

constexpr int kTcFragment = 16;  // fragment rows and columns (m16n16k8)
constexpr int kTcK = 8;          // fragment reduction depth
constexpr int kTcUnits = 16;     // units of a block's column slice
constexpr int kTcMaxBatch = 32;  // two row fragments
constexpr int kTcWarps = kWavefrontThreads / 32;
constexpr int kTcChunk = 256;    // reduction indices of one staging of the state (A) in shared memory
// Row pads of 4 floats keep every fragment's first element 32-byte aligned (WMMA loads need it: rows start at
// multiples of 8 of the reduction) and shift successive rows across banks.
constexpr int kTcPad = 4;
constexpr int kTcALd = kTcChunk + kTcPad;

DEEPRNN_HOST_DEVICE constexpr int64_t TcRoundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Row fragments for a batch: 1 for B <= 16, 2 for B <= 32.
DEEPRNN_HOST_DEVICE constexpr int TcRowFragments(int64_t batch) { return batch <= kTcFragment ? 1 : 2; }

// Output fragments per product: forward one per (row fragment, gate), backward one per row fragment.
DEEPRNN_HOST_DEVICE constexpr int TcFragments(int row_fragments, int gates, bool backward) {
  return row_fragments * (backward ? 1 : gates);
}

// Warps per fragment that split a product's reduction (the rest of the 8 warps idle during products).
DEEPRNN_HOST_DEVICE constexpr int TcKSplit(int fragments) {
  return fragments >= kTcWarps ? 1 : kTcWarps / fragments;
}

// The reduction length of one product padded to whole fragments: forward H, backward G*H.
DEEPRNN_HOST_DEVICE constexpr int64_t TcSegmentK(int64_t hidden, int gates, bool backward) {
  return TcRoundUp(backward ? gates * hidden : hidden, kTcK);
}

// Floats of one staged weight row: forward the G gates' 16 columns side by side, backward 16 columns.
DEEPRNN_HOST_DEVICE constexpr int64_t TcWeightLd(int gates, bool backward) {
  return (backward ? 1 : gates) * kTcUnits + kTcPad;
}

// The block's dynamic shared memory, in floats, three consecutive regions (each a multiple of 8 floats, so that
// every region starts 32-byte aligned):
//   weights   [segments][K padded][weight row]  the block's slice of its layer's weights, rounded to TF32 once
//   A         [32][kTcALd]                      one chunk of the product's left operand (state or grad slots)
//   partials  [2 products][8 warps][16 x 16]    each warp's accumulator fragment, stored for the epilogue
DEEPRNN_HOST_DEVICE constexpr int64_t TcWeightElems(int gates, int64_t hidden, int64_t layers, bool backward) {
  return ResidentSegments(layers) * TcSegmentK(hidden, gates, backward) * TcWeightLd(gates, backward);
}
DEEPRNN_HOST_DEVICE constexpr int64_t TcAElems() { return int64_t{kTcMaxBatch} * kTcALd; }
DEEPRNN_HOST_DEVICE constexpr int64_t TcPartialElems() { return int64_t{2} * kTcWarps * kTcFragment * kTcFragment; }
DEEPRNN_HOST_DEVICE constexpr int64_t TcSmemBytes(int gates, int64_t hidden, int64_t layers, bool backward) {
  return (TcWeightElems(gates, hidden, layers, backward) + TcAElems() + TcPartialElems()) * 4;
}

}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_PLAN_TENSOR_CORE_TILE_H_
