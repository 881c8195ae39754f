// GPU launchers: run the library's CUDA passes (deeprnn/stacked_rnn_cuda.h) on TensorFlow's stream for the op, with
// the workspace from TensorFlow's allocator. No CUDA header here: the library takes the stream as a void*.
// DEEPRNN_FAST_CUDA_SCHEDULE (auto, stepwise, persistent, persistent_resident, persistent_streaming) overrides the
// planner's choice of wavefront schedule, for tests and benchmarks; it is read once per process.
#if GOOGLE_CUDA

#include <cstdint>
#include <cstdlib>
#include <string>

#include "deeprnn/stacked_rnn_cuda.h"
#include "tensorflow/core/framework/device_base.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tf/gpu_launch_helpers.h"
#include "tf/stacked_rnn_kernels.h"
#include "xla/stream_executor/stream.h"

namespace deeprnn_fast {

template <typename T>
struct ForwardLauncher<GpuDevice, T> {
  static absl::Status Run(tensorflow::OpKernelContext* ctx, const ForwardArgs<T>& a) {
    const int64_t bytes = deeprnn::StackedRnnForwardCudaWorkspaceBytes(a.shape, sizeof(T));
    return LaunchOnOpStream(ctx, "forward", bytes, [&](void* workspace, void* stream, deeprnn::CudaSchedule schedule) {
      return deeprnn::StackedRnnForwardCuda<T>(a.shape, a.activation, a.inputs, a.weights(), a.initial_states,
                                               a.outputs, a.final_states, a.activations, workspace, bytes, stream,
                                               schedule);
    });
  }
};

template <typename T>
struct BackwardLauncher<GpuDevice, T> {
  static absl::Status Run(tensorflow::OpKernelContext* ctx, const BackwardArgs<T>& a) {
    const int64_t bytes = deeprnn::StackedRnnBackwardCudaWorkspaceBytes(a.shape, sizeof(T));
    return LaunchOnOpStream(ctx, "backward", bytes, [&](void* workspace, void* stream, deeprnn::CudaSchedule schedule) {
      return deeprnn::StackedRnnBackwardCuda<T>(a.shape, a.activation, a.inputs, a.weights(), a.initial_states,
                                                a.activations, a.grad_outputs, a.grad_final_states, a.grad_inputs,
                                                a.weight_grads(), a.grad_initial_states, a.grad_preactivations,
                                                workspace, bytes, stream, schedule);
    });
  }
};

DEEPRNN_FAST_REGISTER_KERNELS(tensorflow::DEVICE_GPU, GpuDevice, float)
DEEPRNN_FAST_REGISTER_KERNELS(tensorflow::DEVICE_GPU, GpuDevice, double)

}  // namespace deeprnn_fast

#endif  // GOOGLE_CUDA
