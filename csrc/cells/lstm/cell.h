// The LSTM cell (Keras LSTMCell: sigmoid recurrent activation, tanh activation), gate order [i, f, c, o]:
//   [a_i | a_f | a_g | a_o] = x Wx + h Wh + b,  i = sigmoid(a_i), f = sigmoid(a_f), g = tanh(a_g), o = sigmoid(a_o),
//   c' = f * c + i * g,  h' = o * tanh(c').
// Kernels [in, 4H], recurrent kernels [H, 4H], bias [1, 4H] (Keras' bias (4H,)); two states per layer, h and c.
//
// Its description for the wavefront engine (engine/cell_description.h). The forward pass saves, per row,
// [i | f | g | o | c'] (c' also being the cell's second state, which the next step reads from there). The grad slots
// are [da_i | da_f | da_g | da_o], both sides in the gate order; dc enters from t + 1 and leaves as dc * f.
#ifndef DEEPRNN_CELLS_LSTM_CELL_H_
#define DEEPRNN_CELLS_LSTM_CELL_H_

#include "deeprnn/stacked.h"
#include "engine/cell_description.h"

namespace deeprnn {

struct LstmCell {
  static constexpr Cell kCell = Cell::kLstm;
  static constexpr CellLayout kLayout = {4, 1, 2, 5};

  static constexpr int kPreSlots = 4;
  static constexpr PreSlot kPre[4] = {{0, 0, 0, -1}, {1, 1, 1, -1}, {2, 2, 2, -1}, {3, 3, 3, -1}};
  static constexpr bool kFusedEpilogue = false;
  static constexpr int kStateSlot[2] = {-1, 4};  // c' in saved slot 4

  static constexpr int kGradSlots = 4;
  static constexpr GradSide kXSide = {0, {0, 1, 2, 3}};
  static constexpr GradSide kHSide = {0, {0, 1, 2, 3}};
  static constexpr bool kDirectH = false;

  template <typename Isa, typename T>
  struct Cpu;  // cells/lstm/cpu_pointwise.h
  template <typename T>
  struct Cuda;  // cells/lstm/cuda_pointwise.cuh
};

}  // namespace deeprnn

#endif  // DEEPRNN_CELLS_LSTM_CELL_H_
