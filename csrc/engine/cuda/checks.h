// Argument checks and small stream operations shared by the CUDA passes of every cell (internal to
// csrc/engine/cuda). Errors name the pass ("GRU forward") and the argument.
#ifndef DEEPRNN_ENGINE_CUDA_CHECKS_H_
#define DEEPRNN_ENGINE_CUDA_CHECKS_H_

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "deeprnn/stacked.h"
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

// The modifiers (deeprnn/stacked.h Modifiers) of a pass of a cell with `gates` gate blocks: mask counts of 1 or G and
// a device pointer for every layer's dropout masks.
template <typename T>
CudaStatus CheckModifiers(const std::string& pass, const Modifiers<T>& m, const Shape& shape, int gates) {
  const int64_t B = shape.batch, D = shape.input, H = shape.hidden, L = shape.layers;
  auto count = [&](const char* name, int masks) {
    if (masks == 1 || masks == gates) return CudaStatus::Ok();
    return CudaStatus::Error(pass + ": " + name + " is " + std::to_string(masks) + "; expected 1 or " +
                             std::to_string(gates) + " (one mask per gate)");
  };
  if (m.input_dropout != nullptr) {
    DEEPRNN_RETURN_IF_NOT_OK(count("modifiers.input_masks", m.input_masks));
    DEEPRNN_RETURN_IF_NOT_OK(CheckPointerArray(pass, "modifiers.input_dropout", m.input_dropout, L,
                                               m.input_masks * B * D, m.input_masks * B * H));
  }
  if (m.recurrent_dropout != nullptr) {
    DEEPRNN_RETURN_IF_NOT_OK(count("modifiers.recurrent_masks", m.recurrent_masks));
    DEEPRNN_RETURN_IF_NOT_OK(CheckPointerArray(pass, "modifiers.recurrent_dropout", m.recurrent_dropout, L,
                                               m.recurrent_masks * B * H, m.recurrent_masks * B * H));
  }
  return CudaStatus::Ok();
}

// The modifiers' part of the wavefront's parameters; `tables` holds the device copies of the per-layer dropout
// pointers (input, then recurrent: L each), when there are any.
template <typename T>
void SetModifierParams(const Modifiers<T>& m, const Shape& shape, const void* const* tables, WavefrontParams<T>* p) {
  const int64_t L = shape.layers;
  p->mask = m.mask;
  p->zero_output_for_mask = m.zero_output_for_mask ? 1 : 0;
  p->input_dropout = m.input_dropout != nullptr ? reinterpret_cast<const T* const*>(tables) : nullptr;
  p->x_parts = m.input_dropout != nullptr ? m.input_masks : 1;
  p->recurrent_dropout = m.recurrent_dropout != nullptr ? reinterpret_cast<const T* const*>(tables + L) : nullptr;
  p->h_parts = m.recurrent_dropout != nullptr ? m.recurrent_masks : 1;
  p->between_dropout = L > 1 ? m.between_dropout : nullptr;
}

// Adds the per-layer dropout pointers to a pointer table's host copy: input masks, then recurrent masks (L each;
// null where absent).
template <typename T>
void AppendDropoutPointers(const Modifiers<T>& m, int64_t layers, std::vector<const void*>* pointers) {
  for (int64_t l = 0; l < layers; ++l) pointers->push_back(m.input_dropout != nullptr ? m.input_dropout[l] : nullptr);
  for (int64_t l = 0; l < layers; ++l)
    pointers->push_back(m.recurrent_dropout != nullptr ? m.recurrent_dropout[l] : nullptr);
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
