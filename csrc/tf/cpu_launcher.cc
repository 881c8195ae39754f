// CPU launchers: run the library's CPU passes on TensorFlow's intra-op thread pool, and register the CPU kernels of
// every op.
#include "tensorflow/core/framework/op_kernel.h"
#include "tf/cpu_parallel_for.h"
#include "tf/stacked_op_kernels.h"

namespace deeprnn_fast {

namespace {

// A forced instruction set this processor lacks (DEEPRNN_FAST_CPU_ISA) is an error, not a crash.
absl::Status CheckIsa() {
  const std::string error = deeprnn::CpuKernelIsaError();
  return error.empty() ? absl::OkStatus() : absl::FailedPreconditionError(error);
}

}  // namespace

template <typename T>
struct Launcher<CpuDevice, T> {
  static absl::Status CheckTokens(const tensorflow::Tensor& tokens, int64_t vocabulary) {
    return internal::CheckTokenValues(tokens, vocabulary);
  }
  static absl::Status Forward(tensorflow::OpKernelContext* ctx, const deeprnn::ForwardArgs<T>& args) {
    TF_RETURN_IF_ERROR(CheckIsa());
    deeprnn::StackedForwardCpu<T>(args, IntraOpParallelFor(ctx));
    return absl::OkStatus();
  }
  static int64_t BackwardScratchSize(deeprnn::Cell cell, const deeprnn::Shape& shape) {
    return deeprnn::StackedBackwardCpuScratchSize(cell, shape, sizeof(T));
  }
  static absl::Status Backward(tensorflow::OpKernelContext* ctx, const deeprnn::BackwardArgs<T>& args, T* scratch) {
    TF_RETURN_IF_ERROR(CheckIsa());
    deeprnn::StackedBackwardCpu<T>(args, scratch, IntraOpParallelFor(ctx));
    return absl::OkStatus();
  }
};

DEEPRNN_FAST_REGISTER_KERNELS(tensorflow::DEVICE_CPU, CpuDevice, float, )
DEEPRNN_FAST_REGISTER_KERNELS(tensorflow::DEVICE_CPU, CpuDevice, double, )

}  // namespace deeprnn_fast
