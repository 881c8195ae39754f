// What a cell tells the wavefront engine about itself. The engine (engine/cpu, and the CUDA engine) owns everything
// around the maths - the wavefront schedules, the products, the weight gradients, threads, batch blocks - and a cell
// brings only this description and its pointwise maths (csrc/cells/<cell>/). A cell is a type with these members:
//
//   kCell                  the deeprnn::Cell it implements
//   kLayout                its CellLayout (deeprnn/stacked.h): gate blocks, bias rows, states, saved slots
//
// Forward. A cell's products are "pre-activation slots", each H wide:
//   kPreSlots, kPre[]      slot p = x Wx[:, gate kPre[p].x_gate] + h Wh[:, gate kPre[p].h_gate] + the bias blocks
//                          kPre[p].x_bias and kPre[p].h_bias (indices into the bias viewed as bias_rows * G blocks
//                          of H), -1 where a term is absent. E.g. the GRU: [z_pre | r_pre | xn | q].
//   kFusedEpilogue         true for a cell whose pointwise maths is one activation of its single slot (tanh/relu):
//                          it then runs in the products' epilogue, with no pointwise pass and no slot buffer
//   kStateSlot[s]          where state s > 0 of a cell lives: in slot kStateSlot[s] of the cell's saved gates
//                          (state 0, h, lives in the activations)
//   Cpu<Isa, T>::Forward   the pointwise pass over a tile (engine/cpu/pointwise.h), unless kFusedEpilogue
//
// Backward. The pointwise pass turns dLoss/dh (every path summed) into the gradients with respect to the slots'
// arguments, "grad slots" [kGradSlots * H] per row, laid out so that both sides the products need are contiguous:
//   kXSide = {first slot, gate order}  the gradient of x Wx: slots first.. in the order of the gates listed
//   kHSide = {first slot, gate order}  the gradient of h Wh likewise
//   kDirectH               the cell's h' depends on h directly (the GRU's z * h): the pass overwrites dh with the
//                          part of the gradient that reaches h_{t-1} that way
//   Cpu<Isa, T>::Backward  the pointwise pass (unless kFusedEpilogue: then the single grad slot is dZ = dh phi'(z))
// A state s > 0 (the LSTM's c) has no product: its gradient reaches the cell as `dc` and leaves it as `dc_prev`.
#ifndef DEEPRNN_ENGINE_CELL_DESCRIPTION_H_
#define DEEPRNN_ENGINE_CELL_DESCRIPTION_H_

namespace deeprnn {

// One pre-activation slot of a cell's forward products.
struct PreSlot {
  int x_gate;  // gate block of Wx multiplied by x, or -1
  int h_gate;  // gate block of Wh multiplied by h, or -1
  int x_bias;  // bias block added, or -1 (block i is row i / G, gate i % G of the [bias_rows, G*H] bias)
  int h_bias;  // a second bias block added, or -1
};

// The gates of one side of the backward products, in the order they sit in the grad slots.
struct GradSide {
  int first_slot;
  int gates[4];  // gate blocks, `gates` of them (CellLayout::gates)
};

}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_CELL_DESCRIPTION_H_
