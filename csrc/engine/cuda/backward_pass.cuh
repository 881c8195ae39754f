// The backward pass of the CUDA engine for any cell (deeprnn/stacked_cuda.h). The reverse wavefront gives, for
// every cell, its grad slots g(l, t) (gx: the input side, gh: the recurrent side, each G*H wide in the gate order
// the cell's description gives; engine/cell_description.h) and the direct parts of the initial states' gradients;
// everything else is matrix products over all cells at once, with g(l) = layer l's grad slots as a [T*B, GS*H]
// matrix, one product per run of consecutive gates of a side (engine/plan/cell_geometry.h):
//   grad_initial_states[l, 0] (+)= gh(l, 0) Wh^(l)^T       (+= onto the direct part for cells that have one)
//   grad_inputs                = gx(0) Wx^(0)^T             (rows (t, b); skipped when not wanted or with tokens)
//   grad_kernels[l]            = in(l)^T gx(l)              (in = X for l = 0, else H^(l-1); tokens: rows of
//                                                            gx(0) summed per token, LaunchTokenScatter)
//   grad_recurrent[l]          = H_{-1}^(l)^T gh(l, 0) + sum_{t>0} H_{t-1}^(l)^T gh(l, t)
//   grad_biases[l]             = column sums of g(l): row 0 from the input side, row 1 (GRU) the recurrent side
// Long reductions are split across blocks, their partial sums added in a fixed order (deterministic).
// Instantiated per cell in cells/<cell>/cuda_backward.cu.
#ifndef DEEPRNN_ENGINE_CUDA_BACKWARD_PASS_CUH_
#define DEEPRNN_ENGINE_CUDA_BACKWARD_PASS_CUH_

#include <cuda_runtime.h>

#include <algorithm>
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

// Runs one matrix product whose output rows are `ldc` apart. A weight gradient (allow_split: a long reduction) is
// split as PlanGemmSplit says, which BackwardWorkspaceLayout sized the partials for.
template <typename T>
CudaStatus RunGemm(GemmLayout layout, GemmParams<T> g, int64_t ldc, bool allow_split, T* partial, cudaStream_t s,
                   int64_t* launches) {
  const ReductionSplit split = allow_split ? PlanGemmSplit(g.m, g.n, g.k) : ReductionSplit();
  if (split.splits > 1) {
    g.k_per_split = static_cast<int32_t>(split.k_per_split);
    g.partial = partial;
    DEEPRNN_RETURN_IF_NOT_OK(LaunchGemm(layout, g, split.splits, s));
    DEEPRNN_RETURN_IF_NOT_OK(LaunchReducePartials<T>(partial, split.splits, g.m, g.n, ldc, g.accumulate != 0, g.c, s));
    *launches += 2;
  } else {
    g.k_per_split = std::max(g.k, 1);
    DEEPRNN_RETURN_IF_NOT_OK(LaunchGemm(layout, g, 1, s));
    *launches += 1;
  }
  return CudaStatus::Ok();
}

// Where a layer's bias gradient (rows x gates) reads the column sums of its grad slots: row 0 the input side,
// a second row the recurrent side.
inline SlotMap BiasSlotMap(const CellGeometry& geo) {
  SlotMap map{};
  map.gates = geo.gates;
  map.rows = geo.bias_rows;
  for (int g = 0; g < geo.gates; ++g) {
    map.source[0][g] = geo.x_first + PositionOfGate(geo.x_gates, geo.gates, g);
    map.source[1][g] = geo.bias_rows > 1 ? geo.h_first + PositionOfGate(geo.h_gates, geo.gates, g) : -1;
  }
  return map;
}

// The runs of consecutive gates of a side for its products: one gate per run where its dropout masks are per gate.
inline std::vector<GateRun> SideRuns(const int* gates, int count, bool per_gate) {
  if (!per_gate) return GateRuns(gates, count);
  std::vector<GateRun> runs;
  for (int i = 0; i < count; ++i) runs.push_back({i, gates[i], 1});
  return runs;
}

