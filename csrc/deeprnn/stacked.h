// deeprnn: a framework-free library for fused stacked (deep) recurrent networks, one wavefront engine over several
// cells. Every entry point, CPU (this file) and CUDA (deeprnn/stacked_cuda.h), takes the argument structs below.
//
// The recurrence, per layer l = 0..L-1 and time step t = 0..T-1, with x = H_t^(l-1) (X_t for l = 0) and the layer's
// previous state s = S_{t-1}^(l) (the initial state at t = 0):
//   S_t^(l) = cell(x W_x^(l), s, s.h W_h^(l), b^(l))
// where the cell is one of
//   tanh / relu  h' = phi(x Wx + h Wh + b)                               (Keras SimpleRNNCell)
//   gru          z = sig(x Wx_z + bx_z + h Wh_z + bh_z), r likewise,     (Keras GRUCell, reset_after=True,
//                n = tanh(x Wx_n + bx_n + r * (h Wh_n + bh_n)),           gate order z, r, n)
//                h' = z * h + (1 - z) * n
//   lstm         [i f g o] = x Wx + h Wh + b,  i, f, o sigmoid, g tanh,   (Keras LSTMCell, gate order i, f, c, o)
//                c' = f * c + i * g,  h' = o * tanh(c')
//
// Conventions (stated once, as in lmnt-com/haste):
// - Shapes are written [A,B,C]; the rightmost dimension is the fastest (row major, dense, no padding).
// - B = batch, T = time steps, D = input features, H = hidden units of every layer, L = layers, G = the cell's gate
//   blocks (CellLayout::gates), S = the cell's state tensors per layer (CellLayout::states).
// - X is batch major [B,T,D] like Keras; everything kept per cell ("activations", "saved") is time major
//   [L,T,B,...] so that one cell (l, t) is one contiguous block.
// - Weights come as L separate pointers because layer 0's input kernel is [D, G*H] and the others' are [H, G*H].
//   A layer's weight matrices hold the G gate blocks of H columns side by side in the cell's gate order (Keras'
//   layout): kernels [in, G*H], recurrent kernels [H, G*H], biases [bias_rows, G*H].
// - States are [L,S,B,H]: state 0 is h (the output), state 1 the LSTM's cell state c.
// - CPU functions take host pointers; CUDA functions take device pointers.
// - Sizes are int64_t everywhere: element offsets may pass 2^31.
// - Nothing here knows TensorFlow, Python or any allocator; callers own every buffer.
//
// Wavefront: cell (l, t) needs (l, t-1) and (l-1, t), so the cells with l + t = s are independent. The forward pass
// walks s = 0..T+L-2 and computes every active layer of step s together; the backward pass walks s downwards.
// Results never depend on how work is split across threads: every output element is reduced in a fixed order.
#ifndef DEEPRNN_STACKED_H_
#define DEEPRNN_STACKED_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace deeprnn {

// The cell of every layer. The numbers are part of the binary interface of the adapters (never renumber).
enum class Cell : int { kTanh = 0, kRelu = 1, kGru = 2, kLstm = 3 };

// How a cell's buffers are laid out: what adapters need to size and check every argument.
struct CellLayout {
  int gates;        // G: gate blocks of H columns in every weight matrix (1, 3, 4)
  int bias_rows;    // rows of a layer's bias [bias_rows, G*H]: 2 for the GRU (input bias, recurrent bias), else 1
  int states;       // S: state tensors per layer: 2 for the LSTM (h, c), else 1
  int saved_slots;  // H-wide slots per row of a cell's saved gates: tanh/relu 0, GRU 4 [z|r|n|q], LSTM 5 [i|f|g|o|c]
};

CellLayout LayoutOf(Cell cell);
// "tanh", "relu", "gru", "lstm": the one name of a cell in every adapter.
const char* CellName(Cell cell);
// The cell named `name`; false (and *cell untouched) for any other name.
bool CellFromName(const std::string& name, Cell* cell);

