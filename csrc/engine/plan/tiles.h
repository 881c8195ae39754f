// The wavefront kernels' tiles and shared memory, for any cell: one definition that the kernels (engine/cuda) and
// the host planner (engine/plan/planner.cc) both compile, so that what is planned is what the kernels stage.
#ifndef DEEPRNN_ENGINE_PLAN_TILES_H_
#define DEEPRNN_ENGINE_PLAN_TILES_H_

#include <cstdint>

#include "deeprnn/launch_plan.h"

// Functions the kernels share with the host planner are compiled for both sides by nvcc and for the host by g++.
#if defined(__CUDACC__)
#define DEEPRNN_HOST_DEVICE __host__ __device__
#else
#define DEEPRNN_HOST_DEVICE
#endif

namespace deeprnn {

struct WavefrontTile {
  int bm;  // batch rows per tile
  int bn;  // hidden units per tile (the width of a block's weight slice when weights are on chip)
  int tm;  // rows per thread
  int tn;  // units per thread
  int bk;  // reduction chunk staged in shared memory
};

constexpr int kNumWavefrontTiles = 6;

// The tile shapes the kernels are instantiated for. Tiles 0-4 share BN = 16, so the weight slices kept on chip are
// narrow (many blocks, little shared memory each); they differ in how many batch rows a tile covers, and the small
// ones split the reduction across thread groups instead (KS > 1) so that B = 1 still keeps 256 threads busy.
// Tile 5 is register-blocked for large batches: 64 x 64 units with 4 x 4 per thread for a cell with one
// pre-activation slot (tanh / relu); 64 x 32 with 4 x 2 for cells with several (GRU, LSTM: four accumulators per
// unit forward), so that they stay within the 128 registers of __launch_bounds__(256, 2).
DEEPRNN_HOST_DEVICE constexpr WavefrontTile WavefrontTileShape(int pre_slots, int index) {
  return index == 0   ? WavefrontTile{1, 16, 1, 1, 256}
         : index == 1 ? WavefrontTile{4, 16, 1, 1, 128}
         : index == 2 ? WavefrontTile{16, 16, 1, 1, 64}
         : index == 3 ? WavefrontTile{32, 16, 2, 1, 32}
         : index == 4 ? WavefrontTile{64, 16, 4, 1, 32}
         : pre_slots == 1 ? WavefrontTile{64, 64, 4, 4, 16}
                          : WavefrontTile{64, 32, 4, 2, 16};
}

// Reduction slices per tile: the threads left over once every output has a thread.
DEEPRNN_HOST_DEVICE constexpr int WavefrontKs(const WavefrontTile& t) {
  return kWavefrontThreads / ((t.bm / t.tm) * (t.bn / t.tn));
}

// Weight segments a block keeps on chip: the input product's and the recurrent one's, or only the recurrent one
// for a single layer (layer 0's input product is computed before the wavefront, and in the backward pass the top
// layer has no layer above).
DEEPRNN_HOST_DEVICE constexpr int64_t ResidentSegments(int64_t layers) { return layers > 1 ? 2 : 1; }

// Accumulators per output unit of a thread: one per pre-activation slot forward, dh backward.
DEEPRNN_HOST_DEVICE constexpr int WavefrontAccumulators(int pre_slots, bool backward) {
  return backward ? 1 : pre_slots;
}

// Elements of one row (one reduction index) of a staged weight slice: forward the G gates' BN columns side by side
// plus one pad; backward BN + 1 (the pad avoids bank conflicts of transposed loads).
DEEPRNN_HOST_DEVICE constexpr int64_t WeightRowElems(const WavefrontTile& t, int gates, bool backward) {
  return backward ? t.bn + 1 : static_cast<int64_t>(gates) * t.bn + 1;
}

// Length of one reduction segment: H forward (x or h times a [H, G*H] weight), G*H backward (grad slots times a
// transposed weight).
DEEPRNN_HOST_DEVICE constexpr int64_t SegmentLength(int64_t hidden, int gates, bool backward) {
  return backward ? gates * hidden : hidden;
}

// Dynamic shared memory of a wavefront block, in elements, as three consecutive regions:
//   A staging   [BK][BM+1]       activations (or grad slots) of the tile's rows, one reduction chunk
//   reduction   [accumulators][256]   every thread's partial sums, added across the KS slices (only when KS > 1)
//   B           [BK][row]        one chunk of the weight slice (streaming), or
//               [segments][segment length][row]   the whole slice of the block's layer (weights on chip)
DEEPRNN_HOST_DEVICE constexpr int64_t WavefrontSmemAElems(const WavefrontTile& t) {
  return static_cast<int64_t>(t.bk) * (t.bm + 1);
}
DEEPRNN_HOST_DEVICE constexpr int64_t WavefrontSmemRedElems(const WavefrontTile& t, int pre_slots, bool backward) {
  return WavefrontKs(t) > 1
             ? static_cast<int64_t>(kWavefrontThreads) * t.tm * t.tn * WavefrontAccumulators(pre_slots, backward)
             : 0;
}
DEEPRNN_HOST_DEVICE constexpr int64_t WavefrontSmemBElems(const WavefrontTile& t, int gates, int64_t hidden,
                                                          int64_t layers, bool resident, bool backward) {
  return resident ? ResidentSegments(layers) * SegmentLength(hidden, gates, backward) *
                        WeightRowElems(t, gates, backward)
                  : static_cast<int64_t>(t.bk) * WeightRowElems(t, gates, backward);
}
DEEPRNN_HOST_DEVICE constexpr int64_t WavefrontSmemBytes(const WavefrontTile& t, int gates, int pre_slots,
                                                         int64_t hidden, int64_t layers, bool resident,
                                                         bool backward, int64_t element_bytes) {
  return (WavefrontSmemAElems(t) + WavefrontSmemRedElems(t, pre_slots, backward) +
          WavefrontSmemBElems(t, gates, hidden, layers, resident, backward)) *
         element_bytes;
}

}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_PLAN_TILES_H_
