// What a wavefront cell (l, t) does with one element (row m, unit n) once its products are summed, forward and
// backward, shared by every tile that computes those products (the scalar tiles of wavefront_kernel.cuh and the
// tensor-core tile of tensor_core_tile.cuh): biases and layer 0's input projection, the cell's pointwise maths
// (Cell::Cuda<T>), Keras' masking, and where each result goes. Conventions as in wavefront_kernel.cuh's header.
#ifndef DEEPRNN_ENGINE_CUDA_CELL_EPILOGUE_CUH_
#define DEEPRNN_ENGINE_CUDA_CELL_EPILOGUE_CUH_

#include <cuda_runtime.h>

#include <cstdint>

#include "engine/cuda/cell_tables.h"
#include "engine/cuda/device_math.cuh"
#include "engine/cuda/kernel_params.h"

namespace deeprnn {
namespace cuda {

// Whether row m took a step before t: a masked step's output then repeats the last output, else it is zero.
template <typename T>
__device__ __forceinline__ bool TakenBefore(const WavefrontParams<T>& p, int m, int t) {
  const uint8_t* row = p.mask + static_cast<int64_t>(m) * p.time;
  for (int u = 0; u < t; ++u)
    if (row[u] != 0) return true;
  return false;
}

// What the mask says of row m at step t of layer l (the same for every unit of the row).
struct RowStep {
  bool taken;          // the row takes the step (always without a mask)
  bool output_flows;   // the top layer's output at t is this cell's h (taken, or a masked step that repeats it)
};

template <typename T>
__device__ __forceinline__ RowStep RowStepOf(const WavefrontParams<T>& p, int l, int t, int m) {
  const bool taken = p.mask == nullptr || p.mask[static_cast<int64_t>(m) * p.time + t] != 0;
  const bool repeats = !taken && l == p.layers - 1 && !p.zero_output_for_mask && TakenBefore(p, m, t);
  return {taken, taken || repeats};
}

template <typename Cell, typename T>
struct CellEpilogue {
  using C = CellTables<Cell>;
  using Maths = typename Cell::template Cuda<T>;
  static constexpr int NP = C::NP, S = C::S, SS = C::SS, GS = C::GS;

  // Forward: `pre` holds the products' sums per pre-activation slot; adds the bias blocks (layer 0: the input
  // projection, bias row 0 included), runs the cell's pointwise forward, and writes the saved gates, h, the output
  // and (at t = T - 1) the final states. A masked step keeps the states; its output repeats the last one (zeros
  // before the first step taken, or always with zero_output_for_mask).
  // `bias` is layer l's (p.bias[l], read once by the caller).
  __device__ __forceinline__ static void Forward(const WavefrontParams<T>& p, const T* bias, int l, int t, int m,
                                                 int n, T (&pre)[NP], RowStep step) {
    const int B = p.batch, H = p.hidden;
    const int64_t row = (static_cast<int64_t>(l) * p.time + t) * B + m;  // row of cell (l, t) in [L,T,B,.]
    const int64_t ssh = static_cast<int64_t>(SS) * H;
#pragma unroll
    for (int s = 0; s < NP; ++s) {
      const int x_gate = Entry(C::kXGate, s), x_bias = Entry(C::kXBias, s), h_bias = Entry(C::kHBias, s);
      if (h_bias != kNone) pre[s] += __ldg(bias + static_cast<int64_t>(h_bias) * H + n);
      if (l == 0 && x_gate != kNone) {  // x Wx + bias row 0, precomputed into this row
        pre[s] += __ldcg(p.projection + row * p.projection_ld + static_cast<int64_t>(x_gate) * H + n);
      } else if (x_bias != kNone) {
        pre[s] += __ldg(bias + static_cast<int64_t>(x_bias) * H + n);
      }
    }
    // State s of cell (l, t - 1): h in the activations, a second state in a slot of the saved gates.
    auto previous = [&](int s) -> T {
      if (t == 0) return __ldcg(p.initial_states + ((static_cast<int64_t>(l) * S + s) * B + m) * H + n);
      if (s == 0) return __ldcg(p.activations + (row - B) * H + n);
      return __ldcg(p.saved + (row - B) * ssh + static_cast<int64_t>(C::kStateSlot1) * H + n);
    };
    T saved[SS > 0 ? SS : 1];
    T state[S];
    Maths::Forward(pre, previous, saved, state);
    if (!step.taken) {
#pragma unroll
      for (int s = 0; s < S; ++s) state[s] = previous(s);
#pragma unroll
      for (int k = 0; k < SS; ++k)
        if (k == C::kStateSlot1) saved[k] = state[S - 1];  // the second state lives in the saved gates
    }
#pragma unroll
    for (int k = 0; k < SS; ++k) p.saved[row * ssh + static_cast<int64_t>(k) * H + n] = saved[k];
    p.activations[row * H + n] = state[0];
    if (l == p.layers - 1)
      p.outputs[(static_cast<int64_t>(m) * p.time + t) * H + n] = step.output_flows ? state[0] : T(0);
    if (t == p.time - 1)
#pragma unroll
      for (int s = 0; s < S; ++s) p.final_states[((static_cast<int64_t>(l) * S + s) * B + m) * H + n] = state[s];
  }

