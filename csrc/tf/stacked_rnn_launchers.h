// The seam between the TensorFlow op kernels and the device code: the op kernels (stacked_rnn_kernels.h) check
// and allocate, then hand raw pointers to a launcher specialised per device (stacked_rnn_cpu.cc,
// stacked_rnn_gpu.cc), which calls the framework-free library.
#ifndef DEEPRNN_FAST_TF_STACKED_RNN_LAUNCHERS_H_
#define DEEPRNN_FAST_TF_STACKED_RNN_LAUNCHERS_H_

#include <vector>

#include "deeprnn/stacked_rnn.h"
#include "tensorflow/core/framework/op_kernel.h"

namespace deeprnn_fast {

// Device tags: plain types, so that no Eigen device (and no CUDA header) is needed to name a device.
struct CpuDevice {};
struct GpuDevice {};

// Raw pointers of one forward call; shapes as in deeprnn/stacked_rnn.h.
template <typename T>
struct ForwardArgs {
  deeprnn::Shape shape;
  deeprnn::Activation activation;
  const T* inputs;                        // [B,T,D]
  std::vector<const T*> kernels;          // L: [D,H], then [H,H]
  std::vector<const T*> recurrent_kernels;  // L: [H,H]
  std::vector<const T*> biases;           // L: [H]
  const T* initial_states;                // [L,B,H]
  T* outputs;                             // [B,T,H]
  T* final_states;                        // [L,B,H]
  T* activations;                         // [L,T,B,H]

  deeprnn::Weights<T> weights() const { return {kernels.data(), recurrent_kernels.data(), biases.data()}; }
};

// Raw pointers of one backward call.
template <typename T>
struct BackwardArgs {
  deeprnn::Shape shape;
  deeprnn::Activation activation;
  const T* inputs;                          // [B,T,D]
  std::vector<const T*> kernels;            // L: [D,H], then [H,H]
  std::vector<const T*> recurrent_kernels;  // L: [H,H]
  std::vector<const T*> no_biases;          // L nullptrs: the backward pass never reads the biases
  const T* initial_states;                  // [L,B,H]
  const T* activations;                     // [L,T,B,H]
  const T* grad_outputs;                    // [B,T,H]
  const T* grad_final_states;               // [L,B,H]
  T* grad_inputs;                           // [B,T,D]
  std::vector<T*> grad_kernels;             // L, shaped as kernels
  std::vector<T*> grad_recurrent_kernels;   // L: [H,H]
  std::vector<T*> grad_biases;              // L: [H]
  T* grad_initial_states;                   // [L,B,H]
  T* grad_preactivations;                   // [L,T,B,H] scratch allocated by the op kernel

  deeprnn::Weights<T> weights() const { return {kernels.data(), recurrent_kernels.data(), no_biases.data()}; }
  deeprnn::WeightGrads<T> weight_grads() const {
    return {grad_kernels.data(), grad_recurrent_kernels.data(), grad_biases.data()};
  }
};

template <typename Device, typename T>
struct ForwardLauncher {
  static absl::Status Run(tensorflow::OpKernelContext* ctx, const ForwardArgs<T>& args);
};

template <typename Device, typename T>
struct BackwardLauncher {
  static absl::Status Run(tensorflow::OpKernelContext* ctx, const BackwardArgs<T>& args);
};

}  // namespace deeprnn_fast

#endif  // DEEPRNN_FAST_TF_STACKED_RNN_LAUNCHERS_H_
