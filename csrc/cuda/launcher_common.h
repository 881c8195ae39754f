// Argument checks and small pieces shared by the forward and backward launchers (internal to csrc/cuda).
#ifndef DEEPRNN_CUDA_LAUNCHER_COMMON_H_
#define DEEPRNN_CUDA_LAUNCHER_COMMON_H_

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "cuda/kernel_params.h"
#include "deeprnn/stacked_rnn_cuda.h"

namespace deeprnn {
namespace cuda {

inline CudaStatus CheckWorkspace(const char* pass, const void* workspace, int64_t workspace_bytes,
                                 int64_t needed_bytes) {
  if (workspace_bytes < needed_bytes)
    return CudaStatus::Error(std::string(pass) + ": the workspace has " + std::to_string(workspace_bytes) +
                             " bytes; this shape needs " + std::to_string(needed_bytes) +
                             " (ask StackedRnn" + (pass[0] == 'f' ? "Forward" : "Backward") +
                             "CudaWorkspaceBytes)");
  if (needed_bytes > 0 && workspace == nullptr)
    return CudaStatus::Error(std::string(pass) + ": the workspace pointer is null");
  if (reinterpret_cast<uintptr_t>(workspace) % 256 != 0)
    return CudaStatus::Error(std::string(pass) + ": the workspace must be aligned to 256 bytes");
  return CudaStatus::Ok();
}

// A null pointer is accepted only for a tensor with no elements.
inline CudaStatus CheckPointer(const char* pass, const char* name, const void* ptr, int64_t elements) {
  if (elements > 0 && ptr == nullptr)
    return CudaStatus::Error(std::string(pass) + ": " + name + " is a null pointer");
  return CudaStatus::Ok();
}

template <typename T>
CudaStatus CheckPointerArray(const char* pass, const char* name, const T* const* array, int64_t layers,
                             int64_t elements_first, int64_t elements_other) {
  if (array == nullptr) return CudaStatus::Error(std::string(pass) + ": the host array " + name + " is null");
  for (int64_t l = 0; l < layers; ++l) {
    const std::string item = std::string(name) + "[" + std::to_string(l) + "]";
    DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(pass, item.c_str(), array[l], l == 0 ? elements_first : elements_other));
  }
  return CudaStatus::Ok();
}

inline CudaStatus CopyOnStream(void* dst, const void* src, int64_t bytes, cudaStream_t stream, const char* what) {
  if (bytes <= 0) return CudaStatus::Ok();
  DEEPRNN_CUDA_RETURN_IF_ERROR(what, cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyDeviceToDevice,
                                                     stream));
  return CudaStatus::Ok();
}

inline CudaStatus ZeroOnStream(void* dst, int64_t bytes, cudaStream_t stream, const char* what) {
  if (bytes <= 0) return CudaStatus::Ok();
  DEEPRNN_CUDA_RETURN_IF_ERROR(what, cudaMemsetAsync(dst, 0, static_cast<size_t>(bytes), stream));
  return CudaStatus::Ok();
}

// Plans the wavefront for the current device with the kernels' real occupancy.
template <typename T>
CudaStatus PlanForCurrentDevice(const Shape& shape, Direction direction, CudaSchedule schedule, WavefrontPlan* plan);

}  // namespace cuda
}  // namespace deeprnn

#endif  // DEEPRNN_CUDA_LAUNCHER_COMMON_H_
