// The GRU's op definitions ("DeeprnnFast>" namespaced like the tanh RNN's; see ops_rnn.cc for the conventions).
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tf/op_signatures.h"
#include "tf/shape_inference.h"

namespace deeprnn_fast {

using ::tensorflow::shape_inference::InferenceContext;

REGISTER_OP("DeeprnnFast>StackedGru")
    DEEPRNN_FAST_FORWARD_INPUTS
    DEEPRNN_FAST_MODIFIER_INPUTS
    DEEPRNN_FAST_FORWARD_OUTPUTS
    .Output("gates: T")
    DEEPRNN_FAST_SHARED_ATTRS
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

DEEPRNN_FAST_REGISTER_GATED_GRAD_OP(Gru, deeprnn::Cell::kGru);

}  // namespace deeprnn_fast
