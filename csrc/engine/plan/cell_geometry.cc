// The cells' descriptions as run-time values (engine/plan/cell_geometry.h).
#include "engine/plan/cell_geometry.h"

#include "cells/gru/cell.h"
#include "cells/lstm/cell.h"
#include "cells/rnn/cell.h"

namespace deeprnn {

namespace {

template <typename C>
CellGeometry Describe(const char* label) {
  CellGeometry g{};
  g.cell = C::kCell;
  g.label = label;
  g.gates = C::kLayout.gates;
  g.pre_slots = C::kPreSlots;
  g.states = C::kLayout.states;
  g.saved_slots = C::kLayout.saved_slots;
  g.grad_slots = C::kGradSlots;
  g.bias_rows = C::kLayout.bias_rows;
  g.direct_h = C::kDirectH;
  g.x_first = C::kXSide.first_slot;
  g.h_first = C::kHSide.first_slot;
  for (int i = 0; i < 4; ++i) {
    g.x_gates[i] = i < g.gates ? C::kXSide.gates[i] : -1;
    g.h_gates[i] = i < g.gates ? C::kHSide.gates[i] : -1;
  }
  return g;
}

}  // namespace

CellGeometry GeometryOf(Cell cell) {
  switch (cell) {
    case Cell::kTanh: return Describe<RnnCell<Cell::kTanh>>("tanh");
    case Cell::kRelu: return Describe<RnnCell<Cell::kRelu>>("relu");
    case Cell::kGru: return Describe<GruCell>("GRU");
    case Cell::kLstm: return Describe<LstmCell>("LSTM");
  }
  return Describe<RnnCell<Cell::kTanh>>("tanh");
}

std::vector<GateRun> GateRuns(const int* gates, int count) {
  std::vector<GateRun> runs;
  for (int i = 0; i < count; ++i) {
    if (!runs.empty() && gates[i] == runs.back().gate + runs.back().length) {
      ++runs.back().length;
    } else {
      runs.push_back({i, gates[i], 1});
    }
  }
  return runs;
}

bool BiasGradIsColumnSums(const CellGeometry& geo) {
  if (geo.bias_rows != 1 || geo.x_first != 0 || geo.grad_slots != geo.gates) return false;
  for (int i = 0; i < geo.gates; ++i)
    if (geo.x_gates[i] != i) return false;
  return true;
}

int PositionOfGate(const int* gates, int count, int gate) {
  for (int i = 0; i < count; ++i)
    if (gates[i] == gate) return i;
  return -1;
}

}  // namespace deeprnn
