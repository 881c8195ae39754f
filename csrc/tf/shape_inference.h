// Graph-construction shape checks shared by every fused cell's ops (stacked_rnn_ops.cc, stacked_gru_ops.cc). The
// kernels check everything again at run time (tf/validation.h).
#ifndef DEEPRNN_FAST_TF_SHAPE_INFERENCE_H_
#define DEEPRNN_FAST_TF_SHAPE_INFERENCE_H_

#include "tensorflow/core/framework/shape_inference.h"

namespace deeprnn_fast {
namespace internal {

// The sizes every cell's forward and gradient ops share: inputs [B,T,D], kernels[0] [D, gates * H], kernels[l>0] and
// recurrent_kernels [H, gates * H], initial_states [N,B,H] (input `initial_states_input`). `gates` is the number of
// gate blocks side by side in a weight matrix: 1 for the tanh/relu RNN, 3 for the GRU. Merging fails with an error
// naming the input when two of them disagree.
inline absl::Status InferStackedSizes(tensorflow::shape_inference::InferenceContext* c, int initial_states_input,
                                      int64_t gates, tensorflow::shape_inference::DimensionHandle* batch,
                                      tensorflow::shape_inference::DimensionHandle* time,
                                      tensorflow::shape_inference::DimensionHandle* hidden) {
  using tensorflow::shape_inference::DimensionHandle;
  using tensorflow::shape_inference::ShapeHandle;
  int n;
  TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
  ShapeHandle inputs, kernel0;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &inputs));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &kernel0));
  *batch = c->Dim(inputs, 0);
  *time = c->Dim(inputs, 1);
  DimensionHandle input, unused;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(inputs, 2), c->Dim(kernel0, 0), &input));
  TF_RETURN_IF_ERROR(c->Divide(c->Dim(kernel0, 1), gates, /*evenly_divisible=*/true, hidden));
  for (int l = 0; l < n; ++l) {
    ShapeHandle kernel, recurrent;
    TF_RETURN_IF_ERROR(c->WithRank(c->input(1 + l), 2, &kernel));
    TF_RETURN_IF_ERROR(c->WithRank(c->input(1 + n + l), 2, &recurrent));
    if (l > 0) TF_RETURN_IF_ERROR(c->Merge(c->Dim(kernel, 0), *hidden, hidden));
    TF_RETURN_IF_ERROR(c->Merge(c->Dim(recurrent, 0), *hidden, hidden));
    // The column counts are gates * H: with one gate they pin H itself.
    DimensionHandle columns;
    TF_RETURN_IF_ERROR(c->Multiply(*hidden, gates, &columns));
    DimensionHandle* merged = gates == 1 ? hidden : &unused;
    if (l > 0) TF_RETURN_IF_ERROR(c->Merge(c->Dim(kernel, 1), gates == 1 ? *hidden : columns, merged));
    TF_RETURN_IF_ERROR(c->Merge(c->Dim(recurrent, 1), gates == 1 ? *hidden : columns, merged));
  }
  ShapeHandle initial;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(initial_states_input), 3, &initial));
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(initial, 0), n, &unused));
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(initial, 1), *batch, batch));
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(initial, 2), *hidden, hidden));
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace deeprnn_fast

#endif  // DEEPRNN_FAST_TF_SHAPE_INFERENCE_H_
