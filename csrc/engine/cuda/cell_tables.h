// A cell's description (engine/cell_description.h) in the form device code can read. nvcc lets device code use a
// constexpr variable only when it is a scalar, so the per-gate and per-slot tables of the description are packed
// here into unsigned integers, four bits an entry (15: none); Entry(table, i) with i known after unrolling folds
// to a constant.
#ifndef DEEPRNN_ENGINE_CUDA_CELL_TABLES_H_
#define DEEPRNN_ENGINE_CUDA_CELL_TABLES_H_

#include "engine/cell_description.h"
#include "engine/plan/tiles.h"

namespace deeprnn {
namespace cuda {

constexpr int kNone = 15;

DEEPRNN_HOST_DEVICE constexpr int Entry(unsigned table, int i) { return static_cast<int>((table >> (4 * i)) & 15u); }

// The packing, at compile time (outside CellTables: a class cannot call its own constexpr functions in its
// member initialisers).
namespace tables {

// Per pre-activation slot: the gate block of its input product (which 0), of its recurrent product (1), its
// input bias block (2) or recurrent bias block (3).
template <typename Cell>
constexpr unsigned Slots(int which) {
  unsigned t = 0;
  for (int p = 0; p < Cell::kPreSlots; ++p) {
    const PreSlot& s = Cell::kPre[p];
    const int v = which == 0 ? s.x_gate : which == 1 ? s.h_gate : which == 2 ? s.x_bias : s.h_bias;
    t |= static_cast<unsigned>(v < 0 ? kNone : v) << (4 * p);
  }
  return t;
}

// Per gate: the pre-activation slot its x Wx (recurrent: h Wh) columns are accumulated into.
template <typename Cell>
constexpr unsigned SlotOfGate(bool recurrent) {
  unsigned t = 0;
  for (int g = 0; g < Cell::kLayout.gates; ++g) {
    int slot = kNone;
    for (int p = 0; p < Cell::kPreSlots; ++p)
      if ((recurrent ? Cell::kPre[p].h_gate : Cell::kPre[p].x_gate) == g) slot = p;
    t |= static_cast<unsigned>(slot) << (4 * g);
  }
  return t;
}

// Per position of one side of the grad slots: its gate.
template <typename Cell>
constexpr unsigned Side(bool recurrent) {
  const GradSide& side = recurrent ? Cell::kHSide : Cell::kXSide;
  unsigned t = 0;
  for (int i = 0; i < Cell::kLayout.gates; ++i) t |= static_cast<unsigned>(side.gates[i]) << (4 * i);
  return t;
}

// Every gate of both sides feeds one slot; a slot's input bias is its input gate's block (layer 0's projection
// adds bias row 0, blocks 0..G-1, to the gates' columns); at most 4 gates, 8 slots, 2 states.
template <typename Cell>
constexpr bool Consistent() {
  bool ok = Cell::kLayout.gates <= 4 && Cell::kPreSlots <= 8 && Cell::kLayout.states <= 2;
  for (int g = 0; g < Cell::kLayout.gates; ++g)
    ok = ok && Entry(SlotOfGate<Cell>(false), g) != kNone && Entry(SlotOfGate<Cell>(true), g) != kNone;
  for (int p = 0; p < Cell::kPreSlots; ++p)
    ok = ok && (Cell::kPre[p].x_gate < 0 ? Cell::kPre[p].x_bias < 0 : Cell::kPre[p].x_bias == Cell::kPre[p].x_gate);
  return ok;
}

}  // namespace tables

template <typename Cell>
struct CellTables {
  static_assert(tables::Consistent<Cell>(), "the cell's description does not fit the CUDA engine (cell_tables.h)");
  static constexpr int G = Cell::kLayout.gates;
  static constexpr int NP = Cell::kPreSlots;
  static constexpr int S = Cell::kLayout.states;
  static constexpr int SS = Cell::kLayout.saved_slots;
  static constexpr int GS = Cell::kGradSlots;
  static constexpr bool kDirectH = Cell::kDirectH;
  static constexpr int kXFirst = Cell::kXSide.first_slot;
  static constexpr int kHFirst = Cell::kHSide.first_slot;
  static constexpr int kStateSlot1 = S > 1 ? Cell::kStateSlot[1] : kNone;  // the saved slot of a second state
  // Layer 0's projection has G*H values per row and lives in the cell's saved gates when they are that wide (GRU,
  // LSTM), else in the activations (tanh / relu: G = 1).
  static constexpr bool kProjectionInSaved = SS >= G;
  static constexpr unsigned kXGate = tables::Slots<Cell>(0), kHGate = tables::Slots<Cell>(1);
  static constexpr unsigned kXBias = tables::Slots<Cell>(2), kHBias = tables::Slots<Cell>(3);
  static constexpr unsigned kXSlotOfGate = tables::SlotOfGate<Cell>(false);
  static constexpr unsigned kHSlotOfGate = tables::SlotOfGate<Cell>(true);
  static constexpr unsigned kXGateAt = tables::Side<Cell>(false), kHGateAt = tables::Side<Cell>(true);
};

}  // namespace cuda
}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_CUDA_CELL_TABLES_H_
