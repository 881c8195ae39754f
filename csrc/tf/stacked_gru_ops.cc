// The GRU op definitions ("DeeprnnFast>" namespaced like the tanh RNN's). Shape functions check what is known at
// graph-construction time; the kernels check everything again at run time.
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tf/shape_inference.h"

namespace deeprnn_fast {

using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

REGISTER_OP("DeeprnnFast>StackedGru")
    .Input("inputs: T")
    .Input("kernels: N * T")
    .Input("recurrent_kernels: N * T")
    .Input("biases: N * T")
    .Input("initial_states: T")
    .Output("outputs: T")
    .Output("final_states: T")
    .Output("activations: T")
    .Output("gates: T")
    .Attr("T: {float, double}")
    .Attr("N: int >= 1")
    .SetShapeFn([](InferenceContext* c) {
      int n;
      TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
      DimensionHandle batch, time, hidden;
      TF_RETURN_IF_ERROR(internal::InferStackedSizes(c, 1 + 3 * n, 3, &batch, &time, &hidden));
      DimensionHandle three_h, four_h;
      TF_RETURN_IF_ERROR(c->Multiply(hidden, 3, &three_h));
      TF_RETURN_IF_ERROR(c->Multiply(hidden, 4, &four_h));
      for (int l = 0; l < n; ++l) {
        ShapeHandle bias;
        TF_RETURN_IF_ERROR(c->WithRank(c->input(1 + 2 * n + l), 2, &bias));
        DimensionHandle unused;
        TF_RETURN_IF_ERROR(c->WithValue(c->Dim(bias, 0), 2, &unused));
        TF_RETURN_IF_ERROR(c->Merge(c->Dim(bias, 1), three_h, &unused));
      }
      c->set_output(0, c->MakeShape({batch, time, hidden}));
      c->set_output(1, c->MakeShape({c->MakeDim(n), batch, hidden}));
      c->set_output(2, c->MakeShape({c->MakeDim(n), time, batch, hidden}));
      c->set_output(3, c->MakeShape({c->MakeDim(n), time, batch, four_h}));
      return absl::OkStatus();
    })
    .Doc(R"doc(
Fused stacked GRU, Keras' GRUCell with reset_after=True, gate order [z, r, n]:
z = sigmoid(x Wx_z + bx_z + h Wh_z + bh_z), r likewise, n = tanh(x Wx_n + bx_n + r * (h Wh_n + bh_n)),
h' = z * h + (1 - z) * n.

inputs: [B, T, D], batch major.
kernels: N tensors, [D, 3H] for the first layer, [H, 3H] for the others (Wx, columns z | r | n).
recurrent_kernels: N tensors [H, 3H] (Wh).
biases: N tensors [2, 3H]: the input bias bx in row 0, the recurrent bias bh in row 1.
initial_states: [N, B, H].
outputs: [B, T, H], the top layer's sequence.
final_states: [N, B, H], every layer's state after the last step (initial_states when T = 0).
activations: [N, T, B, H], every layer's states, time major: for the gradient. Its own gradient is ignored.
gates: [N, T, B, 4H], per cell and row [z | r | n | h Wh_n + bh_n]: for the gradient. Its own gradient is ignored.
)doc");

REGISTER_OP("DeeprnnFast>StackedGruGrad")
    .Input("inputs: T")
    .Input("kernels: N * T")
    .Input("recurrent_kernels: N * T")
    .Input("initial_states: T")
    .Input("activations: T")
    .Input("gates: T")
    .Input("grad_outputs: T")
    .Input("grad_final_states: T")
    .Output("grad_inputs: T")
    .Output("grad_kernels: N * T")
    .Output("grad_recurrent_kernels: N * T")
    .Output("grad_biases: N * T")
    .Output("grad_initial_states: T")
    .Attr("T: {float, double}")
    .Attr("N: int >= 1")
    .SetShapeFn([](InferenceContext* c) {
      int n;
      TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
      DimensionHandle batch, time, hidden;
      TF_RETURN_IF_ERROR(internal::InferStackedSizes(c, 1 + 2 * n, 3, &batch, &time, &hidden));
      DimensionHandle three_h;
      TF_RETURN_IF_ERROR(c->Multiply(hidden, 3, &three_h));
      c->set_output(0, c->input(0));
      for (int l = 0; l < n; ++l) {
        c->set_output(1 + l, c->input(1 + l));
        c->set_output(1 + n + l, c->input(1 + n + l));
        c->set_output(1 + 2 * n + l, c->MakeShape({c->MakeDim(2), three_h}));
      }
      c->set_output(1 + 3 * n, c->input(1 + 2 * n));
      return absl::OkStatus();
    })
    .Doc(R"doc(
Gradient of DeeprnnFast>StackedGru with respect to all of its inputs, given the forward op's activations and gates
and the gradients of its outputs and final states.
)doc");

}  // namespace deeprnn_fast
