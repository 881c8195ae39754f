// Forward pass of the stacked RNN on CUDA (deeprnn/stacked_rnn_cuda.h): pointer tables, layer 0's input projection
// for all steps as one matrix product, then the wavefront (stepwise or persistent, as planned).
#include <cuda_runtime.h>

#include <vector>

#include "cuda/kernel_params.h"
#include "cuda/launcher_common.h"
#include "deeprnn/stacked_rnn_cuda.h"

namespace deeprnn {

template <typename T>
CudaStatus StackedRnnForwardCuda(const Shape& shape, Activation activation, const T* inputs, const Weights<T>& weights,
                                 const T* initial_states, T* outputs, T* final_states, T* activations, void* workspace,
                                 int64_t workspace_bytes, void* stream, CudaSchedule schedule, CudaLaunchInfo* info) {
  using cuda::CheckPointer;
  constexpr const char* kPass = "forward";
  if (info != nullptr) *info = CudaLaunchInfo();
  DEEPRNN_RETURN_IF_NOT_OK(ValidateCudaShape(shape));
  if (activation != Activation::kTanh && activation != Activation::kRelu)
    return CudaStatus::Error("forward: activation must be tanh or relu");
  const int64_t B = shape.batch, TT = shape.time, D = shape.input, H = shape.hidden, L = shape.layers;
  const WorkspaceLayout layout = ForwardWorkspaceLayout(shape, sizeof(T));
  DEEPRNN_RETURN_IF_NOT_OK(cuda::CheckWorkspace(kPass, workspace, workspace_bytes, layout.total_bytes));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "inputs", inputs, B * TT * D));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "initial_states", initial_states, L * B * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "outputs", outputs, B * TT * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "final_states", final_states, L * B * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "activations", activations, L * TT * B * H));
  DEEPRNN_RETURN_IF_NOT_OK(cuda::CheckPointerArray(kPass, "kernels", weights.kernels, L, D * H, H * H));
  DEEPRNN_RETURN_IF_NOT_OK(cuda::CheckPointerArray(kPass, "recurrent_kernels", weights.recurrent_kernels, L, H * H,
                                                   H * H));
  DEEPRNN_RETURN_IF_NOT_OK(cuda::CheckPointerArray(kPass, "biases", weights.biases, L, H, H));
  cudaStream_t s = static_cast<cudaStream_t>(stream);

  if (B == 0) return CudaStatus::Ok();
  if (TT == 0)
    return cuda::CopyOnStream(final_states, initial_states, sizeof(T) * L * B * H, s,
                              "cudaMemcpyAsync(final_states <- initial_states)");

  WavefrontPlan plan;
  DEEPRNN_RETURN_IF_NOT_OK(cuda::PlanForCurrentDevice<T>(shape, Direction::kForward, schedule, &plan));
  int64_t launches = 0;

  // Device copies of the per-layer pointers: [0, L) kernels, [L, 2L) recurrent kernels, [2L, 3L) biases.
  const void** table = reinterpret_cast<const void**>(static_cast<char*>(workspace) + layout.table_offset);
  std::vector<const void*> pointers(3 * L);
  for (int64_t l = 0; l < L; ++l) {
    pointers[l] = weights.kernels[l];
    pointers[L + l] = weights.recurrent_kernels[l];
    pointers[2 * L + l] = weights.biases[l];
  }
  DEEPRNN_RETURN_IF_NOT_OK(cuda::LaunchWritePointerTable(pointers.data(), 3 * L, table, s));
  launches += (3 * L + 63) / 64;

  // P_t = X_t W_x^(0) + b^(0) for every (t, b), written time-major into layer 0's activations: row r = t * B + b
  // of X is at t * D + b * T * D (X is batch-major).
  cuda::GemmParams<T> g{};
  g.m = static_cast<int32_t>(TT * B);
  g.n = static_cast<int32_t>(H);
  g.k = static_cast<int32_t>(D);
  g.a = inputs;
  g.a_rows = {static_cast<int32_t>(B), D, TT * D};
  g.b = weights.kernels[0];
  g.b_rows = cuda::PlainRows(H);
  g.c = activations;
  g.c_rows = cuda::PlainRows(H);
  g.bias = weights.biases[0];
  g.k_per_split = static_cast<int32_t>(D);
  DEEPRNN_RETURN_IF_NOT_OK(cuda::LaunchGemm(cuda::GemmLayout::kNN, g, 1, s));
  launches += 1;

  cuda::WavefrontParams<T> p{};
  p.batch = static_cast<int32_t>(B);
  p.time = static_cast<int32_t>(TT);
  p.hidden = static_cast<int32_t>(H);
  p.layers = static_cast<int32_t>(L);
  p.activation = static_cast<int32_t>(activation);
  p.wx = reinterpret_cast<const T* const*>(table);
  p.wh = reinterpret_cast<const T* const*>(table + L);
  p.bias = reinterpret_cast<const T* const*>(table + 2 * L);
  p.initial_states = initial_states;
  p.activations = activations;
  p.outputs = outputs;
  p.final_states = final_states;
  int64_t wavefront_launches = 0;
  DEEPRNN_RETURN_IF_NOT_OK((cuda::LaunchWavefront<T, false>(p, plan, s, &wavefront_launches)));
  launches += wavefront_launches;

  if (info != nullptr) {
    info->wavefront = plan;
    info->kernel_launches = launches;
  }
  return CudaStatus::Ok();
}

template CudaStatus StackedRnnForwardCuda<float>(const Shape&, Activation, const float*, const Weights<float>&,
                                                 const float*, float*, float*, float*, void*, int64_t, void*,
                                                 CudaSchedule, CudaLaunchInfo*);
template CudaStatus StackedRnnForwardCuda<double>(const Shape&, Activation, const double*, const Weights<double>&,
                                                  const double*, double*, double*, double*, void*, int64_t, void*,
                                                  CudaSchedule, CudaLaunchInfo*);

}  // namespace deeprnn
