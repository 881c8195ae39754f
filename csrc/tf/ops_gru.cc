// The GRU's op definitions ("DeeprnnFast>" namespaced like the tanh RNN's; see ops_rnn.cc for the conventions).
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tf/shape_inference.h"

namespace deeprnn_fast {

using ::tensorflow::shape_inference::InferenceContext;

REGISTER_OP("DeeprnnFast>StackedGru")
    .Input("inputs: T")
    .Input("kernels: N * T")
    .Input("recurrent_kernels: N * T")
    .Input("biases: N * T")
    .Input("initial_states: T")
    .Input("tokens: num_tokens * int32")
    .Input("mask: num_masks * bool")
    .Input("input_dropout: num_input_dropout * T")
    .Input("recurrent_dropout: num_recurrent_dropout * T")
    .Input("between_dropout: num_between_dropout * T")
    .Output("outputs: T")
    .Output("final_states: T")
    .Output("activations: T")
    .Output("gates: T")
    .Attr("T: {float, double}")
    .Attr("N: int >= 1")
    .Attr("num_tokens: int >= 0 = 0")
    .Attr("num_masks: int >= 0 = 0")
    .Attr("num_input_dropout: int >= 0 = 0")
    .Attr("num_recurrent_dropout: int >= 0 = 0")
    .Attr("num_between_dropout: int >= 0 = 0")
    .Attr("zero_output_for_mask: bool = false")
    .SetShapeFn([](InferenceContext* c) { return internal::ForwardShapes(c, deeprnn::Cell::kGru); })
    .Doc(R"doc(
Fused stacked GRU, Keras' GRUCell with reset_after=True, gate order [z, r, n]:
z = sigmoid(x Wx_z + bx_z + h Wh_z + bh_z), r likewise, n = tanh(x Wx_n + bx_n + r * (h Wh_n + bh_n)),
h' = z * h + (1 - z) * n.

inputs: [B, T, D], batch major; with tokens, an empty [B, T, 0] tensor.
kernels: N tensors, [D, 3H] for the first layer, [H, 3H] for the others (Wx, columns z | r | n).
recurrent_kernels: N tensors [H, 3H] (Wh).
biases: N tensors [2, 3H]: the input bias bx in row 0, the recurrent bias bh in row 1.
initial_states: [N, B, H].
tokens, mask, input_dropout, recurrent_dropout, between_dropout, zero_output_for_mask: see DeeprnnFast>StackedRnn.
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
    .Input("tokens: num_tokens * int32")
    .Input("mask: num_masks * bool")
    .Input("input_dropout: num_input_dropout * T")
    .Input("recurrent_dropout: num_recurrent_dropout * T")
    .Input("between_dropout: num_between_dropout * T")
    .Output("grad_inputs: T")
    .Output("grad_kernels: N * T")
    .Output("grad_recurrent_kernels: N * T")
    .Output("grad_biases: N * T")
    .Output("grad_initial_states: T")
    .Attr("T: {float, double}")
    .Attr("N: int >= 1")
    .Attr("num_tokens: int >= 0 = 0")
    .Attr("num_masks: int >= 0 = 0")
    .Attr("num_input_dropout: int >= 0 = 0")
    .Attr("num_recurrent_dropout: int >= 0 = 0")
    .Attr("num_between_dropout: int >= 0 = 0")
    .Attr("zero_output_for_mask: bool = false")
    .Attr("compute_grad_inputs: bool = true")
    .SetShapeFn([](InferenceContext* c) { return internal::GradShapes(c, deeprnn::Cell::kGru); })
    .Doc(R"doc(
Gradient of DeeprnnFast>StackedGru with respect to all of its inputs, given the forward op's activations and gates
and the gradients of its outputs and final states (compute_grad_inputs as for DeeprnnFast>StackedRnnGrad).
)doc");

}  // namespace deeprnn_fast
