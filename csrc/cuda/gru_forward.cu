// Forward pass of the stacked GRU on CUDA (deeprnn/stacked_gru_cuda.h): pointer tables, layer 0's input projection
// for all steps as one matrix product into layer 0's gates, then the GRU wavefront (stepwise or persistent).
#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "cuda/gru_kernel_params.cuh"
#include "cuda/kernel_params.h"
#include "cuda/launcher_common.h"
#include "deeprnn/stacked_gru_cuda.h"

namespace deeprnn {

template <typename T>
CudaStatus StackedGruForwardCuda(const Shape& shape, const T* inputs, const GruWeights<T>& weights,
                                 const T* initial_states, T* outputs, T* final_states, T* activations, T* gates,
                                 void* workspace, int64_t workspace_bytes, void* stream, CudaSchedule schedule,
                                 CudaLaunchInfo* info) {
  using cuda::CheckPointer;
  constexpr const char* kPass = "GRU forward";
  if (info != nullptr) *info = CudaLaunchInfo();
  DEEPRNN_RETURN_IF_NOT_OK(ValidateGruCudaShape(shape));
  const int64_t B = shape.batch, TT = shape.time, D = shape.input, H = shape.hidden, L = shape.layers;
  const int64_t needed = StackedGruForwardCudaWorkspaceBytes(shape, sizeof(T));
  if (workspace_bytes < needed)
    return CudaStatus::Error(std::string(kPass) + ": the workspace has " + std::to_string(workspace_bytes) +
                             " bytes; this shape needs " + std::to_string(needed) +
                             " (ask StackedGruForwardCudaWorkspaceBytes)");
  DEEPRNN_RETURN_IF_NOT_OK(cuda::CheckWorkspace(kPass, workspace, workspace_bytes, needed));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "inputs", inputs, B * TT * D));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "initial_states", initial_states, L * B * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "outputs", outputs, B * TT * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "final_states", final_states, L * B * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "activations", activations, L * TT * B * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(kPass, "gates", gates, L * TT * B * kGruGateSlots * H));
  DEEPRNN_RETURN_IF_NOT_OK(cuda::CheckPointerArray(kPass, "kernels", weights.kernels, L, D * 3 * H, H * 3 * H));
  DEEPRNN_RETURN_IF_NOT_OK(cuda::CheckPointerArray(kPass, "recurrent_kernels", weights.recurrent_kernels, L,
                                                   H * 3 * H, H * 3 * H));
  DEEPRNN_RETURN_IF_NOT_OK(cuda::CheckPointerArray(kPass, "biases", weights.biases, L, 2 * 3 * H, 2 * 3 * H));
  cudaStream_t s = static_cast<cudaStream_t>(stream);

  if (B == 0) return CudaStatus::Ok();
  if (TT == 0)
    return cuda::CopyOnStream(final_states, initial_states, sizeof(T) * L * B * H, s,
                              "cudaMemcpyAsync(final_states <- initial_states)");

  WavefrontPlan plan;
  DEEPRNN_RETURN_IF_NOT_OK(cuda::PlanGruForCurrentDevice<T>(shape, Direction::kForward, schedule, &plan));
  int64_t launches = 0;

  // Device copies of the per-layer pointers: [0, L) kernels, [L, 2L) recurrent kernels, [2L, 3L) biases.
  const WorkspaceLayout layout = ForwardWorkspaceLayout(shape, sizeof(T));
  const void** table = reinterpret_cast<const void**>(static_cast<char*>(workspace) + layout.table_offset);
  std::vector<const void*> pointers(3 * L);
  for (int64_t l = 0; l < L; ++l) {
    pointers[l] = weights.kernels[l];
    pointers[L + l] = weights.recurrent_kernels[l];
    pointers[2 * L + l] = weights.biases[l];
  }
  DEEPRNN_RETURN_IF_NOT_OK(cuda::LaunchWritePointerTable(pointers.data(), 3 * L, table, s));
  launches += (3 * L + 63) / 64;

  // Layer 0's x Wx^(0) + bx^(0) for every (t, b), into the z, r, n slots of layer 0's gates (rows 4H apart): row
  // r = t * B + b of X is at t * D + b * T * D (X is batch major); bx is the first 3H values of biases[0].
  cuda::GemmParams<T> g{};
  g.m = static_cast<int32_t>(TT * B);
  g.n = static_cast<int32_t>(3 * H);
  g.k = static_cast<int32_t>(D);
  g.a = inputs;
  g.a_rows = {static_cast<int32_t>(B), D, TT * D};
  g.b = weights.kernels[0];
  g.b_rows = cuda::PlainRows(3 * H);
  g.c = gates;
  g.c_rows = cuda::PlainRows(kGruGateSlots * H);
  g.bias = weights.biases[0];
  g.k_per_split = static_cast<int32_t>(D);
  DEEPRNN_RETURN_IF_NOT_OK(cuda::LaunchGemm(cuda::GemmLayout::kNN, g, 1, s));
  launches += 1;

  cuda::GruWavefrontParams<T> p{};
  p.batch = static_cast<int32_t>(B);
  p.time = static_cast<int32_t>(TT);
  p.hidden = static_cast<int32_t>(H);
  p.layers = static_cast<int32_t>(L);
  p.wx = reinterpret_cast<const T* const*>(table);
  p.wh = reinterpret_cast<const T* const*>(table + L);
  p.bias = reinterpret_cast<const T* const*>(table + 2 * L);
  p.initial_states = initial_states;
  p.activations = activations;
  p.gates = gates;
  p.outputs = outputs;
  p.final_states = final_states;
  int64_t wavefront_launches = 0;
  DEEPRNN_RETURN_IF_NOT_OK((cuda::LaunchGruWavefront<T, false>(p, plan, s, &wavefront_launches)));
  launches += wavefront_launches;

  if (info != nullptr) {
    info->wavefront = plan;
    info->kernel_launches = launches;
  }
  return CudaStatus::Ok();
}

template CudaStatus StackedGruForwardCuda<float>(const Shape&, const float*, const GruWeights<float>&, const float*,
                                                 float*, float*, float*, float*, void*, int64_t, void*, CudaSchedule,
                                                 CudaLaunchInfo*);
template CudaStatus StackedGruForwardCuda<double>(const Shape&, const double*, const GruWeights<double>&,
                                                  const double*, double*, double*, double*, double*, void*, int64_t,
                                                  void*, CudaSchedule, CudaLaunchInfo*);

}  // namespace deeprnn
