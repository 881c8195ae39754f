// GPU launchers of the GRU ops: run the library's CUDA passes (deeprnn/stacked_gru_cuda.h) on TensorFlow's stream
// for the op, with the workspace from TensorFlow's allocator; the GRU counterpart of stacked_rnn_gpu.cc (no CUDA
// header here either: the library takes the stream as a void*). DEEPRNN_FAST_CUDA_SCHEDULE (auto, stepwise,
// persistent, persistent_resident, persistent_streaming) overrides the planner's choice of wavefront schedule, as
// for the tanh RNN; it is read once per process.
#if GOOGLE_CUDA

#include <cstdint>
#include <cstdlib>
#include <string>

#include "deeprnn/stacked_gru_cuda.h"
#include "tensorflow/core/framework/device_base.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tf/gpu_launch_helpers.h"
#include "tf/stacked_gru_kernels.h"
#include "xla/stream_executor/stream.h"

namespace deeprnn_fast {

template <typename T>
struct GruForwardLauncher<GpuDevice, T> {
  static absl::Status Run(tensorflow::OpKernelContext* ctx, const GruForwardArgs<T>& a) {
    const int64_t bytes = deeprnn::StackedGruForwardCudaWorkspaceBytes(a.shape, sizeof(T));
    return LaunchOnOpStream(ctx, "GRU forward", bytes,
                            [&](void* workspace, void* stream, deeprnn::CudaSchedule schedule) {
                              return deeprnn::StackedGruForwardCuda<T>(
                                  a.shape, a.inputs, a.weights(), a.initial_states, a.outputs, a.final_states,
                                  a.activations, a.gates, workspace, bytes, stream, schedule);
                            });
  }
};

template <typename T>
struct GruBackwardLauncher<GpuDevice, T> {
  // The CUDA pass keeps the gates' gradients of every cell: [L,T,B,4H].
  static int64_t ScratchSize(const deeprnn::Shape& shape) {
    return shape.layers * shape.time * shape.batch * deeprnn::kGruGateSlots * shape.hidden;
  }
  static absl::Status Run(tensorflow::OpKernelContext* ctx, const GruBackwardArgs<T>& a) {
    const int64_t bytes = deeprnn::StackedGruBackwardCudaWorkspaceBytes(a.shape, sizeof(T));
    return LaunchOnOpStream(ctx, "GRU backward", bytes,
                            [&](void* workspace, void* stream, deeprnn::CudaSchedule schedule) {
                              return deeprnn::StackedGruBackwardCuda<T>(
                                  a.shape, a.inputs, a.weights(), a.initial_states, a.activations, a.gates,
                                  a.grad_outputs, a.grad_final_states, a.grad_inputs, a.weight_grads(),
                                  a.grad_initial_states, a.grad_gates, workspace, bytes, stream, schedule);
                            });
  }
};

DEEPRNN_FAST_REGISTER_GRU_KERNELS(tensorflow::DEVICE_GPU, GpuDevice, float)
DEEPRNN_FAST_REGISTER_GRU_KERNELS(tensorflow::DEVICE_GPU, GpuDevice, double)

}  // namespace deeprnn_fast

#endif  // GOOGLE_CUDA
