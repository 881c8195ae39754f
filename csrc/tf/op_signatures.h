// What every stacked op's definition shares, written once: the ops of the three cells (ops_rnn.cc, ops_gru.cc,
// ops_lstm.cc) differ only in their names, the forward's saved-gates output, their cell attributes, shape
// functions and documentation. Each macro continues a REGISTER_OP(...) chain; the order of inputs and attributes is
// part of the ops' signatures (graphs and SavedModels name them by position), so it must not change.
//
// Inputs added after the first release are lists whose length attributes default to 0, so that graphs and
// SavedModels written before them load unchanged.
#ifndef DEEPRNN_FAST_TF_OP_SIGNATURES_H_
#define DEEPRNN_FAST_TF_OP_SIGNATURES_H_

// The forward's operands: the sequence, the per-layer weights and every layer's initial state(s).
#define DEEPRNN_FAST_FORWARD_INPUTS          \
  .Input("inputs: T")                        \
      .Input("kernels: N * T")               \
      .Input("recurrent_kernels: N * T")     \
      .Input("biases: N * T")                \
      .Input("initial_states: T")

// The gradient's leading operands (those of the forward it needs, without the biases).
#define DEEPRNN_FAST_GRAD_INPUTS             \
  .Input("inputs: T")                        \
      .Input("kernels: N * T")               \
      .Input("recurrent_kernels: N * T")     \
      .Input("initial_states: T")            \
      .Input("activations: T")

// The gradient's incoming gradients, after the forward's saved tensors.
#define DEEPRNN_FAST_GRAD_UPSTREAM           \
  .Input("grad_outputs: T")                  \
      .Input("grad_final_states: T")

// Token inputs, the mask and the three dropouts: optional lists (see ops_rnn.cc's documentation).
#define DEEPRNN_FAST_MODIFIER_INPUTS                                 \
  .Input("tokens: num_tokens * int32")                               \
      .Input("mask: num_masks * bool")                               \
      .Input("input_dropout: num_input_dropout * T")                 \
      .Input("recurrent_dropout: num_recurrent_dropout * T")         \
      .Input("between_dropout: num_between_dropout * T")

#define DEEPRNN_FAST_FORWARD_OUTPUTS         \
  .Output("outputs: T")                      \
      .Output("final_states: T")             \
      .Output("activations: T")

#define DEEPRNN_FAST_GRAD_OUTPUTS                   \
  .Output("grad_inputs: T")                         \
      .Output("grad_kernels: N * T")                \
      .Output("grad_recurrent_kernels: N * T")      \
      .Output("grad_biases: N * T")                 \
      .Output("grad_initial_states: T")

// The dtype, the layer count and the modifiers' list lengths and flag.
#define DEEPRNN_FAST_SHARED_ATTRS                         \
  .Attr("T: {float, double}")                             \
      .Attr("N: int >= 1")                                \
      .Attr("num_tokens: int >= 0 = 0")                   \
      .Attr("num_masks: int >= 0 = 0")                    \
      .Attr("num_input_dropout: int >= 0 = 0")            \
      .Attr("num_recurrent_dropout: int >= 0 = 0")        \
      .Attr("num_between_dropout: int >= 0 = 0")          \
      .Attr("zero_output_for_mask: bool = false")

// The gradient op of a gated cell's op DeeprnnFast>Stacked<Name> (ops_gru.cc, ops_lstm.cc): the forward op's inputs,
// the gates it saved and the upstream gradients in, the gradient of every input out. `cell` is its deeprnn::Cell.
#define DEEPRNN_FAST_REGISTER_GATED_GRAD_OP(Name, cell)                                                             \
  REGISTER_OP("DeeprnnFast>Stacked" #Name "Grad")                                                                   \
      DEEPRNN_FAST_GRAD_INPUTS                                                                                      \
      .Input("gates: T")                                                                                            \
      DEEPRNN_FAST_GRAD_UPSTREAM                                                                                    \
      DEEPRNN_FAST_MODIFIER_INPUTS                                                                                  \
      DEEPRNN_FAST_GRAD_OUTPUTS                                                                                     \
      DEEPRNN_FAST_SHARED_ATTRS                                                                                     \
      .Attr("compute_grad_inputs: bool = true")                                                                     \
      .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) { return internal::GradShapes(c, cell); }) \
      .Doc("Gradient of DeeprnnFast>Stacked" #Name " with respect to all of its inputs, given the forward op's "    \
           "activations and gates and the gradients of its outputs and final states (compute_grad_inputs as for "    \
           "DeeprnnFast>StackedRnnGrad).")

#endif  // DEEPRNN_FAST_TF_OP_SIGNATURES_H_
