// The op kernels of DeeprnnFast>StackedGru and its gradient, for any device: check every input (the raw op can be
// called with anything), allocate outputs and scratch with TensorFlow's allocator, then call the device launcher.
// A device file instantiates them with DEEPRNN_FAST_REGISTER_GRU_KERNELS.
#ifndef DEEPRNN_FAST_TF_STACKED_GRU_KERNELS_H_
#define DEEPRNN_FAST_TF_STACKED_GRU_KERNELS_H_

#include <string>
#include <vector>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tf/stacked_gru_launchers.h"
#include "tf/validation.h"

namespace deeprnn_fast {

template <typename Device, typename T>
class StackedGruOp : public tensorflow::OpKernel {
 public:
  explicit StackedGruOp(tensorflow::OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(tensorflow::OpKernelContext* ctx) override {
    GruForwardArgs<T> args;
    OP_REQUIRES_OK(ctx, internal::CheckStackedInputs(ctx, ctx->num_inputs() - 1, 3, &args.shape));
    const int64_t B = args.shape.batch, TT = args.shape.time, H = args.shape.hidden, L = args.shape.layers;
    tensorflow::OpInputList kernels, recurrent_kernels, biases;
    OP_REQUIRES_OK(ctx, ctx->input_list("kernels", &kernels));
    OP_REQUIRES_OK(ctx, ctx->input_list("recurrent_kernels", &recurrent_kernels));
    OP_REQUIRES_OK(ctx, ctx->input_list("biases", &biases));
    for (int64_t l = 0; l < L; ++l)
      OP_REQUIRES_OK(ctx, internal::ExpectShape(biases[l], "biases[" + std::to_string(l) + "]", {2, 3 * H}));

    tensorflow::Tensor *outputs, *final_states, *activations, *gates;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, {B, TT, H}, &outputs));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, {L, B, H}, &final_states));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, {L, TT, B, H}, &activations));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, {L, TT, B, deeprnn::kGruGateSlots * H}, &gates));
    args.inputs = ctx->input(0).flat<T>().data();
    args.kernels = internal::Pointers<T>(kernels);
    args.recurrent_kernels = internal::Pointers<T>(recurrent_kernels);
    args.biases = internal::Pointers<T>(biases);
    args.initial_states = ctx->input(ctx->num_inputs() - 1).flat<T>().data();
    args.outputs = outputs->flat<T>().data();
    args.final_states = final_states->flat<T>().data();
    args.activations = activations->flat<T>().data();
    args.gates = gates->flat<T>().data();
    OP_REQUIRES_OK(ctx, (GruForwardLauncher<Device, T>::Run(ctx, args)));
  }
};

template <typename Device, typename T>
class StackedGruGradOp : public tensorflow::OpKernel {
 public:
  explicit StackedGruGradOp(tensorflow::OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(tensorflow::OpKernelContext* ctx) override {
    GruBackwardArgs<T> args;
    const int n_in = ctx->num_inputs();
    OP_REQUIRES_OK(ctx, internal::CheckStackedInputs(ctx, n_in - 5, 3, &args.shape));
    const int64_t B = args.shape.batch, TT = args.shape.time, H = args.shape.hidden, L = args.shape.layers;
    const int64_t G = deeprnn::kGruGateSlots * H;
    const tensorflow::Tensor& activations = ctx->input(n_in - 4);
    const tensorflow::Tensor& gates = ctx->input(n_in - 3);
    const tensorflow::Tensor& grad_outputs = ctx->input(n_in - 2);
    const tensorflow::Tensor& grad_final_states = ctx->input(n_in - 1);
    OP_REQUIRES_OK(ctx, internal::ExpectShape(activations, "activations", {L, TT, B, H}));
    OP_REQUIRES_OK(ctx, internal::ExpectShape(gates, "gates", {L, TT, B, G}));
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
      OP_REQUIRES_OK(ctx, grad_recurrent_kernels.allocate(l, {H, 3 * H}, &grk));
      OP_REQUIRES_OK(ctx, grad_biases.allocate(l, {2, 3 * H}, &gb));
      args.grad_kernels.push_back(gk->flat<T>().data());
      args.grad_recurrent_kernels.push_back(grk->flat<T>().data());
      args.grad_biases.push_back(gb->flat<T>().data());
      args.no_biases.push_back(nullptr);
    }
    tensorflow::Tensor* grad_initial_states;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(ctx->num_outputs() - 1, {L, B, H}, &grad_initial_states));
    tensorflow::Tensor grad_gates;
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DataTypeToEnum<T>::value,
                                           {GruBackwardLauncher<Device, T>::ScratchSize(args.shape)}, &grad_gates));

    args.inputs = ctx->input(0).flat<T>().data();
    args.kernels = internal::Pointers<T>(kernels);
    args.recurrent_kernels = internal::Pointers<T>(recurrent_kernels);
    args.initial_states = ctx->input(n_in - 5).flat<T>().data();
    args.activations = activations.flat<T>().data();
    args.gates = gates.flat<T>().data();
    args.grad_outputs = grad_outputs.flat<T>().data();
    args.grad_final_states = grad_final_states.flat<T>().data();
    args.grad_inputs = grad_inputs->flat<T>().data();
    args.grad_initial_states = grad_initial_states->flat<T>().data();
    args.grad_gates = grad_gates.flat<T>().data();
    OP_REQUIRES_OK(ctx, (GruBackwardLauncher<Device, T>::Run(ctx, args)));
  }
};

}  // namespace deeprnn_fast

// Registers both GRU op kernels for one device (tensorflow::DEVICE_CPU / DEVICE_GPU), device tag and dtype.
#define DEEPRNN_FAST_REGISTER_GRU_KERNELS(DEVICE, DeviceTag, T)                                             \
  REGISTER_KERNEL_BUILDER(                                                                                 \
      Name("DeeprnnFast>StackedGru").Device(DEVICE).TypeConstraint<T>("T"),                                \
      ::deeprnn_fast::StackedGruOp<DeviceTag, T>);                                                         \
  REGISTER_KERNEL_BUILDER(                                                                                 \
      Name("DeeprnnFast>StackedGruGrad").Device(DEVICE).TypeConstraint<T>("T"),                            \
      ::deeprnn_fast::StackedGruGradOp<DeviceTag, T>);

#endif  // DEEPRNN_FAST_TF_STACKED_GRU_KERNELS_H_
