// Graph-construction shape functions of every cell's ops (ops_*.cc). The kernels check everything again at run time
// (tf/input_checks.h).
#ifndef DEEPRNN_FAST_TF_SHAPE_INFERENCE_H_
#define DEEPRNN_FAST_TF_SHAPE_INFERENCE_H_

#include <vector>

#include "deeprnn/stacked.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace deeprnn_fast {
namespace internal {

// The sizes every op of a cell shares: inputs [B,T,D] (or tokens [B,T]), kernels[0] [D, G*H], kernels[l>0] and
// recurrent_kernels [H, G*H], the states input `states_name` [N,B,H] ([N,S,B,H] for a cell with S > 1 states).
// Merging fails with an error naming the input when two of them disagree.
inline absl::Status InferStackedSizes(tensorflow::shape_inference::InferenceContext* c, deeprnn::Cell cell,
                                      const char* states_name, tensorflow::shape_inference::DimensionHandle* batch,
                                      tensorflow::shape_inference::DimensionHandle* time,
                                      tensorflow::shape_inference::DimensionHandle* input,
                                      tensorflow::shape_inference::DimensionHandle* hidden) {
  using tensorflow::shape_inference::DimensionHandle;
  using tensorflow::shape_inference::ShapeHandle;
  const deeprnn::CellLayout layout = deeprnn::LayoutOf(cell);
  const int64_t gates = layout.gates;
  std::vector<ShapeHandle> inputs, kernels, recurrent, tokens, states;
  TF_RETURN_IF_ERROR(c->input("inputs", &inputs));
  TF_RETURN_IF_ERROR(c->input("kernels", &kernels));
  TF_RETURN_IF_ERROR(c->input("recurrent_kernels", &recurrent));
  TF_RETURN_IF_ERROR(c->input("tokens", &tokens));
  TF_RETURN_IF_ERROR(c->input(states_name, &states));
  const int n = static_cast<int>(kernels.size());
  ShapeHandle x, kernel0;
  TF_RETURN_IF_ERROR(c->WithRank(inputs[0], 3, &x));
  TF_RETURN_IF_ERROR(c->WithRank(kernels[0], 2, &kernel0));
  *batch = c->Dim(x, 0);
  *time = c->Dim(x, 1);
  DimensionHandle unused;
  if (tokens.empty()) {
    TF_RETURN_IF_ERROR(c->Merge(c->Dim(x, 2), c->Dim(kernel0, 0), input));
  } else {
    ShapeHandle t;
    TF_RETURN_IF_ERROR(c->WithRank(tokens[0], 2, &t));
    TF_RETURN_IF_ERROR(c->Merge(c->Dim(t, 0), *batch, batch));
    TF_RETURN_IF_ERROR(c->Merge(c->Dim(t, 1), *time, time));
    *input = c->Dim(kernel0, 0);
  }
  TF_RETURN_IF_ERROR(c->Divide(c->Dim(kernel0, 1), gates, /*evenly_divisible=*/true, hidden));
  for (int l = 0; l < n; ++l) {
    ShapeHandle kernel, rec;
    TF_RETURN_IF_ERROR(c->WithRank(kernels[l], 2, &kernel));
    TF_RETURN_IF_ERROR(c->WithRank(recurrent[l], 2, &rec));
    if (l > 0) TF_RETURN_IF_ERROR(c->Merge(c->Dim(kernel, 0), *hidden, hidden));
    TF_RETURN_IF_ERROR(c->Merge(c->Dim(rec, 0), *hidden, hidden));
    // The column counts are G * H: with one gate they pin H itself.
    DimensionHandle columns;
    TF_RETURN_IF_ERROR(c->Multiply(*hidden, gates, &columns));
    DimensionHandle* merged = gates == 1 ? hidden : &unused;
    if (l > 0) TF_RETURN_IF_ERROR(c->Merge(c->Dim(kernel, 1), gates == 1 ? *hidden : columns, merged));
    TF_RETURN_IF_ERROR(c->Merge(c->Dim(rec, 1), gates == 1 ? *hidden : columns, merged));
  }
  ShapeHandle initial;
  const int states_rank = layout.states == 1 ? 3 : 4;
  TF_RETURN_IF_ERROR(c->WithRank(states[0], states_rank, &initial));
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(initial, 0), n, &unused));
  if (layout.states > 1) TF_RETURN_IF_ERROR(c->WithValue(c->Dim(initial, 1), layout.states, &unused));
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(initial, states_rank - 2), *batch, batch));
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(initial, states_rank - 1), *hidden, hidden));
  return absl::OkStatus();
}

