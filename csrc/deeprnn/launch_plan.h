// Launch planning for the CUDA stacked RNN: shape checks, tile shapes, schedules, shared-memory budgets and
// workspace layout. Plain C++ (no CUDA headers), so that it compiles with g++ and is unit-tested on machines without
// a GPU; the CUDA launchers (csrc/cuda/*.cu) call it with the properties of the device they run on.
//
// The wavefront kernels (csrc/cuda/wavefront_kernel.cuh) compute one cell (l, t) of the stacked RNN as a set of
// output tiles of BM batch rows x BN hidden columns; 256 threads per block, each thread holding TM x TN outputs of
// one of KS slices of the reduction (KS = 256 / ((BM/TM) * (BN/TN)), partial sums added through shared memory).
// Two schedules run the same tile code:
// - stepwise: one kernel launch per wavefront step, one block per tile of every active cell;
// - persistent: one cooperative launch for all T + L - 1 steps with a grid barrier between steps; either each block
//   owns one (layer, column slice) and keeps that slice of the layer's weights in shared memory for the whole run
//   ("weights on chip"), or the blocks stride over the tiles of each step and read weights from L2 ("streaming").
#ifndef DEEPRNN_LAUNCH_PLAN_H_
#define DEEPRNN_LAUNCH_PLAN_H_

#include <cstdint>
#include <functional>
#include <string>

#include "deeprnn/stacked_rnn.h"

// Functions the kernels share with the host planner are compiled for both sides by nvcc and for the host by g++.
#if defined(__CUDACC__)
#define DEEPRNN_HOST_DEVICE __host__ __device__
#else
#define DEEPRNN_HOST_DEVICE
#endif

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

constexpr int kWavefrontThreads = 256;
constexpr int kNumWavefrontTiles = 6;

struct WavefrontTile {
  int bm;  // batch rows per tile
  int bn;  // hidden columns per tile (the width of a block's weight slice when weights are on chip)
  int tm;  // rows per thread
  int tn;  // columns per thread
  int bk;  // reduction chunk staged in shared memory
};

// The tile shapes the kernels are instantiated for. Tiles 0-4 share BN = 16, so the weight slices kept on chip are
// narrow (many blocks, little shared memory each); they differ in how many batch rows a tile covers, and the small
// ones split the reduction across thread groups instead (KS > 1) so that B = 1 still keeps 256 threads busy.
// Tile 5 is a register-blocked 64 x 64 tile for large batches.
DEEPRNN_HOST_DEVICE constexpr WavefrontTile WavefrontTileShape(int index) {
  return index == 0   ? WavefrontTile{1, 16, 1, 1, 256}
         : index == 1 ? WavefrontTile{4, 16, 1, 1, 128}
         : index == 2 ? WavefrontTile{16, 16, 1, 1, 64}
         : index == 3 ? WavefrontTile{32, 16, 2, 1, 32}
         : index == 4 ? WavefrontTile{64, 16, 4, 1, 32}
                      : WavefrontTile{64, 64, 4, 4, 16};
}

// Reduction slices per tile: the threads left over once every output has a thread.
DEEPRNN_HOST_DEVICE constexpr int WavefrontKs(const WavefrontTile& t) {
  return kWavefrontThreads / ((t.bm / t.tm) * (t.bn / t.tn));
}

// Weight segments a block keeps on chip: the input product's [H,H] and the recurrent [H,H], or only the
// recurrent one for a single layer (layer 0's input product is computed before the wavefront, and in the backward
// pass the top layer has no layer above).
DEEPRNN_HOST_DEVICE constexpr int64_t ResidentSegments(int64_t layers) { return layers > 1 ? 2 : 1; }

// Dynamic shared memory of a wavefront block, in elements, as three consecutive regions:
//   A staging   [BK][BM+1]   activations (or gradients) of the rows of the tile, one reduction chunk
//   reduction   [256][TM*TN] every thread's partial sums, added across the KS slices (only when KS > 1)
//   B           [BK][BN+1]   one chunk of the weight slice (streaming), or
//               [segments][H][BN+1] the whole slice of the block's layer (weights on chip)
// Rows are padded by one element so that column reads of transposed loads avoid bank conflicts.
DEEPRNN_HOST_DEVICE constexpr int64_t WavefrontSmemAElems(const WavefrontTile& t) {
  return static_cast<int64_t>(t.bk) * (t.bm + 1);
}
DEEPRNN_HOST_DEVICE constexpr int64_t WavefrontSmemRedElems(const WavefrontTile& t) {
  return WavefrontKs(t) > 1 ? static_cast<int64_t>(kWavefrontThreads) * t.tm * t.tn : 0;
}
DEEPRNN_HOST_DEVICE constexpr int64_t WavefrontSmemBElems(const WavefrontTile& t, int64_t hidden, int64_t layers,
                                                          bool resident) {
  return resident ? ResidentSegments(layers) * hidden * (t.bn + 1) : static_cast<int64_t>(t.bk) * (t.bn + 1);
}
DEEPRNN_HOST_DEVICE constexpr int64_t WavefrontSmemBytes(const WavefrontTile& t, int64_t hidden, int64_t layers,
                                                         bool resident, int64_t element_bytes) {
  return (WavefrontSmemAElems(t) + WavefrontSmemRedElems(t) + WavefrontSmemBElems(t, hidden, layers, resident)) *
         element_bytes;
}