// Problem sizes. Any of batch/time may be 0; input, hidden and layers are >= 1.
struct Shape {
  int64_t batch;   // B
  int64_t time;    // T
  int64_t input;   // D (with token inputs: the vocabulary size, the rows of kernels[0])
  int64_t hidden;  // H
  int64_t layers;  // L
};

// Runs fn(begin, end) over a partition of [0, n) on some threads and returns when all are done. The library gives
// every index the same work whatever the partition, so results never depend on the thread count.
using ParallelFor = std::function<void(int64_t n, const std::function<void(int64_t, int64_t)>& fn)>;

// Runs everything on the calling thread.
void SerialFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

template <typename T>
struct Weights {
  const T* const* kernels;            // L pointers: [D, G*H] for layer 0, [H, G*H] for the others (W_x)
  const T* const* recurrent_kernels;  // L pointers: [H, G*H] (W_h)
  const T* const* biases;             // L pointers: [bias_rows, G*H] (b); the backward pass never reads them
};

template <typename T>
struct WeightGrads {
  T* const* kernels;            // L pointers, shaped as Weights::kernels; overwritten
  T* const* recurrent_kernels;  // L pointers, shaped as Weights::recurrent_kernels; overwritten
  T* const* biases;             // L pointers: [bias_rows, G*H]; overwritten
};

// The inputs of layer 0: dense features, or tokens. A token input is what a one-hot input computes (X_t W_x^(0)
// with X_t one-hot is row tokens[b, t] of W_x^(0)) without the one-hot tensor or the product: kernels[0] is then
// [V, G*H] for a vocabulary of V = shape.input tokens, and its gradient a sum of rows.
template <typename T>
struct Inputs {
  const T* dense = nullptr;         // [B,T,D], or null with tokens
  const int32_t* tokens = nullptr;  // [B,T] in [0, D), or null with dense inputs
};

// What Keras' masking and the three kinds of dropout do to the recurrence; every pointer may be null (absent).
// The same struct goes to the forward and the backward pass, which must see the same masks.
//
// Mask (Keras' masking): at a step with mask[b, t] == 0 every layer keeps its states for row b (S_t = S_{t-1}), and
// the output repeats the last output of a step that was not masked (zeros before the first one); with
// zero_output_for_mask the output of a masked step is zero instead (keras.layers.RNN's zero_output_for_mask, which
// Bidirectional sets).
//
// Dropout masks hold 0 or 1 / (1 - rate) (drawn by the caller, e.g. the Keras layer from its seed generator):
// - input: Keras' `dropout`: per layer l, [input_masks, B, in_l] (in_0 = D; with tokens, a mask over the
//   vocabulary: the one-hot input's column tokens[b, t]), multiplying the cell's input x before its input product,
//   the same at every step; input_masks is 1 (one mask for every gate) or G (one per gate, in gate order: Keras'
//   implementation 1, which its GRU and LSTM cells use whenever recurrent_dropout is on);
// - recurrent: Keras' `recurrent_dropout`: per layer, [recurrent_masks, B, H] multiplying h_{t-1} before the
//   recurrent product only (the GRU's z * h_{t-1} and the LSTM's c are not dropped), the same at every step;
//   recurrent_masks is 1 or G as above;
// - between: PyTorch's `dropout` of a stacked RNN: [L-1, T, B, H], a fresh mask for every step multiplying
//   h_t^(l) where it enters layer l + 1 (the recurrence of layer l keeps the undropped state).
template <typename T>
struct Modifiers {
  const uint8_t* mask = nullptr;  // [B,T]: nonzero = the step is taken
  bool zero_output_for_mask = false;
  const T* const* input_dropout = nullptr;  // L pointers, each [input_masks, B, in_l]; or null
  int input_masks = 1;
  const T* const* recurrent_dropout = nullptr;  // L pointers, each [recurrent_masks, B, H]; or null
  int recurrent_masks = 1;
  const T* between_dropout = nullptr;  // [L-1,T,B,H]; or null (and always null for L = 1)

