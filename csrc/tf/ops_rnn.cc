// The tanh / relu RNN's op definitions. Namespaced ("DeeprnnFast>") so that no other library's op of the same name
// can collide. Shape functions (tf/shape_inference.h) check what is known at graph-construction time; the kernels
// (tf/stacked_op_kernels.h) check everything again at run time. What the cells' ops share is in tf/op_signatures.h.
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tf/op_signatures.h"
#include "tf/shape_inference.h"

namespace deeprnn_fast {

using ::tensorflow::shape_inference::InferenceContext;

REGISTER_OP("DeeprnnFast>StackedRnn")
    DEEPRNN_FAST_FORWARD_INPUTS
    DEEPRNN_FAST_MODIFIER_INPUTS
    DEEPRNN_FAST_FORWARD_OUTPUTS
    DEEPRNN_FAST_SHARED_ATTRS
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
mask: none, or one [B, T] bool tensor (Keras' masking): a row keeps its states at a step it does not take, and its
  output repeats the last one (zeros before its first step taken, or always with zero_output_for_mask).
input_dropout: none, or N tensors [masks, B, in_l] of 0 and 1 / (1 - rate): Keras' dropout of each layer's input,
  the same at every step; masks is 1, or the gate count for one mask per gate (Keras' implementation 1).
recurrent_dropout: none, or N tensors [masks, B, H]: Keras' recurrent_dropout of h_{t-1} in the recurrent product.
between_dropout: none, or one [N - 1, T, B, H] tensor: PyTorch's dropout of each layer's output on its way into the
  next layer, a fresh mask at every step.
outputs: [B, T, H], the top layer's sequence.
final_states: [N, B, H], every layer's state after the last step (initial_states when T = 0).
activations: [N, T, B, H], every layer's states, time major: what the gradient needs. Its own gradient is ignored.
)doc");

REGISTER_OP("DeeprnnFast>StackedRnnGrad")
    DEEPRNN_FAST_GRAD_INPUTS
    DEEPRNN_FAST_GRAD_UPSTREAM
    DEEPRNN_FAST_MODIFIER_INPUTS
    DEEPRNN_FAST_GRAD_OUTPUTS
    DEEPRNN_FAST_SHARED_ATTRS
    .Attr("activation: {'tanh', 'relu'} = 'tanh'")
    .Attr("compute_grad_inputs: bool = true")
    .SetShapeFn([](InferenceContext* c) {
      std::string activation;
      TF_RETURN_IF_ERROR(c->GetAttr("activation", &activation));
      return internal::GradShapes(c, activation == "relu" ? deeprnn::Cell::kRelu : deeprnn::Cell::kTanh);
    })
    .Doc(R"doc(
Gradient of DeeprnnFast>StackedRnn with respect to all of its inputs, given the forward op's activations, the
gradients of its outputs and final states, and the same tokens, mask and dropout masks. With compute_grad_inputs false (an input that needs no gradient, or
tokens), grad_inputs is an empty [B, T, 0] tensor and costs nothing.
)doc");

}  // namespace deeprnn_fast
