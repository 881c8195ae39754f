// Parameter blocks of the CUDA engine's kernels (passed by value at launch) and the host functions that launch the
// kernels shared by every cell. Internal to csrc/engine/cuda: each kernel template is instantiated in exactly one
// translation unit (the wavefront per cell in cells/<cell>/cuda_*.cu, the rest in engine/cuda/*.cu).
#ifndef DEEPRNN_ENGINE_CUDA_KERNEL_PARAMS_H_
#define DEEPRNN_ENGINE_CUDA_KERNEL_PARAMS_H_

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "deeprnn/launch_plan.h"
#include "engine/plan/workspace.h"

namespace deeprnn {
namespace cuda {

// Everything one wavefront kernel needs, for any cell (engine/cuda/wavefront_kernel.cuh). Pointer tables live in
// the workspace (device memory): L may be any size. S, SS, GS are the cell's states, saved slots and grad slots.
template <typename T>
struct WavefrontParams {
  int32_t batch, time, hidden, layers;  // B, T, H, L
  const T* const* wx;                   // [L] device pointers: Wx^(l) [in, G*H] (forward: entry 0 unused)
  const T* const* wh;                   // [L] device pointers: Wh^(l) [H, G*H]
  const T* const* bias;                 // [L] device pointers: [bias_rows, G*H] (forward only)
  const T* initial_states;              // [L,S,B,H]
  T* activations;                       // [L,T,B,H]: forward out, backward in
  T* saved;                             // [L,T,B,SS*H]: forward out, backward in (null when SS = 0)
  // Layer 0's input projection X Wx^(0) + bias row 0, per row [G*H], computed before the wavefront into layer
  // 0's saved gates (or, for a cell that saves none, its activations); each cell reads and overwrites its own rows.
  T* projection;
  int64_t projection_ld;
  T* outputs;                           // [B,T,H] (forward)
  T* final_states;                      // [L,S,B,H] (forward)
  const T* grad_outputs;                // [B,T,H] (backward)
  const T* grad_final_states;           // [L,S,B,H] (backward)
  T* grad_slots;                        // [L,T,B,GS*H] (backward out)
  T* carry_h;                           // [L,2,B,H] (backward, cells with a direct h path): slot t % 2
  T* carry_c;                           // [L,2,S-1,B,H] (backward, cells with a second state): slot t % 2
  T* grad_initial_states;               // [L,S,B,H] (backward): receives the direct parts of t = 0
  int32_t first_step;                   // wavefront step of the launch's first step (backward counts down)
  int32_t num_steps;                    // steps of this launch (1 for stepwise)
  int32_t resident;                     // 1: block (l, c) keeps its weight slice on chip for all steps
  int32_t row_tiles, col_tiles;         // tiles of one cell
  // Masks and dropout (deeprnn/stacked.h Modifiers), each null when absent; runtime pointers, so that one kernel
  // serves every combination. Layer 0's input dropout is not here: it is applied to layer 0's input projection.
  const uint8_t* mask;                  // [B,T]: nonzero = the step is taken
  int32_t zero_output_for_mask;
  const T* const* input_dropout;        // [L] device pointers, each [x_parts, B, H] (entry 0 unused)
  int32_t x_parts;                      // 1, or G (a mask per gate); 1 without input dropout
  const T* const* recurrent_dropout;    // [L] device pointers, each [h_parts, B, H]
  int32_t h_parts;                      // 1, or G; 1 without recurrent dropout
  const T* between_dropout;             // [L-1,T,B,H] (null for L = 1)
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

// C(i, n) = [accumulate ? C(i, n) : 0] + [bias ? bias[n] : 0] + cs(i, n) sum_k A(i, k) B(k, n),   i < m, n < n_cols,
// k < k
// with A(i, k) = a[a_rows(i) + k] s0(i, k) s1(i, k)  (or a[a_rows(k) + i] s0 s1 when A is transposed), where the
//      optional elementwise scales (dropout masks) s_q(i, k) = a_scale[q][a_scale_rows[q](i) + k] are addressed as
//      A is (transposed likewise; 1 where null) and cs(i, n) = c_scale[c_scale_rows(i) + n] (1 where null; only
//      without splits),
//      B(k, n) = b[b_rows(k) + n]  (or b[b_rows(n) + k] when B is transposed), C(i, n) = c[c_rows(i) + n].
// With splits > 1 (gridDim.z) each slice z writes its partial sums to partial[z][m][n_cols] instead, and
// LaunchReducePartials adds them (into a C with plain rows).
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
  const T* a_scale[2];
  SeqIndex a_scale_rows[2];
  const T* c_scale;
  SeqIndex c_scale_rows;
  int32_t accumulate;
  int32_t k_per_split;
  T* partial;
};

enum class GemmLayout { kNN, kNT, kTN };  // which operands are transposed (A, B)

// Where each destination column block of a bias or weight gradient reads its grad slot: destination gate g (row r
// of a bias) takes grad slot source[r][g]; -1: that row has no source (it stays zero).
struct SlotMap {
  int32_t gates;
  int32_t rows;
  int32_t source[2][4];
};

// Launch functions; each returns an error naming the kernel when the launch fails.
template <typename T>
CudaStatus LaunchGemm(GemmLayout layout, const GemmParams<T>& p, int64_t splits, cudaStream_t stream);

// c[i * ldc + j] = [accumulate ? c : 0] + sum_z partial[z][i][j]   (i < m, j < n)
template <typename T>
CudaStatus LaunchReducePartials(const T* partial, int64_t splits, int64_t m, int64_t n, int64_t ldc, bool accumulate,
                                T* c, cudaStream_t stream);

// out[j] = sum_i x[i * n + j] (i < m), in `split.splits` row slices whose partials go to `partial` [splits][n].
template <typename T>
CudaStatus LaunchColumnSum(const T* x, int64_t m, int64_t n, const ReductionSplit& split, T* partial, T* out,
                           cudaStream_t stream);

// bias[r][g * H + u] = sums[map.source[r][g] * H + u]: a layer's bias gradient [rows, G*H] from the column sums of
// its grad slots.
template <typename T>
CudaStatus LaunchBiasGrad(const T* sums, int64_t hidden, const SlotMap& map, T* bias, cudaStream_t stream);

// Input dropout of token inputs: per row b and token v the scale drop[(part * B + b) * V + v] of the one-hot
// input's column v, part = c / hidden when `parts` > 1 (a mask per gate) else 0. drop null: no dropout.
template <typename T>
struct TokenDropout {
  const T* drop = nullptr;  // [parts, B, V]
  int64_t parts = 1;
  int64_t hidden = 1;
};

// Layer 0's input projection from tokens: out[r * ld + c] = kernel[tokens[b, t] * cols + c] * drop + bias[c] for
// every row r = t * B + b and c < cols; an id outside [0, vocabulary) reads a zero row and adds 1 to *invalid (if
// given).
template <typename T>
CudaStatus LaunchTokenGather(const int32_t* tokens, int64_t batch, int64_t time, const T* kernel, int64_t vocabulary,
                             int64_t cols, const T* bias, const TokenDropout<T>& dropout, T* out, int64_t ld,
                             int32_t* invalid, cudaStream_t stream);

// Sorts the rows r = t * B + b by token, stably: rows [starts[v], starts[v+1]) of `rows` are those with token v, in
// increasing r. Ids outside [0, vocabulary) are left out (and counted into *invalid, if given). starts [V+1],
// cursor [V] and rows [T*B] are int32 workspace.
CudaStatus LaunchTokenSort(const int32_t* tokens, int64_t batch, int64_t time, int64_t vocabulary, int32_t* starts,
                           int32_t* cursor, int32_t* rows, int32_t* invalid, cudaStream_t stream);

// The tokens' weight gradient: grad_kernel[v * G*H + g * H + u] = sum over the sorted rows r = t * B + b of token v
// of grad[r * ld + map.source[0][g] * H + u] (times row b's input dropout of token v and gate g, if any), in row
// order (deterministic). Overwrites every row of grad_kernel.
template <typename T>
CudaStatus LaunchTokenScatter(const int32_t* starts, const int32_t* rows, int64_t vocabulary, int64_t batch,
                              const T* grad, int64_t ld, int64_t hidden, const SlotMap& map,
                              const TokenDropout<T>& dropout, T* grad_kernel, cudaStream_t stream);

// Copies `count` host pointers into the device array `table` with kernel arguments (never a host-to-device copy,
// which could wait for the stream): the table is ready for every later kernel on the stream.
CudaStatus LaunchWritePointerTable(const void* const* host_pointers, int64_t count, const void** table,
                                   cudaStream_t stream);

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

#endif  // DEEPRNN_ENGINE_CUDA_KERNEL_PARAMS_H_