inline tensorflow::shape_inference::ShapeHandle StatesShape(tensorflow::shape_inference::InferenceContext* c,
                                                            deeprnn::Cell cell, int n,
                                                            tensorflow::shape_inference::DimensionHandle batch,
                                                            tensorflow::shape_inference::DimensionHandle hidden) {
  const int states = deeprnn::LayoutOf(cell).states;
  if (states == 1) return c->MakeShape({c->MakeDim(n), batch, hidden});
  return c->MakeShape({c->MakeDim(n), c->MakeDim(states), batch, hidden});
}

// The forward op of `cell`: outputs [B,T,H], final_states (as the initial states), activations [N,T,B,H] and, for a
// cell that saves gates, gates [N,T,B,slots*H]; the biases are checked against H.
inline absl::Status ForwardShapes(tensorflow::shape_inference::InferenceContext* c, deeprnn::Cell cell) {
  using tensorflow::shape_inference::DimensionHandle;
  using tensorflow::shape_inference::ShapeHandle;
  const deeprnn::CellLayout layout = deeprnn::LayoutOf(cell);
  DimensionHandle batch, time, input, hidden;
  TF_RETURN_IF_ERROR(InferStackedSizes(c, cell, "initial_states", &batch, &time, &input, &hidden));
  std::vector<ShapeHandle> biases;
  TF_RETURN_IF_ERROR(c->input("biases", &biases));
  const int n = static_cast<int>(biases.size());
  DimensionHandle unused;
  for (const ShapeHandle& b : biases) {
    ShapeHandle bias;
    DimensionHandle columns;
    TF_RETURN_IF_ERROR(c->Multiply(hidden, layout.gates, &columns));
    if (layout.bias_rows == 1) {
      TF_RETURN_IF_ERROR(c->WithRank(b, 1, &bias));
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(bias, 0), columns, layout.gates == 1 ? &hidden : &unused));
    } else {
      TF_RETURN_IF_ERROR(c->WithRank(b, 2, &bias));
      TF_RETURN_IF_ERROR(c->WithValue(c->Dim(bias, 0), layout.bias_rows, &unused));
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(bias, 1), columns, &unused));
    }
  }
  c->set_output(0, c->MakeShape({batch, time, hidden}));
  c->set_output(1, StatesShape(c, cell, n, batch, hidden));
  c->set_output(2, c->MakeShape({c->MakeDim(n), time, batch, hidden}));
  if (layout.saved_slots > 0) {
    DimensionHandle slots;
    TF_RETURN_IF_ERROR(c->Multiply(hidden, layout.saved_slots, &slots));
    c->set_output(3, c->MakeShape({c->MakeDim(n), time, batch, slots}));
  }
  return absl::OkStatus();
}

// The gradient op of `cell`: grad_inputs as the inputs (or [B,T,0] when compute_grad_inputs is false), the weights'
// gradients as the weights, the biases' as [G*H] or [rows, G*H], grad_initial_states as the initial states.
inline absl::Status GradShapes(tensorflow::shape_inference::InferenceContext* c, deeprnn::Cell cell) {
  using tensorflow::shape_inference::DimensionHandle;
  using tensorflow::shape_inference::ShapeHandle;
  const deeprnn::CellLayout layout = deeprnn::LayoutOf(cell);
  DimensionHandle batch, time, input, hidden;
  TF_RETURN_IF_ERROR(InferStackedSizes(c, cell, "initial_states", &batch, &time, &input, &hidden));
  bool compute_grad_inputs;
  TF_RETURN_IF_ERROR(c->GetAttr("compute_grad_inputs", &compute_grad_inputs));
  std::vector<ShapeHandle> inputs, kernels, recurrent, states;
  TF_RETURN_IF_ERROR(c->input("inputs", &inputs));
  TF_RETURN_IF_ERROR(c->input("kernels", &kernels));
  TF_RETURN_IF_ERROR(c->input("recurrent_kernels", &recurrent));
  TF_RETURN_IF_ERROR(c->input("initial_states", &states));
  const int n = static_cast<int>(kernels.size());
  c->set_output(0, compute_grad_inputs ? inputs[0] : c->MakeShape({batch, time, c->MakeDim(0)}));
  DimensionHandle columns;
  TF_RETURN_IF_ERROR(c->Multiply(hidden, layout.gates, &columns));
  for (int l = 0; l < n; ++l) {
    c->set_output(1 + l, kernels[l]);
    c->set_output(1 + n + l, recurrent[l]);
    c->set_output(1 + 2 * n + l, layout.bias_rows == 1 ? c->MakeShape({columns})
                                                       : c->MakeShape({c->MakeDim(layout.bias_rows), columns}));
  }
  c->set_output(1 + 3 * n, states[0]);
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace deeprnn_fast

#endif  // DEEPRNN_FAST_TF_SHAPE_INFERENCE_H_
