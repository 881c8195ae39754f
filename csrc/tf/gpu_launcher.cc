// GPU launchers: run the library's CUDA passes (deeprnn/stacked_cuda.h; compiled, not yet run on a GPU) for each
// cell on TensorFlow's stream for the op, with the workspace and scratch from TensorFlow's allocator
// (tf/gpu_launch_helpers.h), and register the GPU kernels of every op. No CUDA header here: the library takes the
// stream as a void*.
// Token inputs are refused on the GPU for now (run the op on the CPU).
#if GOOGLE_CUDA

#include <cstdint>
#include <string>

#include "deeprnn/stacked_cuda.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tf/gpu_launch_helpers.h"
#include "tf/stacked_op_kernels.h"

namespace deeprnn_fast {

namespace {

std::string PassName(deeprnn::Cell cell, const char* direction) {
  return std::string(deeprnn::CellName(cell)) + " " + direction;
}

}  // namespace

template <typename T>
struct Launcher<GpuDevice, T> {
  static absl::Status CheckTokens(const tensorflow::Tensor&, int64_t) {
    return absl::UnimplementedError(
        "deeprnn_fast: token inputs have no CUDA kernels yet; run the op on the CPU or feed one-hot inputs");
  }

  static absl::Status Forward(tensorflow::OpKernelContext* ctx, const deeprnn::ForwardArgs<T>& host_args) {
    const std::string pass = PassName(host_args.cell, "forward");
    const int64_t bytes = deeprnn::StackedForwardCudaWorkspaceBytes(host_args.cell, host_args.shape, sizeof(T));
    return LaunchOnOpStream(ctx, bytes, [&](deeprnn::CudaLaunch launch) -> absl::Status {
      return ToAbsl(pass.c_str(), deeprnn::StackedForwardCuda<T>(host_args, launch));
    });
  }

  // The CUDA backward pass keeps the grad slots of every cell: [L,T,B,GS*H].
  static int64_t BackwardScratchSize(deeprnn::Cell cell, const deeprnn::Shape& s) {
    return deeprnn::StackedBackwardCudaScratchSize(cell, s);
  }

  static absl::Status Backward(tensorflow::OpKernelContext* ctx, const deeprnn::BackwardArgs<T>& host_args,
                               T* scratch) {
    const std::string pass = PassName(host_args.cell, "backward");
    const int64_t bytes = deeprnn::StackedBackwardCudaWorkspaceBytes(host_args.cell, host_args.shape, sizeof(T));
    return LaunchOnOpStream(ctx, bytes, [&](deeprnn::CudaLaunch launch) -> absl::Status {
      return ToAbsl(pass.c_str(), deeprnn::StackedBackwardCuda<T>(host_args, scratch, launch));
    });
  }
};

DEEPRNN_FAST_REGISTER_KERNELS(tensorflow::DEVICE_GPU, GpuDevice, float, )
DEEPRNN_FAST_REGISTER_KERNELS(tensorflow::DEVICE_GPU, GpuDevice, double, )

}  // namespace deeprnn_fast

#endif  // GOOGLE_CUDA
