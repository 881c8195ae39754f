// The tiles a cell's pointwise passes work on (engine/cell_description.h): rows [0, m) and units [j0, j1) of one cell,
// every pointer at the tile's row 0. Plain structs, shared by every instruction set.
#ifndef DEEPRNN_ENGINE_CPU_POINTWISE_H_
#define DEEPRNN_ENGINE_CPU_POINTWISE_H_

#include <cstdint>

namespace deeprnn {
namespace cpu {

constexpr int kStateDestinations = 4;

template <typename T>
struct PointwiseForward {
  const T* pre = nullptr;  // the pre-activation slots, slot p at column p * hidden
  int64_t pre_ld = 0;
  T* saved = nullptr;      // the cell's saved gates (null for a cell that saves none)
  int64_t saved_ld = 0;
  // Streaming stores for `saved` are allowed (nothing reads it before the backward pass, long after it has left
  // every cache); the pass still checks the alignment.
  bool stream_saved = false;
  const T* prev[2] = {nullptr, nullptr};  // the previous states (h, and c for a second state)
  int64_t prev_ld[2] = {0, 0};
  // New state s to out[s][0..3]: the state, the output, the final state, the padded operand copy (forward.h).
  T* out[2][kStateDestinations] = {};
  int64_t out_ld[2][kStateDestinations] = {};
  int64_t hidden = 0;
};

template <typename T>
struct PointwiseBackward {
  const T* saved = nullptr;  // the cell's saved gates
  int64_t saved_ld = 0;
  const T* prev[2] = {nullptr, nullptr};  // the previous states
  int64_t prev_ld[2] = {0, 0};
  const T* h = nullptr;  // the cell's new h (what the tanh/relu cell's derivative is written with)
  int64_t h_ld = 0;
  T* dh = nullptr;  // in: dLoss/dh of the cell; out (kDirectH): the part that reaches h_{t-1} directly
  int64_t dh_ld = 0;
  const T* dc = nullptr;  // second state: dLoss/dc of the cell, from t + 1 or the final state's gradient
  int64_t dc_ld = 0;
  T* dc_prev = nullptr;   // second state: out, dLoss/dc_{t-1}
  int64_t dc_prev_ld = 0;
  T* grad = nullptr;      // out: the grad slots
  int64_t grad_ld = 0;
  int64_t hidden = 0;
};

}  // namespace cpu
}  // namespace deeprnn

#endif  // DEEPRNN_ENGINE_CPU_POINTWISE_H_
