// Where a backward pass accumulates its weight gradients, so that batch blocks (engine/cpu/wavefront.h) can each sum into
// a private copy that is added to the caller's arrays afterwards, in block order (results then do not depend on
// which thread ran which block). Internal to the CPU kernel library.
#ifndef DEEPRNN_ENGINE_CPU_WEIGHT_GRAD_SINK_H_
#define DEEPRNN_ENGINE_CPU_WEIGHT_GRAD_SINK_H_

#include <cstdint>
#include <vector>

#include "engine/cpu/wavefront.h"

namespace deeprnn {
namespace cpu {

// A list of T arrays (weight gradients, accumulated with +=) and a list of double arrays (bias gradients as column
// sums, accumulated in double), either the caller's arrays or owned zeroed copies of the same sizes.
template <typename T>
class WeightGradSink {
 public:
  struct Array {
    T* data;
    int64_t size;
  };
  // Accumulates into `arrays` (the caller's, zeroed by the caller) and into zeroed sums of `sum_sizes` values.
  WeightGradSink(const std::vector<Array>& arrays, const std::vector<int64_t>& sum_sizes) : arrays_(arrays) {
    for (int64_t size : sum_sizes) sums_.emplace_back(size, 0.0);
  }

  // Not copyable: a copy of a sink that owns its arrays would point into the original's storage.
  WeightGradSink(const WeightGradSink&) = delete;
  WeightGradSink& operator=(const WeightGradSink&) = delete;
  WeightGradSink(WeightGradSink&&) = default;
  WeightGradSink& operator=(WeightGradSink&&) = default;

  // Zeroed arrays and sums of this sink's sizes, owned by the returned sink.
  WeightGradSink ZeroedCopy() const {
    WeightGradSink copy;
    int64_t total = 0;
    for (const Array& a : arrays_) total += a.size;
    copy.storage_.assign(total, T(0));
    T* next = copy.storage_.data();
    for (const Array& a : arrays_) {
      copy.arrays_.push_back({next, a.size});
      next += a.size;
    }
    for (const std::vector<double>& s : sums_) copy.sums_.emplace_back(s.size(), 0.0);
    return copy;
  }

  // dst += this, element by element.
  void AddInto(WeightGradSink& dst) const {
    for (size_t i = 0; i < arrays_.size(); ++i)
      for (int64_t j = 0; j < arrays_[i].size; ++j) dst.arrays_[i].data[j] += arrays_[i].data[j];
    for (size_t i = 0; i < sums_.size(); ++i)
      for (size_t j = 0; j < sums_[i].size(); ++j) dst.sums_[i][j] += sums_[i][j];
  }

  T* array(size_t i) const { return arrays_[i].data; }
  double* sums(size_t i) { return sums_[i].data(); }
  const std::vector<double>& sums_of(size_t i) const { return sums_[i]; }

 private:
  WeightGradSink() = default;
  std::vector<Array> arrays_;
  std::vector<std::vector<double>> sums_;
  std::vector<T> storage_;  // a zeroed copy's arrays
};

// The batch blocks of a backward pass: run_block(row_begin, row_end, partial) for every block, on the thread that
// takes it, into a zeroed copy of `sink`; then the copies are added into `sink` in block order.
template <typename T, typename RunBlock>
void RunBlocksIntoSink(const std::vector<RowBlock>& blocks, WeightGradSink<T>& sink, const ParallelFor& parallel_for,
                       RunBlock&& run_block) {
  std::vector<WeightGradSink<T>> partial;
  partial.reserve(blocks.size());
  for (size_t b = 0; b < blocks.size(); ++b) partial.push_back(sink.ZeroedCopy());
  parallel_for(static_cast<int64_t>(blocks.size()), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) run_block(blocks[b].row_begin, blocks[b].row_end, partial[b]);
  });
  for (const WeightGradSink<T>& p : partial) p.AddInto(sink);
}

}  // namespace cpu
}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_CPU_WEIGHT_GRAD_SINK_H_
