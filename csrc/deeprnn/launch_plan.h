// Launch planning of the CUDA passes (deeprnn/stacked_cuda.h): shape checks, schedules, tiles and shared memory of
// the wavefront, for any cell. Plain host C++ (no CUDA headers), so that it compiles with g++, is unit-tested on
// machines without a GPU and can plan for a device described by hand; the CUDA passes call the same planner with
// the properties and kernel occupancy of the device they run on. Implemented in csrc/engine/plan/.
//
// The wavefront kernels compute one cell (l, t) as a set of output tiles of BM batch rows x BN hidden units, 256
// threads per block, each thread holding TM x TN units (times the cell's pre-activation slots forward) of one of KS
// slices of the reduction (KS = 256 / ((BM/TM) * (BN/TN)), partial sums added through shared memory). Two schedules
// run the same tile code:
// - stepwise: one kernel launch per wavefront step, one block per tile of every active cell;
// - persistent: one cooperative launch for all T + L - 1 steps with a grid barrier between steps; either each block
//   owns one (layer, column slice) and keeps that slice of the layer's weights in shared memory for the whole run
//   ("weights on chip"), or the blocks stride over the tiles of each step and read weights from L2 ("streaming").
// For float32 at B <= 32, when the caller allows TF32 (PlanOptions::allow_tf32), the persistent schedule with
// weights on chip may run the tensor-core tile instead (engine/cuda/tensor_core_tile.cuh): the same blocks, the
// products through WMMA TF32 fragments. Its cost model, and today's kernel's, is engine/cuda/COST_MODEL.md.
#ifndef DEEPRNN_LAUNCH_PLAN_H_
#define DEEPRNN_LAUNCH_PLAN_H_

#include <cstdint>
#include <functional>
#include <string>

#include "deeprnn/stacked.h"

