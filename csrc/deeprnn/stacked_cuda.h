// deeprnn on CUDA devices: the forward and backward passes of deeprnn/stacked.h for every cell, with device
// pointers. Compiled, and run in the tests on a CPU emulation of the CUDA runtime; not yet run on a GPU.
//
// Same maths, shapes, layouts and argument structs as StackedForwardCpu / StackedBackwardCpu (read stacked.h
// first: its conventions hold here); in addition:
// - Every tensor argument is a device pointer to dense row-major memory of the dtype T (float or double); token ids
//   are a device int32 array. Weights / WeightGrads hold HOST arrays of L device pointers (L may be any number).
// - Everything is queued on CudaLaunch::stream: no call synchronises the device or the stream, none uses the
//   default stream unless the caller passes it, none allocates device memory. The caller provides a workspace of
//   at least the size the matching ...WorkspaceBytes function returns (a pure function of the cell, the shape and
//   the element size, so it can be queried without a device), aligned to 256 bytes (any cudaMalloc'd or
//   framework-allocated buffer is), and keeps it and every argument alive until the stream has passed the call.
// - The calls run on the current CUDA device (cudaGetDevice), which must be the device of the stream and pointers.
// - Errors (bad shapes, a null or missing argument, a too small workspace, a failing CUDA call) come back as a
//   CudaStatus whose message names the argument or the CUDA call; outputs are then unspecified. Asynchronous faults
//   of the kernels surface, as usual in CUDA, at a later synchronisation by the caller.
// - Token ids are not trusted: an id outside [0, D) never reads or writes out of bounds. It reads as a zero row of
//   kernels[0] (its cells then see only the bias; tf.gather's rule on GPUs), its gradient rows are dropped, and
//   the pass adds the number of such ids it met to CudaLaunch::invalid_tokens when that device counter is given,
//   for the caller to read at its next synchronisation. (The TensorFlow op checks ids on the host first.)
// - Masks and dropout (Modifiers) as on the CPU (compiled and emulation-tested, not yet run on a GPU): the mask
//   [B,T] and every dropout mask are device arrays (Modifiers' per-layer tables are HOST arrays of device pointers,
//   as Weights'). The dropped operands are staged times their masks (one pass per gate where the masks are per
//   gate), a masked row keeps its states and passes its state gradients straight through, and a tile none of whose
//   rows takes a step skips its products.
//
// How the passes run (csrc/engine/cuda/): layer 0's input projection for all time steps (a matrix product, or the
// tokens' rows gathered) is computed before the wavefront into layer 0's saved gates (or, for tanh / relu, its
// activations), which each cell overwrites; then the wavefront (stepwise or persistent, launch_plan.h) computes
// every cell: one block a tile of batch rows x units, its products and the cell's pointwise maths without leaving
// the registers. The backward pass's reverse wavefront writes the grad slots of every cell (the gradients of the
// arguments of the cell's nonlinearities, cells/<cell>/cell.h); the data and weight gradients are then products
// over all cells at once, split over their long reductions with partial sums added in a fixed order, so results
// do not depend on timing (the tokens' weight gradient likewise: rows sorted by token, summed in order).
#ifndef DEEPRNN_STACKED_CUDA_H_
#define DEEPRNN_STACKED_CUDA_H_

#include <cstdint>
#include <string>

#include "deeprnn/launch_plan.h"
#include "deeprnn/stacked.h"

namespace deeprnn {

// What a call ran (optional output, for logs, tests and benchmarks).
struct CudaLaunchInfo {
  WavefrontPlan wavefront;      // the schedule and tiles of the wavefront
  int64_t kernel_launches = 0;  // all kernel launches of the call, wavefront included
};

// Where and how a pass runs.
struct CudaLaunch {
  void* stream = nullptr;                       // cudaStream_t on which everything is queued
  void* workspace = nullptr;                    // device scratch, 256-byte aligned
  int64_t workspace_bytes = 0;                  // its size: at least the pass's ...WorkspaceBytes
  CudaSchedule schedule = CudaSchedule::kAuto;  // the wavefront's schedule; kAuto lets the planner choose
  bool allow_tf32 = false;                      // float32 may use TF32 tensor cores (launch_plan.h PlanOptions)
  int32_t* invalid_tokens = nullptr;            // optional device counter: += token ids outside [0, D)
  CudaLaunchInfo* info = nullptr;               // optional out: what ran
};

// Workspace sizes in bytes for a cell, a shape and an element size (4 or 8); the backward pass with token inputs
// needs room to sort layer 0's rows by token. Host-only: no device needed.
int64_t StackedForwardCudaWorkspaceBytes(Cell cell, const Shape& shape, int element_bytes);
int64_t StackedBackwardCudaWorkspaceBytes(Cell cell, const Shape& shape, int element_bytes,
                                          bool token_inputs = false);
// Values of T of the backward pass's `grad_slots` scratch: [L,T,B,GS*H] with GS the cell's grad slots.
int64_t StackedBackwardCudaScratchSize(Cell cell, const Shape& shape);

// Forward pass on the current CUDA device: every field of ForwardArgs as stacked.h documents it, as device
// pointers (inputs.dense [B,T,D] or inputs.tokens [B,T]; `saved` [L,T,B,SS*H] for cells that save gates).
template <typename T>
CudaStatus StackedForwardCuda(const ForwardArgs<T>& args, const CudaLaunch& launch);

// Backward pass on the current CUDA device: every field of BackwardArgs as stacked.h documents it, as device
// pointers (grad_inputs null: dX is not computed; always null with tokens). `grad_slots` [L,T,B,GS*H] is scratch
// of StackedBackwardCudaScratchSize values (always the full size on CUDA) that ends up holding every cell's grad
// slots in the cell's layout (tanh / relu: dLoss/dZ; GRU: [da_n | da_z | da_r | da_n r]; LSTM: [da_i | da_f |
// da_g | da_o]).
template <typename T>
CudaStatus StackedBackwardCuda(const BackwardArgs<T>& args, T* grad_slots, const CudaLaunch& launch);

// Plans a pass for the current device without running it (what the passes would choose), with the real
// occupancy of the cell's kernels.
CudaStatus PlanStackedCuda(Cell cell, const Shape& shape, int element_bytes, Direction direction,
                           CudaSchedule schedule, WavefrontPlan* plan, const PlanOptions& options = PlanOptions());

// --- Runtime helpers for adapters that must not include CUDA headers (TensorFlow, pybind11, benchmarks). ---

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
// Queues a copy of `bytes` of host memory to the device on `stream`. The host buffer may be freed or reused as soon
// as the call returns: the call first copies it into pageable memory of its own, which CUDA stages before
// cudaMemcpyAsync returns (a pinned source would be read later, when the stream gets there).
CudaStatus CudaCopyHostToDeviceAsync(void* device_dst, const void* host_src, int64_t bytes, void* stream);
// Queues one cooperative kernel of `blocks` blocks x 256 threads (blocks <= 0: one per SM) that does `syncs` grid
// barriers and nothing else: timing it with events gives the cost of one barrier on this device.
CudaStatus CudaGridSyncBenchmark(int64_t syncs, int blocks, void* stream);

}  // namespace deeprnn

#endif  // DEEPRNN_STACKED_CUDA_H_
