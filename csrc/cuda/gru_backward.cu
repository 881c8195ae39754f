// Backward pass of the stacked GRU on CUDA (deeprnn/stacked_gru_cuda.h). The reverse wavefront gives, for every
// cell, grad_gates = [dn | dz | dr | dn r] (the gradients of the gates' arguments: the input side sees (dz, dr, dn),
// the recurrent side (dz, dr, dn r)) and dh z of t = 0 in grad_initial_states; everything else is matrix products
// over all cells at once, with gg(l) = grad_gates of layer l as a [T * B, 4H] matrix:
//   grad_initial_states[l] += gg(l, 0)[:, H:4H] Wh^(l)^T
//   grad_inputs             = gg(0)[:, H:3H] Wx^(0)[:, 0:2H]^T + gg(0)[:, 0:H] Wx^(0)[:, 2H:3H]^T   (rows (t, b))
//   grad_kernels[l]         = in(l)^T [gg(l)[:, H:3H] | gg(l)[:, 0:H]]       (in = X for l = 0, else H^(l-1))
//   grad_recurrent[l]       = H_{-1}^(l)^T gg(l, 0)[:, H:4H] + sum_{t>0} H_{t-1}^(l)^T gg(l, t)[:, H:4H]
//   grad_biases[l]          = column sums of gg(l), scattered to [2, 3H] (LaunchGruBiasGrad)
// Long reductions are split across blocks, their partial sums added in a fixed order (deterministic).
#include <cuda_runtime.h>

#include <algorithm>
#include <string>
#include <vector>

#include "cuda/gru_kernel_params.cuh"
#include "cuda/kernel_params.h"
#include "cuda/launcher_common.h"
#include "deeprnn/stacked_gru_cuda.h"

