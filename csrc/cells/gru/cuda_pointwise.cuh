// The GRU's pointwise maths on CUDA devices (cells/gru/cell.h), per unit, for the CUDA engine's wavefront kernel
// (engine/cuda/wavefront_kernel.cuh), which calls it in the products' epilogue.
#ifndef DEEPRNN_CELLS_GRU_CUDA_POINTWISE_CUH_
#define DEEPRNN_CELLS_GRU_CUDA_POINTWISE_CUH_

#include "cells/gru/cell.h"
#include "engine/cuda/device_math.cuh"
#include "engine/plan/tiles.h"

namespace deeprnn {

template <typename T>
struct GruCell::Cuda {
  // Blocks per SM the register budget is set for: two (at most 128 registers per thread) for the tiles of up to 16
  // rows; one (up to 255 registers) for the tiles of 32 rows and more, whose accumulators spilled under 128 once the
  // kernel gained the masks' and dropouts' runtime paths (ptxas: up to 256 bytes of spill stores in the 64-row
  // backward tile; the forward double wide tile's 32 double accumulators spilled under 128 before). The planner
  // reads the kernels' real occupancy. Not yet measured on a GPU.
  static constexpr int MinBlocksPerSm(const WavefrontTile& tile, bool) { return tile.bm >= 32 ? 1 : 2; }

  // pre = [z_pre | r_pre | xn | q] (biases included): z = sigmoid(z_pre), r likewise, n = tanh(xn + r q),
  // h' = z h + (1 - z) n in Keras' order of operations; saves [z | r | n | q].
  template <typename Previous>
  __device__ static void Forward(const T (&pre)[4], const Previous& previous, T (&saved)[4], T (&state)[1]) {
    const T z = cuda::SigmoidOf(pre[0]), r = cuda::SigmoidOf(pre[1]);
    const T q = pre[3];
    const T n = cuda::TanhOf(pre[2] + r * q);
    state[0] = z * previous(0) + (T(1) - z) * n;
    saved[0] = z;
    saved[1] = r;
    saved[2] = n;
    saved[3] = q;
  }

  // da_n = dh (1 - z) (1 - n^2),  da_z = dh (h - n) z (1 - z),  da_r = da_n q r (1 - r), as grad slots
  // [da_n | da_z | da_r | da_n r]; dh z reaches h_{t-1} directly.
  template <typename Saved, typename Previous, typename Output>
  __device__ static void Backward(T dh, const T (&)[1], const Saved& saved, const Previous& previous, const Output&,
                                  T (&grad)[4], T& direct_h, T (&)[1]) {
    const T z = saved(0), r = saved(1), n = saved(2), q = saved(3);
    const T da_n = dh * (T(1) - z) * (T(1) - n * n);
    grad[0] = da_n;
    grad[1] = dh * (previous(0) - n) * z * (T(1) - z);
    grad[2] = da_n * q * r * (T(1) - r);
    grad[3] = da_n * r;
    direct_h = dh * z;
  }
};

}  // namespace deeprnn

#endif  // DEEPRNN_CELLS_GRU_CUDA_POINTWISE_CUH_
