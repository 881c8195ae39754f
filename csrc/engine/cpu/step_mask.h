// Keras' masking in the CPU engine's schedules (deeprnn/stacked.h, Modifiers): which rows of a tile take a step,
// and which rows of a masked step still pass the output through. Plain code, no instruction set in it.
#ifndef DEEPRNN_ENGINE_CPU_STEP_MASK_H_
#define DEEPRNN_ENGINE_CPU_STEP_MASK_H_

#include <cstdint>
#include <vector>

namespace deeprnn {
namespace cpu {

// Rows [begin, end) of a tile, relative to its first row.
struct RowRun {
  int64_t begin, end;
};

// The runs of whole `quantum`-row chunks of the tile rows [r0, r1) in which some row takes step t (or, with
// `next_too`, step t + 1 < time): the products and pointwise passes run on these and skip the rest, whose rows all
// keep their states. Without a mask, the whole tile.
inline std::vector<RowRun> TakenRuns(const uint8_t* mask, int64_t time, int64_t r0, int64_t r1, int64_t t,
                                     bool next_too, int64_t quantum) {
  std::vector<RowRun> runs;
  if (mask == nullptr) {
    if (r1 > r0) runs.push_back({0, r1 - r0});
    return runs;
  }
  for (int64_t c0 = r0; c0 < r1; c0 += quantum) {
    const int64_t c1 = c0 + quantum < r1 ? c0 + quantum : r1;
    bool taken = false;
    for (int64_t b = c0; b < c1 && !taken; ++b)
      taken = mask[b * time + t] != 0 || (next_too && t + 1 < time && mask[b * time + t + 1] != 0);
    if (!taken) continue;
    if (!runs.empty() && runs.back().end == c0 - r0) {
      runs.back().end = c1 - r0;
    } else {
      runs.push_back({c0 - r0, c1 - r0});
    }
  }
  return runs;
}

// Per row b, the first step it takes (time when none): the output of a masked step t of row b repeats the last
// output before it when t > first[b], and is zero otherwise (Keras: zeros until the first step taken).
inline std::vector<int64_t> FirstTakenSteps(const uint8_t* mask, int64_t batch, int64_t time) {
  std::vector<int64_t> first(batch, time);
  if (mask == nullptr) return first;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < time; ++t)
      if (mask[b * time + t]) {
        first[b] = t;
        break;
      }
  return first;
}

}  // namespace cpu
}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_CPU_STEP_MASK_H_
