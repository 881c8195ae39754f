// CPU launchers: run the library's CPU passes on TensorFlow's intra-op thread pool.
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/platform/threadpool.h"
#include "tf/stacked_rnn_kernels.h"

namespace deeprnn_fast {

namespace {

// Hands the library's work units to TensorFlow's intra-op pool, the pool TensorFlow's own CPU kernels use, so the
// op neither oversubscribes the cores nor starts threads of its own. The cost hint is large on purpose: every unit
// is a tile of a matrix product, always worth a thread.
deeprnn::ParallelFor IntraOpParallelFor(tensorflow::OpKernelContext* ctx) {
  auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  return [pool](int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 1) {
      if (n == 1) fn(0, 1);
      return;
    }
    pool->ParallelFor(n, /*cost_per_unit=*/1 << 20, [&fn](int64_t begin, int64_t end) { fn(begin, end); });
  };
}

}  // namespace

template <typename T>
struct ForwardLauncher<CpuDevice, T> {
  static absl::Status Run(tensorflow::OpKernelContext* ctx, const ForwardArgs<T>& a) {
    deeprnn::StackedRnnForwardCpu<T>(a.shape, a.activation, a.inputs, a.weights(), a.initial_states, a.outputs,
                                     a.final_states, a.activations, IntraOpParallelFor(ctx));
    return absl::OkStatus();
  }
};

template <typename T>
struct BackwardLauncher<CpuDevice, T> {
  static absl::Status Run(tensorflow::OpKernelContext* ctx, const BackwardArgs<T>& a) {
    deeprnn::StackedRnnBackwardCpu<T>(a.shape, a.activation, a.inputs, a.weights(), a.initial_states, a.activations,
                                      a.grad_outputs, a.grad_final_states, a.grad_inputs, a.weight_grads(),
                                      a.grad_initial_states, a.grad_preactivations, IntraOpParallelFor(ctx));
    return absl::OkStatus();
  }
};

DEEPRNN_FAST_REGISTER_KERNELS(tensorflow::DEVICE_CPU, CpuDevice, float)
DEEPRNN_FAST_REGISTER_KERNELS(tensorflow::DEVICE_CPU, CpuDevice, double)

}  // namespace deeprnn_fast
