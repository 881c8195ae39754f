// The wavefront schedule of a stacked RNN and the split of one step's cells into work units.
#ifndef DEEPRNN_ENGINE_CPU_WAVEFRONT_H_
#define DEEPRNN_ENGINE_CPU_WAVEFRONT_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "deeprnn/stacked.h"

namespace deeprnn {

// Step s of the wavefront holds the cells (l, t = s - l) for l in [first, last]: layer l is active once its
// input (l - 1, t) exists and until its sequence ends. There are T + L - 1 steps.
struct WavefrontStep {
  int64_t first_layer;
  int64_t last_layer;
};

inline int64_t NumWavefrontSteps(int64_t time, int64_t layers) { return time == 0 ? 0 : time + layers - 1; }

inline WavefrontStep ActiveLayers(int64_t step, int64_t time, int64_t layers) {
  return {std::max<int64_t>(0, step - time + 1), std::min<int64_t>(layers - 1, step)};
}

// A rectangle of one output matrix: rows [row_begin, row_end) and column panels [panel_begin, panel_end).
struct Tile {
  int64_t row_begin, row_end, panel_begin, panel_end;
};

// Splits an m x (panels) output into about `parts` tiles: across panels first (each tile then reads every row of
// A against a few packed weight panels that stay in cache), then across rows in multiples of `row_quantum`.
// Depends only on its arguments, so the same call always gives the same tiles.
inline std::vector<Tile> SplitTiles(int64_t m, int64_t panels, int64_t parts, int64_t row_quantum) {
  std::vector<Tile> tiles;
  if (m <= 0 || panels <= 0) return tiles;
  parts = std::max<int64_t>(1, parts);
  const int64_t panel_parts = std::min(panels, parts);
  const int64_t row_tiles = (m + row_quantum - 1) / row_quantum;
  const int64_t row_parts = std::min(row_tiles, std::max<int64_t>(1, parts / panel_parts));
  for (int64_t pr = 0; pr < panel_parts; ++pr) {
    const int64_t p0 = panels * pr / panel_parts, p1 = panels * (pr + 1) / panel_parts;
    for (int64_t rr = 0; rr < row_parts; ++rr) {
      const int64_t r0 = std::min(m, row_tiles * rr / row_parts * row_quantum);
      const int64_t r1 = std::min(m, row_tiles * (rr + 1) / row_parts * row_quantum);
      if (r1 > r0 && p1 > p0) tiles.push_back({r0, r1, p0, p1});
    }
  }
  return tiles;
}

// How many tiles a product of `flops` floating-point operations is worth splitting into: enough to feed a few
// threads, few enough that each tile amortises its dispatch (about 0.25 MFLOP at least).
inline int64_t PartsForWork(double flops, int64_t max_parts = 16) {
  return std::max<int64_t>(1, std::min<int64_t>(max_parts, static_cast<int64_t>(flops / 2.5e5)));
}

// SplitTiles over rows [row_begin, row_end) of a larger output: the tiles' rows are absolute.
inline std::vector<Tile> SplitRowRange(int64_t row_begin, int64_t row_end, int64_t panels, int64_t parts,
                                       int64_t row_quantum) {
  std::vector<Tile> tiles = SplitTiles(row_end - row_begin, panels, parts, row_quantum);
  for (Tile& tile : tiles) {
    tile.row_begin += row_begin;
    tile.row_end += row_begin;
  }
  return tiles;
}

// Weights small enough to stay in cache through a whole pass (one layer's input and recurrent kernels together):
// below this, schedules that revisit the weights at every step (streamed weight gradients, batch blocks) pay off.
constexpr int64_t kSmallWeightBytes = 256 << 10;

// Elements of the largest layer's weights, input and recurrent kernels together, for a cell whose matrices hold
// `gates` gate blocks of H columns side by side (1 for the tanh/relu RNN, 3 for the GRU).
inline int64_t LargestLayerWeights(const Shape& shape, int64_t gates) {
  const int64_t widest_input = shape.layers > 1 ? std::max(shape.input, shape.hidden) : shape.input;
  return (widest_input + shape.hidden) * gates * shape.hidden;
}

// The backward passes fold the weight gradients in step by step while the cells are in cache (large batches, small
// weights) instead of running them over all T * B rows at the end.
inline bool StreamedWeightGrads(int64_t batch, int64_t weight_bytes) {
  return batch >= 128 && weight_bytes <= kSmallWeightBytes;
}

// The other weight-gradient schedule (wide layers, small batches) runs its products over the cells of a chunk of
// consecutive steps at once, as soon as the reverse wavefront has finished the chunk: about kChunkRows rows of K
// (steps x batch), enough for the products to run near their peak, and the grad slots of two chunks per layer in
// memory instead of all T steps' (the chunk being folded in, and the one the wavefront is filling). Measured on
// `wide` (B = 64, T = 64, H = 1024, L = 2, LSTM): all steps' grad slots were 128 MiB of the step's peak.
constexpr int64_t kChunkRows = 512;
constexpr int64_t kMinChunkSteps = 4;

// Steps per chunk of the chunked weight gradients: chunks are [k C, (k + 1) C), the last one shorter.
inline int64_t WeightGradChunkSteps(int64_t batch, int64_t time) {
  const int64_t steps = std::max<int64_t>(kMinChunkSteps, (kChunkRows + batch - 1) / std::max<int64_t>(batch, 1));
  return std::max<int64_t>(1, std::min(time, steps));
}

// A chunk's weight-gradient product is split further, across the rows of its outputs (the weights' input rows:
// dWx's and dWh's stacked), into parts of about kChunkPartFlops each (~0.3 ms on one core). As one unit per
// column group, a chunk of `small` (B = 32, H = 256: 16 steps, K = 512 rows, 134 MFLOP a layer, one 8-panel group
// with AVX-512's 32-column panels) kept one core busy for a millisecond while the other finished the step's cells
// (~0.15 ms) and waited: the backward scaled 1.3x on two threads where the forward scaled 1.8x (measured
// 2026-12-04). Rows, unlike panels, cost no repacking: a part packs only its own rows of the transposed
// activations, and the grad columns (the shared operand, copied with vector loads) once more.
constexpr double kChunkPartFlops = 3.2e7;
// Every part keeps at least this many register tiles of rows, so that its products stay efficient.
constexpr int64_t kMinPartTiles = 4;

// How many row parts a chunk product of `flops` over outputs of `row_tiles` register tiles of rows in all is cut
// into.
inline int64_t ChunkRowParts(double flops, int64_t row_tiles) {
  const int64_t wanted = static_cast<int64_t>(flops / kChunkPartFlops + 0.999);
  return std::max<int64_t>(1, std::min(wanted, row_tiles / kMinPartTiles));
}

// Rows [begin, end) of a product's output.
struct RowRange {
  int64_t begin, end;
};

// The rows of each of `num` stacked outputs (rows[o] rows each) that part `part` of `parts` covers: the outputs'
// register tiles (`quantum` rows, an output's last one short) numbered through all outputs, and part q taking tiles
// [n q / parts, n (q + 1) / parts). Whole tiles, so every element is computed exactly as by the unsplit product.
inline std::vector<RowRange> PartRows(const int64_t* rows, int num, int64_t part, int64_t parts, int64_t quantum) {
  int64_t total = 0;
  for (int o = 0; o < num; ++o) total += (rows[o] + quantum - 1) / quantum;
  const int64_t q0 = total * part / parts, q1 = total * (part + 1) / parts;
  std::vector<RowRange> out(num);
  int64_t first = 0;  // the first tile of output o in the numbering
  for (int o = 0; o < num; ++o) {
    const int64_t tiles = (rows[o] + quantum - 1) / quantum;
    const int64_t b = std::min(std::max(q0 - first, int64_t{0}), tiles), e = std::min(std::max(q1 - first, int64_t{0}), tiles);
    out[o] = {std::min(rows[o], b * quantum), std::min(rows[o], e * quantum)};
    first += tiles;
  }
  return out;
}

// The row stride for a matrix of `values` a row that register tiles read as their A operand, kMr rows at a time at
// the same column: padded by a cache line where it is a multiple of 4 KB, since rows 4 KB apart all fall into one set
// of the 8-way L1 and evict each other at every line. The backward's grad slots (the tanh cell's at H = 1024, the
// GRU's and LSTM's four slots at H = 256) and the forward's operand copies take it. One Zen 4 core ran the same
// forward at H = 1040 at 80 GFLOP/s and at H = 1024 at 69 (2026-12-04).
inline int64_t AliasFreeRowStride(int64_t values, int64_t element_bytes) {
  return values * element_bytes % 4096 == 0 ? values + 64 / element_bytes : values;
}

// Cells per layer whose grad slots the backward keeps: a ring, cell (l, t) in slot t mod GradCells. Streamed: two
// steps; chunked: two chunks (or all steps, where that is no more).
inline int64_t GradCells(int64_t batch, int64_t time, int64_t weight_bytes) {
  if (StreamedWeightGrads(batch, weight_bytes)) return std::min<int64_t>(2, time);
  return std::min(time, 2 * WeightGradChunkSteps(batch, time));
}

// Batch blocks. The rows of the batch never meet in the recurrence (only the weight gradients sum over them), so a
// large batch can be cut into blocks of rows that each run the whole wavefront on their own, one block per work
// unit: no synchronisation between steps, and a block's cells stay in cache from one step to the next. That beats
// splitting every step's cells across threads when the batch is large and the weights small (the book's B = 1024,
// H = 32: a step is ~0.3 ms of work, and ~65 steps per training step each pay a fork and a join). Wide layers keep
// the per-step split, since every block would read all the weights at every step.
//
// The blocks depend only on the shape (never on the thread count), so the partial weight gradients they produce are
// summed in the same order on any machine and results stay bitwise reproducible.
struct RowBlock {
  int64_t row_begin, row_end;
};

// Every block has at least kMinBlockRows rows (so that its products stay efficient) and there are at most
// kMaxBatchBlocks (enough to balance that many threads, few enough that the partial weight gradients stay small).
constexpr int64_t kMinBlockRows = 64;
constexpr int64_t kMaxBatchBlocks = 16;

// The blocks of a batch-blocked schedule, in multiples of `row_quantum` rows, or none when the per-step split is the
// better schedule. `weight_bytes` is the size of the largest layer's weights (LargestLayerWeights). Blocks imply the
// streamed weight gradients (a larger batch, the same weight bound), which the backward passes rely on.
inline std::vector<RowBlock> BatchBlocks(int64_t batch, int64_t weight_bytes, int64_t row_quantum) {
  std::vector<RowBlock> blocks;
  if (batch < 4 * kMinBlockRows || weight_bytes > kSmallWeightBytes) return blocks;
  const int64_t num = std::min(kMaxBatchBlocks, batch / kMinBlockRows);
  const int64_t quanta = (batch + row_quantum - 1) / row_quantum;
  for (int64_t i = 0; i < num; ++i)
    blocks.push_back({std::min(batch, quanta * i / num * row_quantum),
                      std::min(batch, quanta * (i + 1) / num * row_quantum)});
  return blocks;
}

// Asks for `rows` rows of `cols` values, `ld` apart, to be brought into L2 ahead of their use. A batch block's
// backward reads the forward's activations of one (layer, step) at a time, a few KB each, long evicted to L3 or
// memory by then; the hardware prefetchers only catch up part way into each, and the weight-gradient products stall
// on the rest (measured on the book's shape).
template <typename T>
inline void PrefetchRows(const T* p, int64_t rows, int64_t cols, int64_t ld) {
  const int64_t bytes = cols * static_cast<int64_t>(sizeof(T));
  for (int64_t r = 0; r < rows; ++r) {
    const char* row = reinterpret_cast<const char*>(p + r * ld);
    for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch(row + o, 0, 2);
    __builtin_prefetch(row + bytes - 1, 0, 2);
  }
}

// Runs a pass over the whole batch: wavefront(row_begin, row_end, split, step_for) for rows [0, B) with each
// step's tiles split across `parallel_for` when there are no blocks, else once per block on the thread that takes
// it (split false, steps run serially).
template <typename Wavefront>
void RunOverBatch(int64_t batch, const std::vector<RowBlock>& blocks, const ParallelFor& parallel_for,
                  Wavefront&& wavefront) {
  if (blocks.empty()) {
    wavefront(int64_t{0}, batch, true, parallel_for);
    return;
  }
  parallel_for(static_cast<int64_t>(blocks.size()), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) wavefront(blocks[b].row_begin, blocks[b].row_end, false, SerialFor);
  });
}

}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_CPU_WAVEFRONT_H_
