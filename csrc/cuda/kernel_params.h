// Parameter blocks of the CUDA kernels (passed by value at launch) and the host functions that launch them.
// Internal to csrc/cuda: the launchers (stacked_rnn_forward.cu, stacked_rnn_backward.cu) call the launch functions
// defined next to the kernels, so every kernel template is instantiated in exactly one translation unit.
#ifndef DEEPRNN_CUDA_KERNEL_PARAMS_H_
#define DEEPRNN_CUDA_KERNEL_PARAMS_H_

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "deeprnn/launch_plan.h"
#include "deeprnn/stacked_rnn.h"

namespace deeprnn {
namespace cuda {

// Everything one wavefront kernel needs. Pointer tables live in the workspace (device memory): L may be any size.
template <typename T>
struct WavefrontParams {
  int32_t batch, time, hidden, layers;  // B, T, H, L
  int32_t activation;                   // Activation as int
  const T* const* wx;                   // [L] device pointers: W_x^(l) (entry 0 unused: layer 0's input is precomputed)
  const T* const* wh;                   // [L] device pointers: W_h^(l)
  const T* const* bias;                 // [L] device pointers: b^(l) (forward only; entry 0 unused)
  const T* initial_states;              // [L,B,H] (forward)
  T* activations;                       // [L,T,B,H]; forward: out (layer 0 holds the input projection on entry)
  T* outputs;                           // [B,T,H] (forward)
  T* final_states;                      // [L,B,H] (forward)
  const T* grad_outputs;                // [B,T,H] (backward)
  const T* grad_final_states;           // [L,B,H] (backward)
  T* grad_pre;                          // [L,T,B,H] (backward): dLoss/dZ
  int32_t first_step;                   // wavefront step of the launch's first step (backward counts down)
  int32_t num_steps;                    // steps of this launch (1 for stepwise)
  int32_t resident;                     // 1: block (l, c) keeps its weight slice on chip for all steps
  int32_t row_tiles, col_tiles;         // tiles of one cell
};

// Maps a "sequence row" r = t * batch + b of a [T,B]-indexed matrix to its element offset t * stride_t + b *
// stride_b, so that batch-major [B,T,C] and time-major [T,B,C] tensors both read as row-major matrices with
// T * B rows. batch == 1 gives a plain row-major matrix with row stride stride_t.
struct SeqIndex {
  int32_t batch;
  int64_t stride_t;
  int64_t stride_b;
};

inline SeqIndex PlainRows(int64_t row_stride) { return {1, row_stride, 0}; }

// C(i, n) = [accumulate ? C(i, n) : 0] + [bias ? bias[n] : 0] + sum_k A(i, k) B(k, n),   i < m, n < n_cols, k < k
// with A(i, k) = a[a_rows(i) + k]  (or a[a_rows(k) + i] when A is transposed),
//      B(k, n) = b[b_rows(k) + n]  (or b[b_rows(n) + k] when B is transposed), C(i, n) = c[c_rows(i) + n].
// With splits > 1 (gridDim.z) each slice z writes its partial sums to partial[z][m][n_cols] instead, and
// LaunchReducePartials adds them (plain C only).
template <typename T>
struct GemmParams {
  int32_t m, n, k;
  const T* a;
  SeqIndex a_rows;
  const T* b;
  SeqIndex b_rows;
  T* c;
  SeqIndex c_rows;
  const T* bias;
  int32_t accumulate;
  int32_t k_per_split;
  T* partial;
};

enum class GemmLayout { kNN, kNT, kTN };  // which operands are transposed (A, B)

// Launch functions; each returns an error naming the kernel when the launch fails.
template <typename T>
CudaStatus LaunchGemm(GemmLayout layout, const GemmParams<T>& p, int64_t splits, cudaStream_t stream);

// c[i * n + j] = [accumulate ? c : 0] + sum_z partial[z][i][j]   (i < m, j < n)
template <typename T>
CudaStatus LaunchReducePartials(const T* partial, int64_t splits, int64_t m, int64_t n, bool accumulate, T* c,
                                cudaStream_t stream);

// out[j] = sum_i x[i * n + j] (i < m), in `split.splits` row slices whose partials go to `partial` [splits][n].
template <typename T>
CudaStatus LaunchColumnSum(const T* x, int64_t m, int64_t n, const ReductionSplit& split, T* partial, T* out,
                           cudaStream_t stream);

// Copies `count` host pointers into the device array `table` with kernel arguments (never a host-to-device copy,
// which could wait for the stream): the table is ready for every later kernel on the stream.
CudaStatus LaunchWritePointerTable(const void* const* host_pointers, int64_t count, const void** table,
                                   cudaStream_t stream);

// Blocks per SM of the wavefront kernel for a tile and dynamic shared memory (sets its shared-memory limit first).
template <typename T, bool kBackward>
CudaStatus WavefrontOccupancy(int tile, int64_t smem_bytes, int* blocks_per_sm);

// Runs the whole wavefront of one pass as `plan` says (stepwise: one launch per step; persistent: one cooperative
// launch). *launches receives the number of kernel launches.
template <typename T, bool kBackward>
CudaStatus LaunchWavefront(const WavefrontParams<T>& params, const WavefrontPlan& plan, cudaStream_t stream,
                           int64_t* launches);

// "what: cudaErrorName (message)" for a failed CUDA call.
std::string CudaErrorText(const char* what, cudaError_t error);

// The current device's properties (cached per device).
CudaStatus CurrentDeviceProps(DeviceProps* props, int* device);

}  // namespace cuda
}  // namespace deeprnn

#define DEEPRNN_CUDA_RETURN_IF_ERROR(call_text, expr)                                   \
  do {                                                                                  \
    cudaError_t deeprnn_err_ = (expr);                                                  \
    if (deeprnn_err_ != cudaSuccess)                                                    \
      return ::deeprnn::CudaStatus::Error(::deeprnn::cuda::CudaErrorText(call_text, deeprnn_err_)); \
  } while (0)

#define DEEPRNN_RETURN_IF_NOT_OK(expr)          \
  do {                                          \
    ::deeprnn::CudaStatus deeprnn_st_ = (expr); \
    if (!deeprnn_st_.ok()) return deeprnn_st_;  \
  } while (0)

#endif  // DEEPRNN_CUDA_KERNEL_PARAMS_H_
