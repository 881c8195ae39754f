// A cell's description (csrc/cells/<cell>/cell.h) as run-time values, for the host code of the CUDA passes: the
// planner, the workspace layouts and the backward pass's products, which choose sizes and column blocks at run time.
#ifndef DEEPRNN_ENGINE_PLAN_CELL_GEOMETRY_H_
#define DEEPRNN_ENGINE_PLAN_CELL_GEOMETRY_H_

#include <vector>

#include "deeprnn/stacked.h"

namespace deeprnn {

struct CellGeometry {
  Cell cell;
  const char* label;  // in the planner's reasons and errors: "tanh", "relu", "GRU", "LSTM"
  int gates;          // G
  int pre_slots;      // accumulators per unit of the forward products
  int states;         // S
  int saved_slots;    // SS
  int grad_slots;     // GS
  int bias_rows;
  bool direct_h;      // h' depends on h directly (a carry of dh between time steps)
  int x_first, h_first;        // first grad slot of the input side and of the recurrent side
  int x_gates[4], h_gates[4];  // the gate at each position of the two sides
};

CellGeometry GeometryOf(Cell cell);

// A run of consecutive gates on one side of the grad slots: positions [position, position + length) hold gates
// [gate, gate + length), so that one product covers them.
struct GateRun {
  int position;
  int gate;
  int length;
};
std::vector<GateRun> GateRuns(const int* gates, int count);

// Whether a layer's bias gradient is the column sums of its grad slots as they are (one bias row, and the input
// side is every grad slot in the gate order: tanh / relu, LSTM), so that the sums need no rearranging.
bool BiasGradIsColumnSums(const CellGeometry& geo);

// The position of `gate` on a side (its gates listed in order), or -1.
int PositionOfGate(const int* gates, int count, int gate);

}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_PLAN_CELL_GEOMETRY_H_
