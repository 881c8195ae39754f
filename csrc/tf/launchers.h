// The seam between the op kernels (stacked_op_kernels.h) and the device code: the op kernels check and allocate, then
// hand the library's argument structs to a launcher specialised per device (cpu_launcher.cc, gpu_launcher.cc), which
// calls the framework-free library.
#ifndef DEEPRNN_FAST_TF_LAUNCHERS_H_
#define DEEPRNN_FAST_TF_LAUNCHERS_H_

#include <cstdint>

#include "deeprnn/stacked.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"

namespace deeprnn_fast {

// Device tags: plain types, so that no Eigen device (and no CUDA header) is needed to name a device.
struct CpuDevice {};
struct GpuDevice {};

template <typename Device, typename T>
struct Launcher {
  // Token ids are checked on the host before any pass runs (the GPU kernels take them in host memory).
  static absl::Status CheckTokens(const tensorflow::Tensor& tokens, int64_t vocabulary);
  static absl::Status Forward(tensorflow::OpKernelContext* ctx, const deeprnn::ForwardArgs<T>& args);
  // Values of T of scratch the backward pass needs.
  static int64_t BackwardScratchSize(deeprnn::Cell cell, const deeprnn::Shape& shape);
  static absl::Status Backward(tensorflow::OpKernelContext* ctx, const deeprnn::BackwardArgs<T>& args, T* scratch);
};

}  // namespace deeprnn_fast

#endif  // DEEPRNN_FAST_TF_LAUNCHERS_H_