namespace deeprnn {

namespace {

// Runs one matrix product whose output rows are `ldc` apart. A weight gradient (allow_split: a long reduction) is
// split as PlanGemmSplit says, which GruBackwardWorkspaceLayout sized the partials for.
template <typename T>
CudaStatus RunGemm(cuda::GemmLayout layout, cuda::GemmParams<T> g, int64_t ldc, bool allow_split, T* partial,
                   cudaStream_t s, int64_t* launches) {
  const ReductionSplit split = allow_split ? PlanGemmSplit(g.m, g.n, g.k) : ReductionSplit();
  if (split.splits > 1) {
    g.k_per_split = static_cast<int32_t>(split.k_per_split);
    g.partial = partial;
    DEEPRNN_RETURN_IF_NOT_OK(cuda::LaunchGemm(layout, g, split.splits, s));
    DEEPRNN_RETURN_IF_NOT_OK(
        cuda::LaunchReducePartialsStrided<T>(partial, split.splits, g.m, g.n, ldc, g.accumulate != 0, g.c, s));
    *launches += 2;
  } else {
    g.k_per_split = std::max(g.k, 1);
    DEEPRNN_RETURN_IF_NOT_OK(cuda::LaunchGemm(layout, g, 1, s));
    *launches += 1;
  }
  return CudaStatus::Ok();
}

}  // namespace

template <typename T>
CudaStatus StackedGruBackwardCuda(const Shape& shape, const T* inputs, const GruWeights<T>& weights,
                                  const T* initial_states, const T* activations, const T* gates,
                                  const T* grad_outputs, const T* grad_final_states, T* grad_inputs,
                                  const GruWeightGrads<T>& grad_weights, T* grad_initial_states, T* grad_gates,
                                  void* workspace, int64_t workspace_bytes, void* stream, CudaSchedule schedule,
                                  CudaLaunchInfo* info) {
  using cuda::CheckPointer;
  constexpr const char* kPass = "GRU backward";
  if (info != nullptr) *info = CudaLaunchInfo();
  DEEPRNN_RETURN_IF_NOT_OK(ValidateGruCudaShape(shape));
  const int64_t B = shape.batch, TT = shape.time, D = shape.input, H = shape.hidden, L = shape.layers;
  const int64_t G = kGruGateSlots * H;
  const GruBackwardWorkspace layout = GruBackwardWorkspaceLayout(shape, sizeof(T));
  if (workspace_bytes < layout.total_bytes)
    return CudaStatus::Error(std::string(kPass) + ": the workspace has " + std::to_string(workspace_bytes) +
                             " bytes; this shape needs " + std::to_string(layout.total_bytes) +
                             " (ask StackedGruBackwardCudaWorkspaceBytes)");
  DEEPRNN_RETURN_IF_NOT_OK(cuda::CheckWorkspace(kPass, workspace, workspace_bytes, layout.total_bytes));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "inputs", inputs, B * TT * D));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "initial_states", initial_states, L * B * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "activations", activations, L * TT * B * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "gates", gates, L * TT * B * G));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "grad_outputs", grad_outputs, B * TT * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "grad_final_states", grad_final_states, L * B * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "grad_inputs", grad_inputs, B * TT * D));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "grad_initial_states", grad_initial_states, L * B * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "grad_gates", grad_gates, L * TT * B * G));
  DEEPRNN_RETURN_IF_NOT_OK(cuda::CheckPointerArray(kPass, "kernels", weights.kernels, L, D * 3 * H, H * 3 * H));
  DEEPRNN_RETURN_IF_NOT_OK(cuda::CheckPointerArray(kPass, "recurrent_kernels", weights.recurrent_kernels, L,
                                                   H * 3 * H, H * 3 * H));
  DEEPRNN_RETURN_IF_NOT_OK(
      cuda::CheckPointerArray(kPass, "grad_kernels", grad_weights.kernels, L, D * 3 * H, H * 3 * H));
  DEEPRNN_RETURN_IF_NOT_OK(cuda::CheckPointerArray(kPass, "grad_recurrent_kernels", grad_weights.recurrent_kernels,
                                                   L, H * 3 * H, H * 3 * H));
  DEEPRNN_RETURN_IF_NOT_OK(
      cuda::CheckPointerArray(kPass, "grad_biases", grad_weights.biases, L, 2 * 3 * H, 2 * 3 * H));
  cudaStream_t s = static_cast<cudaStream_t>(stream);

  if (B == 0 || TT == 0) {  // no cell ran: weights got no gradient, the initial states the final states' one
    for (int64_t l = 0; l < L; ++l) {
      DEEPRNN_RETURN_IF_NOT_OK(cuda::ZeroOnStream(grad_weights.kernels[l], sizeof(T) * (l == 0 ? D : H) * 3 * H, s,
                                                  "cudaMemsetAsync(grad_kernels)"));
      DEEPRNN_RETURN_IF_NOT_OK(cuda::ZeroOnStream(grad_weights.recurrent_kernels[l], sizeof(T) * H * 3 * H, s,
                                                  "cudaMemsetAsync(grad_recurrent_kernels)"));
      DEEPRNN_RETURN_IF_NOT_OK(
          cuda::ZeroOnStream(grad_weights.biases[l], sizeof(T) * 2 * 3 * H, s, "cudaMemsetAsync(grad_biases)"));
    }
    return cuda::CopyOnStream(grad_initial_states, grad_final_states, sizeof(T) * L * B * H, s,
                              "cudaMemcpyAsync(grad_initial_states <- grad_final_states)");
  }

  WavefrontPlan plan;
  DEEPRNN_RETURN_IF_NOT_OK(cuda::PlanGruForCurrentDevice<T>(shape, Direction::kBackward, schedule, &plan));
  int64_t launches = 0;

  char* ws = static_cast<char*>(workspace);
  // Device copies of the per-layer pointers: [0, L) kernels, [L, 2L) recurrent kernels.
  const void** table = reinterpret_cast<const void**>(ws + layout.table_offset);
  T* carry = reinterpret_cast<T*>(ws + layout.carry_offset);
  T* sums = reinterpret_cast<T*>(ws + layout.sums_offset);
  T* partial = reinterpret_cast<T*>(ws + layout.partial_offset);
  std::vector<const void*> pointers(2 * L);
  for (int64_t l = 0; l < L; ++l) {
    pointers[l] = weights.kernels[l];
    pointers[L + l] = weights.recurrent_kernels[l];
  }
  DEEPRNN_RETURN_IF_NOT_OK(cuda::LaunchWritePointerTable(pointers.data(), 2 * L, table, s));
  launches += (2 * L + 63) / 64;

  cuda::GruWavefrontParams<T> p{};
  p.batch = static_cast<int32_t>(B);
  p.time = static_cast<int32_t>(TT);
  p.hidden = static_cast<int32_t>(H);
  p.layers = static_cast<int32_t>(L);
  p.wx = reinterpret_cast<const T* const*>(table);
  p.wh = reinterpret_cast<const T* const*>(table + L);
  p.initial_states = initial_states;
  p.activations = const_cast<T*>(activations);  // read only in the backward pass
  p.gates = const_cast<T*>(gates);              // read only in the backward pass
  p.grad_outputs = grad_outputs;
  p.grad_final_states = grad_final_states;
  p.grad_gates = grad_gates;
  p.carry = carry;
  p.grad_initial_states = grad_initial_states;
  int64_t wavefront_launches = 0;
  DEEPRNN_RETURN_IF_NOT_OK((cuda::LaunchGruWavefront<T, true>(p, plan, s, &wavefront_launches)));
  launches += wavefront_launches;

  const int64_t cell = B * H;          // elements of one [B, H] state
  const int64_t layer_g = TT * B * G;  // elements of one layer's grad_gates
  const int32_t rows = static_cast<int32_t>(TT * B);
  const int32_t h32 = static_cast<int32_t>(H);

  for (int64_t l = 0; l < L; ++l) {
    // grad_initial_states[l] (holding dh z of t = 0) += gg(l, 0)[:, H:4H] Wh^(l)^T.
    cuda::GemmParams<T> g{};
    g.m = static_cast<int32_t>(B);
    g.n = h32;
    g.k = 3 * h32;
    g.a = grad_gates + l * layer_g + H;
    g.a_rows = cuda::PlainRows(G);
    g.b = weights.recurrent_kernels[l];
    g.b_rows = cuda::PlainRows(3 * H);
    g.c = grad_initial_states + l * cell;
    g.c_rows = cuda::PlainRows(H);
    g.accumulate = 1;
    DEEPRNN_RETURN_IF_NOT_OK(RunGemm(cuda::GemmLayout::kNT, g, H, false, partial, s, &launches));
  }
  for (int part = 0; part < 2; ++part) {
    // grad_inputs: the z and r gates' columns (part 0), then the n gate's added (part 1); row r = t * B + b goes
    // to grad_inputs[b, t, :].
    cuda::GemmParams<T> g{};
    g.m = rows;
    g.n = static_cast<int32_t>(D);
    g.k = part == 0 ? 2 * h32 : h32;
    g.a = grad_gates + (part == 0 ? H : 0);
    g.a_rows = cuda::PlainRows(G);
    g.b = weights.kernels[0] + (part == 0 ? 0 : 2 * H);
    g.b_rows = cuda::PlainRows(3 * H);
    g.c = grad_inputs;
    g.c_rows = {static_cast<int32_t>(B), D, TT * D};
    g.accumulate = part;
    DEEPRNN_RETURN_IF_NOT_OK(RunGemm(cuda::GemmLayout::kNT, g, D, false, partial, s, &launches));
  }
  for (int64_t l = 0; l < L; ++l) {
    const T* gg = grad_gates + l * layer_g;
    for (int part = 0; part < 2; ++part) {
      // grad_kernels[l][:, 0:2H] from gg's (dz, dr) columns, then [:, 2H:3H] from its dn column, reduced over all
      // T * B rows.
      cuda::GemmParams<T> g{};
      g.m = static_cast<int32_t>(l == 0 ? D : H);
      g.n = part == 0 ? 2 * h32 : h32;
      g.k = rows;
      if (l == 0) {
        g.a = inputs;
        g.a_rows = {static_cast<int32_t>(B), D, TT * D};
      } else {
        g.a = activations + (l - 1) * TT * cell;
        g.a_rows = cuda::PlainRows(H);
      }
      g.b = gg + (part == 0 ? H : 0);
      g.b_rows = cuda::PlainRows(G);
      g.c = grad_weights.kernels[l] + (part == 0 ? 0 : 2 * H);
      g.c_rows = cuda::PlainRows(3 * H);
      DEEPRNN_RETURN_IF_NOT_OK(RunGemm(cuda::GemmLayout::kTN, g, 3 * H, true, partial, s, &launches));
    }
    {
      // grad_recurrent[l]: the t = 0 term with the initial state, then the t > 0 terms accumulated on top.
      cuda::GemmParams<T> g{};
      g.m = h32;
      g.n = 3 * h32;
      g.k = static_cast<int32_t>(B);
      g.a = initial_states + l * cell;
      g.a_rows = cuda::PlainRows(H);
      g.b = gg + H;
      g.b_rows = cuda::PlainRows(G);
      g.c = grad_weights.recurrent_kernels[l];
      g.c_rows = cuda::PlainRows(3 * H);
      DEEPRNN_RETURN_IF_NOT_OK(RunGemm(cuda::GemmLayout::kTN, g, 3 * H, true, partial, s, &launches));
      if (TT > 1) {
        g.k = static_cast<int32_t>((TT - 1) * B);
        g.a = activations + l * TT * cell;  // H_{t-1} for t = 1..T-1
        g.b = gg + B * G + H;               // gg(l, t) for t = 1..T-1
        g.accumulate = 1;
        DEEPRNN_RETURN_IF_NOT_OK(RunGemm(cuda::GemmLayout::kTN, g, 3 * H, true, partial, s, &launches));
      }
    }
    {
      const ReductionSplit split = PlanColumnSumSplit(rows, G);
      DEEPRNN_RETURN_IF_NOT_OK(cuda::LaunchColumnSum<T>(gg, rows, G, split, partial, sums, s));
      DEEPRNN_RETURN_IF_NOT_OK(cuda::LaunchGruBiasGrad<T>(sums, H, grad_weights.biases[l], s));
      launches += split.splits > 1 ? 3 : 2;
    }
  }

  if (info != nullptr) {
    info->wavefront = plan;
    info->kernel_launches = launches;
  }
  return CudaStatus::Ok();
}

template CudaStatus StackedGruBackwardCuda<float>(const Shape&, const float*, const GruWeights<float>&, const float*,
                                                  const float*, const float*, const float*, const float*, float*,
                                                  const GruWeightGrads<float>&, float*, float*, void*, int64_t,
                                                  void*, CudaSchedule, CudaLaunchInfo*);
template CudaStatus StackedGruBackwardCuda<double>(const Shape&, const double*, const GruWeights<double>&,
                                                   const double*, const double*, const double*, const double*,
                                                   const double*, double*, const GruWeightGrads<double>&, double*,
                                                   double*, void*, int64_t, void*, CudaSchedule, CudaLaunchInfo*);

}  // namespace deeprnn
