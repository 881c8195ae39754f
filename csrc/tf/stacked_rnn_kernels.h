// The op kernels of DeeprnnFast>StackedRnn and its gradient, for any device: check every input (the raw op can be
// called with anything), allocate outputs and scratch with TensorFlow's allocator, then call the device launcher.
// A device file instantiates them with DEEPRNN_FAST_REGISTER_KERNELS.
#ifndef DEEPRNN_FAST_TF_STACKED_RNN_KERNELS_H_
#define DEEPRNN_FAST_TF_STACKED_RNN_KERNELS_H_

#include <string>
#include <vector>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tf/stacked_rnn_launchers.h"
#include "tf/validation.h"

namespace deeprnn_fast {

namespace internal {

inline absl::Status ParseActivation(const std::string& name, deeprnn::Activation* activation) {
  if (name == "tanh") {
    *activation = deeprnn::Activation::kTanh;
  } else if (name == "relu") {
    *activation = deeprnn::Activation::kRelu;
  } else {
    return absl::InvalidArgumentError("activation must be 'tanh' or 'relu'; got '" + name + "'");
  }
  return absl::OkStatus();
}

}  // namespace internal

template <typename Device, typename T>
class StackedRnnOp : public tensorflow::OpKernel {
 public:
  explicit StackedRnnOp(tensorflow::OpKernelConstruction* ctx) : OpKernel(ctx) {
    std::string activation;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("activation", &activation));
    OP_REQUIRES_OK(ctx, internal::ParseActivation(activation, &activation_));
  }

  void Compute(tensorflow::OpKernelContext* ctx) override {
    ForwardArgs<T> args;
    OP_REQUIRES_OK(ctx, internal::CheckStackedInputs(ctx, ctx->num_inputs() - 1, 1, &args.shape));
    const int64_t B = args.shape.batch, TT = args.shape.time, H = args.shape.hidden, L = args.shape.layers;
    tensorflow::OpInputList kernels, recurrent_kernels, biases;
    OP_REQUIRES_OK(ctx, ctx->input_list("kernels", &kernels));
    OP_REQUIRES_OK(ctx, ctx->input_list("recurrent_kernels", &recurrent_kernels));
    OP_REQUIRES_OK(ctx, ctx->input_list("biases", &biases));
    for (int64_t l = 0; l < L; ++l)
      OP_REQUIRES_OK(ctx, internal::ExpectShape(biases[l], "biases[" + std::to_string(l) + "]", {H}));

    tensorflow::Tensor *outputs, *final_states, *activations;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, {B, TT, H}, &outputs));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, {L, B, H}, &final_states));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, {L, TT, B, H}, &activations));
    args.activation = activation_;
    args.inputs = ctx->input(0).flat<T>().data();
    args.kernels = internal::Pointers<T>(kernels);
    args.recurrent_kernels = internal::Pointers<T>(recurrent_kernels);
    args.biases = internal::Pointers<T>(biases);
    args.initial_states = ctx->input(ctx->num_inputs() - 1).flat<T>().data();
    args.outputs = outputs->flat<T>().data();
    args.final_states = final_states->flat<T>().data();
    args.activations = activations->flat<T>().data();
    OP_REQUIRES_OK(ctx, (ForwardLauncher<Device, T>::Run(ctx, args)));
  }

 private:
  deeprnn::Activation activation_;
};

