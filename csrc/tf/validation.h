// Checks shared by the op kernels of every fused cell (stacked_rnn_kernels.h, stacked_gru_kernels.h): shapes with
// error messages that name the argument and the expected shape, the inputs every cell's op takes, and raw pointers
// of an input list.
#ifndef DEEPRNN_FAST_TF_VALIDATION_H_
#define DEEPRNN_FAST_TF_VALIDATION_H_

#include <initializer_list>
#include <string>
#include <vector>

#include "deeprnn/stacked_rnn.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"

namespace deeprnn_fast {
namespace internal {

inline std::string ShapeText(std::initializer_list<int64_t> dims) {
  std::string s = "[";
  for (auto it = dims.begin(); it != dims.end(); ++it) s += (it == dims.begin() ? "" : ", ") + std::to_string(*it);
  return s + "]";
}

inline absl::Status ExpectShape(const tensorflow::Tensor& t, const std::string& name,
                                std::initializer_list<int64_t> dims) {
  bool ok = t.dims() == static_cast<int>(dims.size());
  int i = 0;
  for (int64_t d : dims) ok = ok && t.dim_size(i++) == d;
  if (!ok)
    return absl::InvalidArgumentError(name + " must have shape " + ShapeText(dims) + "; got " +
                                      t.shape().DebugString());
  return absl::OkStatus();
}

template <typename T>
std::vector<const T*> Pointers(const tensorflow::OpInputList& list) {
  std::vector<const T*> out;
  for (int i = 0; i < list.size(); ++i) out.push_back(list[i].flat<T>().data());
  return out;
}

// Reads B, T, D from inputs [B,T,D] and H from kernels[0] [D, gates * H], then checks every kernel and the initial
// states against them. `gates` is the number of gate blocks side by side in a weight matrix: 1 for the tanh/relu
// RNN, 3 for the GRU (z, r, n).
inline absl::Status CheckStackedInputs(tensorflow::OpKernelContext* ctx, int initial_states_index, int64_t gates,
                                       deeprnn::Shape* shape) {
  const tensorflow::Tensor& inputs = ctx->input(0);
  tensorflow::OpInputList kernels, recurrent_kernels;
  TF_RETURN_IF_ERROR(ctx->input_list("kernels", &kernels));
  TF_RETURN_IF_ERROR(ctx->input_list("recurrent_kernels", &recurrent_kernels));
  if (inputs.dims() != 3)
    return absl::InvalidArgumentError("inputs must have shape [batch, time, features] (rank 3); got " +
                                      inputs.shape().DebugString());
  const int64_t L = kernels.size();
  const int64_t B = inputs.dim_size(0), T = inputs.dim_size(1), D = inputs.dim_size(2);
  if (kernels[0].dims() != 2 || kernels[0].dim_size(0) != D || kernels[0].dim_size(1) % gates != 0)
    return absl::InvalidArgumentError(
        "kernels[0] must have shape [" + std::to_string(D) + (gates == 1 ? ", units]" : ", 3 * units]") +
        " (inputs have " + std::to_string(D) + " features" + (gates == 1 ? "" : "; gates z, r, n side by side") +
        "); got " + kernels[0].shape().DebugString());
  const int64_t H = kernels[0].dim_size(1) / gates;
  if (D < 1 || H < 1)
    return absl::InvalidArgumentError("features and units must be at least 1; got inputs " +
                                      inputs.shape().DebugString() + " and kernels[0] " +
                                      kernels[0].shape().DebugString());
  for (int64_t l = 1; l < L; ++l)
    TF_RETURN_IF_ERROR(ExpectShape(kernels[l], "kernels[" + std::to_string(l) + "]", {H, gates * H}));
  for (int64_t l = 0; l < L; ++l)
    TF_RETURN_IF_ERROR(
        ExpectShape(recurrent_kernels[l], "recurrent_kernels[" + std::to_string(l) + "]", {H, gates * H}));
  TF_RETURN_IF_ERROR(ExpectShape(ctx->input(initial_states_index), "initial_states", {L, B, H}));
  *shape = {B, T, D, H, L};
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace deeprnn_fast

#endif  // DEEPRNN_FAST_TF_VALIDATION_H_
