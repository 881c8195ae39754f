// The LSTM's pointwise maths on CUDA devices (cells/lstm/cell.h), per unit, for the CUDA engine's wavefront kernel
// (engine/cuda/wavefront_kernel.cuh), which calls it in the products' epilogue. Compiled, and run in the tests on
// the CPU emulation of CUDA; not yet run on a GPU.
#ifndef DEEPRNN_CELLS_LSTM_CUDA_POINTWISE_CUH_
#define DEEPRNN_CELLS_LSTM_CUDA_POINTWISE_CUH_

#include "cells/lstm/cell.h"
#include "engine/cuda/device_math.cuh"
#include "engine/plan/tiles.h"

namespace deeprnn {

template <typename T>
struct LstmCell::Cuda {
  // As the GRU (four accumulators per unit forward, cells/gru/cuda_pointwise.cuh): two blocks per SM (at most 128
  // registers per thread) for the forward tiles of up to 16 rows, one (up to 255) for the larger ones, which spill
  // under 128 with the masks' and dropouts' runtime paths; and one for every backward tile: the small ones too
  // spilled a few bytes under 128 on sm_80 (ptxas: 4-12 B in tiles 0 and 2); and one for float64's forward tiles,
  // whose accumulators are twice the registers (4-8 B spilled in tile 0 on sm_90).
  static constexpr int MinBlocksPerSm(const WavefrontTile& tile, bool backward) {
    return (backward || tile.bm >= 32 || sizeof(T) == 8) ? 1 : 2;
  }

  // pre = [a_i | a_f | a_g | a_o] (bias included): c' = f c + i g, h' = o tanh(c') in Keras' order of operations;
  // saves [i | f | g | o | c'] (c' is also the second state, which the next step reads from there).
  template <typename Previous>
  __device__ static void Forward(const T (&pre)[4], const Previous& previous, T (&saved)[5], T (&state)[2]) {
    const T i = cuda::SigmoidOf(pre[0]), f = cuda::SigmoidOf(pre[1]);
    const T g = cuda::TanhOf(pre[2]);
    const T o = cuda::SigmoidOf(pre[3]);
    const T c = f * previous(1) + i * g;
    state[0] = o * cuda::TanhOf(c);
    state[1] = c;
    saved[0] = i;
    saved[1] = f;
    saved[2] = g;
    saved[3] = o;
    saved[4] = c;
  }

  // With tc = tanh(c') recomputed from the saved c': dc_total = dc + dh o (1 - tc^2), da_i = dc_total g i (1 - i),
  // da_f = dc_total c f (1 - f), da_g = dc_total i (1 - g^2), da_o = dh tc o (1 - o); dc_{t-1} = dc_total f.
  template <typename Saved, typename Previous, typename Output>
  __device__ static void Backward(T dh, const T (&dc)[2], const Saved& saved, const Previous& previous,
                                  const Output&, T (&grad)[4], T&, T (&dc_prev)[2]) {
    const T i = saved(0), f = saved(1), g = saved(2), o = saved(3);
    const T tc = cuda::TanhOf(saved(4));
    const T total = dc[1] + dh * o * (T(1) - tc * tc);
    grad[0] = total * g * i * (T(1) - i);
    grad[1] = total * previous(1) * f * (T(1) - f);
    grad[2] = total * i * (T(1) - g * g);
    grad[3] = dh * tc * o * (T(1) - o);
    dc_prev[1] = total * f;
  }
};

}  // namespace deeprnn

#endif  // DEEPRNN_CELLS_LSTM_CUDA_POINTWISE_CUH_
