// The forward pass of the CUDA engine for any cell (deeprnn/stacked_cuda.h): argument checks, pointer tables, layer
// 0's input projection for all steps (one matrix product, or the tokens' rows gathered), then the wavefront
// (stepwise or persistent, as planned). Instantiated per cell in cells/<cell>/cuda_forward.cu.
#ifndef DEEPRNN_ENGINE_CUDA_FORWARD_PASS_CUH_
#define DEEPRNN_ENGINE_CUDA_FORWARD_PASS_CUH_

#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "deeprnn/stacked_cuda.h"
#include "engine/cuda/checks.h"
#include "engine/cuda/kernel_params.h"
#include "engine/cuda/passes.h"
#include "engine/cuda/wavefront_kernel.cuh"
#include "engine/plan/cell_geometry.h"
#include "engine/plan/workspace.h"

namespace deeprnn {
namespace cuda {

template <typename Cell, typename T>
CudaStatus ForwardCell(const ForwardArgs<T>& a, const CudaLaunch& launch) {
  using C = CellTables<Cell>;
  const CellGeometry geo = GeometryOf(Cell::kCell);
  const std::string pass = std::string(geo.label) + " forward";
  if (launch.info != nullptr) *launch.info = CudaLaunchInfo();
  const Shape& shape = a.shape;
  DEEPRNN_RETURN_IF_NOT_OK(ValidateCudaShape(Cell::kCell, shape));
  const int64_t B = shape.batch, TT = shape.time, D = shape.input, H = shape.hidden, L = shape.layers;
  const int64_t G = C::G, S = C::S, SS = C::SS;
  const bool tokens = a.inputs.tokens != nullptr;
  const ForwardWorkspace layout = ForwardWorkspaceLayout(Cell::kCell, shape, sizeof(T));
  DEEPRNN_RETURN_IF_NOT_OK(CheckWorkspace(pass, launch.workspace, launch.workspace_bytes, layout.total_bytes,
                                          "StackedForwardCudaWorkspaceBytes"));
  if (tokens && a.inputs.dense != nullptr)
    return CudaStatus::Error(pass + ": give inputs.dense or inputs.tokens, not both");
  if (tokens) {
    DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(pass, "inputs.tokens", a.inputs.tokens, B * TT));
  } else {
    DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(pass, "inputs.dense", a.inputs.dense, B * TT * D));
  }
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(pass, "initial_states", a.initial_states, L * S * B * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(pass, "outputs", a.outputs, B * TT * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(pass, "final_states", a.final_states, L * S * B * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(pass, "activations", a.activations, L * TT * B * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(pass, "saved", a.saved, L * TT * B * SS * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointerArray(pass, "kernels", a.weights.kernels, L, D * G * H, H * G * H));
  DEEPRNN_RETURN_IF_NOT_OK(
      CheckPointerArray(pass, "recurrent_kernels", a.weights.recurrent_kernels, L, H * G * H, H * G * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointerArray(pass, "biases", a.weights.biases, L, geo.bias_rows * G * H,
                                             geo.bias_rows * G * H));
  const Modifiers<T>& mod = a.modifiers;
  DEEPRNN_RETURN_IF_NOT_OK(CheckModifiers(pass, mod, shape, static_cast<int>(G)));
  cudaStream_t s = static_cast<cudaStream_t>(launch.stream);

  if (B == 0) return CudaStatus::Ok();
  if (TT == 0)
    return CopyOnStream(a.final_states, a.initial_states, sizeof(T) * L * S * B * H, s,
                        "cudaMemcpyAsync(final_states <- initial_states)");

  WavefrontPlan plan;
  PlanOptions options;
  options.allow_tf32 = launch.allow_tf32;
  options.has_modifiers = mod.mask != nullptr || mod.any_dropout();  // the tensor-core tile has none: exact tiles
  DEEPRNN_RETURN_IF_NOT_OK((PlanCell<Cell, T, false>(shape, launch.schedule, &plan, options)));
  int64_t launches = 0;

  // Device copies of the per-layer pointers: [0, L) kernels, [L, 2L) recurrent kernels, [2L, 3L) biases, and with
  // dropout [3L, 4L) input masks, [4L, 5L) recurrent masks.
  const void** table = reinterpret_cast<const void**>(static_cast<char*>(launch.workspace) + layout.table_offset);
  std::vector<const void*> pointers(3 * L);
  for (int64_t l = 0; l < L; ++l) {
    pointers[l] = a.weights.kernels[l];
    pointers[L + l] = a.weights.recurrent_kernels[l];
    pointers[2 * L + l] = a.weights.biases[l];
  }
  if (mod.input_dropout != nullptr || mod.recurrent_dropout != nullptr) AppendDropoutPointers(mod, L, &pointers);
  const int64_t entries = static_cast<int64_t>(pointers.size());
  DEEPRNN_RETURN_IF_NOT_OK(LaunchWritePointerTable(pointers.data(), entries, table, s));
  launches += (entries + 63) / 64;

  // Layer 0's x Wx^(0) + bias row 0 for every (t, b), time major: row r = t * B + b, into the first G*H values of
  // layer 0's rows of the saved gates (or of its activations).
  T* projection = C::kProjectionInSaved ? a.saved : a.activations;
  const int64_t projection_ld = C::kProjectionInSaved ? SS * H : H;
  // Layer 0's input dropout multiplies X (per row b, the same at every step) before this product: with a mask per
  // gate, one product per gate's columns.
  const T* drop0 = mod.input_dropout != nullptr ? mod.input_dropout[0] : nullptr;
  if (tokens) {
    TokenDropout<T> dropout;
    dropout.drop = drop0;
    dropout.parts = mod.input_masks;
    dropout.hidden = H;
    DEEPRNN_RETURN_IF_NOT_OK(LaunchTokenGather<T>(a.inputs.tokens, B, TT, a.weights.kernels[0], D, G * H,
                                                  a.weights.biases[0], dropout, projection, projection_ld,
                                                  launch.invalid_tokens, s));
    launches += 1;
  } else {
    const int64_t parts = drop0 != nullptr ? mod.input_masks : 1;
    const int64_t cols = G * H / parts;
    for (int64_t part = 0; part < parts; ++part) {
      // Row r of X is at t * D + b * T * D (X is batch major); of its dropout mask at b * D.
      GemmParams<T> g{};
      g.m = static_cast<int32_t>(TT * B);
      g.n = static_cast<int32_t>(cols);
      g.k = static_cast<int32_t>(D);
      g.a = a.inputs.dense;
      g.a_rows = {static_cast<int32_t>(B), D, TT * D};
      if (drop0 != nullptr) {
        g.a_scale[0] = drop0 + part * B * D;
        g.a_scale_rows[0] = {static_cast<int32_t>(B), 0, D};
      }
      g.b = a.weights.kernels[0] + part * cols;
      g.b_rows = PlainRows(G * H);
      g.c = projection + part * cols;
      g.c_rows = PlainRows(projection_ld);
      g.bias = a.weights.biases[0] + part * cols;
      g.k_per_split = static_cast<int32_t>(D);
      DEEPRNN_RETURN_IF_NOT_OK(LaunchGemm(GemmLayout::kNN, g, 1, s));
      launches += 1;
    }
  }

  WavefrontParams<T> p{};
  p.batch = static_cast<int32_t>(B);
  p.time = static_cast<int32_t>(TT);
  p.hidden = static_cast<int32_t>(H);
  p.layers = static_cast<int32_t>(L);
  p.wx = reinterpret_cast<const T* const*>(table);
  p.wh = reinterpret_cast<const T* const*>(table + L);
  p.bias = reinterpret_cast<const T* const*>(table + 2 * L);
  p.initial_states = a.initial_states;
  p.activations = a.activations;
  p.saved = a.saved;
  p.projection = projection;
  p.projection_ld = projection_ld;
  p.outputs = a.outputs;
  p.final_states = a.final_states;
  SetModifierParams(mod, shape, table + 3 * L, &p);
  int64_t wavefront_launches = 0;
  DEEPRNN_RETURN_IF_NOT_OK((LaunchWavefront<Cell, T, false>(p, plan, s, &wavefront_launches)));
  launches += wavefront_launches;

  if (launch.info != nullptr) {
    launch.info->wavefront = plan;
    launch.info->kernel_launches = launches;
  }
  return CudaStatus::Ok();
}

}  // namespace cuda
}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_CUDA_FORWARD_PASS_CUH_
