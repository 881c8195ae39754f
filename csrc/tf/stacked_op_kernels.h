// The op kernels of every cell's ops (ops_*.cc), forward and gradient, for any device: check every input (the raw
// ops can be called with anything), allocate outputs and scratch with TensorFlow's allocator, then hand the
// library's argument structs (deeprnn/stacked.h) to the device's launcher (tf/launchers.h). A device file registers
// them with DEEPRNN_FAST_REGISTER_KERNELS.
#ifndef DEEPRNN_FAST_TF_STACKED_OP_KERNELS_H_
#define DEEPRNN_FAST_TF_STACKED_OP_KERNELS_H_

#include <string>
#include <type_traits>
#include <vector>

#include "deeprnn/stacked.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tf/input_checks.h"
#include "tf/launchers.h"
#include "tf/reused_tensor.h"

namespace deeprnn_fast {

namespace internal {

// Whether the op kernels on `Device` hand out their large blocks from kept ones (tf/reused_tensor.h): the CPU only.
template <typename Device>
constexpr bool kKeepsLargeBlocks = std::is_same<Device, CpuDevice>::value;

// The cell of an op: fixed by the op's name, and for the tanh/relu RNN's ops by their `activation` attribute.
inline absl::Status CellOfOp(tensorflow::OpKernelConstruction* ctx, deeprnn::Cell* cell) {
  const std::string& op = ctx->def().op();
  if (op == "DeeprnnFast>StackedGru" || op == "DeeprnnFast>StackedGruGrad") {
    *cell = deeprnn::Cell::kGru;
  } else if (op == "DeeprnnFast>StackedLstm" || op == "DeeprnnFast>StackedLstmGrad") {
    *cell = deeprnn::Cell::kLstm;
  } else {
    std::string activation;
    TF_RETURN_IF_ERROR(ctx->GetAttr("activation", &activation));
    if (!deeprnn::CellFromName(activation, cell) || (*cell != deeprnn::Cell::kTanh && *cell != deeprnn::Cell::kRelu))
      return absl::InvalidArgumentError("activation must be 'tanh' or 'relu'; got '" + activation + "'");
  }
  return absl::OkStatus();
}

}  // namespace internal

template <typename Device, typename T>
class StackedForwardOp : public tensorflow::OpKernel {
 public:
  explicit StackedForwardOp(tensorflow::OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, internal::CellOfOp(ctx, &cell_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("zero_output_for_mask", &zero_output_for_mask_));
  }

  void Compute(tensorflow::OpKernelContext* ctx) override {
    const deeprnn::CellLayout layout = deeprnn::LayoutOf(cell_);
    deeprnn::ForwardArgs<T> args;
    args.cell = cell_;
    const tensorflow::Tensor* tokens;
    OP_REQUIRES_OK(ctx, internal::CheckProblem(ctx, cell_, "initial_states", &args.shape, &tokens));
    const deeprnn::Shape& s = args.shape;
    tensorflow::OpInputList kernels, recurrent_kernels, biases;
    OP_REQUIRES_OK(ctx, ctx->input_list("kernels", &kernels));
    OP_REQUIRES_OK(ctx, ctx->input_list("recurrent_kernels", &recurrent_kernels));
    OP_REQUIRES_OK(ctx, ctx->input_list("biases", &biases));
    for (int64_t l = 0; l < s.layers; ++l)
      OP_REQUIRES_OK(ctx, internal::ExpectShape(biases[l], "biases[" + std::to_string(l) + "]",
                                                internal::BiasShape(layout, s.hidden)));
    if (tokens) OP_REQUIRES_OK(ctx, (Launcher<Device, T>::CheckTokens(*tokens, s.input)));
    internal::ModifierPointers<T> modifier_pointers;
    OP_REQUIRES_OK(ctx, internal::ReadModifiers<T>(ctx, cell_, s, zero_output_for_mask_, &args.modifiers,
                                                   &modifier_pointers));

    tensorflow::Tensor *outputs, *final_states, *activations, *saved = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output("outputs", {s.batch, s.time, s.hidden}, &outputs));
    OP_REQUIRES_OK(ctx, ctx->allocate_output("final_states", tensorflow::TensorShape(internal::StatesShape(layout, s)),
                                             &final_states));
    // What only the gradient reads comes from blocks this kernel keeps (tf/reused_tensor.h says why).
    constexpr bool kKeep = internal::kKeepsLargeBlocks<Device>;
    const tensorflow::DataType dtype = tensorflow::DataTypeToEnum<T>::value;
    OP_REQUIRES_OK(ctx, internal::AllocateLargeOutput<kKeep>(ctx, "activations", {s.layers, s.time, s.batch, s.hidden},
                                                             dtype, &reused_activations_, &activations));
    if (layout.saved_slots > 0)
      OP_REQUIRES_OK(ctx, internal::AllocateLargeOutput<kKeep>(
                              ctx, "gates", {s.layers, s.time, s.batch, layout.saved_slots * s.hidden}, dtype,
                              &reused_saved_, &saved));
    const std::vector<const T*> k = internal::Pointers<T>(kernels), rk = internal::Pointers<T>(recurrent_kernels),
                                b = internal::Pointers<T>(biases);
    const tensorflow::Tensor* initial_states;
    OP_REQUIRES_OK(ctx, ctx->input("initial_states", &initial_states));
    if (tokens) {
      args.inputs.tokens = tokens->flat<int32_t>().data();
    } else {
      args.inputs.dense = ctx->input(0).flat<T>().data();
    }
    args.weights = {k.data(), rk.data(), b.data()};
    args.initial_states = initial_states->flat<T>().data();
    args.outputs = outputs->flat<T>().data();
    args.final_states = final_states->flat<T>().data();
    args.activations = activations->flat<T>().data();
    args.saved = saved ? saved->flat<T>().data() : nullptr;
    OP_REQUIRES_OK(ctx, (Launcher<Device, T>::Forward(ctx, args)));
  }