  // Backward: `dh` holds the products' sum (gh(l, t+1) Wh^T + gx(l+1, t) Wx^T); adds the output's gradient and the
  // carried or final part, runs the cell's pointwise backward into the grad slots, and carries the direct parts of
  // dh and dc to step t - 1 (t = 0: into grad_initial_states). A row that does not take step t has no grad slots and
  // passes its whole dh (and dc) to step t - 1: with a mask every cell has a direct h path. Its output's gradient
  // enters only where the output repeated h.
  __device__ __forceinline__ static void Backward(const WavefrontParams<T>& p, int l, int t, int m, int n, T dh,
                                                  RowStep step) {
    const int B = p.batch, H = p.hidden;
    const int64_t row = (static_cast<int64_t>(l) * p.time + t) * B + m;
    const int64_t gsh = static_cast<int64_t>(GS) * H, ssh = static_cast<int64_t>(SS) * H;
    const bool direct = C::kDirectH || p.mask != nullptr;
    // Element (m, n) of state s of layer l in [L,S,B,H] and of carry slot `slot` of layer l.
    auto state_at = [&](int s) { return ((static_cast<int64_t>(l) * S + s) * B + m) * H + n; };
    auto carry_at = [&](int slot, int s) {
      return (((static_cast<int64_t>(l) * 2 + slot) * (S > 1 ? S - 1 : 1) + s) * B + m) * H + n;
    };
    if (l == p.layers - 1 && step.output_flows) dh += p.grad_outputs[(static_cast<int64_t>(m) * p.time + t) * H + n];
    if (t == p.time - 1) {
      dh += p.grad_final_states[state_at(0)];
    } else if (direct) {
      dh += __ldcg(p.carry_h + carry_at((t + 1) % 2, 0));
    }
    T dc[S];
#pragma unroll
    for (int s = 1; s < S; ++s)
      dc[s] = t == p.time - 1 ? p.grad_final_states[state_at(s)] : __ldcg(p.carry_c + carry_at((t + 1) % 2, s - 1));
    // The forward pass's values: its saved gates, the states the cell started from, its h.
    auto saved = [&](int k) -> T { return p.saved[row * ssh + static_cast<int64_t>(k) * H + n]; };
    auto previous = [&](int s) -> T {
      if (t == 0) return p.initial_states[state_at(s)];
      if (s == 0) return p.activations[(row - B) * H + n];
      return p.saved[(row - B) * ssh + static_cast<int64_t>(C::kStateSlot1) * H + n];
    };
    auto output = [&]() -> T { return p.activations[row * H + n]; };
    T grad[GS];
    T direct_h = T(0);
    T dc_prev[S];
    if (step.taken) {
      Maths::Backward(dh, dc, saved, previous, output, grad, direct_h, dc_prev);
    } else {
#pragma unroll
      for (int k = 0; k < GS; ++k) grad[k] = T(0);
      direct_h = dh;
#pragma unroll
      for (int s = 1; s < S; ++s) dc_prev[s] = dc[s];
    }
#pragma unroll
    for (int k = 0; k < GS; ++k) p.grad_slots[row * gsh + static_cast<int64_t>(k) * H + n] = grad[k];
    if (direct) {
      if (t == 0) {
        p.grad_initial_states[state_at(0)] = direct_h;
      } else {
        p.carry_h[carry_at(t % 2, 0)] = direct_h;
      }
    }
#pragma unroll
    for (int s = 1; s < S; ++s) {
      if (t == 0) {
        p.grad_initial_states[state_at(s)] = dc_prev[s];
      } else {
        p.carry_c[carry_at(t % 2, s - 1)] = dc_prev[s];
      }
    }
  }
};

}  // namespace cuda
}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_CUDA_CELL_EPILOGUE_CUH_
