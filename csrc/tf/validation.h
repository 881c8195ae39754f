// Checks shared by the op kernels of every fused cell (stacked_rnn_kernels.h, stacked_gru_kernels.h): shapes with
// error messages that name the argument and the expected shape, and raw pointers of an input list.
#ifndef DEEPRNN_FAST_TF_VALIDATION_H_
#define DEEPRNN_FAST_TF_VALIDATION_H_

#include <initializer_list>
#include <string>
#include <vector>

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

}  // namespace internal
}  // namespace deeprnn_fast

#endif  // DEEPRNN_FAST_TF_VALIDATION_H_