  bool any_dropout() const { return input_dropout || recurrent_dropout || between_dropout; }
};

template <typename T>
struct ForwardArgs {
  Cell cell = Cell::kTanh;
  Shape shape{};
  Inputs<T> inputs;
  Weights<T> weights{};
  const T* initial_states = nullptr;  // [L,S,B,H]
  T* outputs = nullptr;               // [B,T,H]    out: the top layer's h sequence
  T* final_states = nullptr;          // [L,S,B,H]  out: S_{T-1}^(l) (the initial states when T = 0)
  T* activations = nullptr;           // [L,T,B,H]  out: every h of every cell, kept for the backward pass
  T* saved = nullptr;                 // [L,T,B,saved_slots*H] out: the gates the backward pass needs (null when
                                      //            the cell saves none)
  Modifiers<T> modifiers;             // masks and dropout, see Modifiers
};

template <typename T>
struct BackwardArgs {
  Cell cell = Cell::kTanh;
  Shape shape{};
  Inputs<T> inputs;                        // as given to the forward pass
  Weights<T> weights{};                    // as given to the forward pass (biases not read; may hold nulls)
  const T* initial_states = nullptr;       // [L,S,B,H]
  const T* activations = nullptr;          // [L,T,B,H]  as the forward pass wrote them
  const T* saved = nullptr;                // [L,T,B,saved_slots*H] likewise (null when the cell saves none)
  const T* grad_outputs = nullptr;         // [B,T,H]    dLoss/d outputs
  const T* grad_final_states = nullptr;    // [L,S,B,H]  dLoss/d final_states
  T* grad_inputs = nullptr;                // [B,T,D]    out; null when not wanted (it is then not computed; always
                                           //            null with tokens)
  WeightGrads<T> grad_weights{};           // out
  T* grad_initial_states = nullptr;        // [L,S,B,H]  out
  Modifiers<T> modifiers;                  // as given to the forward pass
};

// --- CPU ---

// Forward pass on the CPU.
template <typename T>
void StackedForwardCpu(const ForwardArgs<T>& args, const ParallelFor& parallel_for);

// Backward pass on the CPU: gradients of a scalar loss with respect to every input of the forward pass. `scratch`
// holds at least StackedBackwardCpuScratchSize(cell, shape, sizeof(T)) values of T; it holds, per cell and row, the
// gradients with respect to the arguments of the cell's nonlinearities (for tanh/relu with a batch below 128 it ends
// holding dLoss/dZ [L,T,B,H] of every cell; other shapes keep only what the schedule needs).
template <typename T>
void StackedBackwardCpu(const BackwardArgs<T>& args, T* scratch, const ParallelFor& parallel_for);

int64_t StackedBackwardCpuScratchSize(Cell cell, const Shape& shape, int element_bytes);
// The row stride, in values, of the grad slots at the start of that scratch ([L, cells, B, stride]): the cell's
// grad slots times H, padded by a cache line where that is a multiple of 4 KB.
int64_t StackedBackwardCpuGradRowStride(Cell cell, int64_t hidden, int element_bytes);

// The instruction set the CPU passes run on: "avx512", "avx2" or "generic" (baseline x86-64 or any other target),
// the best the processor has, chosen once per process. DEEPRNN_FAST_CPU_ISA=avx512|avx2|generic forces one (an
// instruction set the processor lacks is an error at the first call); "avx512emu" runs the AVX-512 kernels' code
// (16-lane vectors, their tiles and masked tails) through AVX2 instructions, so that tests can check that code on
// processors without AVX-512.
const char* CpuKernelIsa();
// Empty when CpuKernelIsa() can run here, else why not (a forced instruction set the processor lacks).
std::string CpuKernelIsaError();
// The instruction sets this processor can run, by the names DEEPRNN_FAST_CPU_ISA takes.
std::vector<std::string> CpuKernelIsas();

}  // namespace deeprnn

#endif  // DEEPRNN_STACKED_H_
