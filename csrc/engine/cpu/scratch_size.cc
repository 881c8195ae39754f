// The CPU backward pass's scratch (engine/cpu/backward.h): the ring of grad slots per layer (GradCells cells), then
// the rolling dh and dc buffers of two cells per layer.
#include "cells/gru/cell.h"
#include "cells/lstm/cell.h"
#include "cells/rnn/cell.h"
#include "deeprnn/stacked.h"
#include "engine/cpu/wavefront.h"

namespace deeprnn {

namespace {

template <typename Cell>
int64_t ScratchSizeOf(const Shape& shape, int element_bytes) {
  const CellLayout layout = Cell::kLayout;
  const int64_t weight_bytes = element_bytes * LargestLayerWeights(shape, layout.gates);
  const int64_t cells = GradCells(shape.batch, shape.time, weight_bytes);
  const int64_t cell_values = shape.batch * shape.hidden;
  int64_t size = shape.layers * cells * shape.batch * AliasFreeRowStride(Cell::kGradSlots * shape.hidden, element_bytes);
  size += shape.layers * 2 * cell_values;                             // dh (also the tanh/relu cell's, for masks)
  if (layout.states > 1) size += shape.layers * 2 * cell_values;      // dc
  return size;
}

}  // namespace

int64_t StackedBackwardCpuGradRowStride(Cell cell, int64_t hidden, int element_bytes) {
  const int slots = cell == Cell::kGru ? GruCell::kGradSlots : cell == Cell::kLstm ? LstmCell::kGradSlots : 1;
  return AliasFreeRowStride(slots * hidden, element_bytes);
}

int64_t StackedBackwardCpuScratchSize(Cell cell, const Shape& shape, int element_bytes) {
  switch (cell) {
    case Cell::kTanh: return ScratchSizeOf<RnnCell<Cell::kTanh>>(shape, element_bytes);
    case Cell::kRelu: return ScratchSizeOf<RnnCell<Cell::kRelu>>(shape, element_bytes);
    case Cell::kGru: return ScratchSizeOf<GruCell>(shape, element_bytes);
    case Cell::kLstm: return ScratchSizeOf<LstmCell>(shape, element_bytes);
  }
  return 0;
}

}  // namespace deeprnn
