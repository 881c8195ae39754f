// CPU launchers: run the library's CPU passes on TensorFlow's intra-op thread pool.
#include "tensorflow/core/framework/op_kernel.h"
#include "tf/cpu_parallel_for.h"
#include "tf/stacked_rnn_kernels.h"

namespace deeprnn_fast {

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
