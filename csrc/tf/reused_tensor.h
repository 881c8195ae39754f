// A large tensor an op kernel hands out call after call from the same memory, once nothing else holds it.
#ifndef DEEPRNN_FAST_TF_REUSED_TENSOR_H_
#define DEEPRNN_FAST_TF_REUSED_TENSOR_H_

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/platform/mutex.h"

namespace deeprnn_fast {
namespace internal {

// Why: TensorFlow's CPU allocator takes large blocks from glibc's malloc, which maps a block of more than 32 MiB
// (its largest mmap threshold) fresh from the kernel on every allocation and unmaps it when freed, so each call
// page-faults and zero-fills the whole block before the kernel writes it. The GRU's saved gates on the book's shape
// are 34 MB (the LSTM's 42): faulting them in was about half of the fused GRU forward pass (28-36 -> 15-17 ms, AVX2
// EPYC, 2026-12-04). The kernel keeps the tensor it handed out last and hands it out again when its buffer's reference
// count is back to one (only this holder): the memory is then nobody else's, and writing it cannot change a tensor
// anyone can see. While another holder remains (the gradient of the previous step still pending, a concurrent call,
// a user keeping the output) a fresh tensor is allocated as before.
//
// For the CPU only: on a GPU, work is queued, and a buffer whose last reader was queued but has not run could be
// overwritten; TensorFlow's GPU allocator pools blocks itself.
class ReusedTensor {
 public:
  // A tensor of `dtype` and `shape`, contents undefined: the held one when it is free and alike, else a new one
  // (held from then on).
  absl::Status Get(tensorflow::OpKernelContext* ctx, tensorflow::DataType dtype, const tensorflow::TensorShape& shape,
                   tensorflow::Tensor* out) {
    tensorflow::mutex_lock lock(mu_);
    const bool reusable = held_.IsInitialized() && held_.dtype() == dtype && held_.shape() == shape &&
                          held_.RefCountIsOne();
    if (!reusable) {
      held_ = tensorflow::Tensor();  // let the old block go before the new one is taken
      TF_RETURN_IF_ERROR(ctx->allocate_temp(dtype, shape, &held_));
    }
    *out = held_;
    return absl::OkStatus();
  }

 private:
  tensorflow::mutex mu_;
  tensorflow::Tensor held_ TF_GUARDED_BY(mu_);
};

// A temporary from `reused` where kReuse (the CPU, where its block is large enough to matter), a plain
// allocate_temp elsewhere.
template <bool kReuse>
absl::Status AllocateLargeTemp(tensorflow::OpKernelContext* ctx, tensorflow::DataType dtype,
                               const tensorflow::TensorShape& shape, ReusedTensor* reused, tensorflow::Tensor* out) {
  if (!kReuse) return ctx->allocate_temp(dtype, shape, out);
  return reused->Get(ctx, dtype, shape, out);
}

// An output from `reused` where kReuse, a plain allocate_output elsewhere.
template <bool kReuse>
absl::Status AllocateLargeOutput(tensorflow::OpKernelContext* ctx, const char* name,
                                 const tensorflow::TensorShape& shape, tensorflow::DataType dtype,
                                 ReusedTensor* reused, tensorflow::Tensor** out) {
  if (!kReuse) return ctx->allocate_output(name, shape, out);
  tensorflow::Tensor tensor;
  TF_RETURN_IF_ERROR(reused->Get(ctx, dtype, shape, &tensor));
  TF_RETURN_IF_ERROR(ctx->set_output(name, tensor));
  return ctx->mutable_output(name, out);
}

}  // namespace internal
}  // namespace deeprnn_fast

#endif  // DEEPRNN_FAST_TF_REUSED_TENSOR_H_