template <typename Device, typename T>
class StackedRnnGradOp : public tensorflow::OpKernel {
 public:
  explicit StackedRnnGradOp(tensorflow::OpKernelConstruction* ctx) : OpKernel(ctx) {
    std::string activation;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("activation", &activation));
    OP_REQUIRES_OK(ctx, internal::ParseActivation(activation, &activation_));
  }

  void Compute(tensorflow::OpKernelContext* ctx) override {
    BackwardArgs<T> args;
    OP_REQUIRES_OK(ctx, internal::CheckStackedInputs(ctx, ctx->num_inputs() - 4, 1, &args.shape));
    const int64_t B = args.shape.batch, TT = args.shape.time, H = args.shape.hidden, L = args.shape.layers;
    const int n_in = ctx->num_inputs();
    const tensorflow::Tensor& activations = ctx->input(n_in - 3);
    const tensorflow::Tensor& grad_outputs = ctx->input(n_in - 2);
    const tensorflow::Tensor& grad_final_states = ctx->input(n_in - 1);
    OP_REQUIRES_OK(ctx, internal::ExpectShape(activations, "activations", {L, TT, B, H}));
    OP_REQUIRES_OK(ctx, internal::ExpectShape(grad_outputs, "grad_outputs", {B, TT, H}));
    OP_REQUIRES_OK(ctx, internal::ExpectShape(grad_final_states, "grad_final_states", {L, B, H}));
    tensorflow::OpInputList kernels, recurrent_kernels;
    OP_REQUIRES_OK(ctx, ctx->input_list("kernels", &kernels));
    OP_REQUIRES_OK(ctx, ctx->input_list("recurrent_kernels", &recurrent_kernels));

    tensorflow::Tensor* grad_inputs;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ctx->input(0).shape(), &grad_inputs));
    tensorflow::OpOutputList grad_kernels, grad_recurrent_kernels, grad_biases;
    OP_REQUIRES_OK(ctx, ctx->output_list("grad_kernels", &grad_kernels));
    OP_REQUIRES_OK(ctx, ctx->output_list("grad_recurrent_kernels", &grad_recurrent_kernels));
    OP_REQUIRES_OK(ctx, ctx->output_list("grad_biases", &grad_biases));
    for (int64_t l = 0; l < L; ++l) {
      tensorflow::Tensor *gk, *grk, *gb;
      OP_REQUIRES_OK(ctx, grad_kernels.allocate(l, kernels[l].shape(), &gk));
      OP_REQUIRES_OK(ctx, grad_recurrent_kernels.allocate(l, {H, H}, &grk));
      OP_REQUIRES_OK(ctx, grad_biases.allocate(l, {H}, &gb));
      args.grad_kernels.push_back(gk->flat<T>().data());
      args.grad_recurrent_kernels.push_back(grk->flat<T>().data());
      args.grad_biases.push_back(gb->flat<T>().data());
      args.no_biases.push_back(nullptr);
    }
    tensorflow::Tensor* grad_initial_states;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(ctx->num_outputs() - 1, {L, B, H}, &grad_initial_states));
    tensorflow::Tensor grad_preactivations;
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DataTypeToEnum<T>::value, {L, TT, B, H},
                                           &grad_preactivations));

    args.activation = activation_;
    args.inputs = ctx->input(0).flat<T>().data();
    args.kernels = internal::Pointers<T>(kernels);
    args.recurrent_kernels = internal::Pointers<T>(recurrent_kernels);
    args.initial_states = ctx->input(n_in - 4).flat<T>().data();
    args.activations = activations.flat<T>().data();
    args.grad_outputs = grad_outputs.flat<T>().data();
    args.grad_final_states = grad_final_states.flat<T>().data();
    args.grad_inputs = grad_inputs->flat<T>().data();
    args.grad_initial_states = grad_initial_states->flat<T>().data();
    args.grad_preactivations = grad_preactivations.flat<T>().data();
    OP_REQUIRES_OK(ctx, (BackwardLauncher<Device, T>::Run(ctx, args)));
  }

 private:
  deeprnn::Activation activation_;
};

}  // namespace deeprnn_fast

// Registers both op kernels for one device (tensorflow::DEVICE_CPU / DEVICE_GPU), device tag and dtype.
#define DEEPRNN_FAST_REGISTER_KERNELS(DEVICE, DeviceTag, T)                                                 \
  REGISTER_KERNEL_BUILDER(                                                                                 \
      Name("DeeprnnFast>StackedRnn").Device(DEVICE).TypeConstraint<T>("T"),                                \
      ::deeprnn_fast::StackedRnnOp<DeviceTag, T>);                                                         \
  REGISTER_KERNEL_BUILDER(                                                                                 \
      Name("DeeprnnFast>StackedRnnGrad").Device(DEVICE).TypeConstraint<T>("T"),                            \
      ::deeprnn_fast::StackedRnnGradOp<DeviceTag, T>);

#endif  // DEEPRNN_FAST_TF_STACKED_RNN_KERNELS_H_
