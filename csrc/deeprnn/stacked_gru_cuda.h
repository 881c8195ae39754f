// deeprnn on CUDA devices: the fused stacked GRU of deeprnn/stacked_gru.h, with device pointers.
//
// Same maths, shapes, layouts and argument meanings as StackedGruForwardCpu / StackedGruBackwardCpu (read
// stacked_gru.h first), and the conventions of the CUDA tanh RNN (deeprnn/stacked_rnn_cuda.h): device pointers to
// dense row-major memory of the dtype T (float or double), GruWeights / GruWeightGrads holding HOST arrays of L
// device pointers, everything queued on the caller's `stream` with no synchronisation and no allocation, a caller
// provided workspace (256-byte aligned) of at least the size the matching ...WorkspaceBytes function returns (a pure
// host function of the shape and element size), errors as a CudaStatus naming the argument or the CUDA call.
//
// How it runs (csrc/cuda/gru_*):
// - Forward: layer 0's input projection X Wx^(0) + bx^(0) for all time steps is one matrix product written into
//   layer 0's gates (slots z, r, n of each row), then the wavefront: one block computes a tile of batch rows x
//   units of one cell, i.e. for each unit j its four products (x Wx and h Wh for z and r summed, x Wx_n, h Wh_n) and
//   then the cell's elementwise part, so the products never leave the registers.
// - Backward: the reverse wavefront computes, per cell, dh from the cells above and later in time and then the
//   gradients of the gates' arguments, grad_gates [L,T,B,4H] with rows [dn | dz | dr | dn * r] as on the CPU; the
//   data and weight gradients are then matrix products over all cells at once (split reductions, fixed order:
//   deterministic).
// - The wavefront uses the tanh RNN's schedules (CudaSchedule in launch_plan.h): stepwise (one launch per wavefront
//   step computing all active layers) and persistent (one cooperative launch with a grid barrier between steps;
//   weights of a (layer, column slice) kept on chip when they fit, else streamed).
#ifndef DEEPRNN_STACKED_GRU_CUDA_H_
#define DEEPRNN_STACKED_GRU_CUDA_H_

#include <cstdint>

#include "deeprnn/launch_plan.h"
#include "deeprnn/stacked_gru.h"
#include "deeprnn/stacked_rnn_cuda.h"