// What the planner decided for the wavefront of one pass.
struct WavefrontPlan {
  CudaSchedule schedule = CudaSchedule::kStepwise;  // resolved: kStepwise or kPersistent
  bool weights_on_chip = false;                     // persistent only: each block keeps its weight slice on chip
  int tile = 0;                                     // index for WavefrontTileShape
  int64_t row_tiles = 0;                            // ceil(B / BM)
  int64_t col_tiles = 0;                            // ceil(H / BN)
  int64_t grid = 0;              // persistent: blocks of the one launch; stepwise: blocks of the fullest step
  int64_t smem_bytes = 0;        // dynamic shared memory per block
  int64_t blocks_per_sm = 0;     // occupancy the decision used (0 for stepwise)
  int64_t launches = 0;          // kernel launches of the wavefront
  std::string reason;            // why this schedule (and why not the others), for logs and tests
};

// Blocks of the wavefront kernel with `tile` and `smem_bytes` of dynamic shared memory that fit on one SM
// (cudaOccupancyMaxActiveBlocksPerMultiprocessor on a device; EstimateBlocksPerSm in tests).
using OccupancyFn = std::function<int(int tile, int64_t smem_bytes)>;

// Rejects device properties no real GPU has, with a message naming the field: fewer than one SM, no shared memory
// per block or per SM (or more per block than per SM), no threads, blocks or registers per SM, a negative reserved
// shared memory or compute capability, or sizes beyond 2^31 - 1. Planning on them would divide by zero or promise
// blocks that cannot run; every planner calls this first.
CudaStatus ValidateDeviceProps(const DeviceProps& props);

// A device-free occupancy estimate from shared memory, threads and an assumed register count per thread.
int EstimateBlocksPerSm(const DeviceProps& props, int64_t smem_bytes, int threads, int regs_per_thread);

// Rejects shapes the CUDA library cannot run, with a message saying which limit: sizes must be non-negative
// (input, hidden, layers >= 1), and B*T, H, D, L must stay within the 32-bit grid and row indices the kernels use
// (element offsets are 64-bit).
CudaStatus ValidateCudaShape(const Shape& shape);

// Plans the wavefront of one pass. `occupancy` may be empty: then EstimateBlocksPerSm with 64 registers per thread.
// Errors: a bad shape, element size or device (ValidateDeviceProps), a block that needs more shared memory than the device allows, or a
// persistent schedule that was asked for and cannot run (no cooperative launch, weights that do not fit on chip, no
// block that fits on an SM).
CudaStatus PlanWavefront(const Shape& shape, int element_bytes, Direction direction, const DeviceProps& props,
                         CudaSchedule requested, const OccupancyFn& occupancy, WavefrontPlan* plan);

// What the planner needs to know of a cell (the tanh RNN's, the GRU's): its tiles and their shared memory. Both
// cells' planners are PlanCellWavefront with their own WavefrontCell; the schedule rules are the same.
struct WavefrontCell {
  const char* pass_prefix;        // put before "forward" / "backward" in reasons and errors ("" or "GRU ")
  int64_t wide_tile_min_hidden;   // streaming and stepwise take tile 5 from this H on (when B >= 64 too)
  WavefrontTile (*tile_shape)(int index);
  int64_t (*smem_bytes)(const WavefrontTile& tile, int64_t hidden, int64_t layers, bool resident, bool backward,
                        int64_t element_bytes);
};

// PlanWavefront for any cell, for a shape the caller has validated.
CudaStatus PlanCellWavefront(const WavefrontCell& cell, const Shape& shape, int element_bytes, Direction direction,
                             const DeviceProps& props, CudaSchedule requested, const OccupancyFn& occupancy,
                             WavefrontPlan* plan);

// The tiled matrix products (layer 0's input projection, the data and weight gradients) use 64 x 64 output tiles
// with a reduction chunk of 16; a long reduction (over all T*B rows, for weight gradients) is split into `splits`
// slices of `k_per_split` whose partial sums go to the workspace and are added in a fixed order (deterministic).
constexpr int kGemmTile = 64;
constexpr int kGemmChunk = 16;
constexpr int kColumnSumCols = 32;  // columns per block of the bias-gradient column sums

struct ReductionSplit {
  int64_t splits = 1;
  int64_t k_per_split = 0;
};

// Split of the reduction of an m x n product over k: enough blocks to fill a large GPU (about 512), at least 256
// reduction rows per slice, at most 64 slices. A pure function of the sizes, so workspace sizes need no device.
ReductionSplit PlanGemmSplit(int64_t m, int64_t n, int64_t k);
// Split of the column sums of an m x n matrix (bias gradients) over its m rows.
ReductionSplit PlanColumnSumSplit(int64_t m, int64_t n);
// Elements of workspace the split reduction of an [m, k] x [k, n] product needs for its partial sums (0 unsplit).
int64_t GemmPartialElems(int64_t m, int64_t n, int64_t k);

// Byte layout of the workspace of one pass; every region starts on a 256-byte boundary.
struct WorkspaceLayout {
  int64_t table_offset = 0;    // device copies of the per-layer weight pointer arrays
  int64_t table_bytes = 0;
  int64_t partial_offset = 0;  // partial sums of split reductions (backward only)
  int64_t partial_bytes = 0;
  int64_t total_bytes = 0;
};

WorkspaceLayout ForwardWorkspaceLayout(const Shape& shape, int element_bytes);
WorkspaceLayout BackwardWorkspaceLayout(const Shape& shape, int element_bytes);

const char* ScheduleName(CudaSchedule schedule);
// Parses "auto", "stepwise", "persistent", "persistent_resident", "persistent_streaming".
CudaStatus ParseSchedule(const std::string& name, CudaSchedule* schedule);

}  // namespace deeprnn

#endif  // DEEPRNN_LAUNCH_PLAN_H_