 private:
  deeprnn::Cell cell_;
  bool zero_output_for_mask_;
  internal::ReusedTensor reused_activations_, reused_saved_;
};

template <typename Device, typename T>
class StackedGradOp : public tensorflow::OpKernel {
 public:
  explicit StackedGradOp(tensorflow::OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, internal::CellOfOp(ctx, &cell_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("compute_grad_inputs", &compute_grad_inputs_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("zero_output_for_mask", &zero_output_for_mask_));
  }

  void Compute(tensorflow::OpKernelContext* ctx) override {
    const deeprnn::CellLayout layout = deeprnn::LayoutOf(cell_);
    deeprnn::BackwardArgs<T> args;
    args.cell = cell_;
    const tensorflow::Tensor* tokens;
    OP_REQUIRES_OK(ctx, internal::CheckProblem(ctx, cell_, "initial_states", &args.shape, &tokens));
    const deeprnn::Shape& s = args.shape;
    const tensorflow::Tensor *activations, *grad_outputs, *grad_final_states, *saved = nullptr;
    OP_REQUIRES_OK(ctx, ctx->input("activations", &activations));
    OP_REQUIRES_OK(ctx, ctx->input("grad_outputs", &grad_outputs));
    OP_REQUIRES_OK(ctx, ctx->input("grad_final_states", &grad_final_states));
    OP_REQUIRES_OK(ctx, internal::ExpectShape(*activations, "activations", {s.layers, s.time, s.batch, s.hidden}));
    if (layout.saved_slots > 0) {
      OP_REQUIRES_OK(ctx, ctx->input("gates", &saved));
      OP_REQUIRES_OK(ctx, internal::ExpectShape(*saved, "gates",
                                                {s.layers, s.time, s.batch, layout.saved_slots * s.hidden}));
    }
    OP_REQUIRES_OK(ctx, internal::ExpectShape(*grad_outputs, "grad_outputs", {s.batch, s.time, s.hidden}));
    OP_REQUIRES_OK(ctx, internal::ExpectShape(*grad_final_states, "grad_final_states",
                                              internal::StatesShape(layout, s)));
    if (tokens) OP_REQUIRES_OK(ctx, (Launcher<Device, T>::CheckTokens(*tokens, s.input)));
    internal::ModifierPointers<T> modifier_pointers;
    OP_REQUIRES_OK(ctx, internal::ReadModifiers<T>(ctx, cell_, s, zero_output_for_mask_, &args.modifiers,
                                                   &modifier_pointers));
    tensorflow::OpInputList kernels, recurrent_kernels;
    OP_REQUIRES_OK(ctx, ctx->input_list("kernels", &kernels));
    OP_REQUIRES_OK(ctx, ctx->input_list("recurrent_kernels", &recurrent_kernels));

    tensorflow::Tensor* grad_inputs;
    const bool dx = compute_grad_inputs_ && tokens == nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output("grad_inputs",
                                             dx ? ctx->input(0).shape() : tensorflow::TensorShape({s.batch, s.time, 0}),
                                             &grad_inputs));
    tensorflow::OpOutputList grad_kernels, grad_recurrent_kernels, grad_biases;
    OP_REQUIRES_OK(ctx, ctx->output_list("grad_kernels", &grad_kernels));
    OP_REQUIRES_OK(ctx, ctx->output_list("grad_recurrent_kernels", &grad_recurrent_kernels));
    OP_REQUIRES_OK(ctx, ctx->output_list("grad_biases", &grad_biases));
    std::vector<T*> gk(s.layers), grk(s.layers), gb(s.layers);
    std::vector<const T*> no_biases(s.layers, nullptr);
    for (int64_t l = 0; l < s.layers; ++l) {
      tensorflow::Tensor *k, *rk, *b;
      OP_REQUIRES_OK(ctx, grad_kernels.allocate(l, kernels[l].shape(), &k));
      OP_REQUIRES_OK(ctx, grad_recurrent_kernels.allocate(l, recurrent_kernels[l].shape(), &rk));
      OP_REQUIRES_OK(ctx, grad_biases.allocate(
                              l, tensorflow::TensorShape(internal::BiasShape(layout, s.hidden)), &b));
      gk[l] = k->flat<T>().data();
      grk[l] = rk->flat<T>().data();
      gb[l] = b->flat<T>().data();
    }
    tensorflow::Tensor* grad_initial_states;
    OP_REQUIRES_OK(ctx, ctx->allocate_output("grad_initial_states",
                                             tensorflow::TensorShape(internal::StatesShape(layout, s)),
                                             &grad_initial_states));
    tensorflow::Tensor scratch;
    const tensorflow::TensorShape scratch_shape({Launcher<Device, T>::BackwardScratchSize(cell_, s)});
    OP_REQUIRES_OK(ctx, internal::AllocateLargeTemp<internal::kKeepsLargeBlocks<Device>>(
                            ctx, tensorflow::DataTypeToEnum<T>::value, scratch_shape, &reused_scratch_, &scratch));

    const std::vector<const T*> k = internal::Pointers<T>(kernels), rk = internal::Pointers<T>(recurrent_kernels);
    const tensorflow::Tensor* initial_states;
    OP_REQUIRES_OK(ctx, ctx->input("initial_states", &initial_states));
    if (tokens) {
      args.inputs.tokens = tokens->flat<int32_t>().data();
    } else {
      args.inputs.dense = ctx->input(0).flat<T>().data();
    }
    args.weights = {k.data(), rk.data(), no_biases.data()};
    args.initial_states = initial_states->flat<T>().data();
    args.activations = activations->flat<T>().data();
    args.saved = saved ? saved->flat<T>().data() : nullptr;
    args.grad_outputs = grad_outputs->flat<T>().data();
    args.grad_final_states = grad_final_states->flat<T>().data();
    args.grad_inputs = dx ? grad_inputs->flat<T>().data() : nullptr;
    args.grad_weights = {gk.data(), grk.data(), gb.data()};
    args.grad_initial_states = grad_initial_states->flat<T>().data();
    OP_REQUIRES_OK(ctx, (Launcher<Device, T>::Backward(ctx, args, scratch.flat<T>().data())));
  }

