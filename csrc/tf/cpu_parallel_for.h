// deeprnn::ParallelFor over TensorFlow's intra-op thread pool, for the CPU launchers of every op.
#ifndef DEEPRNN_FAST_TF_CPU_PARALLEL_FOR_H_
#define DEEPRNN_FAST_TF_CPU_PARALLEL_FOR_H_

#include <functional>

#include "deeprnn/stacked_rnn.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/platform/threadpool.h"

namespace deeprnn_fast {

// Hands the library's work units to TensorFlow's intra-op pool, the pool TensorFlow's own CPU kernels use, so the
// op neither oversubscribes the cores nor starts threads of its own. The cost hint is large on purpose: every unit
// is a tile of a matrix product, always worth a thread.
inline deeprnn::ParallelFor IntraOpParallelFor(tensorflow::OpKernelContext* ctx) {
  auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  return [pool](int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 1) {
      if (n == 1) fn(0, 1);
      return;
    }
    pool->ParallelFor(n, /*cost_per_unit=*/1 << 20, [&fn](int64_t begin, int64_t end) { fn(begin, end); });
  };
}

}  // namespace deeprnn_fast

#endif  // DEEPRNN_FAST_TF_CPU_PARALLEL_FOR_H_