namespace deeprnn {

// The result of every call of the CUDA library, planning included: empty error means success. The message names
// the failing CUDA call or the bad argument.
struct CudaStatus {
  std::string error;
  bool ok() const { return error.empty(); }
  static CudaStatus Ok() { return {}; }
  static CudaStatus Error(std::string message) { return {std::move(message)}; }
};

enum class CudaSchedule : int {
  kAuto = 0,                  // the planner decides from the sizes and the device
  kStepwise = 1,              // one launch per wavefront step
  kPersistent = 2,            // one cooperative launch; weights on chip when they fit, else streaming
  kPersistentResident = 3,    // persistent with weights on chip, or an error saying why they do not fit
  kPersistentStreaming = 4,   // persistent, weights read from L2 / device memory every step
};

enum class Direction : int { kForward = 0, kBackward = 1 };

// The few device properties planning needs (filled from cudaGetDeviceProperties, or by hand in tests).
struct DeviceProps {
  int sm_count = 0;                      // multiProcessorCount
  int64_t smem_per_block_optin = 0;      // sharedMemPerBlockOptin: the most dynamic shared memory one block may get
  int64_t smem_per_sm = 0;               // sharedMemPerMultiprocessor
  int64_t reserved_smem_per_block = 0;   // reservedSharedMemPerBlock (taken by the system from every block)
  int max_threads_per_sm = 0;            // maxThreadsPerMultiProcessor
  int max_blocks_per_sm = 0;             // maxBlocksPerMultiProcessor
  int regs_per_sm = 0;                   // regsPerMultiprocessor
  bool cooperative_launch = false;       // cooperativeLaunch: grid barriers are allowed
  int cc_major = 0;
  int cc_minor = 0;
};

// Threads of every wavefront block.
constexpr int kWavefrontThreads = 256;

// What the caller allows beyond the exact scalar tiles, and what the pass needs.
struct PlanOptions {
  // TF32 products on tensor cores (10-bit mantissa inputs, float accumulation) for float32. Off by default: the
  // library computes exact float32 unless the caller says otherwise (the TF op follows TensorFlow's TF32 switch).
  bool allow_tf32 = false;
  // Masks or dropout are given: the tensor-core tile has none, so the planner keeps the exact tiles.
  bool has_modifiers = false;
};

// The tile index of the tensor-core tile (after the scalar tiles of engine/plan/tiles.h).
constexpr int kTensorCoreTile = 6;

// What the planner decided for the wavefront of one pass.
struct WavefrontPlan {
  CudaSchedule schedule = CudaSchedule::kStepwise;  // resolved: kStepwise or kPersistent
  bool weights_on_chip = false;                     // persistent only: each block keeps its weight slice on chip
  bool tensor_cores = false;                        // the tensor-core tile (TF32 WMMA; tile kTensorCoreTile)
  int tile = 0;                                     // which of the cell's tile shapes
  int bm = 0, bn = 0, tm = 0, tn = 0, bk = 0, ks = 0;  // that tile: rows x units, per thread, chunk, slices
  int threads = kWavefrontThreads;
  int64_t row_tiles = 0;         // ceil(B / BM)
  int64_t col_tiles = 0;         // ceil(H / BN)
  int64_t grid = 0;              // persistent: blocks of the one launch; stepwise: blocks of the fullest step
  int64_t smem_bytes = 0;        // dynamic shared memory per block
  int64_t blocks_per_sm = 0;     // occupancy the decision used (0 for stepwise)
  int64_t launches = 0;          // kernel launches of the wavefront
  std::string reason;            // why this schedule (and why not the others), for logs and tests
};

// Blocks of the cell's wavefront kernel with `tile` and `smem_bytes` of dynamic shared memory that fit on one SM
// (cudaOccupancyMaxActiveBlocksPerMultiprocessor on a device; EstimateBlocksPerSm without one).
using OccupancyFn = std::function<int(int tile, int64_t smem_bytes)>;

// Rejects device properties no real GPU has, with a message naming the field: fewer than one SM, no shared memory
// per block or per SM (or more per block than per SM), no threads, blocks or registers per SM, a negative reserved
// shared memory or compute capability, or sizes beyond 2^31 - 1. Planning on them would divide by zero or promise
// blocks that cannot run; every planner calls this first.
CudaStatus ValidateDeviceProps(const DeviceProps& props);

// A device-free occupancy estimate from shared memory, threads and an assumed register count per thread.
int EstimateBlocksPerSm(const DeviceProps& props, int64_t smem_bytes, int threads, int regs_per_thread);

// Rejects shapes the CUDA passes of `cell` cannot run, with a message saying which limit: sizes must be
// non-negative (input, hidden, layers >= 1), and B*T, G*H, D, L must stay within the 32-bit grid and row indices
// the kernels use (element offsets are 64-bit).
CudaStatus ValidateCudaShape(Cell cell, const Shape& shape);

// Plans the wavefront of one pass of `cell`. `occupancy` may be empty: then EstimateBlocksPerSm with 64 registers
// per thread. Errors: a bad shape, element size or device
// (ValidateDeviceProps), a block that needs more shared memory than the device allows,
// or a persistent schedule that was asked for and cannot run (no cooperative launch, weights that do not fit on
// chip, no block that fits on an SM). With options.allow_tf32, float32, B <= 32, no modifiers, compute capability
// 8.0 or more and a schedule that allows weights on chip (auto, persistent, persistent_resident), the tensor-core
// tile is chosen when its blocks fit; plan.reason says why it was or was not.
CudaStatus PlanWavefront(Cell cell, const Shape& shape, int element_bytes, Direction direction,
                         const DeviceProps& props, CudaSchedule requested, const OccupancyFn& occupancy,
                         WavefrontPlan* plan, const PlanOptions& options = PlanOptions());

const char* ScheduleName(CudaSchedule schedule);
// Parses "auto", "stepwise", "persistent", "persistent_resident", "persistent_streaming".
CudaStatus ParseSchedule(const std::string& name, CudaSchedule* schedule);

}  // namespace deeprnn

#endif  // DEEPRNN_LAUNCH_PLAN_H_
