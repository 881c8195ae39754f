// CPU launchers of the GRU ops: run the library's CPU passes on TensorFlow's intra-op thread pool.
#include "tensorflow/core/framework/op_kernel.h"
#include "tf/cpu_parallel_for.h"
#include "tf/stacked_gru_kernels.h"

namespace deeprnn_fast {

template <typename T>
struct GruForwardLauncher<CpuDevice, T> {
  static absl::Status Run(tensorflow::OpKernelContext* ctx, const GruForwardArgs<T>& a) {
    deeprnn::StackedGruForwardCpu<T>(a.shape, a.inputs, a.weights(), a.initial_states, a.outputs, a.final_states,
                                     a.activations, a.gates, IntraOpParallelFor(ctx));
    return absl::OkStatus();
  }
};

template <typename T>
struct GruBackwardLauncher<CpuDevice, T> {
  static int64_t ScratchSize(const deeprnn::Shape& shape) {
    return deeprnn::StackedGruBackwardCpuScratchSize<T>(shape);
  }
  static absl::Status Run(tensorflow::OpKernelContext* ctx, const GruBackwardArgs<T>& a) {
    deeprnn::StackedGruBackwardCpu<T>(a.shape, a.inputs, a.weights(), a.initial_states, a.activations, a.gates,
                                      a.grad_outputs, a.grad_final_states, a.grad_inputs, a.weight_grads(),
                                      a.grad_initial_states, a.grad_gates, IntraOpParallelFor(ctx));
    return absl::OkStatus();
  }
};

DEEPRNN_FAST_REGISTER_GRU_KERNELS(tensorflow::DEVICE_CPU, CpuDevice, float)
DEEPRNN_FAST_REGISTER_GRU_KERNELS(tensorflow::DEVICE_CPU, CpuDevice, double)

}  // namespace deeprnn_fast
