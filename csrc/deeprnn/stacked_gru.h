// deeprnn: the fused stacked (deep) GRU, Keras' GRUCell with reset_after=True (the cuDNN-compatible form).
//
// Per layer l and time step t, with x = H_t^(l-1) (X_t for l = 0), h = H_{t-1}^(l), gate order [z, r, n]:
//   z = sigmoid(x Wx_z + bx_z + h Wh_z + bh_z)
//   r = sigmoid(x Wx_r + bx_r + h Wh_r + bh_r)
//   q = h Wh_n + bh_n                                  (the recurrent part of the candidate)
//   n = tanh(x Wx_n + bx_n + r * q)
//   H_t^(l) = z * h + (1 - z) * n
// Wx = kernels[l] [in, 3H] holds the columns [Wx_z | Wx_r | Wx_n]; Wh = recurrent_kernels[l] [H, 3H] likewise;
// biases[l] [2, 3H] holds the input bias bx in row 0 and the recurrent bias bh in row 1 (Keras' layout).
//
// Conventions, wavefront and threading are those of deeprnn/stacked_rnn.h (read it first): shapes [A,B,C] row
// major, X batch major [B,T,D], per-cell buffers time major [L,T,B,...] so that one cell is one contiguous block,
// L separate weight pointers, int64_t sizes, callers own every buffer.
//
// What the backward pass needs is exported by the forward pass so that it recomputes nothing (as in
// lmnt-com/haste): every state H_t^(l) ("activations", as in the tanh RNN) and, per cell, the gates
// ("gates" [L,T,B,4H], each row [z | r | n | q]).
//
// A CUDA version mirrors these functions with device pointers and the same shapes and layouts.
#ifndef DEEPRNN_STACKED_GRU_H_
#define DEEPRNN_STACKED_GRU_H_

#include <cstdint>

#include "deeprnn/stacked_rnn.h"

namespace deeprnn {

// Values per row of one cell's gates: z, r, n, q (each H wide).
constexpr int64_t kGruGateSlots = 4;

template <typename T>
struct GruWeights {
  const T* const* kernels;            // L pointers: [D,3H] for layer 0, [H,3H] for the others (Wx, columns z|r|n)
  const T* const* recurrent_kernels;  // L pointers: [H,3H] (Wh, columns z|r|n)
  const T* const* biases;             // L pointers: [2,3H], row 0 input bias bx, row 1 recurrent bias bh
};

template <typename T>
struct GruWeightGrads {
  T* const* kernels;            // L pointers, shaped as GruWeights::kernels; overwritten
  T* const* recurrent_kernels;  // L pointers: [H,3H]; overwritten
  T* const* biases;             // L pointers: [2,3H]; overwritten
};

// Forward pass on the CPU. `shape.hidden` is H, the units of one layer (the weights have 3H columns).
//   inputs          [B,T,D]    X
//   weights                    see GruWeights
//   initial_states  [L,B,H]    H_{-1}^(l)
//   outputs         [B,T,H]    out: the top layer's sequence
//   final_states    [L,B,H]    out: H_{T-1}^(l) (the initial states when T = 0)
//   activations     [L,T,B,H]  out: every H_t^(l), kept for the backward pass
//   gates           [L,T,B,4H] out: per cell and row [z | r | n | q], kept for the backward pass
template <typename T>
void StackedGruForwardCpu(const Shape& shape, const T* inputs, const GruWeights<T>& weights, const T* initial_states,
                          T* outputs, T* final_states, T* activations, T* gates, const ParallelFor& parallel_for);

// Backward pass on the CPU: gradients of a scalar loss with respect to every input of the forward pass.
//   inputs, weights, initial_states, activations, gates: as given to / produced by StackedGruForwardCpu
//                       (weights.biases is not read and may hold nulls)
//   grad_outputs        [B,T,H]    dLoss/d outputs
//   grad_final_states   [L,B,H]    dLoss/d final_states
//   grad_inputs         [B,T,D]    out
//   grad_weights                   out: see GruWeightGrads
//   grad_initial_states [L,B,H]    out
//   grad_gates          scratch of StackedGruBackwardCpuScratchSize<T>(shape) values (at most [L,T,B,4H]): the
//                       gradients with respect to the gates' arguments, per cell and row [dn | dz | dr | dn * r]
//                       so that both the input side (dn, dz, dr) and the recurrent side (dz, dr, dn * r) are
//                       contiguous; for large batches with small weights only two cells per layer are kept
template <typename T>
void StackedGruBackwardCpu(const Shape& shape, const T* inputs, const GruWeights<T>& weights, const T* initial_states,
                           const T* activations, const T* gates, const T* grad_outputs, const T* grad_final_states,
                           T* grad_inputs, const GruWeightGrads<T>& grad_weights, T* grad_initial_states,
                           T* grad_gates, const ParallelFor& parallel_for);

// Values of scratch StackedGruBackwardCpu needs for `shape` (a pure function of the shape and T).
template <typename T>
int64_t StackedGruBackwardCpuScratchSize(const Shape& shape);

}  // namespace deeprnn

#endif  // DEEPRNN_STACKED_GRU_H_
