// GPU launchers: run the library's CUDA passes on TensorFlow's stream for the op, with the workspace from
// TensorFlow's allocator (tf/gpu_launch_helpers.h), and register the GPU kernels of every op. No CUDA header here: the
// library takes the stream as a void*.
#if GOOGLE_CUDA

#include <cstdint>
#include <string>

#include "deeprnn/stacked_gru_cuda.h"
#include "deeprnn/stacked_rnn_cuda.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tf/gpu_launch_helpers.h"
#include "tf/stacked_op_kernels.h"

namespace deeprnn_fast {

namespace {

absl::Status Unsupported(const char* what, deeprnn::Cell cell) {
  return absl::UnimplementedError(std::string("deeprnn_fast: ") + what + " of the " + deeprnn::CellName(cell) +
                                  " cell have no CUDA kernels yet; run the op on the CPU (tf.device('/CPU:0')) "
                                  "or use deeprnn_fast.reference");
}

deeprnn::Activation ActivationOf(deeprnn::Cell cell) {
  return cell == deeprnn::Cell::kRelu ? deeprnn::Activation::kRelu : deeprnn::Activation::kTanh;
}

}  // namespace

template <typename T>
struct Launcher<GpuDevice, T> {
  // Token ids live on the device: the CUDA passes would have to check them.
  static absl::Status CheckTokens(const tensorflow::Tensor&, int64_t) {
    return absl::UnimplementedError(
        "deeprnn_fast: token inputs have no CUDA kernels yet; run the op on the CPU or feed one-hot inputs");
  }

  static absl::Status Forward(tensorflow::OpKernelContext* ctx, const deeprnn::ForwardArgs<T>& a) {
    if (a.modifiers.mask || a.modifiers.any_dropout()) return Unsupported("masks and dropout", a.cell);
    const deeprnn::Weights<T>& w = a.weights;
    if (a.cell == deeprnn::Cell::kGru) {
      const int64_t bytes = deeprnn::StackedGruForwardCudaWorkspaceBytes(a.shape, sizeof(T));
      return LaunchOnOpStream(ctx, "GRU forward", bytes, [&](void* workspace, void* stream, deeprnn::CudaSchedule schedule) {
        return deeprnn::StackedGruForwardCuda<T>(a.shape, a.inputs.dense, {w.kernels, w.recurrent_kernels, w.biases},
                                                 a.initial_states, a.outputs, a.final_states, a.activations, a.saved,
                                                 workspace, bytes, stream, schedule);
      });
    }
    if (a.cell == deeprnn::Cell::kLstm) return Unsupported("the forward pass", a.cell);
    const int64_t bytes = deeprnn::StackedRnnForwardCudaWorkspaceBytes(a.shape, sizeof(T));
    return LaunchOnOpStream(ctx, "forward", bytes, [&](void* workspace, void* stream, deeprnn::CudaSchedule schedule) {
      return deeprnn::StackedRnnForwardCuda<T>(a.shape, ActivationOf(a.cell), a.inputs.dense,
                                               {w.kernels, w.recurrent_kernels, w.biases}, a.initial_states,
                                               a.outputs, a.final_states, a.activations, workspace, bytes, stream,
                                               schedule);
    });
  }

  // The CUDA passes keep the gradients of every cell: [L,T,B,H] for tanh/relu, [L,T,B,4H] for the GRU.
  static int64_t BackwardScratchSize(deeprnn::Cell cell, const deeprnn::Shape& s) {
    return s.layers * s.time * s.batch * s.hidden * (cell == deeprnn::Cell::kGru ? deeprnn::kGruGateSlots : 1);
  }

  static absl::Status Backward(tensorflow::OpKernelContext* ctx, const deeprnn::BackwardArgs<T>& a, T* scratch) {
    if (a.cell == deeprnn::Cell::kLstm) return Unsupported("the backward pass", a.cell);
    if (a.modifiers.mask || a.modifiers.any_dropout()) return Unsupported("masks and dropout", a.cell);
    if (a.grad_inputs == nullptr)
      return absl::UnimplementedError("deeprnn_fast: the CUDA backward pass always computes grad_inputs");
    const deeprnn::Weights<T>& w = a.weights;
    const deeprnn::WeightGrads<T>& g = a.grad_weights;
    if (a.cell == deeprnn::Cell::kGru) {
      const int64_t bytes = deeprnn::StackedGruBackwardCudaWorkspaceBytes(a.shape, sizeof(T));
      return LaunchOnOpStream(ctx, "GRU backward", bytes, [&](void* workspace, void* stream, deeprnn::CudaSchedule schedule) {
        return deeprnn::StackedGruBackwardCuda<T>(
            a.shape, a.inputs.dense, {w.kernels, w.recurrent_kernels, w.biases}, a.initial_states, a.activations,
            a.saved, a.grad_outputs, a.grad_final_states, a.grad_inputs, {g.kernels, g.recurrent_kernels, g.biases},
            a.grad_initial_states, scratch, workspace, bytes, stream, schedule);
      });
    }
    const int64_t bytes = deeprnn::StackedRnnBackwardCudaWorkspaceBytes(a.shape, sizeof(T));
    return LaunchOnOpStream(ctx, "backward", bytes, [&](void* workspace, void* stream, deeprnn::CudaSchedule schedule) {
      return deeprnn::StackedRnnBackwardCuda<T>(a.shape, ActivationOf(a.cell), a.inputs.dense,
                                                {w.kernels, w.recurrent_kernels, w.biases}, a.initial_states,
                                                a.activations, a.grad_outputs, a.grad_final_states, a.grad_inputs,
                                                {g.kernels, g.recurrent_kernels, g.biases}, a.grad_initial_states,
                                                scratch, workspace, bytes, stream, schedule);
    });
  }
};

DEEPRNN_FAST_REGISTER_KERNELS(tensorflow::DEVICE_GPU, GpuDevice, float)
DEEPRNN_FAST_REGISTER_KERNELS(tensorflow::DEVICE_GPU, GpuDevice, double)

}  // namespace deeprnn_fast

#endif  // GOOGLE_CUDA
