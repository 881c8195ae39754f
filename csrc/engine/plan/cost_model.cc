// The per-step cost model of the CUDA wavefront (deeprnn/cost_model.h; the reasoning and the tables are in
// engine/cuda/COST_MODEL.md). It models the busiest block of a steady-state step: its products (the slowest of the
// arithmetic unit, the shared-memory operand traffic and, for WMMA, a warp's dependent chain), the staging of its
// left operands from L2 (bandwidth plus one round trip per staged chunk), the pointwise epilogue, and the step's
// synchronisation. Every rate and latency is a GpuRates field, so that measured values replace the assumptions.
#include "deeprnn/cost_model.h"

#include <algorithm>
#include <cstdint>

#include "engine/plan/arithmetic.h"
#include "engine/plan/cell_geometry.h"
#include "engine/plan/tensor_core_tile.h"

namespace deeprnn {

StepCost PredictStepCost(Cell cell, const Shape& shape, int element_bytes, Direction direction,
                         const WavefrontPlan& plan, int sm_count, const GpuRates& r) {
  StepCost c;
  const CellGeometry geo = GeometryOf(cell);
  const bool backward = direction == Direction::kBackward;
  const int64_t B = shape.batch, H = shape.hidden, L = shape.layers, T = shape.time;
  if (B == 0 || T == 0 || plan.bn == 0) return c;
  const int64_t G = geo.gates;
  const int64_t active = std::min(L, T);
  const int64_t segments = L > 1 ? 2 : 1;           // input product and recurrent product (steady state)
  const int64_t k_seg = backward ? G * H : H;       // reduction length of one product
  const int64_t k_total = segments * k_seg;
  const int64_t out_gates = backward ? 1 : G;       // output gate blocks per unit
  const double clk_us = 1.0 / (r.clock_ghz * 1e3);  // microseconds per clock
  const double sms = std::max(1, sm_count);

  // 2 B x [G*H outputs] x H per product forward; 2 B x [H outputs] x G*H backward: the same count.
  c.flop_per_step = 2.0 * B * static_cast<double>(G * H) * static_cast<double>(H) * segments * active;

  // Tiles of the busiest block per step and rows each tile computes (padded).
  const int64_t tiles_per_step = active * plan.row_tiles * plan.col_tiles;
  const int64_t blocks = std::max<int64_t>(1, plan.schedule == CudaSchedule::kStepwise
                                                  ? tiles_per_step
                                                  : std::min<int64_t>(plan.grid, tiles_per_step));
  const int64_t tiles_per_block = plan.weights_on_chip ? plan.row_tiles : plan::CeilDiv(tiles_per_step, blocks);
  const int64_t rows = plan.bm;  // rows a tile computes, padded past B
  const int64_t rows_valid = std::min<int64_t>(rows, B);

  double product_clk = 0;
  if (plan.tensor_cores) {
    c.unit = "tf32 tensor cores";
    const int64_t mma = (rows / kTcFragment) * out_gates * (k_total / kTcK);  // m16n16k8 steps of a tile
    const int frags = TcFragments(TcRowFragments(B), static_cast<int>(G), backward);
    const int64_t busy_warps = static_cast<int64_t>(frags) * TcKSplit(frags);
    const double unit_clk = mma * 4096.0 / (r.tf32_tflops * 1e12 / sms / (r.clock_ghz * 1e9));
    const double smem_clk = mma * (16.0 * 8 + 8 * 16) * 4 / r.smem_bytes_per_clk;
    const double chain_clk = plan::CeilDiv(mma, busy_warps) * r.mma_latency_clk;
    product_clk = std::max({unit_clk, smem_clk, chain_clk});
    c.smem_bytes_per_block = static_cast<int64_t>(mma * 1024 * tiles_per_block);
  } else {
    const bool f64 = element_bytes == 8;
    c.unit = f64 ? "fp64 DFMA" : "fp32 FFMA";
    const int64_t warps = kWavefrontThreads / 32;
    const double steps = static_cast<double>(k_total) / std::max(1, plan.ks);  // reduction steps of a thread
    // Per step a thread loads TM values of A and G*TN of B (one shared-memory wavefront per warp instruction,
    // conflict-free or broadcast) and does TM x G*TN FMAs (4 warp instructions per clock per SM; fp64 at half).
    const double smem_clk = warps * steps * (plan.tm + out_gates * plan.tn);
    const double fma_clk = warps * steps * plan.tm * plan.tn * out_gates / 4.0 * (f64 ? 2.0 : 1.0);
    product_clk = std::max(smem_clk, fma_clk);
    c.smem_bytes_per_block =
        static_cast<int64_t>(warps * steps * (plan.tm + out_gates * plan.tn) * 32 * element_bytes * tiles_per_block);
  }
  c.products_us = product_clk * clk_us * tiles_per_block;

  // Staging: the tile's rows of both products' left operands; streamed weights on top. One round trip per chunk.
  const int64_t a_bytes = rows_valid * k_total * element_bytes;
  const int64_t w_bytes = plan.weights_on_chip ? 0 : k_total * out_gates * plan.bn * element_bytes;
  const int64_t chunk = plan.tensor_cores ? kTcChunk : std::max(1, plan.bk);
  const int64_t chunks = plan.tensor_cores ? segments * plan::CeilDiv(TcSegmentK(H, static_cast<int>(G), backward), chunk)
                                           : segments * plan::CeilDiv(k_seg, chunk);
  c.staging_us = tiles_per_block * ((a_bytes + w_bytes) / r.l2_bytes_per_clk_per_sm * clk_us +
                                    chunks * r.l2_round_trip_us);
  c.state_bytes_per_step = tiles_per_step * a_bytes;
  const int64_t weights_all = L * segments * G * H * H * element_bytes;
  c.weights_fit_l2 = weights_all <= r.l2_bytes;
  c.weight_bytes_per_step = plan.weights_on_chip ? 0 : tiles_per_step * w_bytes;
  c.epilogue_us = r.epilogue_us * tiles_per_block;
  c.sync_us = plan.schedule == CudaSchedule::kStepwise ? r.launch_gap_us : r.grid_barrier_us;
  c.step_us = c.products_us + c.staging_us + c.epilogue_us + c.sync_us;
  const int64_t steps = T + L - 1;
  c.sequence_us = c.step_us * steps;
  c.floor_us = r.grid_barrier_us * steps;
  c.x_floor = c.floor_us > 0 ? c.sequence_us / c.floor_us : 0;
  return c;
}

}  // namespace deeprnn
