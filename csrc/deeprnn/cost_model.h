// The per-step cost model of the CUDA wavefront (engine/cuda/COST_MODEL.md explains it and tabulates it): for a
// plan (launch_plan.h), the bytes, products and synchronisation of one wavefront step, and a predicted time per
// step and per sequence, so that benchmarks can print prediction beside measurement. Plain host C++, no device.
// The rates default to an H200 (SXM); the grid-barrier cost is an assumption to be replaced by the measured one
// (benchmarks/gpu/check.sh's barrier probe).
#ifndef DEEPRNN_COST_MODEL_H_
#define DEEPRNN_COST_MODEL_H_

#include <cstdint>
#include <string>

#include "deeprnn/launch_plan.h"
#include "deeprnn/stacked.h"

namespace deeprnn {

struct GpuRates {
  double clock_ghz = 1.98;                 // SM clock (H200 boost)
  double fp32_tflops = 67.0;               // FFMA, whole chip
  double fp64_tflops = 34.0;               // DFMA, whole chip (non-tensor)
  double tf32_tflops = 495.0;              // dense TF32 tensor cores, whole chip
  double smem_bytes_per_clk = 128.0;       // shared-memory bandwidth of one SM
  double l2_bytes_per_clk_per_sm = 64.0;   // L2 -> SM bandwidth (assumption)
  double l2_round_trip_us = 0.5;           // one staged chunk: L2 latency plus the block barrier (assumption)
  double mma_latency_clk = 60.0;           // one dependent WMMA step of a warp: fragment loads plus mma (assumption)
  double epilogue_us = 0.5;                // a cell's pointwise epilogue: dependent global loads and stores (assumption)
  double grid_barrier_us = 2.0;            // one grid barrier (assumption: 1-3 us measured elsewhere)
  double launch_gap_us = 4.0;              // one stepwise launch, back to back (assumption)
  double l2_bytes = 50e6;                  // L2 capacity
};

struct StepCost {
  double flop_per_step = 0;                // products of one steady-state step (all min(L, T) layers active)
  std::string unit;                        // which unit does them: "tf32 tensor cores", "fp32 FFMA", "fp64 DFMA"
  int64_t state_bytes_per_step = 0;        // left operands staged from L2 by all blocks of a step
  int64_t weight_bytes_per_step = 0;       // weights read from L2 / HBM per step (0 with weights on chip)
  bool weights_fit_l2 = true;              // streamed weights stay in L2 between steps
  int64_t smem_bytes_per_block = 0;        // shared-memory operand traffic of the busiest block per step
  double products_us = 0;                  // the busiest block's products (max of unit, shared memory, latency)
  double staging_us = 0;                   // its staging (bandwidth plus one round trip per chunk)
  double epilogue_us = 0;
  double sync_us = 0;                      // the grid barrier (persistent) or the launch gap (stepwise)
  double step_us = 0;                      // predicted time of one wavefront step
  double sequence_us = 0;                  // (T + L - 1) steps
  double floor_us = 0;                     // (T + L - 1) grid barriers
  double x_floor = 0;                      // sequence_us / floor_us
};

// Evaluates the model for `plan` (as PlanWavefront returned it for this cell, shape, element size and direction)
// on a device with `sm_count` SMs and `rates`.
StepCost PredictStepCost(Cell cell, const Shape& shape, int element_bytes, Direction direction,
                         const WavefrontPlan& plan, int sm_count, const GpuRates& rates = GpuRates());

}  // namespace deeprnn

#endif  // DEEPRNN_COST_MODEL_H_
