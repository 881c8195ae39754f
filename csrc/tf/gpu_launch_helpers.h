// What the GPU launchers of every op share: TensorFlow's CUDA stream, workspace from TensorFlow's allocator, the
// schedule override from the environment and CUDA errors as TensorFlow errors. No CUDA header: the library takes
// the stream as a void*.
#ifndef DEEPRNN_FAST_TF_GPU_LAUNCH_HELPERS_H_
#define DEEPRNN_FAST_TF_GPU_LAUNCH_HELPERS_H_

#include <cstdint>
#include <cstdlib>
#include <string>

#include "deeprnn/stacked_cuda.h"
#include "tensorflow/core/framework/device_base.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/platform/tensor_float_32_utils.h"
#include "xla/stream_executor/stream.h"

namespace deeprnn_fast {

// TensorFlow's stream for this op: everything is queued on it and nothing synchronises (TF's streams are
// non-blocking, so the default stream would race with TF's own work).
inline absl::Status GpuStream(tensorflow::OpKernelContext* ctx, void** stream) {
  const tensorflow::DeviceContext* device_context = ctx->op_device_context();
  if (device_context == nullptr || device_context->stream() == nullptr)
    return absl::InternalError("deeprnn_fast: the GPU op kernel has no stream");
  *stream = device_context->stream()->platform_specific_handle().stream;
  if (*stream == nullptr) return absl::InternalError("deeprnn_fast: the GPU stream has no CUDA handle");
  return absl::OkStatus();
}

// Scratch memory from TensorFlow's allocator (stream-ordered, so safe for kernels queued on ctx's stream), aligned
// by hand to the 256 bytes the library asks for.
inline absl::Status AllocateWorkspace(tensorflow::OpKernelContext* ctx, int64_t bytes, tensorflow::Tensor* storage,
                               void** workspace) {
  constexpr int64_t kAlign = 256;
  TF_RETURN_IF_ERROR(ctx->allocate_temp(tensorflow::DT_INT8, tensorflow::TensorShape({bytes + kAlign}), storage));
  const uintptr_t base = reinterpret_cast<uintptr_t>(storage->flat<int8_t>().data());
  *workspace = reinterpret_cast<void*>((base + kAlign - 1) / kAlign * kAlign);
  return absl::OkStatus();
}

inline absl::Status ScheduleFromEnvironment(deeprnn::CudaSchedule* schedule) {
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

inline absl::Status ToAbsl(const char* pass, const deeprnn::CudaStatus& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::InternalError(std::string("deeprnn_fast CUDA ") + pass + ": " + status.error);
}

// What every GPU launcher does around its library call: TensorFlow's stream, the schedule override, TensorFlow's
// TF32 switch (tf.config.experimental.enable_tensor_float_32_execution, on by default: float32 at B <= 32 may then
// run the tensor-core tile, as TF's own matrix products use TF32) and a workspace of `bytes`, handed to
// call(launch) as a deeprnn::CudaLaunch; call returns the TF status (ToAbsl of the
// library's). The workspace tensor is released on return: TensorFlow's GPU allocator is ordered on the op's
// stream, so the kernels queued by `call` still own it.
template <typename Call>
absl::Status LaunchOnOpStream(tensorflow::OpKernelContext* ctx, int64_t bytes, Call&& call) {
  deeprnn::CudaLaunch launch;
  TF_RETURN_IF_ERROR(GpuStream(ctx, &launch.stream));
  TF_RETURN_IF_ERROR(ScheduleFromEnvironment(&launch.schedule));
  launch.allow_tf32 = tsl::tensor_float_32_execution_enabled();
  tensorflow::Tensor storage;
  TF_RETURN_IF_ERROR(AllocateWorkspace(ctx, bytes, &storage, &launch.workspace));
  launch.workspace_bytes = bytes;
  return call(launch);
}

}  // namespace deeprnn_fast

#endif  // DEEPRNN_FAST_TF_GPU_LAUNCH_HELPERS_H_
