// The GRU cell (Keras GRUCell, reset_after=True, the cuDNN-compatible form), gate order [z, r, n]:
//   z = sigmoid(x Wx_z + bx_z + h Wh_z + bh_z),  r likewise,  q = h Wh_n + bh_n,  n = tanh(x Wx_n + bx_n + r * q),
//   h' = z * h + (1 - z) * n.
// Biases [2, 3H]: row 0 the input bias bx, row 1 the recurrent bias bh (Keras' layout).
//
// Its description for the wavefront engine (engine/cell_description.h). The forward pass saves, per row, the gates
// [z | r | n | q] so that the backward pass recomputes nothing. The backward pass's grad slots are
// [da_n | da_z | da_r | da_n * r] (a_* the arguments of the gates' nonlinearities): the input side sees
// (da_z, da_r, da_n) and the recurrent side (da_z, da_r, da_n r), and this order makes both contiguous - the input
// side is slots 0-2 in the gate order (n, z, r), the recurrent side slots 1-3 in the order (z, r, n).
#ifndef DEEPRNN_CELLS_GRU_CELL_H_
#define DEEPRNN_CELLS_GRU_CELL_H_

#include "deeprnn/stacked.h"
#include "engine/cell_description.h"

namespace deeprnn {

struct GruCell {
  static constexpr Cell kCell = Cell::kGru;
  static constexpr CellLayout kLayout = {3, 2, 1, 4};

  // z and r sum their products and both biases (blocks 0 + 3, 1 + 4); n keeps its input part and recurrent part q
  // apart, because r multiplies q alone.
  static constexpr int kPreSlots = 4;
  static constexpr PreSlot kPre[4] = {{0, 0, 0, 3}, {1, 1, 1, 4}, {2, -1, 2, -1}, {-1, 2, -1, 5}};
  static constexpr bool kFusedEpilogue = false;
  static constexpr int kStateSlot[2] = {-1, -1};

  static constexpr int kGradSlots = 4;
  static constexpr GradSide kXSide = {0, {2, 0, 1}};
  static constexpr GradSide kHSide = {1, {0, 1, 2}};
  static constexpr bool kDirectH = true;  // h' = z h + ...: dh z reaches h_{t-1} directly

  template <typename Isa, typename T>
  struct Cpu;  // cells/gru/cpu_pointwise.h
  template <typename T>
  struct Cuda;  // cells/gru/cuda_pointwise.cuh
};

}  // namespace deeprnn

#endif  // DEEPRNN_CELLS_GRU_CELL_H_
