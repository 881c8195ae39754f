// Parameter block of the GRU wavefront kernels and the host functions the GRU launchers (gru_forward.cu,
// gru_backward.cu) call; internal to csrc/cuda. The matrix products, pointer tables and error helpers are the tanh
// RNN's (cuda/kernel_params.h).
#ifndef DEEPRNN_CUDA_GRU_KERNEL_PARAMS_CUH_
#define DEEPRNN_CUDA_GRU_KERNEL_PARAMS_CUH_

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/kernel_params.h"
#include "deeprnn/launch_plan.h"
#include "deeprnn/stacked_gru_cuda.h"

namespace deeprnn {
namespace cuda {

// Everything one GRU wavefront kernel needs. Pointer tables live in the workspace (device memory).
template <typename T>
struct GruWavefrontParams {
  int32_t batch, time, hidden, layers;  // B, T, H, L
  const T* const* wx;                   // [L] device pointers: Wx^(l) [in, 3H] (forward: entry 0 unused)
  const T* const* wh;                   // [L] device pointers: Wh^(l) [H, 3H]
  const T* const* bias;                 // [L] device pointers: [2, 3H] (forward only)
  const T* initial_states;              // [L,B,H]
  T* activations;                       // [L,T,B,H]: forward out, backward in
  T* gates;                             // [L,T,B,4H]: forward out (layer 0's z, r, n slots hold X Wx + bx on
                                        // entry), backward in
  T* outputs;                           // [B,T,H] (forward)
  T* final_states;                      // [L,B,H] (forward)
  const T* grad_outputs;                // [B,T,H] (backward)
  const T* grad_final_states;           // [L,B,H] (backward)
  T* grad_gates;                        // [L,T,B,4H] (backward out): [dn | dz | dr | dn * r]
  T* carry;                             // [L,2,B,H] (backward): dh * z of cell (l, t) in slot t % 2
  T* grad_initial_states;               // [L,B,H] (backward): receives dh * z of t = 0
  int32_t first_step;                   // wavefront step of the launch's first step (backward counts down)
  int32_t num_steps;                    // steps of this launch (1 for stepwise)
  int32_t resident;                     // 1: block (l, c) keeps its weight slice on chip for all steps
  int32_t row_tiles, col_tiles;         // tiles of one cell
};

// Blocks per SM of the GRU wavefront kernel for a tile and dynamic shared memory (sets its shared-memory limit).
template <typename T, bool kBackward>
CudaStatus GruWavefrontOccupancy(int tile, int64_t smem_bytes, int* blocks_per_sm);

// Runs the whole GRU wavefront of one pass as `plan` says. *launches receives the number of kernel launches.
template <typename T, bool kBackward>
CudaStatus LaunchGruWavefront(const GruWavefrontParams<T>& params, const WavefrontPlan& plan, cudaStream_t stream,
                              int64_t* launches);

// Plans the GRU wavefront for the current device with the kernels' real occupancy (gru_runtime.cu).
template <typename T>
CudaStatus PlanGruForCurrentDevice(const Shape& shape, Direction direction, CudaSchedule schedule,
                                   WavefrontPlan* plan);

// c[i * ldc + j] = [accumulate ? c : 0] + sum_z partial[z][i][j]  (i < m, j < n): LaunchReducePartials for an
// output with a row stride (a column block of a weight gradient).
template <typename T>
CudaStatus LaunchReducePartialsStrided(const T* partial, int64_t splits, int64_t m, int64_t n, int64_t ldc,
                                       bool accumulate, T* c, cudaStream_t stream);

// The GRU's bias gradient [2, 3H] from the column sums s [4H] of one layer's grad_gates [dn | dz | dr | dn r]:
// row 0 (input bias, gates z, r, n) = (s_dz, s_dr, s_dn), row 1 (recurrent bias) = (s_dz, s_dr, s_dnr).
template <typename T>
CudaStatus LaunchGruBiasGrad(const T* sums, int64_t hidden, T* grad_bias, cudaStream_t stream);

}  // namespace cuda
}  // namespace deeprnn

#endif  // DEEPRNN_CUDA_GRU_KERNEL_PARAMS_CUH_
