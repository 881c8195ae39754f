// Argument checks and small stream operations shared by the CUDA passes of every cell (internal to
// csrc/engine/cuda). Errors name the pass ("GRU forward") and the argument.
#ifndef DEEPRNN_ENGINE_CUDA_CHECKS_H_
#define DEEPRNN_ENGINE_CUDA_CHECKS_H_

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "engine/cuda/kernel_params.h"

namespace deeprnn {
namespace cuda {

inline CudaStatus CheckWorkspace(const std::string& pass, const void* workspace, int64_t workspace_bytes,
                                 int64_t needed_bytes, const char* size_function) {
  if (workspace_bytes < needed_bytes)
    return CudaStatus::Error(pass + ": the workspace has " + std::to_string(workspace_bytes) +
                             " bytes; this shape needs " + std::to_string(needed_bytes) + " (ask " + size_function +
                             ")");
  if (needed_bytes > 0 && workspace == nullptr) return CudaStatus::Error(pass + ": the workspace pointer is null");
  if (reinterpret_cast<uintptr_t>(workspace) % 256 != 0)
    return CudaStatus::Error(pass + ": the workspace must be aligned to 256 bytes");
  return CudaStatus::Ok();
}

// A null pointer is accepted only for a tensor with no elements.
inline CudaStatus CheckPointer(const std::string& pass, const std::string& name, const void* ptr, int64_t elements) {
  if (elements > 0 && ptr == nullptr) return CudaStatus::Error(pass + ": " + name + " is a null pointer");
  return CudaStatus::Ok();
}

template <typename T>
CudaStatus CheckPointerArray(const std::string& pass, const std::string& name, const T* const* array,
                             int64_t layers, int64_t elements_first, int64_t elements_other) {
  if (array == nullptr) return CudaStatus::Error(pass + ": the host array " + name + " is null");
  for (int64_t l = 0; l < layers; ++l)
    DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(pass, name + "[" + std::to_string(l) + "]", array[l],
                                          l == 0 ? elements_first : elements_other));
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

}  // namespace cuda
}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_CUDA_CHECKS_H_
