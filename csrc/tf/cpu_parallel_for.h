// deeprnn::ParallelFor over TensorFlow's intra-op thread pool, for the CPU launchers of every op.
#ifndef DEEPRNN_FAST_TF_CPU_PARALLEL_FOR_H_
#define DEEPRNN_FAST_TF_CPU_PARALLEL_FOR_H_

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <thread>

#include "deeprnn/stacked.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/platform/threadpool.h"

namespace deeprnn_fast {

// Hands the library's work units to TensorFlow's intra-op pool, the pool TensorFlow's own CPU kernels use, so the
// op neither oversubscribes the cores nor starts threads of its own. The calling thread and one task per other
// pool thread take units from a shared counter until none is left: the units of one call differ in size (a step's
// cell tiles beside a layer's weight-gradient product), and a static split would leave a core idle at the end of
// every step. The caller then waits for the units others took by spinning, not by sleeping on a barrier: a
// wavefront step is tens of microseconds, about what a sleep and wake-up cost. Which thread runs a unit never
// changes its result (the library's contract), so this keeps results reproducible.
inline deeprnn::ParallelFor IntraOpParallelFor(tensorflow::OpKernelContext* ctx) {
  auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  return [pool](int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 1) {
      if (n == 1) fn(0, 1);
      return;
    }
    // Shared with the helper tasks: one may start after every unit is done and this call has returned, so it
    // must find the state alive (and then run nothing).
    struct State {
      std::atomic<int64_t> next{0};
      std::atomic<int64_t> done{0};
      const std::function<void(int64_t, int64_t)>* fn;
      int64_t n;
      void Work() {
        for (int64_t unit = next.fetch_add(1); unit < n; unit = next.fetch_add(1)) {
          (*fn)(unit, unit + 1);
          done.fetch_add(1, std::memory_order_release);
        }
      }
    };
    auto state = std::make_shared<State>();
    state->fn = &fn;
    state->n = n;
    const int64_t helpers = std::min<int64_t>(n - 1, std::max(0, pool->NumThreads() - 1));
    for (int64_t i = 0; i < helpers; ++i) pool->Schedule([state] { state->Work(); });
    state->Work();
    while (state->done.load(std::memory_order_acquire) < n) std::this_thread::yield();
  };
}

}  // namespace deeprnn_fast

#endif  // DEEPRNN_FAST_TF_CPU_PARALLEL_FOR_H_
