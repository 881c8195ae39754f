// Host-only planning of the CUDA passes for any cell (deeprnn/launch_plan.h): no CUDA headers, unit-tested without a
// GPU. A cell enters only through its geometry (gates, pre-activation slots; engine/plan/cell_geometry.h) and the
// tiles and shared memory that follow from it (engine/plan/tiles.h); the schedule rules are the same for every cell.
// A GRU or LSTM block stages G gates' weight columns per unit forward and a G*H-long reduction backward, so their
// weights fit on chip up to smaller layers than the tanh RNN's (float32, two segments: H = 1024 for tanh, 512 for
// the GRU, 256 for the LSTM).
#include "deeprnn/launch_plan.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "engine/plan/arithmetic.h"
#include "engine/plan/cell_geometry.h"
#include "engine/plan/tensor_core_tile.h"
#include "engine/plan/tiles.h"
#include "engine/plan/workspace.h"

namespace deeprnn {

namespace {

using plan::CeilDiv;
using plan::kInt32Max;
using plan::MulOrNeg;
using plan::Product;
using plan::Str;

// The tile that covers the batch with the least padding: B = 1 computes one row, larger batches more rows per tile.
int SmallTileFor(int64_t batch) {
  if (batch <= 1) return 0;
  if (batch <= 4) return 1;
  if (batch <= 16) return 2;
  if (batch <= 32) return 3;
  return 4;
}

// Copies the shape of the plan's tile into it, for callers that do not know the tile tables. The tensor-core tile:
// rows and units of its output fragments, 16 x 16 per warp item, chunks of kTcChunk, `ks` warps per fragment.
void DescribeTile(int pre_slots, int gates, bool backward, int64_t batch, WavefrontPlan* plan) {
  if (plan->tensor_cores) {
    const int frags = TcFragments(TcRowFragments(batch), gates, backward);
    plan->bm = kTcFragment * TcRowFragments(batch);
    plan->bn = kTcUnits;
    plan->tm = kTcFragment;
    plan->tn = kTcFragment;
    plan->bk = kTcChunk;
    plan->ks = TcKSplit(frags);
    plan->threads = kWavefrontThreads;
    return;
  }
  const WavefrontTile t = WavefrontTileShape(pre_slots, plan->tile);
  plan->bm = t.bm;
  plan->bn = t.bn;
  plan->tm = t.tm;
  plan->tn = t.tn;
  plan->bk = t.bk;
  plan->ks = WavefrontKs(t);
  plan->threads = kWavefrontThreads;
}

}  // namespace

int EstimateBlocksPerSm(const DeviceProps& props, int64_t smem_bytes, int threads, int regs_per_thread) {
  if (threads <= 0 || smem_bytes > props.smem_per_block_optin) return 0;
  int64_t blocks = props.max_blocks_per_sm > 0 ? props.max_blocks_per_sm : 32;
  blocks = std::min<int64_t>(blocks, props.max_threads_per_sm / threads);
  if (props.regs_per_sm > 0 && regs_per_thread > 0)
    blocks = std::min<int64_t>(blocks, props.regs_per_sm / (int64_t{regs_per_thread} * threads));
  if (smem_bytes > 0 || props.reserved_smem_per_block > 0)
    blocks = std::min<int64_t>(blocks, props.smem_per_sm / (smem_bytes + props.reserved_smem_per_block));
  return static_cast<int>(std::max<int64_t>(0, blocks));
}

CudaStatus ValidateDeviceProps(const DeviceProps& p) {
  struct Field {
    const char* name;
    int64_t value;
    int64_t min;
  };
  const Field fields[] = {{"sm_count", p.sm_count, 1},
                          {"smem_per_block_optin", p.smem_per_block_optin, 1},
                          {"smem_per_sm", p.smem_per_sm, 1},
                          {"reserved_smem_per_block", p.reserved_smem_per_block, 0},
                          {"max_threads_per_sm", p.max_threads_per_sm, 1},
                          {"max_blocks_per_sm", p.max_blocks_per_sm, 1},
                          {"regs_per_sm", p.regs_per_sm, 1},
                          {"cc_major", p.cc_major, 1},
                          {"cc_minor", p.cc_minor, 0}};
  for (const Field& f : fields) {
    if (f.value < f.min || f.value > kInt32Max)
      return CudaStatus::Error("device property " + std::string(f.name) + " must be in [" + Str(f.min) +
                               ", 2^31 - 1]; got " + Str(f.value));
  }
  if (p.smem_per_block_optin > p.smem_per_sm)
    return CudaStatus::Error("device property smem_per_block_optin (" + Str(p.smem_per_block_optin) +
                             ") must not exceed smem_per_sm (" + Str(p.smem_per_sm) + "): a block lives on one SM");
  if (p.reserved_smem_per_block > p.smem_per_sm)
    return CudaStatus::Error("device property reserved_smem_per_block (" + Str(p.reserved_smem_per_block) +
                             ") must not exceed smem_per_sm (" + Str(p.smem_per_sm) + ")");
  return CudaStatus::Ok();
}

CudaStatus ValidateCudaShape(Cell cell, const Shape& s) {
  const CellGeometry geo = GeometryOf(cell);
  if (s.batch < 0) return CudaStatus::Error("batch must be >= 0; got " + Str(s.batch));
  if (s.time < 0) return CudaStatus::Error("time must be >= 0; got " + Str(s.time));
  if (s.input < 1) return CudaStatus::Error("input features must be >= 1; got " + Str(s.input));
  if (s.hidden < 1) return CudaStatus::Error("hidden units must be >= 1; got " + Str(s.hidden));
  if (s.layers < 1) return CudaStatus::Error("layers must be >= 1; got " + Str(s.layers));
  const int64_t rows = MulOrNeg(s.batch, s.time);
  if (rows < 0 || rows > kInt32Max)
    return CudaStatus::Error("batch * time must be at most 2^31 - 1 (the CUDA kernels index rows with 32 bits); got " +
                             Str(s.batch) + " * " + Str(s.time));
  if (s.hidden > kMaxGemmColumns || s.input > kMaxGemmColumns)
    return CudaStatus::Error("hidden and input sizes must be at most " + Str(kMaxGemmColumns) +
                             " for the CUDA kernels; got hidden " + Str(s.hidden) + ", input " + Str(s.input));
  if (geo.gates > 1 && geo.gates * s.hidden > kMaxGemmColumns)
    return CudaStatus::Error("hidden units must be at most " + Str(kMaxGemmColumns / geo.gates) + " for the CUDA " +
                             geo.label + " (its matrices have " + Str(geo.gates) + " * hidden columns); got " +
                             Str(s.hidden));
  if (s.layers > kInt32Max - s.time)
    return CudaStatus::Error("time + layers must be below 2^31; got " + Str(s.time) + " + " + Str(s.layers));
  // The widest per-cell tensor: the saved gates or the grad slots, [L,T,B,max(1, SS, GS)*H].
  const int64_t slots = std::max({1, geo.saved_slots, geo.grad_slots});
  const int64_t cells = Product({s.layers, s.time, s.batch, slots * s.hidden});
  const int64_t inputs = Product({s.batch, s.time, s.input});
  const int64_t weights = Product({geo.gates * s.hidden, std::max(s.hidden, s.input)});
  constexpr int64_t kMaxElems = int64_t{1} << 60;  // leaves room for byte offsets of doubles
  if (cells < 0 || cells > kMaxElems || inputs < 0 || inputs > kMaxElems || weights < 0 || weights > kMaxElems)
    return CudaStatus::Error("the tensors of this shape have more than 2^60 elements (batch " + Str(s.batch) +
                             ", time " + Str(s.time) + ", input " + Str(s.input) + ", hidden " + Str(s.hidden) +
                             ", layers " + Str(s.layers) + ")");
  return CudaStatus::Ok();
}

CudaStatus PlanWavefront(Cell cell, const Shape& shape, int element_bytes, Direction direction,
                         const DeviceProps& props, CudaSchedule requested, const OccupancyFn& occupancy,
                         WavefrontPlan* plan, const PlanOptions& options) {
  CudaStatus status = ValidateCudaShape(cell, shape);
  if (!status.ok()) return status;
  if (element_bytes != 4 && element_bytes != 8)
    return CudaStatus::Error("element size must be 4 (float32) or 8 (float64) bytes; got " + Str(element_bytes));
  CudaStatus device = ValidateDeviceProps(props);
  if (!device.ok()) return device;
  *plan = WavefrontPlan();
  const bool backward = direction == Direction::kBackward;
  const int64_t B = shape.batch, T = shape.time, H = shape.hidden, L = shape.layers;
  const CellGeometry geo = GeometryOf(cell);
  const std::string pass = std::string(geo.label) + (backward ? " backward" : " forward");
  const int G = geo.gates, NP = geo.pre_slots;
  auto smem_bytes = [&](const WavefrontTile& tile, bool resident) {
    return WavefrontSmemBytes(tile, G, NP, shape.hidden, shape.layers, resident, backward, element_bytes);
  };
  if (B == 0 || T == 0) {
    plan->reason = "nothing to compute: batch or time is 0";
    DescribeTile(NP, G, backward, B, plan);
    return CudaStatus::Ok();
  }
  const OccupancyFn occ = occupancy ? occupancy : OccupancyFn([&props](int, int64_t smem) {
    return EstimateBlocksPerSm(props, smem, kWavefrontThreads, 64);
  });
  const int64_t sms = std::max(1, props.sm_count);
  const int64_t steps = T + L - 1;
  const int64_t max_active = std::min(L, T);

  // Weights on chip: block (l, c) keeps columns [16c, 16c + 16) of layer l's weights; the tile covers the batch.
  const int tile_r = SmallTileFor(B);
  const WavefrontTile shape_r = WavefrontTileShape(NP, tile_r);
  const int64_t rows_r = CeilDiv(B, shape_r.bm), cols_r = CeilDiv(H, shape_r.bn);
  const int64_t blocks_r = L * cols_r;
  const int64_t smem_r = smem_bytes(shape_r, true);
  int64_t occ_r = 0;
  std::string why_not_r;
  if (!props.cooperative_launch) {
    why_not_r = "the device does not support cooperative launch (grid barriers)";
  } else if (smem_r > props.smem_per_block_optin) {
    why_not_r = "a block's weight slice needs " + Str(smem_r) + " bytes of shared memory; the device allows " +
                Str(props.smem_per_block_optin) + " per block";
  } else {
    occ_r = occ(tile_r, smem_r);
    if (occ_r * sms < blocks_r)
      why_not_r = "weights on chip need " + Str(blocks_r) + " co-resident blocks of " + Str(smem_r) +
                  " bytes; the device holds " + Str(occ_r) + " per SM x " + Str(sms) + " SMs";
  }
  const bool r_ok = why_not_r.empty();

  // The tensor-core tile: the resident schedule's blocks (layer, 16-unit slice), products on TF32 tensor cores.
  const int64_t smem_tc = TcSmemBytes(G, H, L, backward);
  const int64_t blocks_tc = L * CeilDiv(H, kTcUnits);
  int64_t occ_tc = 0;
  std::string why_not_tc;
  if (!options.allow_tf32) {
    why_not_tc = "TF32 not allowed (exact float32)";
  } else if (element_bytes != 4) {
    why_not_tc = "float64 keeps the exact scalar tiles";
  } else if (options.has_modifiers) {
    why_not_tc = "masks and dropout have no tensor-core tile";
  } else if (B > kTcMaxBatch) {
    why_not_tc = "batch " + Str(B) + " > " + Str(kTcMaxBatch);
  } else if (props.cc_major < 8) {
    why_not_tc = "TF32 tensor cores need compute capability 8.0; the device has " + Str(props.cc_major) + "." +
                 Str(props.cc_minor);
  } else if (!props.cooperative_launch) {
    why_not_tc = "the device does not support cooperative launch (grid barriers)";
  } else if (smem_tc > props.smem_per_block_optin) {
    why_not_tc = "its weight slice needs " + Str(smem_tc) + " bytes of shared memory; the device allows " +
                 Str(props.smem_per_block_optin) + " per block";
  } else {
    occ_tc = occ(kTensorCoreTile, smem_tc);
    if (occ_tc * sms < blocks_tc)
      why_not_tc = "it needs " + Str(blocks_tc) + " co-resident blocks of " + Str(smem_tc) + " bytes; the device holds " +
                   Str(occ_tc) + " per SM x " + Str(sms) + " SMs";
  }
  const bool tc_ok = why_not_tc.empty();
  const bool tc_schedule = requested == CudaSchedule::kAuto || requested == CudaSchedule::kPersistent ||
                           requested == CudaSchedule::kPersistentResident;

  // Streaming (persistent without weights on chip) and stepwise share the tile chosen for the batch: the wide tile
  // 5 once the batch and the layer fill it.
  const int tile_s = (B >= 64 && H >= WavefrontTileShape(NP, 5).bn) ? 5 : tile_r;
  const WavefrontTile shape_s = WavefrontTileShape(NP, tile_s);
  const int64_t rows_s = CeilDiv(B, shape_s.bm), cols_s = CeilDiv(H, shape_s.bn);
  const int64_t items_s = MulOrNeg(MulOrNeg(max_active, rows_s), cols_s);
  if (items_s < 0 || items_s > kInt32Max)
    return CudaStatus::Error("a wavefront step of this shape has more than 2^31 - 1 tiles (layers " + Str(L) +
                             ", batch " + Str(B) + ", hidden " + Str(H) + ")");
  const int64_t smem_s = smem_bytes(shape_s, false);
  // Stepwise launches need this too: never for the tiles there are (at most 110 KB), but say so rather than fail at
  // launch.
  if (smem_s > props.smem_per_block_optin)
    return CudaStatus::Error(pass + ": a block needs " + Str(smem_s) + " bytes of shared memory; the device allows " +
                             Str(props.smem_per_block_optin));
  int64_t occ_s = 0;
  std::string why_not_s;
  if (!props.cooperative_launch) {
    why_not_s = "the device does not support cooperative launch (grid barriers)";
  } else {
    occ_s = occ(tile_s, smem_s);
    if (occ_s < 1) why_not_s = "no block of the persistent kernel fits on an SM";
  }
  const bool s_ok = why_not_s.empty();

  auto use_resident = [&](const std::string& why) {
    plan->schedule = CudaSchedule::kPersistent;
    plan->weights_on_chip = true;
    plan->tile = tile_r;
    plan->row_tiles = rows_r;
    plan->col_tiles = cols_r;
    plan->grid = blocks_r;
    plan->smem_bytes = smem_r;
    plan->blocks_per_sm = occ_r;
    plan->launches = 1;
    plan->reason = pass + ": persistent, weights on chip (" + Str(blocks_r) + " blocks x " + Str(smem_r) +
                   " B shared memory): " + why;
  };
  auto use_tensor_cores = [&]() {
    plan->schedule = CudaSchedule::kPersistent;
    plan->weights_on_chip = true;
    plan->tensor_cores = true;
    plan->tile = kTensorCoreTile;
    plan->row_tiles = 1;
    plan->col_tiles = CeilDiv(H, kTcUnits);
    plan->grid = blocks_tc;
    plan->smem_bytes = smem_tc;
    plan->blocks_per_sm = occ_tc;
    plan->launches = 1;
    plan->reason = pass + ": persistent, weights on chip, tensor cores (TF32 WMMA; " + Str(blocks_tc) +
                   " blocks x " + Str(smem_tc) + " B shared memory): TF32 allowed, float32, batch <= " +
                   Str(kTcMaxBatch);
  };
  auto use_streaming = [&](const std::string& why) {
    plan->schedule = CudaSchedule::kPersistent;
    plan->weights_on_chip = false;
    plan->tile = tile_s;
    plan->row_tiles = rows_s;
    plan->col_tiles = cols_s;
    plan->grid = std::min(items_s, occ_s * sms);
    plan->smem_bytes = smem_s;
    plan->blocks_per_sm = occ_s;
    plan->launches = 1;
    plan->reason = pass + ": persistent, weights streamed (" + Str(plan->grid) + " blocks): " + why;
  };
  auto use_stepwise = [&](const std::string& why) {
    plan->schedule = CudaSchedule::kStepwise;
    plan->weights_on_chip = false;
    plan->tile = tile_s;
    plan->row_tiles = rows_s;
    plan->col_tiles = cols_s;
    plan->grid = items_s;
    plan->smem_bytes = smem_s;
    plan->blocks_per_sm = 0;
    plan->launches = steps;
    plan->reason = pass + ": stepwise (" + Str(steps) + " launches): " + why;
  };

  // Weights on chip pay off while a block has few row tiles to walk through per step; beyond that, or when they
  // do not fit, streaming tiles over all blocks. Stepwise launches win once a step holds many times the tiles the
  // GPU runs at once: the launch gap is then small next to the step, and no block waits at a barrier.
  const bool few_rows = rows_r <= 2;
  if (tc_ok && tc_schedule) {
    use_tensor_cores();
    DescribeTile(NP, G, backward, B, plan);
    return CudaStatus::Ok();
  }
  switch (requested) {
    case CudaSchedule::kStepwise:
      use_stepwise("requested");
      break;
    case CudaSchedule::kPersistentResident:
      if (!r_ok) return CudaStatus::Error(pass + ": weights cannot stay on chip: " + why_not_r);
      use_resident("requested");
      break;
    case CudaSchedule::kPersistentStreaming:
      if (!s_ok) return CudaStatus::Error(pass + ": persistent schedule unavailable: " + why_not_s);
      use_streaming("requested");
      break;
    case CudaSchedule::kPersistent:
      if (r_ok && few_rows) {
        use_resident("requested persistent; weights fit");
      } else if (s_ok) {
        use_streaming(r_ok ? "requested persistent; " + Str(rows_r) + " row tiles per block favour streaming"
                           : "requested persistent; " + why_not_r);
      } else if (r_ok) {
        use_resident("requested persistent; weights fit");
      } else {
        return CudaStatus::Error(pass + ": persistent schedule unavailable: " + why_not_s);
      }
      break;
    case CudaSchedule::kAuto:
    default:
      if (r_ok && few_rows) {
        use_resident("weights fit and the batch is small");
      } else if (s_ok && items_s <= 4 * occ_s * sms) {
        use_streaming(r_ok ? Str(rows_r) + " row tiles per block favour streaming" : why_not_r);
      } else {
        use_stepwise(!s_ok ? why_not_s
                           : Str(items_s) + " tiles per step exceed 4x the " + Str(occ_s * sms) +
                                 " co-resident blocks; launch gaps are small next to a step");
      }
      break;
  }
  // Why the tensor-core tile did not run, where it was asked for.
  if (options.allow_tf32) {
    plan->reason += "; tensor cores not used: " +
                    (tc_ok ? "schedule " + std::string(ScheduleName(requested)) + " requested" : why_not_tc);
  } else if (element_bytes == 4) {
    plan->reason += "; exact float32 products (TF32 not allowed)";
  }
  DescribeTile(NP, G, backward, B, plan);
  return CudaStatus::Ok();
}

const char* ScheduleName(CudaSchedule schedule) {
  switch (schedule) {
    case CudaSchedule::kAuto: return "auto";
    case CudaSchedule::kStepwise: return "stepwise";
    case CudaSchedule::kPersistent: return "persistent";
    case CudaSchedule::kPersistentResident: return "persistent_resident";
    case CudaSchedule::kPersistentStreaming: return "persistent_streaming";
  }
  return "unknown";
}

CudaStatus ParseSchedule(const std::string& name, CudaSchedule* schedule) {
  for (CudaSchedule s : {CudaSchedule::kAuto, CudaSchedule::kStepwise, CudaSchedule::kPersistent,
                         CudaSchedule::kPersistentResident, CudaSchedule::kPersistentStreaming}) {
    if (name == ScheduleName(s)) {
      *schedule = s;
      return CudaStatus::Ok();
    }
  }
  return CudaStatus::Error("schedule must be one of 'auto', 'stepwise', 'persistent', 'persistent_resident', "
                           "'persistent_streaming'; got '" + name + "'");
}

}  // namespace deeprnn
