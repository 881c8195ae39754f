// deeprnn::ParallelFor over TensorFlow's intra-op thread pool, for the CPU launchers of every op.
#ifndef DEEPRNN_FAST_TF_CPU_PARALLEL_FOR_H_
#define DEEPRNN_FAST_TF_CPU_PARALLEL_FOR_H_

#include <algorithm>
#include <atomic>
#include <functional>

#include "deeprnn/stacked_rnn.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/platform/threadpool.h"

namespace deeprnn_fast {

// Hands the library's work units to TensorFlow's intra-op pool, the pool TensorFlow's own CPU kernels use, so the
// op neither oversubscribes the cores nor starts threads of its own. One shard per pool thread, each taking units
// from a shared counter until none is left: the units of one call differ in size (a step's cell tiles beside a
// layer's weight-gradient product), and a static split would leave a core idle at the end of every step. Which
// thread runs a unit never changes its result (the library's contract), so this keeps results reproducible.
inline deeprnn::ParallelFor IntraOpParallelFor(tensorflow::OpKernelContext* ctx) {
  auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  return [pool](int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 1) {
      if (n == 1) fn(0, 1);
      return;
    }
    const int64_t shards = std::min<int64_t>(n, std::max(1, pool->NumThreads()));
    std::atomic<int64_t> next{0};
    pool->ParallelFor(shards, /*cost_per_unit=*/1 << 30, [&](int64_t begin, int64_t end) {
      for (int64_t shard = begin; shard < end; ++shard)
        for (int64_t unit = next.fetch_add(1); unit < n; unit = next.fetch_add(1)) fn(unit, unit + 1);
    });
  };
}

}  // namespace deeprnn_fast

#endif  // DEEPRNN_FAST_TF_CPU_PARALLEL_FOR_H_