 private:
  deeprnn::Cell cell_;
  bool compute_grad_inputs_;
  bool zero_output_for_mask_;
  internal::ReusedTensor reused_scratch_;  // the backward's scratch, also from a kept block on the CPU
};

}  // namespace deeprnn_fast

// Registers the forward and gradient kernels of every cell's ops for one device (tensorflow::DEVICE_CPU /
// DEVICE_GPU), device tag and dtype; EXTRA continues the kernel builder (the GPU kernels' .HostMemory("tokens"),
// empty for the CPU).
#define DEEPRNN_FAST_REGISTER_KERNELS_FOR_OP(OP, DEVICE, DeviceTag, T, EXTRA)                              \
  REGISTER_KERNEL_BUILDER(Name("DeeprnnFast>" OP).Device(DEVICE).TypeConstraint<T>("T") EXTRA,          \
                          ::deeprnn_fast::StackedForwardOp<DeviceTag, T>);                              \
  REGISTER_KERNEL_BUILDER(Name("DeeprnnFast>" OP "Grad").Device(DEVICE).TypeConstraint<T>("T") EXTRA,   \
                          ::deeprnn_fast::StackedGradOp<DeviceTag, T>);
#define DEEPRNN_FAST_REGISTER_KERNELS(DEVICE, DeviceTag, T, EXTRA)                 \
  DEEPRNN_FAST_REGISTER_KERNELS_FOR_OP("StackedRnn", DEVICE, DeviceTag, T, EXTRA)  \
  DEEPRNN_FAST_REGISTER_KERNELS_FOR_OP("StackedGru", DEVICE, DeviceTag, T, EXTRA)  \
  DEEPRNN_FAST_REGISTER_KERNELS_FOR_OP("StackedLstm", DEVICE, DeviceTag, T, EXTRA)

#endif  // DEEPRNN_FAST_TF_STACKED_OP_KERNELS_H_
