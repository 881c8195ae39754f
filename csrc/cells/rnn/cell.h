// The tanh / relu RNN cell (Keras SimpleRNNCell): h' = phi(x Wx + h Wh + b). Its description for the wavefront
// engine (engine/cell_description.h). Its pointwise maths is one activation, run in the products' epilogue; only
// where masks or dropout need dh on its own does the backward pass run the cell's pointwise pass
// (cells/rnn/cpu_pointwise.h).
#ifndef DEEPRNN_CELLS_RNN_CELL_H_
#define DEEPRNN_CELLS_RNN_CELL_H_

#include "deeprnn/stacked.h"
#include "engine/cell_description.h"
#include "engine/cpu/tiles.h"

namespace deeprnn {

template <Cell kCellKind>
struct RnnCell {
  static_assert(kCellKind == Cell::kTanh || kCellKind == Cell::kRelu, "RnnCell is the tanh or relu cell");
  static constexpr Cell kCell = kCellKind;
  static constexpr CellLayout kLayout = {1, 1, 1, 0};
  static constexpr cpu::Activation kActivation =
      kCellKind == Cell::kTanh ? cpu::Activation::kTanh : cpu::Activation::kRelu;

  static constexpr int kPreSlots = 1;
  static constexpr PreSlot kPre[1] = {{0, 0, 0, -1}};
  static constexpr bool kFusedEpilogue = true;
  static constexpr int kStateSlot[2] = {-1, -1};

  static constexpr int kGradSlots = 1;  // dZ
  static constexpr GradSide kXSide = {0, {0}};
  static constexpr GradSide kHSide = {0, {0}};
  static constexpr bool kDirectH = false;

  template <typename Isa, typename T>
  struct Cpu;  // cells/rnn/cpu_pointwise.h
  template <typename T>
  struct Cuda;  // cells/rnn/cuda_pointwise.cuh
};

}  // namespace deeprnn

#endif  // DEEPRNN_CELLS_RNN_CELL_H_
