// What the CUDA passes of the GRU (deeprnn/stacked_gru_cuda.h) still name beside deeprnn/stacked.h. (The CPU engine
// and the adapters take deeprnn/stacked.h's argument structs; the CUDA passes move to them next.)
#ifndef DEEPRNN_STACKED_GRU_H_
#define DEEPRNN_STACKED_GRU_H_

#include <cstdint>

#include "deeprnn/stacked_rnn.h"

namespace deeprnn {

// Values per row of one cell's gates: z, r, n, q (each H wide).
constexpr int64_t kGruGateSlots = 4;

template <typename T>
using GruWeights = Weights<T>;
template <typename T>
using GruWeightGrads = WeightGrads<T>;

}  // namespace deeprnn

#endif  // DEEPRNN_STACKED_GRU_H_
