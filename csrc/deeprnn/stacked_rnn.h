// deeprnn: a framework-free library for the fused stacked (deep) RNN.
//
//   H_t^(l) = phi(H_t^(l-1) W_x^(l) + H_{t-1}^(l) W_h^(l) + b^(l)),  l = 0..L-1, t = 0..T-1,
//   H_t^(-1) = X_t,  H_{-1}^(l) = initial state of layer l.
//
// Conventions (stated once, as in lmnt-com/haste):
// - Shapes are written [A,B,C]; the rightmost dimension is the fastest (row major, dense, no padding).
// - B = batch, T = time steps, D = input features, H = hidden units, L = layers.
// - X is batch major [B,T,D] like Keras; the per-layer hidden states the gradient needs ("activations") are
//   stored time major [L,T,B,H] so that one cell (l, t) is one contiguous [B,H] block.
// - Weights come as L separate pointers because layer 0's input kernel is [D,H] and the others' are [H,H].
// - CPU functions take host pointers; CUDA functions (stacked_rnn_cuda.h) take device pointers.
// - Sizes are int64_t everywhere: element offsets may pass 2^31.
// - Nothing here knows TensorFlow, Python or any allocator; callers own every buffer.
//
// Wavefront: cell (l, t) needs (l, t-1) and (l-1, t), so the cells with l + t = s are independent. The forward pass
// walks s = 0..T+L-2 and computes every active layer of step s together; the backward pass walks s downwards. On the
// CPU, a large batch with small weights is cut into blocks of rows (fixed by the shape) that each walk the whole
// wavefront on one thread; otherwise each step's cells are split across threads.
#ifndef DEEPRNN_STACKED_RNN_H_
#define DEEPRNN_STACKED_RNN_H_

#include <cstdint>
#include <functional>

namespace deeprnn {

enum class Activation : int { kTanh = 0, kRelu = 1 };

// Problem sizes. Any of batch/time may be 0; input, hidden and layers are >= 1.
struct Shape {
  int64_t batch;   // B
  int64_t time;    // T
  int64_t input;   // D
  int64_t hidden;  // H
  int64_t layers;  // L
};

// Runs fn(begin, end) over a partition of [0, n) on some threads and returns when all are done. The library gives
// every index the same work whatever the partition, so results never depend on the thread count.
using ParallelFor = std::function<void(int64_t n, const std::function<void(int64_t, int64_t)>& fn)>;

// Runs everything on the calling thread.
void SerialFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

// The instruction set the CPU passes run on: "avx2+fma" where the CPU has it, else "generic" (baseline x86-64 or
// any other target). Chosen once per process; the environment variable DEEPRNN_FAST_CPU_ISA=generic forces the
// baseline kernels (so that tests can check them on any machine).
const char* CpuKernelIsa();

template <typename T>
struct Weights {
  const T* const* kernels;            // L pointers: [D,H] for layer 0, [H,H] for the others (W_x)
  const T* const* recurrent_kernels;  // L pointers: [H,H] (W_h)
  const T* const* biases;             // L pointers: [H] (b)
};

template <typename T>
struct WeightGrads {
  T* const* kernels;            // L pointers, shaped as Weights::kernels; overwritten
  T* const* recurrent_kernels;  // L pointers: [H,H]; overwritten
  T* const* biases;             // L pointers: [H]; overwritten
};

// Forward pass on the CPU.
//   inputs          [B,T,D]  X
//   weights                  see Weights
//   initial_states  [L,B,H]  H_{-1}^(l)
//   outputs         [B,T,H]  out: the top layer's sequence
//   final_states    [L,B,H]  out: H_{T-1}^(l) (the initial states when T = 0)
//   activations     [L,T,B,H] out: every H_t^(l), kept for the backward pass
template <typename T>
void StackedRnnForwardCpu(const Shape& shape, Activation activation, const T* inputs, const Weights<T>& weights,
                          const T* initial_states, T* outputs, T* final_states, T* activations,
                          const ParallelFor& parallel_for);

// Backward pass on the CPU: gradients of a scalar loss with respect to every input of the forward pass.
//   inputs, weights, initial_states, activations: as given to / produced by StackedRnnForwardCpu
//   grad_outputs        [B,T,H]   dLoss/d outputs
//   grad_final_states   [L,B,H]   dLoss/d final_states
//   grad_inputs         [B,T,D]   out
//   grad_weights                  out: see WeightGrads
//   grad_initial_states [L,B,H]   out
//   grad_preactivations [L,T,B,H] scratch: dLoss/dZ for every cell, Z the argument of phi
template <typename T>
void StackedRnnBackwardCpu(const Shape& shape, Activation activation, const T* inputs, const Weights<T>& weights,
                           const T* initial_states, const T* activations, const T* grad_outputs,
                           const T* grad_final_states, T* grad_inputs, const WeightGrads<T>& grad_weights,
                           T* grad_initial_states, T* grad_preactivations, const ParallelFor& parallel_for);

}  // namespace deeprnn

#endif  // DEEPRNN_STACKED_RNN_H_