template <typename Cell, typename T>
CudaStatus BackwardCell(const BackwardArgs<T>& a, T* grad_slots, const CudaLaunch& launch) {
  using C = CellTables<Cell>;
  const CellGeometry geo = GeometryOf(Cell::kCell);
  const std::string pass = std::string(geo.label) + " backward";
  if (launch.info != nullptr) *launch.info = CudaLaunchInfo();
  const Shape& shape = a.shape;
  DEEPRNN_RETURN_IF_NOT_OK(ValidateCudaShape(Cell::kCell, shape));
  const int64_t B = shape.batch, TT = shape.time, D = shape.input, H = shape.hidden, L = shape.layers;
  const int64_t G = C::G, S = C::S, SS = C::SS, GS = C::GS, BR = geo.bias_rows;
  const bool tokens = a.inputs.tokens != nullptr;
  const bool want_dx = a.grad_inputs != nullptr;
  const BackwardWorkspace layout = BackwardWorkspaceLayout(Cell::kCell, shape, sizeof(T), tokens);
  DEEPRNN_RETURN_IF_NOT_OK(CheckWorkspace(pass, launch.workspace, launch.workspace_bytes, layout.total_bytes,
                                          tokens ? "StackedBackwardCudaWorkspaceBytes(..., token_inputs=true)"
                                                 : "StackedBackwardCudaWorkspaceBytes"));
  if (tokens && a.inputs.dense != nullptr)
    return CudaStatus::Error(pass + ": give inputs.dense or inputs.tokens, not both");
  if (tokens && want_dx) return CudaStatus::Error(pass + ": grad_inputs must be null with token inputs (no dX)");
  if (tokens) {
    DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(pass, "inputs.tokens", a.inputs.tokens, B * TT));
  } else {
    DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(pass, "inputs.dense", a.inputs.dense, B * TT * D));
  }
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(pass, "initial_states", a.initial_states, L * S * B * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(pass, "activations", a.activations, L * TT * B * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(pass, "saved", a.saved, L * TT * B * SS * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(pass, "grad_outputs", a.grad_outputs, B * TT * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(pass, "grad_final_states", a.grad_final_states, L * S * B * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(pass, "grad_initial_states", a.grad_initial_states, L * S * B * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointer(pass, "grad_slots", grad_slots, L * TT * B * GS * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointerArray(pass, "kernels", a.weights.kernels, L, D * G * H, H * G * H));
  DEEPRNN_RETURN_IF_NOT_OK(
      CheckPointerArray(pass, "recurrent_kernels", a.weights.recurrent_kernels, L, H * G * H, H * G * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointerArray(pass, "grad_kernels", a.grad_weights.kernels, L, D * G * H, H * G * H));
  DEEPRNN_RETURN_IF_NOT_OK(CheckPointerArray(pass, "grad_recurrent_kernels", a.grad_weights.recurrent_kernels, L,
                                             H * G * H, H * G * H));
  DEEPRNN_RETURN_IF_NOT_OK(
      CheckPointerArray(pass, "grad_biases", a.grad_weights.biases, L, BR * G * H, BR * G * H));
  const Modifiers<T>& mod = a.modifiers;
  DEEPRNN_RETURN_IF_NOT_OK(CheckModifiers(pass, mod, shape, static_cast<int>(G)));
  cudaStream_t s = static_cast<cudaStream_t>(launch.stream);

  if (B == 0 || TT == 0) {  // no cell ran: weights got no gradient, the initial states the final states' one
    for (int64_t l = 0; l < L; ++l) {
      DEEPRNN_RETURN_IF_NOT_OK(ZeroOnStream(a.grad_weights.kernels[l], sizeof(T) * (l == 0 ? D : H) * G * H, s,
                                            "cudaMemsetAsync(grad_kernels)"));
      DEEPRNN_RETURN_IF_NOT_OK(ZeroOnStream(a.grad_weights.recurrent_kernels[l], sizeof(T) * H * G * H, s,
                                            "cudaMemsetAsync(grad_recurrent_kernels)"));
      DEEPRNN_RETURN_IF_NOT_OK(
          ZeroOnStream(a.grad_weights.biases[l], sizeof(T) * BR * G * H, s, "cudaMemsetAsync(grad_biases)"));
    }
    return CopyOnStream(a.grad_initial_states, a.grad_final_states, sizeof(T) * L * S * B * H, s,
                        "cudaMemcpyAsync(grad_initial_states <- grad_final_states)");
  }

  WavefrontPlan plan;
  PlanOptions options;
  options.allow_tf32 = launch.allow_tf32;
  options.has_modifiers = mod.mask != nullptr || mod.any_dropout();  // the tensor-core tile has none: exact tiles
  DEEPRNN_RETURN_IF_NOT_OK((PlanCell<Cell, T, true>(shape, launch.schedule, &plan, options)));
  int64_t launches = 0;

  char* ws = static_cast<char*>(launch.workspace);
  // Device copies of the per-layer pointers: [0, L) kernels, [L, 2L) recurrent kernels, and with dropout [2L, 3L)
  // input masks, [3L, 4L) recurrent masks.
  const void** table = reinterpret_cast<const void**>(ws + layout.table_offset);
  T* partial = reinterpret_cast<T*>(ws + layout.partial_offset);
  std::vector<const void*> pointers(2 * L);
  for (int64_t l = 0; l < L; ++l) {
    pointers[l] = a.weights.kernels[l];
    pointers[L + l] = a.weights.recurrent_kernels[l];
  }
  if (mod.input_dropout != nullptr || mod.recurrent_dropout != nullptr) AppendDropoutPointers(mod, L, &pointers);
  const int64_t entries = static_cast<int64_t>(pointers.size());
  DEEPRNN_RETURN_IF_NOT_OK(LaunchWritePointerTable(pointers.data(), entries, table, s));
  launches += (entries + 63) / 64;

  WavefrontParams<T> p{};
  p.batch = static_cast<int32_t>(B);
  p.time = static_cast<int32_t>(TT);
  p.hidden = static_cast<int32_t>(H);
  p.layers = static_cast<int32_t>(L);
  p.wx = reinterpret_cast<const T* const*>(table);
  p.wh = reinterpret_cast<const T* const*>(table + L);
  p.initial_states = a.initial_states;
  p.activations = const_cast<T*>(a.activations);  // read only in the backward pass
  p.saved = const_cast<T*>(a.saved);              // likewise
  p.grad_outputs = a.grad_outputs;
  p.grad_final_states = a.grad_final_states;
  p.grad_slots = grad_slots;
  p.carry_h = reinterpret_cast<T*>(ws + layout.carry_h_offset);
  p.carry_c = reinterpret_cast<T*>(ws + layout.carry_c_offset);
  p.grad_initial_states = a.grad_initial_states;
  SetModifierParams(mod, shape, table + 2 * L, &p);
  int64_t wavefront_launches = 0;
  DEEPRNN_RETURN_IF_NOT_OK((LaunchWavefront<Cell, T, true>(p, plan, s, &wavefront_launches)));
  launches += wavefront_launches;

  const int64_t cell = B * H;               // elements of one [B, H] state
  const int64_t gsh = GS * H;               // one row of grad slots
  const int64_t layer_g = TT * B * gsh;     // one layer's grad slots
  const int32_t rows = static_cast<int32_t>(TT * B);
  // Dropout masks per gate: every gate's products through its own mask, one gate at a time.
  const bool x_per_gate = mod.input_dropout != nullptr && mod.input_masks > 1;
  const bool h_per_gate = mod.recurrent_dropout != nullptr && mod.recurrent_masks > 1;
  const std::vector<GateRun> x_runs = SideRuns(geo.x_gates, geo.gates, x_per_gate);
  const std::vector<GateRun> h_runs = SideRuns(geo.h_gates, geo.gates, h_per_gate);
  // The dropout mask of a run's operand: its gate's where the masks are per gate (null: none).
  auto input_mask = [&](int64_t l, const GateRun& run) -> const T* {
    if (mod.input_dropout == nullptr) return nullptr;
    return mod.input_dropout[l] + (x_per_gate ? run.gate : 0) * B * (l == 0 ? D : H);
  };
  auto recurrent_mask = [&](int64_t l, const GateRun& run) -> const T* {
    if (mod.recurrent_dropout == nullptr) return nullptr;
    return mod.recurrent_dropout[l] + (h_per_gate ? run.gate : 0) * cell;
  };
  // A [B, width] mask read by the rows r = t * B + b of a [T*B, .] matrix.
  auto per_row = [&](int64_t width) { return SeqIndex{static_cast<int32_t>(B), 0, width}; };

  for (int64_t l = 0; l < L; ++l) {
    // grad_initial_states[l, 0] (holding the direct part of t = 0, if the cell has one) += gh(l, 0) Wh^(l)^T.
    for (size_t i = 0; i < h_runs.size(); ++i) {
      const GateRun& run = h_runs[i];
      GemmParams<T> g{};
      g.m = static_cast<int32_t>(B);
      g.n = static_cast<int32_t>(H);
      g.k = static_cast<int32_t>(run.length * H);
      g.a = grad_slots + l * layer_g + (geo.h_first + run.position) * H;
      g.a_rows = PlainRows(gsh);
      g.b = a.weights.recurrent_kernels[l] + run.gate * H;
      g.b_rows = PlainRows(G * H);
      g.c = a.grad_initial_states + l * S * cell;
      g.c_rows = PlainRows(H);
      g.c_scale = recurrent_mask(l, run);
      g.c_scale_rows = PlainRows(H);
      g.accumulate = (i > 0 || geo.direct_h || mod.mask != nullptr) ? 1 : 0;
      DEEPRNN_RETURN_IF_NOT_OK(RunGemm(GemmLayout::kNT, g, H, false, partial, s, &launches));
    }
  }
  if (want_dx) {
    // grad_inputs = gx(0) Wx^(0)^T, one run after the other; row r = t * B + b goes to grad_inputs[b, t, :].
    for (size_t i = 0; i < x_runs.size(); ++i) {
      const GateRun& run = x_runs[i];
      GemmParams<T> g{};
      g.m = rows;
      g.n = static_cast<int32_t>(D);
      g.k = static_cast<int32_t>(run.length * H);
      g.a = grad_slots + (geo.x_first + run.position) * H;
      g.a_rows = PlainRows(gsh);
      g.b = a.weights.kernels[0] + run.gate * H;
      g.b_rows = PlainRows(G * H);
      g.c = a.grad_inputs;
      g.c_rows = {static_cast<int32_t>(B), D, TT * D};
      g.c_scale = input_mask(0, run);
      g.c_scale_rows = per_row(D);
      g.accumulate = i > 0 ? 1 : 0;
      DEEPRNN_RETURN_IF_NOT_OK(RunGemm(GemmLayout::kNT, g, D, false, partial, s, &launches));
    }
  }
  const SlotMap bias_map = BiasSlotMap(geo);
  for (int64_t l = 0; l < L; ++l) {
    const T* gl = grad_slots + l * layer_g;
    if (l == 0 && tokens) {
      // The tokens' rows of grad_kernels[0]: layer 0's rows sorted by token, then each token's rows of gx summed.
      int32_t* starts = reinterpret_cast<int32_t*>(ws + layout.token_starts_offset);
      int32_t* cursor = reinterpret_cast<int32_t*>(ws + layout.token_cursor_offset);
      int32_t* sorted = reinterpret_cast<int32_t*>(ws + layout.token_rows_offset);
      DEEPRNN_RETURN_IF_NOT_OK(
          LaunchTokenSort(a.inputs.tokens, B, TT, D, starts, cursor, sorted, launch.invalid_tokens, s));
      TokenDropout<T> dropout;
      dropout.drop = mod.input_dropout != nullptr ? mod.input_dropout[0] : nullptr;
      dropout.parts = mod.input_masks;
      dropout.hidden = H;
      DEEPRNN_RETURN_IF_NOT_OK(LaunchTokenScatter<T>(starts, sorted, D, B, gl, gsh, H, bias_map, dropout,
                                                     a.grad_weights.kernels[0], s));
      launches += 2;
    } else {
      // grad_kernels[l][:, run's gates] from gx's run columns, reduced over all T * B rows.
      for (const GateRun& run : x_runs) {
        GemmParams<T> g{};
        g.m = static_cast<int32_t>(l == 0 ? D : H);
        g.n = static_cast<int32_t>(run.length * H);
        g.k = rows;
        // The dropped operand: the input times its mask (and, above layer 0, the between-layer mask).
        if (l == 0) {
          g.a = a.inputs.dense;
          g.a_rows = {static_cast<int32_t>(B), D, TT * D};
        } else {
          g.a = a.activations + (l - 1) * TT * cell;
          g.a_rows = PlainRows(H);
          if (mod.between_dropout != nullptr) {
            g.a_scale[1] = mod.between_dropout + (l - 1) * TT * cell;
            g.a_scale_rows[1] = PlainRows(H);
          }
        }
        g.a_scale[0] = input_mask(l, run);
        g.a_scale_rows[0] = per_row(l == 0 ? D : H);
        g.b = gl + (geo.x_first + run.position) * H;
        g.b_rows = PlainRows(gsh);
        g.c = a.grad_weights.kernels[l] + run.gate * H;
        g.c_rows = PlainRows(G * H);
        DEEPRNN_RETURN_IF_NOT_OK(RunGemm(GemmLayout::kTN, g, G * H, true, partial, s, &launches));
      }
    }
    for (const GateRun& run : h_runs) {
      // grad_recurrent[l][:, run's gates]: the t = 0 term with the initial state, then the t > 0 terms on top.
      GemmParams<T> g{};
      g.m = static_cast<int32_t>(H);
      g.n = static_cast<int32_t>(run.length * H);
      g.k = static_cast<int32_t>(B);
      g.a = a.initial_states + l * S * cell;
      g.a_rows = PlainRows(H);
      g.a_scale[0] = recurrent_mask(l, run);
      g.a_scale_rows[0] = PlainRows(H);
      g.b = gl + (geo.h_first + run.position) * H;
      g.b_rows = PlainRows(gsh);
      g.c = a.grad_weights.recurrent_kernels[l] + run.gate * H;
      g.c_rows = PlainRows(G * H);
      DEEPRNN_RETURN_IF_NOT_OK(RunGemm(GemmLayout::kTN, g, G * H, true, partial, s, &launches));
      if (TT > 1) {
        g.k = static_cast<int32_t>((TT - 1) * B);
        g.a = a.activations + l * TT * cell;  // H_{t-1} for t = 1..T-1
        g.a_scale_rows[0] = per_row(H);
        g.b += B * gsh;                       // g(l, t) for t = 1..T-1
        g.accumulate = 1;
        DEEPRNN_RETURN_IF_NOT_OK(RunGemm(GemmLayout::kTN, g, G * H, true, partial, s, &launches));
      }
    }
    {
      // The bias gradient: the column sums of g(l), straight into the bias when they are its layout.
      const ReductionSplit split = PlanColumnSumSplit(rows, gsh);
      if (BiasGradIsColumnSums(geo)) {
        DEEPRNN_RETURN_IF_NOT_OK(LaunchColumnSum<T>(gl, rows, gsh, split, partial, a.grad_weights.biases[l], s));
      } else {
        T* sums = reinterpret_cast<T*>(ws + layout.sums_offset);
        DEEPRNN_RETURN_IF_NOT_OK(LaunchColumnSum<T>(gl, rows, gsh, split, partial, sums, s));
        DEEPRNN_RETURN_IF_NOT_OK(LaunchBiasGrad<T>(sums, H, bias_map, a.grad_weights.biases[l], s));
        launches += 1;
      }
      launches += split.splits > 1 ? 2 : 1;
    }
  }

  if (launch.info != nullptr) {
    launch.info->wavefront = plan;
    launch.info->kernel_launches = launches;
  }
  return CudaStatus::Ok();
}

}  // namespace cuda
}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_CUDA_BACKWARD_PASS_CUH_
