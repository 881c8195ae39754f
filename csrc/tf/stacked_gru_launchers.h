// The seam between the GRU op kernels (stacked_gru_kernels.h) and the device code, as stacked_rnn_launchers.h is for
// the tanh RNN: the op kernels check and allocate, then hand raw pointers to a launcher specialised per device
// (stacked_gru_cpu.cc; a GPU launcher specialises the same templates for GpuDevice).
#ifndef DEEPRNN_FAST_TF_STACKED_GRU_LAUNCHERS_H_
#define DEEPRNN_FAST_TF_STACKED_GRU_LAUNCHERS_H_

#include <vector>

#include "deeprnn/stacked_gru.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tf/stacked_rnn_launchers.h"  // the device tags CpuDevice, GpuDevice

namespace deeprnn_fast {

// Raw pointers of one forward call; shapes as in deeprnn/stacked_gru.h (shape.hidden = H, weights 3H wide).
template <typename T>
struct GruForwardArgs {
  deeprnn::Shape shape;
  const T* inputs;                          // [B,T,D]
  std::vector<const T*> kernels;            // L: [D,3H], then [H,3H]
  std::vector<const T*> recurrent_kernels;  // L: [H,3H]
  std::vector<const T*> biases;             // L: [2,3H]
  const T* initial_states;                  // [L,B,H]
  T* outputs;                               // [B,T,H]
  T* final_states;                          // [L,B,H]
  T* activations;                           // [L,T,B,H]
  T* gates;                                 // [L,T,B,4H]

  deeprnn::GruWeights<T> weights() const { return {kernels.data(), recurrent_kernels.data(), biases.data()}; }
};

// Raw pointers of one backward call.
template <typename T>
struct GruBackwardArgs {
  deeprnn::Shape shape;
  const T* inputs;                          // [B,T,D]
  std::vector<const T*> kernels;            // L: [D,3H], then [H,3H]
  std::vector<const T*> recurrent_kernels;  // L: [H,3H]
  std::vector<const T*> no_biases;          // L nullptrs: the backward pass never reads the biases
  const T* initial_states;                  // [L,B,H]
  const T* activations;                     // [L,T,B,H]
  const T* gates;                           // [L,T,B,4H]
  const T* grad_outputs;                    // [B,T,H]
  const T* grad_final_states;               // [L,B,H]
  T* grad_inputs;                           // [B,T,D]
  std::vector<T*> grad_kernels;             // L, shaped as kernels
  std::vector<T*> grad_recurrent_kernels;   // L: [H,3H]
  std::vector<T*> grad_biases;              // L: [2,3H]
  T* grad_initial_states;                   // [L,B,H]
  T* grad_gates;                            // scratch of ScratchSize(shape) values allocated by the op kernel

  deeprnn::GruWeights<T> weights() const { return {kernels.data(), recurrent_kernels.data(), no_biases.data()}; }
  deeprnn::GruWeightGrads<T> weight_grads() const {
    return {grad_kernels.data(), grad_recurrent_kernels.data(), grad_biases.data()};
  }
};

template <typename Device, typename T>
struct GruForwardLauncher {
  static absl::Status Run(tensorflow::OpKernelContext* ctx, const GruForwardArgs<T>& args);
};

template <typename Device, typename T>
struct GruBackwardLauncher {
  // Values of the grad_gates scratch the device's backward pass needs.
  static int64_t ScratchSize(const deeprnn::Shape& shape);
  static absl::Status Run(tensorflow::OpKernelContext* ctx, const GruBackwardArgs<T>& args);
};

}  // namespace deeprnn_fast

#endif  // DEEPRNN_FAST_TF_STACKED_GRU_LAUNCHERS_H_