namespace deeprnn {

// ---- Launch planning of the GRU wavefront (host-only: csrc/cuda/gru_launch_plan.cc) ----
//
// A GRU tile covers BM batch rows x BN units. Forward, each thread holds TM x TN units x 4 accumulators (z, r, the
// input part of n, q) and a weight chunk holds the three gates' columns of the tile's units; backward, each thread
// holds TM x TN gradients dh and the reduction runs over the 3H gate columns. Tiles 0-4 are the tanh RNN's
// (WavefrontTileShape); tile 5 halves the columns per thread (64 x 32, 4 x 2) so that the forward's four
// accumulators per unit stay within the 128 registers of __launch_bounds__(256, 2), in double too.
constexpr int kNumGruTiles = 6;

DEEPRNN_HOST_DEVICE constexpr WavefrontTile GruTileShape(int index) {
  return index == 5 ? WavefrontTile{64, 32, 4, 2, 16} : WavefrontTileShape(index);
}

// Accumulators per output unit of a thread: z, r, x Wx_n, q forward; dh backward.
DEEPRNN_HOST_DEVICE constexpr int GruAccumulators(bool backward) { return backward ? 1 : 4; }

// Elements of one row (one reduction index) of a staged weight slice: forward the three gates' BN columns side by
// side plus one pad, backward BN + 1 (as the tanh RNN).
DEEPRNN_HOST_DEVICE constexpr int64_t GruWeightRowElems(const WavefrontTile& t, bool backward) {
  return backward ? t.bn + 1 : 3 * static_cast<int64_t>(t.bn) + 1;
}

// Length of one reduction segment: H forward (x or h times a [H, 3H] weight), 3H backward (gate gradients times a
// transposed weight).
DEEPRNN_HOST_DEVICE constexpr int64_t GruSegmentLength(int64_t hidden, bool backward) {
  return backward ? 3 * hidden : hidden;
}

// Dynamic shared memory of a GRU wavefront block, in elements, as three consecutive regions (the tanh layout):
//   A staging  [BK][BM+1];  reduction [256][TM*TN*accumulators] (KS > 1 only);
//   B          [BK][row] (streaming) or [segments][segment length][row] (weights on chip).
DEEPRNN_HOST_DEVICE constexpr int64_t GruSmemRedElems(const WavefrontTile& t, bool backward) {
  return WavefrontKs(t) > 1
             ? static_cast<int64_t>(kWavefrontThreads) * t.tm * t.tn * GruAccumulators(backward)
             : 0;
}
DEEPRNN_HOST_DEVICE constexpr int64_t GruSmemBElems(const WavefrontTile& t, int64_t hidden, int64_t layers,
                                                    bool resident, bool backward) {
  return resident ? ResidentSegments(layers) * GruSegmentLength(hidden, backward) * GruWeightRowElems(t, backward)
                  : static_cast<int64_t>(t.bk) * GruWeightRowElems(t, backward);
}
DEEPRNN_HOST_DEVICE constexpr int64_t GruSmemBytes(const WavefrontTile& t, int64_t hidden, int64_t layers,
                                                   bool resident, bool backward, int64_t element_bytes) {
  return (WavefrontSmemAElems(t) + GruSmemRedElems(t, backward) +
          GruSmemBElems(t, hidden, layers, resident, backward)) *
         element_bytes;
}

// The shape checks of ValidateCudaShape plus the GRU's wider matrices (3H and 4H columns).
CudaStatus ValidateGruCudaShape(const Shape& shape);

// Plans the GRU wavefront of one pass, with the same rules and errors as PlanWavefront (launch_plan.h) and the
// GRU's tiles and shared-memory sizes. `occupancy` may be empty: then EstimateBlocksPerSm with 64 registers.
CudaStatus PlanGruWavefront(const Shape& shape, int element_bytes, Direction direction, const DeviceProps& props,
                            CudaSchedule requested, const OccupancyFn& occupancy, WavefrontPlan* plan);

// Byte layout of the backward pass's workspace; every region starts on a 256-byte boundary. (The forward pass's is
// the tanh RNN's ForwardWorkspaceLayout: three tables of L weight pointers.)
struct GruBackwardWorkspace {
  int64_t table_offset = 0;    // device copies of the 2L weight pointers
  int64_t carry_offset = 0;    // [L,2,B,H]: dh * z of the cell one step later in time, two slots per layer
  int64_t sums_offset = 0;     // [4H]: column sums of one layer's grad_gates (its bias gradients)
  int64_t partial_offset = 0;  // partial sums of split reductions
  int64_t partial_bytes = 0;
  int64_t total_bytes = 0;
};
GruBackwardWorkspace GruBackwardWorkspaceLayout(const Shape& shape, int element_bytes);

// Workspace sizes in bytes for a shape and element size (4 or 8). Host-only.
int64_t StackedGruForwardCudaWorkspaceBytes(const Shape& shape, int element_bytes);
int64_t StackedGruBackwardCudaWorkspaceBytes(const Shape& shape, int element_bytes);

// ---- The passes ----

// Forward pass on the current CUDA device.
//   inputs          [B,T,D]    X
//   weights                    host arrays of L device pointers, see GruWeights in stacked_gru.h
//   initial_states  [L,B,H]    H_{-1}^(l)
//   outputs         [B,T,H]    out: the top layer's sequence
//   final_states    [L,B,H]    out: H_{T-1}^(l) (a copy of the initial states when T = 0)
//   activations     [L,T,B,H]  out: every H_t^(l), kept for the backward pass
//   gates           [L,T,B,4H] out: per cell and row [z | r | n | q], kept for the backward pass
//   workspace       device scratch of workspace_bytes >= StackedGruForwardCudaWorkspaceBytes(shape, sizeof(T))
//   stream          cudaStream_t on which everything is queued
//   schedule        wavefront schedule (CudaSchedule in launch_plan.h); kAuto lets the planner choose
//   info            optional out: what ran
template <typename T>
CudaStatus StackedGruForwardCuda(const Shape& shape, const T* inputs, const GruWeights<T>& weights,
                                 const T* initial_states, T* outputs, T* final_states, T* activations, T* gates,
                                 void* workspace, int64_t workspace_bytes, void* stream,
                                 CudaSchedule schedule = CudaSchedule::kAuto, CudaLaunchInfo* info = nullptr);

// Backward pass on the current CUDA device: gradients of a scalar loss with respect to every input of the forward.
//   inputs, weights, initial_states, activations, gates: as given to / produced by StackedGruForwardCuda
//                       (weights.biases is not read and may hold nulls or be null)
//   grad_outputs        [B,T,H]    dLoss/d outputs
//   grad_final_states   [L,B,H]    dLoss/d final_states
//   grad_inputs         [B,T,D]    out
//   grad_weights                   out: host arrays of L device pointers, see GruWeightGrads in stacked_gru.h
//   grad_initial_states [L,B,H]    out
//   grad_gates          [L,T,B,4H] scratch (always the full size on CUDA): ends up holding, per cell and row,
//                       [dn | dz | dr | dn * r], the gradients with respect to the gates' arguments (stacked_gru.h)
//   workspace           device scratch of workspace_bytes >= StackedGruBackwardCudaWorkspaceBytes(shape, sizeof(T))
//   stream, schedule, info: as for the forward pass (the schedule applies to the reverse wavefront)
template <typename T>
CudaStatus StackedGruBackwardCuda(const Shape& shape, const T* inputs, const GruWeights<T>& weights,
                                  const T* initial_states, const T* activations, const T* gates,
                                  const T* grad_outputs, const T* grad_final_states, T* grad_inputs,
                                  const GruWeightGrads<T>& grad_weights, T* grad_initial_states, T* grad_gates,
                                  void* workspace, int64_t workspace_bytes, void* stream,
                                  CudaSchedule schedule = CudaSchedule::kAuto, CudaLaunchInfo* info = nullptr);

// Plans a GRU pass for the current device without running it (what StackedGru*Cuda would choose).
CudaStatus PlanStackedGruCuda(const Shape& shape, int element_bytes, Direction direction, CudaSchedule schedule,
                              WavefrontPlan* plan);

}  // namespace deeprnn

#endif  // DEEPRNN_STACKED_GRU_CUDA_H_
