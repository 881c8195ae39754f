// The tanh / relu RNN's op definitions. Namespaced ("DeeprnnFast>") so that no other library's op of the same name
// can collide. Shape functions (tf/shape_inference.h) check what is known at graph-construction time; the kernels
// (tf/stacked_op_kernels.h) check everything again at run time.
//
// Inputs added after the first release are lists whose length attributes default to 0, so that graphs and
// SavedModels written before them load unchanged.
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tf/shape_inference.h"

namespace deeprnn_fast {

using ::tensorflow::shape_inference::InferenceContext;

REGISTER_OP("DeeprnnFast>StackedRnn")
    .Input("inputs: T")
    .Input("kernels: N * T")
    .Input("recurrent_kernels: N * T")
    .Input("biases: N * T")
    .Input("initial_states: T")
    .Input("tokens: num_tokens * int32")
    .Output("outputs: T")
    .Output("final_states: T")
    .Output("activations: T")
    .Attr("T: {float, double}")
    .Attr("N: int >= 1")
    .Attr("num_tokens: int >= 0 = 0")
    .Attr("activation: {'tanh', 'relu'} = 'tanh'")
    .SetShapeFn([](InferenceContext* c) {
      std::string activation;
      TF_RETURN_IF_ERROR(c->GetAttr("activation", &activation));
      return internal::ForwardShapes(c, activation == "relu" ? deeprnn::Cell::kRelu : deeprnn::Cell::kTanh);
    })
    .Doc(R"doc(
Fused stacked RNN: H_t^(l) = activation(H_t^(l-1) kernels[l] + H_{t-1}^(l) recurrent_kernels[l] + biases[l]).

inputs: [B, T, D], batch major; with tokens, an empty [B, T, 0] tensor.
kernels: N tensors, [D, H] for the first layer, [H, H] for the others.
recurrent_kernels: N tensors [H, H].
biases: N tensors [H].
initial_states: [N, B, H].
tokens: none, or one [B, T] tensor of token ids in [0, D): layer 0's input is then row tokens[b, t] of kernels[0],
  what a one-hot input computes.
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
    .Input("tokens: num_tokens * int32")
    .Output("grad_inputs: T")
    .Output("grad_kernels: N * T")
    .Output("grad_recurrent_kernels: N * T")
    .Output("grad_biases: N * T")
    .Output("grad_initial_states: T")
    .Attr("T: {float, double}")
    .Attr("N: int >= 1")
    .Attr("num_tokens: int >= 0 = 0")
    .Attr("activation: {'tanh', 'relu'} = 'tanh'")
    .Attr("compute_grad_inputs: bool = true")
    .SetShapeFn([](InferenceContext* c) {
      std::string activation;
      TF_RETURN_IF_ERROR(c->GetAttr("activation", &activation));
      return internal::GradShapes(c, activation == "relu" ? deeprnn::Cell::kRelu : deeprnn::Cell::kTanh);
    })
    .Doc(R"doc(
Gradient of DeeprnnFast>StackedRnn with respect to all of its inputs, given the forward op's activations and the
gradients of its outputs and final states. With compute_grad_inputs false (an input that needs no gradient, or
tokens), grad_inputs is an empty [B, T, 0] tensor and costs nothing.
)doc");

}  // namespace deeprnn_fast
