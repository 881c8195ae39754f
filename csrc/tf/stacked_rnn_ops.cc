// The op definitions. Namespaced ("DeeprnnFast>") so that no other library's op of the same name can collide.
// Shape functions check what is known at graph-construction time; the kernels check everything again at run time.
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tf/shape_inference.h"

namespace deeprnn_fast {

using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

REGISTER_OP("DeeprnnFast>StackedRnn")
    .Input("inputs: T")
    .Input("kernels: N * T")
    .Input("recurrent_kernels: N * T")
    .Input("biases: N * T")
    .Input("initial_states: T")
    .Output("outputs: T")
    .Output("final_states: T")
    .Output("activations: T")
    .Attr("T: {float, double}")
    .Attr("N: int >= 1")
    .Attr("activation: {'tanh', 'relu'} = 'tanh'")
    .SetShapeFn([](InferenceContext* c) {
      int n;
      TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
      DimensionHandle batch, time, hidden;
      TF_RETURN_IF_ERROR(internal::InferStackedSizes(c, 1 + 3 * n, 1, &batch, &time, &hidden));
      for (int l = 0; l < n; ++l) {
        ShapeHandle bias;
        TF_RETURN_IF_ERROR(c->WithRank(c->input(1 + 2 * n + l), 1, &bias));
        TF_RETURN_IF_ERROR(c->Merge(c->Dim(bias, 0), hidden, &hidden));
      }
      c->set_output(0, c->MakeShape({batch, time, hidden}));
      c->set_output(1, c->MakeShape({c->MakeDim(n), batch, hidden}));
      c->set_output(2, c->MakeShape({c->MakeDim(n), time, batch, hidden}));
      return absl::OkStatus();
    })
    .Doc(R"doc(
Fused stacked RNN: H_t^(l) = activation(H_t^(l-1) kernels[l] + H_{t-1}^(l) recurrent_kernels[l] + biases[l]).

inputs: [B, T, D], batch major.
kernels: N tensors, [D, H] for the first layer, [H, H] for the others.
recurrent_kernels: N tensors [H, H].
biases: N tensors [H].
initial_states: [N, B, H].
outputs: [B, T, H], the top layer's sequence.
final_states: [N, B, H], every layer's state after the last step (initial_states when T = 0).
activations: [N, T, B, H], every layer's states, time major: what the gradient needs. Its own gradient is ignored.
)doc");

REGISTER_OP("DeeprnnFast>StackedRnnGrad")
    .Input("inputs: T")
    .Input("kernels: N * T")
    .Input("recurrent_kernels: N * T")
    .Input("initial_states: T")
    .Input("activations: T")
    .Input("grad_outputs: T")
    .Input("grad_final_states: T")
    .Output("grad_inputs: T")
    .Output("grad_kernels: N * T")
    .Output("grad_recurrent_kernels: N * T")
    .Output("grad_biases: N * T")
    .Output("grad_initial_states: T")
    .Attr("T: {float, double}")
    .Attr("N: int >= 1")
    .Attr("activation: {'tanh', 'relu'} = 'tanh'")
    .SetShapeFn([](InferenceContext* c) {
      int n;
      TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
      DimensionHandle batch, time, hidden;
      TF_RETURN_IF_ERROR(internal::InferStackedSizes(c, 1 + 2 * n, 1, &batch, &time, &hidden));
      c->set_output(0, c->input(0));
      for (int l = 0; l < n; ++l) {
        c->set_output(1 + l, c->input(1 + l));
        c->set_output(1 + n + l, c->input(1 + n + l));
        c->set_output(1 + 2 * n + l, c->MakeShape({hidden}));
      }
      c->set_output(1 + 3 * n, c->input(1 + 2 * n));
      return absl::OkStatus();
    })
    .Doc(R"doc(
Gradient of DeeprnnFast>StackedRnn with respect to all of its inputs, given the forward op's activations and the
gradients of its outputs and final states.
)doc");

}  // namespace deeprnn_fast
