// GPU launchers: run the library's CUDA passes (deeprnn/stacked_cuda.h; compiled, not yet run on a GPU) for every
// cell on TensorFlow's stream for the op, with the workspace and scratch from TensorFlow's allocator
// (tf/gpu_launch_helpers.h), and register the GPU kernels of every op. No CUDA header here: the library takes the
// stream as a void*.
//
// Token ids come in host memory (the kernels are registered with HostMemory("tokens")), so that they are checked
// on the host with the CPU kernels' one-line error before anything runs; they are then copied to a device tensor
// on the op's stream. (The CUDA passes would not read out of bounds for a bad id either, but the op would have to
// synchronise to report it.) Masks and dropout run in the CUDA passes too (compiled and emulation-tested, not yet
// run on a GPU): the mask and the dropout masks are device tensors, passed through as the library takes them.
#if GOOGLE_CUDA

#include <cstdint>
#include <string>

#include "deeprnn/stacked_cuda.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tf/gpu_launch_helpers.h"
#include "tf/input_checks.h"
#include "tf/stacked_op_kernels.h"

namespace deeprnn_fast {

namespace {

std::string PassName(deeprnn::Cell cell, const char* direction) {
  return std::string(deeprnn::CellName(cell)) + " " + direction;
}

// A device copy of the host token ids [B,T], queued on the op's stream, for the pass's arguments.
absl::Status TokensOnDevice(tensorflow::OpKernelContext* ctx, const int32_t* host_tokens, const deeprnn::Shape& s,
                            void* stream, tensorflow::Tensor* storage, const int32_t** device_tokens) {
  TF_RETURN_IF_ERROR(ctx->allocate_temp(tensorflow::DT_INT32, tensorflow::TensorShape({s.batch * s.time}), storage));
  int32_t* dst = storage->flat<int32_t>().data();
  TF_RETURN_IF_ERROR(
      ToAbsl("token copy", deeprnn::CudaCopyHostToDeviceAsync(dst, host_tokens, sizeof(int32_t) * s.batch * s.time,
                                                              stream)));
  *device_tokens = dst;
  return absl::OkStatus();
}

}  // namespace

template <typename T>
struct Launcher<GpuDevice, T> {
  static absl::Status CheckTokens(const tensorflow::Tensor& tokens, int64_t vocabulary) {
    return internal::CheckTokenValues(tokens, vocabulary);
  }

  static absl::Status Forward(tensorflow::OpKernelContext* ctx, const deeprnn::ForwardArgs<T>& host_args) {
    const std::string pass = PassName(host_args.cell, "forward");
    const int64_t bytes = deeprnn::StackedForwardCudaWorkspaceBytes(host_args.cell, host_args.shape, sizeof(T));
    tensorflow::Tensor tokens;
    return LaunchOnOpStream(ctx, bytes, [&](deeprnn::CudaLaunch launch) -> absl::Status {
      deeprnn::ForwardArgs<T> args = host_args;
      if (args.inputs.tokens != nullptr)
        TF_RETURN_IF_ERROR(TokensOnDevice(ctx, host_args.inputs.tokens, args.shape, launch.stream, &tokens,
                                          &args.inputs.tokens));
      return ToAbsl(pass.c_str(), deeprnn::StackedForwardCuda<T>(args, launch));
    });
  }

  // The CUDA backward pass keeps the grad slots of every cell: [L,T,B,GS*H].
  static int64_t BackwardScratchSize(deeprnn::Cell cell, const deeprnn::Shape& s) {
    return deeprnn::StackedBackwardCudaScratchSize(cell, s);
  }

  static absl::Status Backward(tensorflow::OpKernelContext* ctx, const deeprnn::BackwardArgs<T>& host_args,
                               T* scratch) {
    const std::string pass = PassName(host_args.cell, "backward");
    const int64_t bytes = deeprnn::StackedBackwardCudaWorkspaceBytes(host_args.cell, host_args.shape, sizeof(T),
                                                                     host_args.inputs.tokens != nullptr);
    tensorflow::Tensor tokens;
    return LaunchOnOpStream(ctx, bytes, [&](deeprnn::CudaLaunch launch) -> absl::Status {
      deeprnn::BackwardArgs<T> args = host_args;
      if (args.inputs.tokens != nullptr)
        TF_RETURN_IF_ERROR(TokensOnDevice(ctx, host_args.inputs.tokens, args.shape, launch.stream, &tokens,
                                          &args.inputs.tokens));
      return ToAbsl(pass.c_str(), deeprnn::StackedBackwardCuda<T>(args, scratch, launch));
    });
  }
};

DEEPRNN_FAST_REGISTER_KERNELS(tensorflow::DEVICE_GPU, GpuDevice, float, .HostMemory("tokens"))
DEEPRNN_FAST_REGISTER_KERNELS(tensorflow::DEVICE_GPU, GpuDevice, double, .HostMemory("tokens"))

}  // namespace deeprnn_fast

#endif  // GOOGLE_CUDA
