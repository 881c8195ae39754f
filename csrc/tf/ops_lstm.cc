// The LSTM's op definitions ("DeeprnnFast>" namespaced like the tanh RNN's; see ops_rnn.cc for the conventions).
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tf/op_signatures.h"
#include "tf/shape_inference.h"

namespace deeprnn_fast {

using ::tensorflow::shape_inference::InferenceContext;

REGISTER_OP("DeeprnnFast>StackedLstm")
    DEEPRNN_FAST_FORWARD_INPUTS
    DEEPRNN_FAST_MODIFIER_INPUTS
    DEEPRNN_FAST_FORWARD_OUTPUTS
    .Output("gates: T")
    DEEPRNN_FAST_SHARED_ATTRS
    .SetShapeFn([](InferenceContext* c) { return internal::ForwardShapes(c, deeprnn::Cell::kLstm); })
    .Doc(R"doc(
Fused stacked LSTM, Keras' LSTMCell, gate order [i, f, c, o]: [a_i | a_f | a_g | a_o] = x Wx + h Wh + b,
i, f, o = sigmoid(a_i, a_f, a_o), g = tanh(a_g), c' = f * c + i * g, h' = o * tanh(c').

inputs: [B, T, D], batch major; with tokens, an empty [B, T, 0] tensor.
kernels: N tensors, [D, 4H] for the first layer, [H, 4H] for the others (Wx, columns i | f | c | o).
recurrent_kernels: N tensors [H, 4H] (Wh).
biases: N tensors [4H].
initial_states: [N, 2, B, H]: every layer's h (index 0) and c (index 1).
tokens, mask, input_dropout, recurrent_dropout, between_dropout, zero_output_for_mask: see DeeprnnFast>StackedRnn.
outputs: [B, T, H], the top layer's h sequence.
final_states: [N, 2, B, H], every layer's h and c after the last step (initial_states when T = 0).
activations: [N, T, B, H], every layer's h, time major: for the gradient. Its own gradient is ignored.
gates: [N, T, B, 5H], per cell and row [i | f | g | o | c']: for the gradient. Its own gradient is ignored.
)doc");

DEEPRNN_FAST_REGISTER_GATED_GRAD_OP(Lstm, deeprnn::Cell::kLstm);

}  // namespace deeprnn_fast
