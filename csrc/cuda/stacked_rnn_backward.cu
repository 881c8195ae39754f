// Backward pass of the stacked RNN on CUDA (deeprnn/stacked_rnn_cuda.h): the reverse wavefront gives dZ for every
// cell; everything else is matrix products over all cells at once:
//   grad_initial_states[l] = dZ_0^(l) W_h^(l)^T            grad_inputs = dZ^(0) W_x^(0)^T (rows (t, b))
//   grad_kernels[l]        = H^(l-1)^T dZ^(l)  (X for l = 0)
//   grad_recurrent[l]      = H_{-1}^(l)^T dZ_0^(l) + sum_{t>0} H_{t-1}^(l)^T dZ_t^(l)
//   grad_biases[l]         = column sums of dZ^(l)
// Long reductions (over T * B rows) are split across blocks; partial sums go to the workspace and are added in a
// fixed order, so results do not depend on timing.
#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "cuda/kernel_params.h"
#include "cuda/launcher_common.h"
#include "deeprnn/stacked_rnn_cuda.h"

namespace deeprnn {

namespace {

// Runs one matrix product; a weight gradient (allow_split: C is a plain [m, n] matrix, and the reduction may be
// long) is split over its reduction as PlanGemmSplit says, which BackwardWorkspaceLayout sized the partials for.
template <typename T>
CudaStatus RunGemm(cuda::GemmLayout layout, cuda::GemmParams<T> g, bool allow_split, T* partial, cudaStream_t s,
                   int64_t* launches) {
  const ReductionSplit split = allow_split ? PlanGemmSplit(g.m, g.n, g.k) : ReductionSplit();
  if (split.splits > 1) {
    g.k_per_split = static_cast<int32_t>(split.k_per_split);
    g.partial = partial;
    DEEPRNN_RETURN_IF_NOT_OK(cuda::LaunchGemm(layout, g, split.splits, s));
    DEEPRNN_RETURN_IF_NOT_OK(
        cuda::LaunchReducePartials<T>(partial, split.splits, g.m, g.n, g.accumulate != 0, g.c, s));
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
CudaStatus StackedRnnBackwardCuda(const Shape& shape, Activation activation, const T* inputs,
                                  const Weights<T>& weights, const T* initial_states, const T* activations,
                                  const T* grad_outputs, const T* grad_final_states, T* grad_inputs,
                                  const WeightGrads<T>& grad_weights, T* grad_initial_states, T* grad_preactivations,
                                  void* workspace, int64_t workspace_bytes, void* stream, CudaSchedule schedule,
                                  CudaLaunchInfo* info) {
  using cuda::CheckPointer;
  constexpr const char* kPass = "backward";
  if (info != nullptr) *info = CudaLaunchInfo();
  DEEPRNN_RETURN_IF_NOT_OK(ValidateCudaShape(shape));
  if (activation != Activation::kTanh && activation != Activation::kRelu)
    return CudaStatus::Error("backward: activation must be tanh or relu");
  const int64_t B = shape.batch, TT = shape.time, D = shape.input, H = shape.hidden, L = shape.layers;
  const WorkspaceLayout layout = BackwardWorkspaceLayout(shape, sizeof(T));
  DEEPRNN_RETURN_IF_NOT_OK(cuda::CheckWorkspace(kPass, workspace, workspace_bytes, layout.total_bytes));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "inputs", inputs, B * TT * D));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "initial_states", initial_states, L * B * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "activations", activations, L * TT * B * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "grad_outputs", grad_outputs, B * TT * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "grad_final_states", grad_final_states, L * B * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "grad_inputs", grad_inputs, B * TT * D));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "grad_initial_states", grad_initial_states, L * B * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "grad_preactivations", grad_preactivations, L * TT * B * H));
  DEEPRNN_RETURN_IF_NOT_OK(cuda::CheckPointerArray(kPass, "kernels", weights.kernels, L, D * H, H * H));
  DEEPRNN_RETURN_IF_NOT_OK(cuda::CheckPointerArray(kPass, "recurrent_kernels", weights.recurrent_kernels, L, H * H,
                                                   H * H));
  DEEPRNN_RETURN_IF_NOT_OK(cuda::CheckPointerArray(kPass, "grad_kernels", grad_weights.kernels, L, D * H, H * H));
  DEEPRNN_RETURN_IF_NOT_OK(cuda::CheckPointerArray(kPass, "grad_recurrent_kernels", grad_weights.recurrent_kernels,
                                                   L, H * H, H * H));
  DEEPRNN_RETURN_IF_NOT_OK(cuda::CheckPointerArray(kPass, "grad_biases", grad_weights.biases, L, H, H));
  cudaStream_t s = static_cast<cudaStream_t>(stream);

  if (B == 0 || TT == 0) {  // no cell ran: weights got no gradient, the initial states the final states' one
    for (int64_t l = 0; l < L; ++l) {
      DEEPRNN_RETURN_IF_NOT_OK(cuda::ZeroOnStream(grad_weights.kernels[l], sizeof(T) * (l == 0 ? D : H) * H, s,
                                                  "cudaMemsetAsync(grad_kernels)"));
      DEEPRNN_RETURN_IF_NOT_OK(cuda::ZeroOnStream(grad_weights.recurrent_kernels[l], sizeof(T) * H * H, s,
                                                  "cudaMemsetAsync(grad_recurrent_kernels)"));
      DEEPRNN_RETURN_IF_NOT_OK(
          cuda::ZeroOnStream(grad_weights.biases[l], sizeof(T) * H, s, "cudaMemsetAsync(grad_biases)"));
    }
    return cuda::CopyOnStream(grad_initial_states, grad_final_states, sizeof(T) * L * B * H, s,
                              "cudaMemcpyAsync(grad_initial_states <- grad_final_states)");
  }

  WavefrontPlan plan;
  DEEPRNN_RETURN_IF_NOT_OK(cuda::PlanForCurrentDevice<T>(shape, Direction::kBackward, schedule, &plan));
  int64_t launches = 0;

  // Device copies of the per-layer pointers: [0, L) kernels, [L, 2L) recurrent kernels.
  const void** table = reinterpret_cast<const void**>(static_cast<char*>(workspace) + layout.table_offset);
  T* partial = reinterpret_cast<T*>(static_cast<char*>(workspace) + layout.partial_offset);
  std::vector<const void*> pointers(2 * L);
  for (int64_t l = 0; l < L; ++l) {
    pointers[l] = weights.kernels[l];
    pointers[L + l] = weights.recurrent_kernels[l];
  }
  DEEPRNN_RETURN_IF_NOT_OK(cuda::LaunchWritePointerTable(pointers.data(), 2 * L, table, s));
  launches += (2 * L + 63) / 64;

  cuda::WavefrontParams<T> p{};
  p.batch = static_cast<int32_t>(B);
  p.time = static_cast<int32_t>(TT);
  p.hidden = static_cast<int32_t>(H);
  p.layers = static_cast<int32_t>(L);
  p.activation = static_cast<int32_t>(activation);
  p.wx = reinterpret_cast<const T* const*>(table);
  p.wh = reinterpret_cast<const T* const*>(table + L);
  p.activations = const_cast<T*>(activations);  // read only in the backward pass
  p.grad_outputs = grad_outputs;
  p.grad_final_states = grad_final_states;
  p.grad_pre = grad_preactivations;
  int64_t wavefront_launches = 0;
  DEEPRNN_RETURN_IF_NOT_OK((cuda::LaunchWavefront<T, true>(p, plan, s, &wavefront_launches)));
  launches += wavefront_launches;

  const int64_t cell = B * H;         // elements of one cell
  const int64_t layer = TT * cell;    // elements of one layer's sequence
  const int32_t rows = static_cast<int32_t>(TT * B);

  for (int64_t l = 0; l < L; ++l) {
    const T* dz = grad_preactivations + l * layer;
    // grad_initial_states[l] = dZ_0^(l) W_h^(l)^T
    cuda::GemmParams<T> g{};
    g.m = static_cast<int32_t>(B);
    g.n = static_cast<int32_t>(H);
    g.k = static_cast<int32_t>(H);
    g.a = dz;
    g.a_rows = cuda::PlainRows(H);
    g.b = weights.recurrent_kernels[l];
    g.b_rows = cuda::PlainRows(H);
    g.c = grad_initial_states + l * cell;
    g.c_rows = cuda::PlainRows(H);
    DEEPRNN_RETURN_IF_NOT_OK(RunGemm(cuda::GemmLayout::kNT, g, false, partial, s, &launches));
  }
  {
    // grad_inputs = dZ^(0) W_x^(0)^T: row r = t * B + b goes to grad_inputs[b, t, :].
    cuda::GemmParams<T> g{};
    g.m = rows;
    g.n = static_cast<int32_t>(D);
    g.k = static_cast<int32_t>(H);
    g.a = grad_preactivations;
    g.a_rows = cuda::PlainRows(H);
    g.b = weights.kernels[0];
    g.b_rows = cuda::PlainRows(H);
    g.c = grad_inputs;
    g.c_rows = {static_cast<int32_t>(B), D, TT * D};
    DEEPRNN_RETURN_IF_NOT_OK(RunGemm(cuda::GemmLayout::kNT, g, false, partial, s, &launches));
  }
  for (int64_t l = 0; l < L; ++l) {
    const T* dz = grad_preactivations + l * layer;
    {
      // grad_kernels[l] = (layer input)^T dZ^(l), reduced over all T * B rows.
      cuda::GemmParams<T> g{};
      g.m = static_cast<int32_t>(l == 0 ? D : H);
      g.n = static_cast<int32_t>(H);
      g.k = rows;
      if (l == 0) {
        g.a = inputs;
        g.a_rows = {static_cast<int32_t>(B), D, TT * D};
      } else {
        g.a = activations + (l - 1) * layer;
        g.a_rows = cuda::PlainRows(H);
      }
      g.b = dz;
      g.b_rows = cuda::PlainRows(H);
      g.c = grad_weights.kernels[l];
      g.c_rows = cuda::PlainRows(H);
      DEEPRNN_RETURN_IF_NOT_OK(RunGemm(cuda::GemmLayout::kTN, g, true, partial, s, &launches));
    }
    {
      // grad_recurrent[l]: the t = 0 term with the initial state, then the t > 0 terms accumulated on top.
      cuda::GemmParams<T> g{};
      g.m = static_cast<int32_t>(H);
      g.n = static_cast<int32_t>(H);
      g.k = static_cast<int32_t>(B);
      g.a = initial_states + l * cell;
      g.a_rows = cuda::PlainRows(H);
      g.b = dz;
      g.b_rows = cuda::PlainRows(H);
      g.c = grad_weights.recurrent_kernels[l];
      g.c_rows = cuda::PlainRows(H);
      DEEPRNN_RETURN_IF_NOT_OK(RunGemm(cuda::GemmLayout::kTN, g, true, partial, s, &launches));
      if (TT > 1) {
        g.k = static_cast<int32_t>((TT - 1) * B);
        g.a = activations + l * layer;  // H_{t-1} for t = 1..T-1
        g.b = dz + cell;                // dZ_t for t = 1..T-1
        g.accumulate = 1;
        DEEPRNN_RETURN_IF_NOT_OK(RunGemm(cuda::GemmLayout::kTN, g, true, partial, s, &launches));
      }
    }
    {
      const ReductionSplit split = PlanColumnSumSplit(rows, H);
      DEEPRNN_RETURN_IF_NOT_OK(cuda::LaunchColumnSum<T>(dz, rows, H, split, partial, grad_weights.biases[l], s));
      launches += split.splits > 1 ? 2 : 1;
    }
  }

  if (info != nullptr) {
    info->wavefront = plan;
    info->kernel_launches = launches;
  }
  return CudaStatus::Ok();
}

template CudaStatus StackedRnnBackwardCuda<float>(const Shape&, Activation, const float*, const Weights<float>&,
                                                  const float*, const float*, const float*, const float*, float*,
                                                  const WeightGrads<float>&, float*, float*, void*, int64_t, void*,
                                                  CudaSchedule, CudaLaunchInfo*);
template CudaStatus StackedRnnBackwardCuda<double>(const Shape&, Activation, const double*, const Weights<double>&,
                                                   const double*, const double*, const double*, const double*,
                                                   double*, const WeightGrads<double>&, double*, double*, void*,
                                                   int64_t, void*, CudaSchedule, CudaLaunchInfo*);

}  // namespace deeprnn
