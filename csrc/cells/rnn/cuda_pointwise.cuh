// The tanh / relu RNN's pointwise maths on CUDA devices (cells/rnn/cell.h), per unit, for the CUDA engine's
// wavefront kernel (engine/cuda/wavefront_kernel.cuh), which calls it in the products' epilogue.
#ifndef DEEPRNN_CELLS_RNN_CUDA_POINTWISE_CUH_
#define DEEPRNN_CELLS_RNN_CUDA_POINTWISE_CUH_

#include "cells/rnn/cell.h"
#include "engine/cuda/device_math.cuh"
#include "engine/plan/tiles.h"

namespace deeprnn {

template <Cell kCellKind>
template <typename T>
struct RnnCell<kCellKind>::Cuda {
  // Two blocks per SM in the kernels' bounds (at most 128 registers per thread) for the tiles of up to 16 rows; one
  // (up to 255) for the tiles of 32 rows and more, whose accumulators (16 per thread in the 64 x 64 tile) leave no
  // room under 128 for the masks' and dropouts' runtime paths (cells/gru/cuda_pointwise.cuh; ptxas -v).
  static constexpr int MinBlocksPerSm(const WavefrontTile& tile, bool) { return tile.bm >= 32 ? 1 : 2; }

  // h' = phi(z), z the single slot (products and bias).
  template <typename Previous>
  __device__ static void Forward(const T (&pre)[1], const Previous&, T (&)[1], T (&state)[1]) {
    const T z = pre[0];
    state[0] = kCellKind == Cell::kTanh ? cuda::TanhOf(z) : (z > T(0) ? z : T(0));
  }

  // dZ = dh phi'(z), written with h = phi(z): 1 - h^2 for tanh; 1 where h > 0 for relu (h > 0 exactly when z > 0).
  template <typename Saved, typename Previous, typename Output>
  __device__ static void Backward(T dh, const T (&)[1], const Saved&, const Previous&, const Output& output,
                                  T (&grad)[1], T&, T (&)[1]) {
    const T h = output();
    grad[0] = dh * (kCellKind == Cell::kTanh ? T(1) - h * h : (h > T(0) ? T(1) : T(0)));
  }
};

}  // namespace deeprnn

#endif  // DEEPRNN_CELLS_RNN_CUDA_POINTWISE_CUH_
