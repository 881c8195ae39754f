// deeprnn on CUDA devices: the forward and backward passes of deeprnn/stacked_rnn.h, with device pointers.
//
// Same maths, shapes, layouts and argument meanings as StackedRnnForwardCpu / StackedRnnBackwardCpu (read
// stacked_rnn.h first); in addition:
// - Every tensor argument is a device pointer to dense row-major memory of the dtype T (float or double). The
//   Weights / WeightGrads structs hold HOST arrays of L device pointers (L may be any number >= 1).
// - Everything is queued on `stream` (a cudaStream_t passed as void*): no call synchronises the device or the stream,
//   none uses the default stream unless the caller passes it, none allocates device memory. The caller provides a
//   workspace of at least the size the matching ...WorkspaceBytes function returns (a pure function of the shape
//   and the element size, so it can be queried without a device), aligned to 256 bytes (any cudaMalloc'd or
//   framework-allocated buffer is), and must keep it and every argument alive until the stream has passed the call.
// - The calls run on the current CUDA device (cudaGetDevice), which must be the device of the stream and pointers.
// - Errors (bad shapes, a too small workspace, a failing CUDA call) come back as a CudaStatus whose message names
//   the argument or the CUDA call; outputs are then unspecified. Asynchronous faults of the kernels surface, as
//   usual in CUDA, at a later synchronisation by the caller.
// - Layer 0's input projection X W_x^(0) + b^(0) for all time steps is one matrix product before the wavefront;
//   its result is kept in `activations` (layer 0's slot) until each cell overwrites it with the cell's state.
#ifndef DEEPRNN_STACKED_RNN_CUDA_H_
#define DEEPRNN_STACKED_RNN_CUDA_H_

#include <cstdint>

#include "deeprnn/launch_plan.h"
#include "deeprnn/stacked_rnn.h"

namespace deeprnn {

// What a call ran (optional output, for logs, tests and benchmarks).
struct CudaLaunchInfo {
  WavefrontPlan wavefront;   // the schedule and tiles of the wavefront
  int64_t kernel_launches = 0;  // all kernel launches of the call, wavefront included
};

// Workspace sizes in bytes for a shape and element size (4 or 8). Host-only: defined in csrc/cuda/launch_plan.cc.
int64_t StackedRnnForwardCudaWorkspaceBytes(const Shape& shape, int element_bytes);
int64_t StackedRnnBackwardCudaWorkspaceBytes(const Shape& shape, int element_bytes);

// Forward pass on the current CUDA device.
//   inputs          [B,T,D]   X
//   weights                   host arrays of L device pointers, see Weights in stacked_rnn.h
//   initial_states  [L,B,H]   H_{-1}^(l)
//   outputs         [B,T,H]   out: the top layer's sequence
//   final_states    [L,B,H]   out: H_{T-1}^(l) (a copy of the initial states when T = 0)
//   activations     [L,T,B,H] out: every H_t^(l), kept for the backward pass
//   workspace       device scratch of workspace_bytes >= StackedRnnForwardCudaWorkspaceBytes(shape, sizeof(T))
//   stream          cudaStream_t on which everything is queued
//   schedule        wavefront schedule (see CudaSchedule in launch_plan.h); kAuto lets the planner choose
//   info            optional out: what ran
template <typename T>
CudaStatus StackedRnnForwardCuda(const Shape& shape, Activation activation, const T* inputs, const Weights<T>& weights,
                                 const T* initial_states, T* outputs, T* final_states, T* activations, void* workspace,
                                 int64_t workspace_bytes, void* stream, CudaSchedule schedule = CudaSchedule::kAuto,
                                 CudaLaunchInfo* info = nullptr);

// Backward pass on the current CUDA device: gradients of a scalar loss with respect to every input of the forward.
//   inputs, weights, initial_states, activations: as given to / produced by StackedRnnForwardCuda
//                       (weights.biases is not read and may be null)
//   grad_outputs        [B,T,H]   dLoss/d outputs
//   grad_final_states   [L,B,H]   dLoss/d final_states
//   grad_inputs         [B,T,D]   out
//   grad_weights                  out: host arrays of L device pointers, see WeightGrads in stacked_rnn.h
//   grad_initial_states [L,B,H]   out
//   grad_preactivations [L,T,B,H] scratch: dLoss/dZ for every cell, Z the argument of phi
//   workspace           device scratch of workspace_bytes >= StackedRnnBackwardCudaWorkspaceBytes(shape, sizeof(T))
//   stream, schedule, info: as for the forward pass (the schedule applies to the reverse wavefront)
template <typename T>
CudaStatus StackedRnnBackwardCuda(const Shape& shape, Activation activation, const T* inputs,
                                  const Weights<T>& weights, const T* initial_states, const T* activations,
                                  const T* grad_outputs, const T* grad_final_states, T* grad_inputs,
                                  const WeightGrads<T>& grad_weights, T* grad_initial_states, T* grad_preactivations,
                                  void* workspace, int64_t workspace_bytes, void* stream,
                                  CudaSchedule schedule = CudaSchedule::kAuto, CudaLaunchInfo* info = nullptr);

// Plans a pass for the current device without running it (what StackedRnn*Cuda would choose).
CudaStatus PlanStackedRnnCuda(const Shape& shape, int element_bytes, Direction direction, CudaSchedule schedule,
                              WavefrontPlan* plan);

// --- Runtime helpers for adapters that must not include CUDA headers (the pybind11 module, benchmarks). ---

// Number of CUDA devices; 0 (and ok) when there is no driver or no device.
CudaStatus CudaDeviceCount(int* count);
// Properties of the current device (read once per device with cudaGetDeviceProperties, then cached).
CudaStatus CudaCurrentDeviceProps(DeviceProps* props);
// Name of the current device, e.g. "NVIDIA H200".
CudaStatus CudaCurrentDeviceName(std::string* name);
// Versions as CUDA encodes them (1000 * major + 10 * minor): the runtime linked in, the installed driver.
CudaStatus CudaVersions(int* runtime_version, int* driver_version);
// Makes `waiting` wait (on the device, without blocking the host) for the work queued so far on `producer`.
CudaStatus CudaStreamWaitStream(void* waiting, void* producer);
// Queues one cooperative kernel of `blocks` blocks x 256 threads (blocks <= 0: one per SM) that does `syncs` grid
// barriers and nothing else: timing it with events gives the cost of one barrier on this device.
CudaStatus CudaGridSyncBenchmark(int64_t syncs, int blocks, void* stream);

}  // namespace deeprnn

#endif  // DEEPRNN_STACKED_RNN_CUDA_H_
