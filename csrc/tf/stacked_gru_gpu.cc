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
#include "tf/stacked_gru_kernels.h"
#include "xla/stream_executor/stream.h"

namespace deeprnn_fast {

namespace {

// These four helpers repeat stacked_rnn_gpu.cc's (file-local there); see it for the reasons behind each.

absl::Status GruGpuStream(tensorflow::OpKernelContext* ctx, void** stream) {
  const tensorflow::DeviceContext* device_context = ctx->op_device_context();
  if (device_context == nullptr || device_context->stream() == nullptr)
    return absl::InternalError("deeprnn_fast: the GPU op kernel has no stream");
  *stream = device_context->stream()->platform_specific_handle().stream;
  if (*stream == nullptr) return absl::InternalError("deeprnn_fast: the GPU stream has no CUDA handle");
  return absl::OkStatus();
}

absl::Status AllocateGruWorkspace(tensorflow::OpKernelContext* ctx, int64_t bytes, tensorflow::Tensor* storage,
                                  void** workspace) {
  constexpr int64_t kAlign = 256;
  TF_RETURN_IF_ERROR(ctx->allocate_temp(tensorflow::DT_INT8, tensorflow::TensorShape({bytes + kAlign}), storage));
  const uintptr_t base = reinterpret_cast<uintptr_t>(storage->flat<int8_t>().data());
  *workspace = reinterpret_cast<void*>((base + kAlign - 1) / kAlign * kAlign);
  return absl::OkStatus();
}

absl::Status GruScheduleFromEnvironment(deeprnn::CudaSchedule* schedule) {
  struct Parsed {
    deeprnn::CudaStatus status;
    deeprnn::CudaSchedule schedule = deeprnn::CudaSchedule::kAuto;
  };
  static const Parsed parsed = [] {
    Parsed p;
    const char* value = std::getenv("DEEPRNN_FAST_CUDA_SCHEDULE");
    if (value != nullptr && *value != '\0') p.status = deeprnn::ParseSchedule(value, &p.schedule);
    return p;
  }();
  if (!parsed.status.ok()) return absl::InvalidArgumentError("DEEPRNN_FAST_CUDA_SCHEDULE: " + parsed.status.error);
  *schedule = parsed.schedule;
  return absl::OkStatus();
}

absl::Status GruToAbsl(const char* pass, const deeprnn::CudaStatus& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::InternalError(std::string("deeprnn_fast CUDA ") + pass + ": " + status.error);
}

}  // namespace

template <typename T>
struct GruForwardLauncher<GpuDevice, T> {
  static absl::Status Run(tensorflow::OpKernelContext* ctx, const GruForwardArgs<T>& a) {
    void* stream = nullptr;
    TF_RETURN_IF_ERROR(GruGpuStream(ctx, &stream));
    deeprnn::CudaSchedule schedule = deeprnn::CudaSchedule::kAuto;
    TF_RETURN_IF_ERROR(GruScheduleFromEnvironment(&schedule));
    const int64_t bytes = deeprnn::StackedGruForwardCudaWorkspaceBytes(a.shape, sizeof(T));
    tensorflow::Tensor storage;
    void* workspace = nullptr;
    TF_RETURN_IF_ERROR(AllocateGruWorkspace(ctx, bytes, &storage, &workspace));
    return GruToAbsl("GRU forward", deeprnn::StackedGruForwardCuda<T>(
                                        a.shape, a.inputs, a.weights(), a.initial_states, a.outputs, a.final_states,
                                        a.activations, a.gates, workspace, bytes, stream, schedule));
  }
};

template <typename T>
struct GruBackwardLauncher<GpuDevice, T> {
  // The CUDA pass keeps the gates' gradients of every cell: [L,T,B,4H].
  static int64_t ScratchSize(const deeprnn::Shape& shape) {
    return shape.layers * shape.time * shape.batch * deeprnn::kGruGateSlots * shape.hidden;
  }
  static absl::Status Run(tensorflow::OpKernelContext* ctx, const GruBackwardArgs<T>& a) {
    void* stream = nullptr;
    TF_RETURN_IF_ERROR(GruGpuStream(ctx, &stream));
    deeprnn::CudaSchedule schedule = deeprnn::CudaSchedule::kAuto;
    TF_RETURN_IF_ERROR(GruScheduleFromEnvironment(&schedule));
    const int64_t bytes = deeprnn::StackedGruBackwardCudaWorkspaceBytes(a.shape, sizeof(T));
    tensorflow::Tensor storage;
    void* workspace = nullptr;
    TF_RETURN_IF_ERROR(AllocateGruWorkspace(ctx, bytes, &storage, &workspace));
    return GruToAbsl("GRU backward", deeprnn::StackedGruBackwardCuda<T>(
                                         a.shape, a.inputs, a.weights(), a.initial_states, a.activations, a.gates,
                                         a.grad_outputs, a.grad_final_states, a.grad_inputs, a.weight_grads(),
                                         a.grad_initial_states, a.grad_gates, workspace, bytes, stream, schedule));
  }
};

DEEPRNN_FAST_REGISTER_GRU_KERNELS(tensorflow::DEVICE_GPU, GpuDevice, float)
DEEPRNN_FAST_REGISTER_GRU_KERNELS(tensorflow::DEVICE_GPU, GpuDevice, double)

}  // namespace deeprnn_fast

#endif  // GOOGLE_CUDA
