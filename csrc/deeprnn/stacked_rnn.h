// What the CUDA passes of the tanh/relu RNN (deeprnn/stacked_rnn_cuda.h) still name beside deeprnn/stacked.h: the
// activation of the cell. (The CPU engine and the adapters take deeprnn::Cell; the CUDA passes move to it next.)
#ifndef DEEPRNN_STACKED_RNN_H_
#define DEEPRNN_STACKED_RNN_H_

#include "deeprnn/stacked.h"

namespace deeprnn {

enum class Activation : int { kTanh = 0, kRelu = 1 };

}  // namespace deeprnn

#endif  // DEEPRNN_STACKED_RNN_H_
