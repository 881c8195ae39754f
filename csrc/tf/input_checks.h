// What the op kernels of every cell check at run time (the raw ops can be called with anything): shapes with
// messages that name the argument and the expected shape, token values, and the raw pointers of an input list.
#ifndef DEEPRNN_FAST_TF_INPUT_CHECKS_H_
#define DEEPRNN_FAST_TF_INPUT_CHECKS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "deeprnn/stacked.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"

namespace deeprnn_fast {
namespace internal {

inline std::string ShapeText(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

inline absl::Status ExpectShape(const tensorflow::Tensor& t, const std::string& name, const std::vector<int64_t>& dims) {
  bool ok = t.dims() == static_cast<int>(dims.size());
  for (size_t i = 0; ok && i < dims.size(); ++i) ok = t.dim_size(static_cast<int>(i)) == dims[i];
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

// The shape of a layer's states: [L,B,H] for a cell with one state, [L,S,B,H] otherwise.
inline std::vector<int64_t> StatesShape(const deeprnn::CellLayout& layout, const deeprnn::Shape& s) {
  if (layout.states == 1) return {s.layers, s.batch, s.hidden};
  return {s.layers, layout.states, s.batch, s.hidden};
}

// A layer's bias: [G*H] for a cell with one bias row (Keras' shape), [rows, G*H] otherwise.
inline std::vector<int64_t> BiasShape(const deeprnn::CellLayout& layout, int64_t hidden) {
  if (layout.bias_rows == 1) return {layout.gates * hidden};
  return {layout.bias_rows, layout.gates * hidden};
}

// The problem of one call: B, T from `inputs` [B,T,D] (or, with token inputs, from the tokens [B,T], `inputs` being
// [B,T,0]), D and H from kernels[0] [D, G*H]; then every kernel and the initial states are checked against them.
inline absl::Status CheckProblem(tensorflow::OpKernelContext* ctx, deeprnn::Cell cell, const char* states_name,
                                 deeprnn::Shape* shape, const tensorflow::Tensor** tokens) {
  const deeprnn::CellLayout layout = deeprnn::LayoutOf(cell);
  const int64_t gates = layout.gates;
  const tensorflow::Tensor* inputs;
  TF_RETURN_IF_ERROR(ctx->input("inputs", &inputs));
  tensorflow::OpInputList kernels, recurrent_kernels, token_list;
  TF_RETURN_IF_ERROR(ctx->input_list("kernels", &kernels));
  TF_RETURN_IF_ERROR(ctx->input_list("recurrent_kernels", &recurrent_kernels));
  TF_RETURN_IF_ERROR(ctx->input_list("tokens", &token_list));
  if (inputs->dims() != 3)
    return absl::InvalidArgumentError("inputs must have shape [batch, time, features] (rank 3); got " +
                                      inputs->shape().DebugString());
  const int64_t L = kernels.size();
  const int64_t B = inputs->dim_size(0), T = inputs->dim_size(1);
  *tokens = token_list.size() == 1 ? &token_list[0] : nullptr;
  const std::string gate_text = gates == 1 ? "units" : std::to_string(gates) + " * units";
  if (kernels[0].dims() == 2 && (kernels[0].dim_size(0) == 0 || kernels[0].dim_size(1) == 0))
    return absl::InvalidArgumentError("features and units must be at least 1; got inputs " +
                                      inputs->shape().DebugString() + " and kernels[0] " +
                                      kernels[0].shape().DebugString());
  if (kernels[0].dims() != 2 || kernels[0].dim_size(1) % gates != 0 ||
      (*tokens == nullptr && kernels[0].dim_size(0) != inputs->dim_size(2)))
    return absl::InvalidArgumentError(
        "kernels[0] must have shape [" +
        (*tokens ? std::string("vocabulary") : std::to_string(inputs->dim_size(2))) + ", " + gate_text + "] (" +
        (*tokens ? "one row per token" : "inputs have " + std::to_string(inputs->dim_size(2)) + " features") +
        (gates == 1 ? "" : "; the gates side by side") + "); got " + kernels[0].shape().DebugString());
  const int64_t D = kernels[0].dim_size(0), H = kernels[0].dim_size(1) / gates;
  if (*tokens != nullptr) {
    TF_RETURN_IF_ERROR(ExpectShape(**tokens, "tokens", {B, T}));
    if (inputs->dim_size(2) != 0)
      return absl::InvalidArgumentError("with token inputs, inputs must be an empty [batch, time, 0] tensor; got " +
                                        inputs->shape().DebugString());
  }
  for (int64_t l = 1; l < L; ++l)
    TF_RETURN_IF_ERROR(ExpectShape(kernels[l], "kernels[" + std::to_string(l) + "]", {H, gates * H}));
  for (int64_t l = 0; l < L; ++l)
    TF_RETURN_IF_ERROR(
        ExpectShape(recurrent_kernels[l], "recurrent_kernels[" + std::to_string(l) + "]", {H, gates * H}));
  *shape = {B, T, D, H, L};
  const tensorflow::Tensor* states;
  TF_RETURN_IF_ERROR(ctx->input(states_name, &states));
  return ExpectShape(*states, states_name, StatesShape(layout, *shape));
}

// Token values must index a row of kernels[0]: checked on the host, where the tokens are (CPU kernels), because
// the kernels read that row without further checks.
inline absl::Status CheckTokenValues(const tensorflow::Tensor& tokens, int64_t vocabulary) {
  const auto values = tokens.flat<int32_t>();
  for (int64_t i = 0; i < values.size(); ++i)
    if (values(i) < 0 || values(i) >= vocabulary)
      return absl::InvalidArgumentError("tokens must lie in [0, " + std::to_string(vocabulary) +
                                        ") (the rows of kernels[0]); got " + std::to_string(values(i)) +
                                        " at flat index " + std::to_string(i));
  return absl::OkStatus();
}

// The mask and dropout masks of a call (deeprnn/stacked.h, Modifiers), checked against the problem: mask [B, T]
// bool, input_dropout N x [masks, B, in_l], recurrent_dropout N x [masks, B, H] (masks 1 or the gate count, the same
// for every layer), between_dropout [N - 1, T, B, H]. `pointers` keeps the per-layer pointer arrays alive.
template <typename T>
struct ModifierPointers {
  std::vector<const T*> input, recurrent;
};

template <typename T>
absl::Status ReadModifiers(tensorflow::OpKernelContext* ctx, deeprnn::Cell cell, const deeprnn::Shape& s,
                           bool zero_output_for_mask, deeprnn::Modifiers<T>* modifiers,
                           ModifierPointers<T>* pointers) {
  const int64_t gates = deeprnn::LayoutOf(cell).gates;
  tensorflow::OpInputList mask, input, recurrent, between;
  TF_RETURN_IF_ERROR(ctx->input_list("mask", &mask));
  TF_RETURN_IF_ERROR(ctx->input_list("input_dropout", &input));
  TF_RETURN_IF_ERROR(ctx->input_list("recurrent_dropout", &recurrent));
  TF_RETURN_IF_ERROR(ctx->input_list("between_dropout", &between));
  *modifiers = deeprnn::Modifiers<T>();
  modifiers->zero_output_for_mask = zero_output_for_mask;
  if (mask.size() > 1 || between.size() > 1)
    return absl::InvalidArgumentError("mask and between_dropout are each one tensor or none");
  if (mask.size() == 1) {
    TF_RETURN_IF_ERROR(ExpectShape(mask[0], "mask", {s.batch, s.time}));
    modifiers->mask = reinterpret_cast<const uint8_t*>(mask[0].flat<bool>().data());
  }
  auto masks_of = [&](const tensorflow::OpInputList& list, const char* name, int* count) -> absl::Status {
    if (list.size() == 0) return absl::OkStatus();
    if (list.size() != s.layers)
      return absl::InvalidArgumentError(std::string(name) + " must hold one tensor per layer (" +
                                        std::to_string(s.layers) + "); got " + std::to_string(list.size()));
    const int64_t first = list[0].dims() == 3 ? list[0].dim_size(0) : -1;
    if (first != 1 && first != gates)
      return absl::InvalidArgumentError(std::string(name) + "[0] must have shape [masks, batch, width] with masks 1 or " +
                                        std::to_string(gates) + " (one per gate); got " +
                                        list[0].shape().DebugString());
    *count = static_cast<int>(first);
    return absl::OkStatus();
  };
  TF_RETURN_IF_ERROR(masks_of(input, "input_dropout", &modifiers->input_masks));
  TF_RETURN_IF_ERROR(masks_of(recurrent, "recurrent_dropout", &modifiers->recurrent_masks));
  for (int l = 0; l < input.size(); ++l) {
    TF_RETURN_IF_ERROR(ExpectShape(input[l], "input_dropout[" + std::to_string(l) + "]",
                                   {modifiers->input_masks, s.batch, l == 0 ? s.input : s.hidden}));
    pointers->input.push_back(input[l].flat<T>().data());
  }
  for (int l = 0; l < recurrent.size(); ++l) {
    TF_RETURN_IF_ERROR(ExpectShape(recurrent[l], "recurrent_dropout[" + std::to_string(l) + "]",
                                   {modifiers->recurrent_masks, s.batch, s.hidden}));
    pointers->recurrent.push_back(recurrent[l].flat<T>().data());
  }
  if (!pointers->input.empty()) modifiers->input_dropout = pointers->input.data();
  if (!pointers->recurrent.empty()) modifiers->recurrent_dropout = pointers->recurrent.data();
  if (between.size() == 1) {
    if (s.layers < 2)
      return absl::InvalidArgumentError("between_dropout needs at least two layers (it drops a layer's output on "
                                        "its way into the next)");
    TF_RETURN_IF_ERROR(ExpectShape(between[0], "between_dropout", {s.layers - 1, s.time, s.batch, s.hidden}));
    modifiers->between_dropout = between[0].flat<T>().data();
  }
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace deeprnn_fast

#endif  // DEEPRNN_FAST_TF_INPUT_CHECKS_H_
