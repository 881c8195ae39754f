// deeprnn_fast._kernels: the kernel library (csrc/deeprnn) for Python without TensorFlow, one template over the cells
// (tanh, relu, GRU, LSTM; deeprnn/stacked.h):
// - forward_cpu / backward_cpu run the CPU passes on NumPy arrays;
// - forward_cuda / backward_cuda run the CUDA passes (deeprnn/stacked_cuda.h) on CUDA arrays of any library that
//   exposes __cuda_array_interface__ (PyTorch, CuPy, Numba), on the stream given (a cudaStream_t as an int,
//   0 = default);
// - plan() shows the launch plan the CUDA passes would use (on the current device, or on device properties given
//   as a dict, which needs no GPU and no CUDA build); workspace_bytes() the CUDA workspace a pass needs.
// The cell is the keyword-only `cell` ("tanh", "relu", "gru", "lstm"); without it, `activation` ("tanh" / "relu")
// names the RNN's cell, as the entry points did before they took every cell, and gru_forward_cpu & co. remain the
// GRU's entry points with their former signatures. Layouts: those of deeprnn/stacked.h, with the cell's G gate
// blocks in the weights, `gates` the saved gates [L,T,B,SS*H] (GRU, LSTM), states [L,B,H] ([L,2,B,H] for the
// LSTM), and grad_preactivations the grad slots [L,T,B,GS*H]. Layer 0 reads int32 token ids when `inputs` is a
// [B,T] int32 array: kernels[0] is then [V, G*H] and there is no grad_inputs (None).
// Every function writes into output arrays the caller allocated (so that a check can poison them first) and checks
// every argument before any kernel runs, raising a one-line ValueError / TypeError that names it: the call's
// arguments are bound by name here, not by pybind11 (call_arguments.h); arrays must match the kernels' layout down
// to byte order, alignment and contiguity, per-layer lists are lists or tuples held by owning references for the
// whole call (the GIL is released while the kernels run), and no output may share memory with another argument
// (array_arguments.h). Without a CUDA build (DEEPRNN_WITH_CUDA undefined) the CUDA entry points raise RuntimeError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "deeprnn/cost_model.h"
#include "deeprnn/launch_plan.h"
#include "deeprnn/stacked.h"
#include "deeprnn/stacked_cuda.h"
#include "python/array_arguments.h"
#include "python/call_arguments.h"

namespace py = pybind11;

namespace deeprnn_fast {
namespace {

using deeprnn::Cell;
using deeprnn::Shape;

[[noreturn, maybe_unused]] void NoCuda(const char* what) {
  throw std::runtime_error(std::string(what) +
                           ": deeprnn_fast._kernels was built without CUDA (no nvcc at build time, or "
                           "DEEPRNN_FAST_CUDA=0); rebuild on a machine with the CUDA toolkit");
}

// ---- the cell of a call ----

Cell ParseActivation(py::handle obj) {
  const std::string name = StrArg(obj, "activation");
  if (name == "tanh") return Cell::kTanh;
  if (name == "relu") return Cell::kRelu;
  throw py::value_error("activation must be 'tanh' or 'relu'; got " + Quoted(name));
}

Cell ParseCell(py::handle obj) {
  const std::string name = StrArg(obj, "cell");
  Cell cell;
  if (name == "rnn") return Cell::kTanh;  // the former name of the tanh / relu RNN's plans (they plan the same)
  if (deeprnn::CellFromName(name, &cell)) return cell;
  throw py::value_error("cell must be 'tanh', 'relu', 'gru' or 'lstm' ('rnn': tanh); got " + Quoted(name));
}

// The keyword-only `cell` where given, else the RNN's `activation`. With `cell` given, `activation` stays at its
// default ('tanh') or names the same cell.
Cell ResolveCell(const BoundArgs& a) {
  const Cell activation = ParseActivation(a["activation"]);
  if (a["cell"].is_none()) return activation;
  const Cell cell = ParseCell(a["cell"]);
  if (activation != Cell::kTanh && activation != cell)
    throw py::value_error(std::string("activation 'relu' contradicts cell '") + deeprnn::CellName(cell) +
                          "' (give one of them)");
  return cell;
}

// How a weight's columns are split, for messages about weight shapes.
std::string GateColumns(Cell cell) {
  switch (cell) {
    case Cell::kGru: return "3 * units) (gates z, r, n side by side";
    case Cell::kLstm: return "4 * units) (gates i, f, c, o side by side";
    default: return "units";
  }
}

// GS: the grad slots per row of the cell's backward pass, H wide each.
int64_t GradSlots(Cell cell) { return deeprnn::StackedBackwardCudaScratchSize(cell, Shape{1, 1, 1, 1, 1}); }

// ---- the problem of a call ----

// B, T, D from inputs [B,T,D] (or token ids [B,T] and D = kernels[0]'s rows), H and L from kernels, the way the
// TF op reads them.
struct Problem {
  Cell cell;
  deeprnn::CellLayout layout;
  Shape shape;
  int itemsize;
  bool tokens;
};

Problem ReadProblem(ViewFn view, Cell cell, py::handle inputs, py::handle kernels) {
  Problem p;
  p.cell = cell;
  p.layout = deeprnn::LayoutOf(cell);
  const int64_t G = p.layout.gates;
  ArrayView x = view(inputs, "inputs");
  p.tokens = x.shape.size() == 2 && x.kind == 'i';
  if (p.tokens && x.itemsize != 4)
    throw py::type_error("inputs must be float32 or float64, or token inputs must be int32 ids of shape (batch, "
                         "time); got " + DtypeText(x.kind, x.itemsize));
  if (!p.tokens && x.shape.size() != 3)
    throw py::value_error("inputs must have shape (batch, time, features), or be int32 token ids (batch, time); "
                          "got " + DimsText(x.shape));
  if (!p.tokens && (x.kind != 'f' || (x.itemsize != 4 && x.itemsize != 8)))
    throw py::type_error("inputs must be float32 or float64 (or int32 token ids); got " +
                         DtypeText(x.kind, x.itemsize));
  std::vector<py::object> k = LayerList(kernels, "kernels", -1);
  if (k.empty()) throw py::value_error("kernels must hold at least one array (one per layer)");
  ArrayView k0 = view(k[0], "kernels[0]");
  const std::string rows = p.tokens ? "vocabulary" : std::to_string(x.shape[2]);
  if (k0.shape.size() != 2 || (!p.tokens && k0.shape[0] != x.shape[2]) || k0.shape[1] % G != 0)
    throw py::value_error("kernels[0] must have shape (" + rows + ", " + GateColumns(cell) + "); got " +
                          DimsText(k0.shape));
  if (p.tokens && (k0.kind != 'f' || (k0.itemsize != 4 && k0.itemsize != 8)))
    throw py::type_error("kernels[0] must be float32 or float64; got " + DtypeText(k0.kind, k0.itemsize));
  p.shape = {x.shape[0], x.shape[1], k0.shape[0], k0.shape[1] / G, static_cast<int64_t>(k.size())};
  p.itemsize = p.tokens ? k0.itemsize : x.itemsize;
  if (p.shape.input < 1)
    throw py::value_error(p.tokens ? "kernels[0] must have at least one row (the vocabulary); got shape " +
                                         DimsText(k0.shape)
                                   : "inputs must have at least one feature (its last dimension); got shape " +
                                         DimsText(x.shape));
  if (p.shape.hidden < 1)
    throw py::value_error("kernels[0] must have at least one unit (its last dimension); got shape " +
                          DimsText(k0.shape));
  return p;
}

// The masks and dropout keyword arguments of an entry point (all None for the GRU's former ones, which have none).
struct ModifierHandles {
  py::object mask = py::none(), zero_output_for_mask = py::none(), input_dropout = py::none(),
             recurrent_dropout = py::none(), between_dropout = py::none();
};

// Every array argument of one pass, checked against the cell's layout and held alive (the GIL is released while
// the kernels run), for the overlap check and the producer streams of CUDA arrays.
template <typename T>
struct PassArrays {
  const Problem& p;
  std::vector<const T*> kernels, recurrent_kernels, biases;
  std::vector<T*> grad_kernels, grad_recurrent_kernels, grad_biases;
  std::vector<const T*> input_dropout, recurrent_dropout;
  std::vector<ArrayView> views;

  explicit PassArrays(const Problem& problem) : p(problem) {}

  std::vector<int64_t> StatesShape() const {
    const Shape& s = p.shape;
    if (p.layout.states == 1) return {s.layers, s.batch, s.hidden};
    return {s.layers, p.layout.states, s.batch, s.hidden};
  }
  std::vector<int64_t> BiasShape() const {
    const int64_t width = p.layout.gates * p.shape.hidden;
    if (p.layout.bias_rows == 1) return {width};
    return {p.layout.bias_rows, width};
  }
  std::vector<int64_t> KernelShape(int64_t l) const {
    return {l == 0 ? p.shape.input : p.shape.hidden, p.layout.gates * p.shape.hidden};
  }

  const T* In(ViewFn view, py::handle obj, const std::string& name, const std::vector<int64_t>& shape) {
    views.push_back(view(obj, name));
    Expect(views.back(), shape, sizeof(T));
    return static_cast<const T*>(views.back().data);
  }
  T* Out(ViewFn view, py::handle obj, const std::string& name, const std::vector<int64_t>& shape) {
    views.push_back(view(obj, name));
    views.back().output = true;
    Expect(views.back(), shape, sizeof(T));
    return static_cast<T*>(views.back().data);
  }
  // The token ids [B,T]. On the host (check_values) every id must index a row of kernels[0]: the CPU passes read
  // them without further checks. The CUDA passes clamp ids on the device and count the bad ones (invalid_tokens).
  const int32_t* Tokens(ViewFn view, py::handle obj, bool check_values) {
    views.push_back(view(obj, "inputs"));
    const ArrayView& v = views.back();
    if (v.shape != std::vector<int64_t>{p.shape.batch, p.shape.time})
      throw py::value_error("inputs (token ids) must have shape " + DimsText({p.shape.batch, p.shape.time}) +
                            "; got " + DimsText(v.shape));
    if (v.bytes > 0 && reinterpret_cast<uintptr_t>(v.data) % 4 != 0)
      throw py::value_error("inputs (token ids) must be aligned to their 4-byte elements");
    const int32_t* ids = static_cast<const int32_t*>(v.data);
    if (check_values)
      for (int64_t i = 0; i < p.shape.batch * p.shape.time; ++i)
        if (ids[i] < 0 || ids[i] >= p.shape.input)
          throw py::value_error("inputs (token ids) must lie in [0, " + std::to_string(p.shape.input) +
                                ") (the rows of kernels[0]); got " + std::to_string(ids[i]) + " at flat index " +
                                std::to_string(i));
    return ids;
  }
  // The cell's saved gates [L,T,B,SS*H]: required for a cell that saves gates, refused for one that saves none.
  template <typename Ptr>
  Ptr Saved(ViewFn view, py::handle obj) {
    const Shape& s = p.shape;
    const std::vector<int64_t> shape = {s.layers, s.time, s.batch, p.layout.saved_slots * s.hidden};
    if (p.layout.saved_slots == 0) {
      if (!obj.is_none())
        throw py::value_error(std::string("gates must be None for the ") + deeprnn::CellName(p.cell) +
                              " cell (it saves no gates)");
      return nullptr;
    }
    if (obj.is_none())
      throw py::type_error("gates must be an array of shape " + DimsText(shape) + " for the " +
                           deeprnn::CellName(p.cell) + " cell (its saved gates); got None");
    if constexpr (std::is_const_v<std::remove_pointer_t<Ptr>>) {
      return In(view, obj, "gates", shape);
    } else {
      return Out(view, obj, "gates", shape);
    }
  }
  // The weights; `b` a null handle for the backward pass, which reads no biases (a caller's None is refused: the
  // passes need arrays).
  void Weights(ViewFn view, py::handle k, py::handle rk, py::handle b) {
    const int64_t L = p.shape.layers;
    auto ks = LayerList(k, "kernels", L), rks = LayerList(rk, "recurrent_kernels", L);
    for (int64_t l = 0; l < L; ++l) {
      const std::string i = "[" + std::to_string(l) + "]";
      kernels.push_back(In(view, ks[l], "kernels" + i, KernelShape(l)));
      recurrent_kernels.push_back(In(view, rks[l], "recurrent_kernels" + i, KernelShape(1)));
    }
    if (!b) {
      biases.assign(L, nullptr);
    } else {
      auto bs = LayerList(b, "biases", L);
      for (int64_t l = 0; l < L; ++l)
        biases.push_back(In(view, bs[l], "biases[" + std::to_string(l) + "]", BiasShape()));
    }
  }
  // Masks and dropout (deeprnn/stacked.h Modifiers) by the TF op's names and shapes: mask [B,T] bool (True: the
  // step is taken), zero_output_for_mask, input_dropout L x [masks, B, in_l] (in_0 = D, the vocabulary with
  // tokens), recurrent_dropout L x [masks, B, H] (masks 1 or G, set by layer 0's), between_dropout [L-1,T,B,H].
  deeprnn::Modifiers<T> Modifiers(ViewFn view, const ModifierHandles& h) {
    const Shape& s = p.shape;
    const int64_t G = p.layout.gates;
    deeprnn::Modifiers<T> m;
    if (!h.zero_output_for_mask.is_none())
      m.zero_output_for_mask = BoolArg(h.zero_output_for_mask, "zero_output_for_mask");
    if (!h.mask.is_none()) {
      views.push_back(view(h.mask, "mask"));
      const ArrayView& v = views.back();
      if (v.kind != 'b' || v.itemsize != 1)
        throw py::type_error("mask must be bool (True: the step is taken); got " + DtypeText(v.kind, v.itemsize));
      if (v.shape != std::vector<int64_t>{s.batch, s.time})
        throw py::value_error("mask must have shape " + DimsText({s.batch, s.time}) + "; got " + DimsText(v.shape));
      m.mask = static_cast<const uint8_t*>(v.data);
    }
    auto masks = [&](const py::object& obj, const std::string& name, bool input, std::vector<const T*>* out) {
      if (obj.is_none()) return 1;
      std::vector<py::object> items = LayerList(obj, name, s.layers);
      const ArrayView first = view(items[0], name + "[0]");
      if (first.shape.size() != 3 || (first.shape[0] != 1 && first.shape[0] != G))
        throw py::value_error(name + "[0] must have shape (masks, batch, width) with masks 1 or " + std::to_string(G) +
                              " (one per gate); got " + DimsText(first.shape));
      const int64_t count = first.shape[0];
      for (int64_t l = 0; l < s.layers; ++l)
        out->push_back(In(view, items[l], name + "[" + std::to_string(l) + "]",
                          {count, s.batch, input && l == 0 ? s.input : s.hidden}));
      return static_cast<int>(count);
    };
    m.input_masks = masks(h.input_dropout, "input_dropout", true, &input_dropout);
    m.recurrent_masks = masks(h.recurrent_dropout, "recurrent_dropout", false, &recurrent_dropout);
    if (!input_dropout.empty()) m.input_dropout = input_dropout.data();
    if (!recurrent_dropout.empty()) m.recurrent_dropout = recurrent_dropout.data();
    if (!h.between_dropout.is_none()) {
      if (s.layers < 2)
        throw py::value_error("between_dropout needs at least two layers (it drops a layer's output on its way into "
                              "the next)");
      m.between_dropout = In(view, h.between_dropout, "between_dropout", {s.layers - 1, s.time, s.batch, s.hidden});
    }
    return m;
  }
  void Grads(ViewFn view, py::handle k, py::handle rk, py::handle b) {
    const int64_t L = p.shape.layers;
    auto ks = LayerList(k, "grad_kernels", L), rks = LayerList(rk, "grad_recurrent_kernels", L);
    auto bs = LayerList(b, "grad_biases", L);
    for (int64_t l = 0; l < L; ++l) {
      const std::string i = "[" + std::to_string(l) + "]";
      grad_kernels.push_back(Out(view, ks[l], "grad_kernels" + i, KernelShape(l)));
      grad_recurrent_kernels.push_back(Out(view, rks[l], "grad_recurrent_kernels" + i, KernelShape(1)));
      grad_biases.push_back(Out(view, bs[l], "grad_biases" + i, BiasShape()));
    }
  }
};

// The array arguments of the forward and the backward pass (py::none() where an entry point has no such argument).
struct ForwardHandles {
  py::handle inputs, kernels, recurrent_kernels, biases, initial_states, outputs, final_states, activations, gates;
  ModifierHandles modifiers;
};

struct BackwardHandles {
  py::handle inputs, kernels, recurrent_kernels, initial_states, activations, gates, grad_outputs, grad_final_states,
      grad_inputs, grad_kernels, grad_recurrent_kernels, grad_biases, grad_initial_states, grad_slots;
  ModifierHandles modifiers;
};

template <typename T>
deeprnn::ForwardArgs<T> ForwardArgsOf(ViewFn view, const ForwardHandles& h, PassArrays<T>* arrays, bool host) {
  const Problem& p = arrays->p;
  const Shape& s = p.shape;
  deeprnn::ForwardArgs<T> a;
  a.cell = p.cell;
  a.shape = s;
  if (p.tokens) {
    a.inputs.tokens = arrays->Tokens(view, h.inputs, host);
  } else {
    a.inputs.dense = arrays->In(view, h.inputs, "inputs", {s.batch, s.time, s.input});
  }
  arrays->Weights(view, h.kernels, h.recurrent_kernels, h.biases);
  a.weights = {arrays->kernels.data(), arrays->recurrent_kernels.data(), arrays->biases.data()};
  a.initial_states = arrays->In(view, h.initial_states, "initial_states", arrays->StatesShape());
  a.outputs = arrays->Out(view, h.outputs, "outputs", {s.batch, s.time, s.hidden});
  a.final_states = arrays->Out(view, h.final_states, "final_states", arrays->StatesShape());
  a.activations = arrays->Out(view, h.activations, "activations", {s.layers, s.time, s.batch, s.hidden});
  a.saved = arrays->template Saved<T*>(view, h.gates);
  a.modifiers = arrays->Modifiers(view, h.modifiers);
  return a;
}

// Where the backward pass's grad slots go: `grad_slots_name` names the argument in messages; `slots` is how many
// H-wide slots a row holds (the CPU pass of tanh / relu: 1, dLoss/dZ; the CUDA pass: every grad slot of the cell);
// 0 means the argument must be None (the CPU pass of the gated cells keeps them in its own scratch). `optional`
// (the call gave `cell`): grad_inputs and the CPU's grad slots may be None, not wanted.
template <typename T>
deeprnn::BackwardArgs<T> BackwardArgsOf(ViewFn view, const BackwardHandles& h, PassArrays<T>* arrays, bool host,
                                        bool optional, const char* grad_slots_name, int64_t slots,
                                        T** grad_slots) {
  const Problem& p = arrays->p;
  const Shape& s = p.shape;
  deeprnn::BackwardArgs<T> a;
  a.cell = p.cell;
  a.shape = s;
  if (p.tokens) {
    a.inputs.tokens = arrays->Tokens(view, h.inputs, host);
  } else {
    a.inputs.dense = arrays->In(view, h.inputs, "inputs", {s.batch, s.time, s.input});
  }
  arrays->Weights(view, h.kernels, h.recurrent_kernels, py::handle());
  a.weights = {arrays->kernels.data(), arrays->recurrent_kernels.data(), arrays->biases.data()};
  a.initial_states = arrays->In(view, h.initial_states, "initial_states", arrays->StatesShape());
  a.activations = arrays->In(view, h.activations, "activations", {s.layers, s.time, s.batch, s.hidden});
  a.saved = arrays->template Saved<const T*>(view, h.gates);
  a.grad_outputs = arrays->In(view, h.grad_outputs, "grad_outputs", {s.batch, s.time, s.hidden});
  a.grad_final_states = arrays->In(view, h.grad_final_states, "grad_final_states", arrays->StatesShape());
  if (p.tokens && !h.grad_inputs.is_none())
    throw py::value_error("grad_inputs must be None with token inputs (token ids have no gradient)");
  optional = optional || p.tokens;
  // None (not wanted) only where the call opts into optional outputs: the former entry points required the array.
  if (!(optional && h.grad_inputs.is_none()))
    a.grad_inputs = arrays->Out(view, h.grad_inputs, "grad_inputs", {s.batch, s.time, s.input});
  arrays->Grads(view, h.grad_kernels, h.grad_recurrent_kernels, h.grad_biases);
  a.grad_weights = {arrays->grad_kernels.data(), arrays->grad_recurrent_kernels.data(),
                    arrays->grad_biases.data()};
  a.grad_initial_states = arrays->Out(view, h.grad_initial_states, "grad_initial_states", arrays->StatesShape());
  a.modifiers = arrays->Modifiers(view, h.modifiers);
  *grad_slots = nullptr;
  if (slots == 0) {
    if (!h.grad_slots.is_none())
      throw py::value_error(std::string(grad_slots_name) + " must be None for the " + deeprnn::CellName(p.cell) +
                            " cell on the CPU (the pass keeps its gates' gradients in its own scratch)");
  } else if (!(optional && host && h.grad_slots.is_none())) {
    *grad_slots = arrays->Out(view, h.grad_slots, grad_slots_name, {s.layers, s.time, s.batch, slots * s.hidden});
  }
  return a;
}

// ---- CPU ----

// A forced instruction set this processor lacks (DEEPRNN_FAST_CPU_ISA) is an error, not a crash.
void CheckCpuIsa() {
  const std::string error = deeprnn::CpuKernelIsaError();
  if (!error.empty()) throw std::runtime_error(error);
}

template <typename T>
void ForwardCpu(const Problem& p, const ForwardHandles& h) {
  PassArrays<T> arrays(p);
  const deeprnn::ForwardArgs<T> args = ForwardArgsOf<T>(HostView, h, &arrays, true);
  CheckNoOverlap(arrays.views);
  CheckCpuIsa();
  py::gil_scoped_release release;
  deeprnn::StackedForwardCpu<T>(args, deeprnn::SerialFor);
}

// grad_preactivations of tanh / relu receives the start of the pass's scratch: dLoss/dZ of every cell for batches
// below 128 (larger ones keep two cells per layer; deeprnn/stacked.h).
template <typename T>
void BackwardCpu(const Problem& p, const BackwardHandles& h, bool optional) {
  PassArrays<T> arrays(p);
  T* grad_slots = nullptr;
  const bool rnn = p.layout.gates == 1;
  const deeprnn::BackwardArgs<T> args =
      BackwardArgsOf<T>(HostView, h, &arrays, true, optional, "grad_preactivations", rnn ? 1 : 0, &grad_slots);
  CheckNoOverlap(arrays.views);
  CheckCpuIsa();
  py::gil_scoped_release release;
  std::vector<T> scratch(static_cast<size_t>(deeprnn::StackedBackwardCpuScratchSize(p.cell, p.shape, sizeof(T))));
  deeprnn::StackedBackwardCpu<T>(args, scratch.data(), deeprnn::SerialFor);
  if (grad_slots != nullptr) {  // the scratch's rows are `ld` apart (padded where a multiple of 4 KB)
    const int64_t H = p.shape.hidden, ld = deeprnn::StackedBackwardCpuGradRowStride(p.cell, H, sizeof(T));
    const int64_t rows = std::min(p.shape.layers * p.shape.time * p.shape.batch,
                                  static_cast<int64_t>(scratch.size()) / ld);
    for (int64_t r = 0; r < rows; ++r) std::copy_n(scratch.data() + r * ld, H, grad_slots + r * H);
  }
}

// ---- planning (no GPU needed) ----

deeprnn::CudaSchedule ParseSchedule(py::handle obj) {
  deeprnn::CudaSchedule schedule;
  const deeprnn::CudaStatus st = deeprnn::ParseSchedule(StrArg(obj, "schedule"), &schedule);
  if (!st.ok()) throw py::value_error(OneLine(st.error));
  return schedule;
}

int ParseItemsize(py::handle dtype) {
  py::dtype dt;
  try {
    dt = py::dtype::from_args(py::reinterpret_borrow<py::object>(dtype));
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_Exception)) throw;
    throw py::type_error("dtype must be float32 or float64 (a NumPy dtype or its name); got " + TypeName(dtype));
  }
  if (dt.kind() != 'f' || (dt.itemsize() != 4 && dt.itemsize() != 8))
    throw py::type_error("dtype must be float32 or float64; got " + DtypeText(dt.kind(), static_cast<int>(dt.itemsize())));
  return static_cast<int>(dt.itemsize());
}

deeprnn::Direction ParseDirection(py::handle obj) {
  const std::string name = StrArg(obj, "direction");
  if (name == "forward") return deeprnn::Direction::kForward;
  if (name == "backward") return deeprnn::Direction::kBackward;
  throw py::value_error("direction must be 'forward' or 'backward'; got " + Quoted(name));
}

py::dict PlanDict(const deeprnn::WavefrontPlan& plan) {
  py::dict d;
  d["schedule"] = deeprnn::ScheduleName(plan.schedule);
  d["weights_on_chip"] = plan.weights_on_chip;
  d["tensor_cores"] = plan.tensor_cores;
  d["tile"] = plan.tile;
  d["bm"] = plan.bm;
  d["bn"] = plan.bn;
  d["tm"] = plan.tm;
  d["tn"] = plan.tn;
  d["bk"] = plan.bk;
  d["ks"] = plan.ks;
  d["row_tiles"] = plan.row_tiles;
  d["col_tiles"] = plan.col_tiles;
  d["grid"] = plan.grid;
  d["threads"] = plan.threads;
  d["smem_bytes"] = plan.smem_bytes;
  d["blocks_per_sm"] = plan.blocks_per_sm;
  d["launches"] = plan.launches;
  d["reason"] = plan.reason;
  return d;
}

// The cost model's prediction for a plan (deeprnn/cost_model.h), with the default H200 rates.
py::dict CostDict(const deeprnn::StepCost& c) {
  py::dict d;
  d["flop_per_step"] = c.flop_per_step;
  d["unit"] = c.unit;
  d["state_bytes_per_step"] = c.state_bytes_per_step;
  d["weight_bytes_per_step"] = c.weight_bytes_per_step;
  d["weights_fit_l2"] = c.weights_fit_l2;
  d["smem_bytes_per_block"] = c.smem_bytes_per_block;
  d["products_us"] = c.products_us;
  d["staging_us"] = c.staging_us;
  d["epilogue_us"] = c.epilogue_us;
  d["sync_us"] = c.sync_us;
  d["step_us"] = c.step_us;
  d["sequence_us"] = c.sequence_us;
  d["floor_us"] = c.floor_us;
  d["x_floor"] = c.x_floor;
  return d;
}

// plan(device={...}): the device's properties, and two knobs of the occupancy estimate (the kernels use at most
// 128 registers per thread, __launch_bounds__(256, 2); a test may fix the blocks per SM instead). Types and ranges
// are checked here, plausibility by the library (deeprnn::ValidateDeviceProps); every error names the field.
struct DeviceDict {
  deeprnn::DeviceProps props;
  int regs_per_thread = 128;
  int fixed_blocks_per_sm = -1;  // -1: estimate
};

DeviceDict PropsFromDict(py::handle device) {
  if (!PyDict_Check(device.ptr()))
    throw py::type_error("device must be None or a dict of device properties; got " + TypeName(device));
  static const std::set<std::string> known = {"sm_count", "smem_per_block_optin", "smem_per_sm",
                                              "reserved_smem_per_block", "max_threads_per_sm", "max_blocks_per_sm",
                                              "regs_per_sm", "cooperative_launch", "cc_major", "cc_minor",
                                              "regs_per_thread", "blocks_per_sm", "name", "multiprocessors"};
  PyObject *key, *value;
  Py_ssize_t pos = 0;
  while (PyDict_Next(device.ptr(), &pos, &key, &value)) {
    if (!PyUnicode_Check(key)) throw py::type_error("device property names must be str; got " + TypeName(key));
    const std::string name = StrArg(key, "a device property name");
    if (!known.count(name)) throw py::value_error("unknown device property " + Quoted(name));
  }
  auto field = [&](const char* name) {
    PyObject* v = PyDict_GetItemString(device.ptr(), name);
    return v ? py::reinterpret_borrow<py::object>(v) : py::object();
  };
  auto get = [&](const char* name, int64_t fallback, int64_t lo, int64_t hi) {
    const py::object v = field(name);
    return v ? IntArg(v, std::string("device property ") + name, lo, hi) : fallback;
  };
  if (!field("sm_count")) throw py::value_error("device properties need at least 'sm_count'");
  DeviceDict d;
  deeprnn::DeviceProps& p = d.props;
  p.sm_count = static_cast<int>(get("sm_count", 0, INT32_MIN, INT32_MAX));
  p.smem_per_block_optin = get("smem_per_block_optin", 227 * 1024, INT64_MIN, INT64_MAX);
  p.smem_per_sm = get("smem_per_sm", 228 * 1024, INT64_MIN, INT64_MAX);
  p.reserved_smem_per_block = get("reserved_smem_per_block", 1024, INT64_MIN, INT64_MAX);
  p.max_threads_per_sm = static_cast<int>(get("max_threads_per_sm", 2048, INT32_MIN, INT32_MAX));
  p.max_blocks_per_sm = static_cast<int>(get("max_blocks_per_sm", 32, INT32_MIN, INT32_MAX));
  p.regs_per_sm = static_cast<int>(get("regs_per_sm", 65536, INT32_MIN, INT32_MAX));
  const py::object cooperative = field("cooperative_launch");
  p.cooperative_launch = cooperative ? BoolArg(cooperative, "device property cooperative_launch") : true;
  p.cc_major = static_cast<int>(get("cc_major", 9, INT32_MIN, INT32_MAX));
  p.cc_minor = static_cast<int>(get("cc_minor", 0, INT32_MIN, INT32_MAX));
  d.regs_per_thread = static_cast<int>(get("regs_per_thread", 128, 1, 255));
  d.fixed_blocks_per_sm = static_cast<int>(get("blocks_per_sm", -1, 0, INT32_MAX));
  // Checked here too (the planner checks again), so that a bad device is reported before a bad shape.
  const deeprnn::CudaStatus st = deeprnn::ValidateDeviceProps(p);
  if (!st.ok()) throw py::value_error(st.error);
  return d;
}

[[maybe_unused]] py::dict PropsDict(const deeprnn::DeviceProps& p) {
  py::dict d;
  d["sm_count"] = p.sm_count;
  d["smem_per_block_optin"] = p.smem_per_block_optin;
  d["smem_per_sm"] = p.smem_per_sm;
  d["reserved_smem_per_block"] = p.reserved_smem_per_block;
  d["max_threads_per_sm"] = p.max_threads_per_sm;
  d["max_blocks_per_sm"] = p.max_blocks_per_sm;
  d["regs_per_sm"] = p.regs_per_sm;
  d["cooperative_launch"] = p.cooperative_launch;
  d["cc_major"] = p.cc_major;
  d["cc_minor"] = p.cc_minor;
  return d;
}

bool CudaAvailable() {
#if defined(DEEPRNN_WITH_CUDA)
  int count = 0;
  return deeprnn::CudaDeviceCount(&count).ok() && count > 0;
#else
  return false;
#endif
}

Shape ShapeArgs(const BoundArgs& a) {
  return {IntArg(a["batch"], "batch"), IntArg(a["time"], "time"), IntArg(a["input"], "input"),
          IntArg(a["hidden"], "hidden"), IntArg(a["layers"], "layers")};
}

py::dict Plan(const BoundArgs& a) {
  const Shape shape = ShapeArgs(a);
  const int itemsize = ParseItemsize(a["dtype"]);
  const deeprnn::Direction direction = ParseDirection(a["direction"]);
  const deeprnn::CudaSchedule schedule = ParseSchedule(a["schedule"]);
  const Cell cell = ParseCell(a["cell"]);
  deeprnn::PlanOptions options;
  options.allow_tf32 = BoolArg(a["allow_tf32"], "allow_tf32");
  deeprnn::WavefrontPlan plan;
  deeprnn::CudaStatus st;
  int sm_count = 0;
  if (a["device"].is_none()) {
#if defined(DEEPRNN_WITH_CUDA)
    if (!CudaAvailable()) throw std::runtime_error("plan(device=None) plans for the current GPU, and there is none");
    st = deeprnn::PlanStackedCuda(cell, shape, itemsize, direction, schedule, &plan, options);
    deeprnn::DeviceProps props;
    if (st.ok()) st = deeprnn::CudaCurrentDeviceProps(&props);
    sm_count = props.sm_count;
#else
    NoCuda("plan(device=None) plans for the current GPU");
#endif
  } else {
    const DeviceDict d = PropsFromDict(a["device"]);
    const deeprnn::OccupancyFn occupancy = [&](int, int64_t smem) {
      if (smem > d.props.smem_per_block_optin) return 0;
      return d.fixed_blocks_per_sm >= 0
                 ? d.fixed_blocks_per_sm
                 : deeprnn::EstimateBlocksPerSm(d.props, smem, deeprnn::kWavefrontThreads, d.regs_per_thread);
    };
    st = deeprnn::PlanWavefront(cell, shape, itemsize, direction, d.props, schedule, occupancy, &plan, options);
    sm_count = d.props.sm_count;
  }
  if (!st.ok()) throw py::value_error(OneLine(st.error));
  py::dict out = PlanDict(plan);
  out["cost"] = CostDict(deeprnn::PredictStepCost(cell, shape, itemsize, direction, plan, sm_count));
  return out;
}

int64_t WorkspaceBytes(const BoundArgs& a) {
  const Shape shape = ShapeArgs(a);
  const Cell cell = ParseCell(a["cell"]);
  const bool tokens = !a["tokens"].is_none() && BoolArg(a["tokens"], "tokens");
  const deeprnn::CudaStatus st = deeprnn::ValidateCudaShape(cell, shape);
  if (!st.ok()) throw py::value_error(OneLine(st.error));
  const int itemsize = ParseItemsize(a["dtype"]);
  const bool forward = ParseDirection(a["direction"]) == deeprnn::Direction::kForward;
  return forward ? deeprnn::StackedForwardCudaWorkspaceBytes(cell, shape, itemsize)
                 : deeprnn::StackedBackwardCudaWorkspaceBytes(cell, shape, itemsize, tokens);
}

// ---- CUDA ----

#if defined(DEEPRNN_WITH_CUDA)

void CheckCuda(const deeprnn::CudaStatus& st) {
  if (!st.ok()) throw std::runtime_error(st.error);
}

// Makes `stream` wait for the streams the arrays' producers queued their work on (__cuda_array_interface__ v3).
void WaitForProducers(const std::vector<ArrayView>& views, uintptr_t stream) {
  std::set<uintptr_t> producers;
  for (const ArrayView& v : views)
    if (v.has_stream && v.stream != stream) producers.insert(v.stream);
  for (uintptr_t producer : producers)
    CheckCuda(deeprnn::CudaStreamWaitStream(reinterpret_cast<void*>(stream), reinterpret_cast<void*>(producer)));
}

// The library wants a 256-byte aligned workspace; CUDA allocators give one, and any other buffer is used from its
// first aligned byte on.
ArrayView WorkspaceView(py::handle workspace, int64_t needed) {
  ArrayView w = CudaView(workspace, "workspace");
  w.output = true;
  const uintptr_t base = reinterpret_cast<uintptr_t>(w.data);
  const int64_t skip = static_cast<int64_t>((256 - base % 256) % 256);
  const int64_t usable = w.bytes > skip ? w.bytes - skip : 0;
  if (usable < needed)
    throw py::value_error("workspace must hold at least " + std::to_string(needed) +
                          " bytes from its first 256-byte aligned address; got " + std::to_string(usable));
  if (w.readonly) throw py::value_error("workspace must be writable");
  return w;
}

// invalid_tokens: None, or a device int32 counter [1] the passes add the out-of-range token ids to.
int32_t* InvalidTokensCounter(py::handle obj, std::vector<ArrayView>* views) {
  if (obj.is_none()) return nullptr;
  ArrayView v = CudaView(obj, "invalid_tokens");
  v.output = true;
  if (v.kind != 'i' || v.itemsize != 4 || v.shape != std::vector<int64_t>{1} || v.readonly ||
      reinterpret_cast<uintptr_t>(v.data) % 4 != 0)
    throw py::value_error("invalid_tokens must be a writable CUDA int32 array of shape (1,), aligned (or None); got " +
                          DtypeText(v.kind, v.itemsize) + " " + DimsText(v.shape));
  views->push_back(v);
  return static_cast<int32_t*>(v.data);
}

py::dict InfoDict(const deeprnn::CudaLaunchInfo& info) {
  py::dict d = PlanDict(info.wavefront);
  d["kernel_launches"] = info.kernel_launches;
  return d;
}

// The options of a CUDA call.
struct CudaCall {
  py::handle workspace;
  uintptr_t stream = 0;
  deeprnn::CudaSchedule schedule = deeprnn::CudaSchedule::kAuto;
  py::handle invalid_tokens;
  bool allow_tf32 = false;
};

// The common part of every CUDA entry point: the workspace and the counter, the overlap check, the wait for the
// arrays' producers, then call(launch) without the GIL, and its status turned into an exception.
template <typename Call>
py::dict RunCuda(std::vector<ArrayView>& views, int64_t workspace_needed, const CudaCall& c, Call&& call) {
  deeprnn::CudaLaunch launch;
  launch.invalid_tokens = InvalidTokensCounter(c.invalid_tokens, &views);
  views.push_back(WorkspaceView(c.workspace, workspace_needed));
  CheckNoOverlap(views);
  const uintptr_t base = reinterpret_cast<uintptr_t>(views.back().data);
  const int64_t skip = static_cast<int64_t>((256 - base % 256) % 256);
  launch.workspace = reinterpret_cast<void*>(base + skip);
  launch.workspace_bytes = views.back().bytes - skip;
  WaitForProducers(views, c.stream);
  deeprnn::CudaLaunchInfo info;
  launch.stream = reinterpret_cast<void*>(c.stream);
  launch.schedule = c.schedule;
  launch.allow_tf32 = c.allow_tf32;
  launch.info = &info;
  deeprnn::CudaStatus st;
  {
    py::gil_scoped_release release;
    st = call(launch);
  }
  CheckCuda(st);
  return InfoDict(info);
}

template <typename T>
py::dict ForwardCuda(const Problem& p, const ForwardHandles& h, const CudaCall& c) {
  PassArrays<T> arrays(p);
  const deeprnn::ForwardArgs<T> args = ForwardArgsOf<T>(CudaView, h, &arrays, false);
  return RunCuda(arrays.views, deeprnn::StackedForwardCudaWorkspaceBytes(p.cell, p.shape, sizeof(T)), c,
                 [&](const deeprnn::CudaLaunch& launch) { return deeprnn::StackedForwardCuda<T>(args, launch); });
}

// `grad_slots_name`: the argument's name in the entry point (grad_preactivations; the GRU's own grad_gates).
template <typename T>
py::dict BackwardCuda(const Problem& p, const BackwardHandles& h, const CudaCall& c, bool optional,
                      const char* grad_slots_name) {
  if (h.grad_slots.is_none())
    throw py::type_error(std::string(grad_slots_name) + " must be a CUDA array of shape (L, T, B, " +
                         std::to_string(GradSlots(p.cell)) + " * units): the grad slots the CUDA pass keeps");
  PassArrays<T> arrays(p);
  T* grad_slots = nullptr;
  const deeprnn::BackwardArgs<T> args =
      BackwardArgsOf<T>(CudaView, h, &arrays, false, optional, grad_slots_name, GradSlots(p.cell), &grad_slots);
  return RunCuda(arrays.views, deeprnn::StackedBackwardCudaWorkspaceBytes(p.cell, p.shape, sizeof(T), p.tokens), c,
                 [&](const deeprnn::CudaLaunch& launch) {
                   return deeprnn::StackedBackwardCuda<T>(args, grad_slots, launch);
                 });
}

#endif  // DEEPRNN_WITH_CUDA

[[maybe_unused]] uintptr_t StreamArg(const BoundArgs& a) {
  return static_cast<uintptr_t>(IntArg(a["stream"], "stream", 0, INT64_MAX));
}

// ---- the entry points, for every cell ----

// The arrays of a forward call; `gates` is the GRU entry points' positional one or the keyword-only one.
// The masks and dropout of an entry point that has them (kModifierOptions), else none.
ModifierHandles ModifierArrays(const BoundArgs& a, bool has_modifiers) {
  ModifierHandles h;
  if (has_modifiers)
    h = {a["mask"], a["zero_output_for_mask"], a["input_dropout"], a["recurrent_dropout"], a["between_dropout"]};
  return h;
}

ForwardHandles ForwardArrays(const BoundArgs& a, bool has_modifiers) {
  return {a["inputs"], a["kernels"], a["recurrent_kernels"], a["biases"], a["initial_states"], a["outputs"],
          a["final_states"], a["activations"], a["gates"], ModifierArrays(a, has_modifiers)};
}

BackwardHandles BackwardArrays(const BoundArgs& a, py::handle grad_slots, bool has_modifiers) {
  return {a["inputs"], a["kernels"], a["recurrent_kernels"], a["initial_states"], a["activations"], a["gates"],
          a["grad_outputs"], a["grad_final_states"], a["grad_inputs"], a["grad_kernels"],
          a["grad_recurrent_kernels"], a["grad_biases"], a["grad_initial_states"], grad_slots,
          ModifierArrays(a, has_modifiers)};
}

void RunForwardCpu(Cell cell, const ForwardHandles& h) {
  const Problem p = ReadProblem(HostView, cell, h.inputs, h.kernels);
  if (p.itemsize == 4) ForwardCpu<float>(p, h);
  else ForwardCpu<double>(p, h);
}

void RunBackwardCpu(Cell cell, const BackwardHandles& h, bool optional) {
  const Problem p = ReadProblem(HostView, cell, h.inputs, h.kernels);
  if (p.itemsize == 4) BackwardCpu<float>(p, h, optional);
  else BackwardCpu<double>(p, h, optional);
}

// invalid_tokens: None for the GRU's former entry points, which have no such argument (nor masks and dropout).
py::object RunForwardCuda(Cell cell, const BoundArgs& a, py::handle invalid_tokens, bool has_modifiers) {
#if defined(DEEPRNN_WITH_CUDA)
  CudaCall c{a["workspace"], 0, ParseSchedule(a["schedule"]), invalid_tokens};
  c.allow_tf32 = BoolArg(a["allow_tf32"], "allow_tf32");
  c.stream = StreamArg(a);
  const ForwardHandles h = ForwardArrays(a, has_modifiers);
  const Problem p = ReadProblem(CudaView, cell, h.inputs, h.kernels);
  return p.itemsize == 4 ? ForwardCuda<float>(p, h, c) : ForwardCuda<double>(p, h, c);
#else
  (void)cell, (void)a, (void)invalid_tokens, (void)has_modifiers;
  NoCuda("forward_cuda");
#endif
}

py::object RunBackwardCuda(Cell cell, const BoundArgs& a, const char* grad_slots_name, bool optional,
                           py::handle invalid_tokens, bool has_modifiers) {
#if defined(DEEPRNN_WITH_CUDA)
  CudaCall c{a["workspace"], 0, ParseSchedule(a["schedule"]), invalid_tokens};
  c.allow_tf32 = BoolArg(a["allow_tf32"], "allow_tf32");
  c.stream = StreamArg(a);
  const BackwardHandles h = BackwardArrays(a, a[grad_slots_name], has_modifiers);
  const Problem p = ReadProblem(CudaView, cell, h.inputs, h.kernels);
  return p.itemsize == 4 ? BackwardCuda<float>(p, h, c, optional, grad_slots_name)
                         : BackwardCuda<double>(p, h, c, optional, grad_slots_name);
#else
  (void)cell, (void)a, (void)grad_slots_name, (void)optional, (void)invalid_tokens, (void)has_modifiers;
  NoCuda("backward_cuda");
#endif
}

// The parameters of every entry point, in order (positional and keyword arguments bind to these names); the
// options added with the cells are keyword-only, so that the former positional calls mean what they meant.
// Masks and dropout (PassArrays::Modifiers), as the TF op names them.
const std::vector<Param> kModifierOptions = {{"mask", kNoneDefault}, {"zero_output_for_mask", kNoneDefault},
                                             {"input_dropout", kNoneDefault}, {"recurrent_dropout", kNoneDefault},
                                             {"between_dropout", kNoneDefault}};
std::vector<Param> WithModifiers(std::vector<Param> options) {
  options.insert(options.end(), kModifierOptions.begin(), kModifierOptions.end());
  return options;
}
const std::vector<Param> kCellOptions = WithModifiers({{"gates", kNoneDefault}, {"cell", kNoneDefault}});
const std::vector<Param> kCudaCellOptions = WithModifiers(
    {{"gates", kNoneDefault}, {"cell", kNoneDefault}, {"invalid_tokens", kNoneDefault}, {"allow_tf32", false}});
const Signature kForwardCpu{"forward_cpu",
                            {"inputs", "kernels", "recurrent_kernels", "biases", "initial_states", "outputs",
                             "final_states", "activations", {"activation", "tanh"}},
                            kCellOptions};
const Signature kBackwardCpu{"backward_cpu",
                             {"inputs", "kernels", "recurrent_kernels", "initial_states", "activations",
                              "grad_outputs", "grad_final_states", "grad_inputs", "grad_kernels",
                              "grad_recurrent_kernels", "grad_biases", "grad_initial_states", "grad_preactivations",
                              {"activation", "tanh"}},
                             kCellOptions};
const Signature kGruForwardCpu{"gru_forward_cpu",
                               {"inputs", "kernels", "recurrent_kernels", "biases", "initial_states", "outputs",
                                "final_states", "activations", "gates"}};
const Signature kGruBackwardCpu{"gru_backward_cpu",
                                {"inputs", "kernels", "recurrent_kernels", "initial_states", "activations", "gates",
                                 "grad_outputs", "grad_final_states", "grad_inputs", "grad_kernels",
                                 "grad_recurrent_kernels", "grad_biases", "grad_initial_states"}};
const Signature kWorkspaceBytes{"workspace_bytes",
                                {"direction", "batch", "time", "input", "hidden", "layers", "dtype",
                                 {"cell", "rnn"}},
                                {{"tokens", kNoneDefault}}};
const Signature kPlan{"plan",
                      {"batch", "time", "input", "hidden", "layers", {"dtype", "float32"}, {"direction", "forward"},
                       {"schedule", "auto"}, {"device", kNoneDefault}, {"cell", "rnn"}},
                      {{"allow_tf32", false}}};
const Signature kForwardCuda{"forward_cuda",
                             {"inputs", "kernels", "recurrent_kernels", "biases", "initial_states", "outputs",
                              "final_states", "activations", "workspace", {"activation", "tanh"},
                              {"stream", int64_t{0}}, {"schedule", "auto"}},
                             kCudaCellOptions};
const Signature kBackwardCuda{"backward_cuda",
                              {"inputs", "kernels", "recurrent_kernels", "initial_states", "activations",
                               "grad_outputs", "grad_final_states", "grad_inputs", "grad_kernels",
                               "grad_recurrent_kernels", "grad_biases", "grad_initial_states", "grad_preactivations",
                               "workspace", {"activation", "tanh"}, {"stream", int64_t{0}}, {"schedule", "auto"}},
                              kCudaCellOptions};
const Signature kGruForwardCuda{"gru_forward_cuda",
                                {"inputs", "kernels", "recurrent_kernels", "biases", "initial_states", "outputs",
                                 "final_states", "activations", "gates", "workspace", {"stream", int64_t{0}},
                                 {"schedule", "auto"}},
                                {{"allow_tf32", false}}};
const Signature kGruBackwardCuda{"gru_backward_cuda",
                                 {"inputs", "kernels", "recurrent_kernels", "initial_states", "activations", "gates",
                                  "grad_outputs", "grad_final_states", "grad_inputs", "grad_kernels",
                                  "grad_recurrent_kernels", "grad_biases", "grad_initial_states", "grad_gates",
                                  "workspace", {"stream", int64_t{0}}, {"schedule", "auto"}},
                                 {{"allow_tf32", false}}};
const Signature kGridSyncBenchmark{"grid_sync_benchmark", {"syncs", {"blocks", int64_t{0}}, {"stream", int64_t{0}}}};

// Every entry point takes (*args, **kwargs) and binds them itself (call_arguments.h); its docstring starts with
// the real signature.
template <typename Fn>
void Def(py::module_& m, const Signature& sig, Fn&& fn, const std::string& doc) {
  m.def(
      sig.function.c_str(),
      [&sig, fn](py::args args, py::kwargs kwargs) { return fn(BoundArgs(sig, args, kwargs)); },
      (sig.Text() + "\n\n" + doc).c_str());
}

}  // namespace
}  // namespace deeprnn_fast

PYBIND11_MODULE(_kernels, m) {
  using namespace deeprnn_fast;
  m.doc() = "deeprnn_fast's kernel library without TensorFlow, for every cell (tanh, relu, GRU, LSTM): CPU passes "
            "on NumPy arrays, CUDA passes on __cuda_array_interface__ arrays, and the CUDA launch planner.";
  py::options options;
  options.disable_function_signatures();  // every docstring starts with its own: the functions take (*args, **kwargs)

  m.def("has_cuda_build", [] {
#if defined(DEEPRNN_WITH_CUDA)
    return true;
#else
    return false;
#endif
  }, "has_cuda_build()\n\nTrue when the module was compiled with the CUDA kernels.");
  m.def("cuda_available", &CudaAvailable,
        "cuda_available()\n\nTrue when the module has CUDA kernels and a CUDA device is visible.");
  m.def("cpu_isa", [] {
    CheckCpuIsa();
    return std::string(deeprnn::CpuKernelIsa());
  },
        "cpu_isa()\n\nThe instruction set of the CPU passes: 'avx512', 'avx2' or 'generic', the best this processor has; "
        "DEEPRNN_FAST_CPU_ISA forces one (also 'avx512emu': the AVX-512 code through AVX2, for tests). RuntimeError "
        "when the forced one cannot run here.");

  m.def("cpu_isas", [] {
          // Built by hand: pybind11/stl.h would also change how list arguments convert.
          py::list names;
          for (const std::string& name : deeprnn::CpuKernelIsas()) names.append(name);
          return names;
        },
        "cpu_isas()\n\nThe instruction sets this processor can run, by the names DEEPRNN_FAST_CPU_ISA takes.");

  Def(m, kForwardCpu, [](const BoundArgs& a) { RunForwardCpu(ResolveCell(a), ForwardArrays(a, true)); },
      "Forward pass of a cell on the CPU into the given arrays. cell: 'tanh', 'relu', 'gru', 'lstm' (without it, "
      "activation names the RNN's). inputs [B,T,D] (or int32 token ids [B,T]); kernels ([D or V, G*H], then "
      "[H, G*H]) / recurrent_kernels ([H, G*H]) / biases ([G*H]; the GRU's [2, 3H]) lists (or tuples) of L arrays; "
      "initial_states [L,B,H] (LSTM: [L,2,B,H]) -> outputs [B,T,H], final_states (as initial_states), activations "
      "[L,T,B,H], gates [L,T,B,SS*H] (GRU [z|r|n|q], LSTM [i|f|g|o|c']; None for tanh / relu). Every array is a "
      "C-contiguous, aligned, native-byte-order numpy.ndarray of kernels' dtype; no output may share memory with "
      "another argument; token ids must index rows of kernels[0]. Masks and dropout as the TF op takes them: mask [B,T] "
      "bool, zero_output_for_mask, input_dropout / recurrent_dropout lists of L arrays [masks, B, in_l or H] (masks "
      "1 or G), between_dropout [L-1,T,B,H].");

  Def(m, kBackwardCpu, [](const BoundArgs& a) {
    const bool optional = !a["cell"].is_none();
    RunBackwardCpu(ResolveCell(a), BackwardArrays(a, a["grad_preactivations"], true), optional);
  }, "Backward pass of a cell on the CPU into the given arrays (shapes as forward_cpu). grad_preactivations "
     "[L,T,B,H] (tanh / relu) is scratch that ends up holding dLoss/dZ; the gated cells keep theirs in the pass's "
     "own scratch (None). With cell given, grad_inputs and grad_preactivations may be None: not computed (always "
     "None with token inputs).");

  Def(m, kGruForwardCpu, [](const BoundArgs& a) { RunForwardCpu(Cell::kGru, ForwardArrays(a, false)); },
      "forward_cpu(..., gates=gates, cell='gru'): the GRU's former entry point. inputs [B,T,D], kernels ([D,3H], "
      "then [H,3H]) / recurrent_kernels ([H,3H]) / biases ([2,3H]) lists of L arrays, initial_states [L,B,H] -> "
      "outputs [B,T,H], final_states [L,B,H], activations [L,T,B,H], gates [L,T,B,4H] (rows [z | r | n | q]).");

  Def(m, kGruBackwardCpu, [](const BoundArgs& a) { RunBackwardCpu(Cell::kGru, BackwardArrays(a, py::none(), false), false); },
      "backward_cpu(..., gates=gates, cell='gru'): the GRU's former entry point (the gates' gradients live in a "
      "scratch buffer the call allocates itself).");

  Def(m, kWorkspaceBytes, [](const BoundArgs& a) { return WorkspaceBytes(a); },
      "Bytes of CUDA workspace forward_cuda ('forward') or backward_cuda ('backward') of `cell` needs (no GPU "
      "needed); cell: 'tanh', 'relu', 'gru', 'lstm' ('rnn': tanh); tokens=True: the backward pass with token "
      "inputs, which sorts layer 0's rows by token.");

  Def(m, kPlan, [](const BoundArgs& a) { return Plan(a); },
      "The CUDA launch plan of one pass of `cell` ('tanh', 'relu', 'gru', 'lstm'; 'rnn': tanh) as a dict. "
      "device=None: the current GPU (CUDA build only); or a dict of device properties (sm_count, "
      "smem_per_block_optin, smem_per_sm, reserved_smem_per_block, max_threads_per_sm, max_blocks_per_sm, "
      "regs_per_sm, cooperative_launch, and optionally regs_per_thread or a fixed blocks_per_sm), which needs no "
      "GPU. allow_tf32=True lets float32 plans at B <= 32 take the tensor-core tile (TF32 products). The dict's "
      "'cost' is the cost model's prediction for the plan (deeprnn/cost_model.h, H200 rates). Raises ValueError "
      "for shapes or schedules that cannot run and for device properties no GPU has.");

  Def(m, kForwardCuda, [](const BoundArgs& a) -> py::object {
    return RunForwardCuda(ResolveCell(a), a, a["invalid_tokens"], true);
  }, "Forward pass of a cell on the current CUDA device (cell, shapes and gates as forward_cpu), queued on `stream` "
     "(cudaStream_t as int; e.g. torch.cuda.current_stream().cuda_stream), into the given CUDA arrays "
     "(C-contiguous, little-endian, of kernels' dtype; no output may share memory with another argument); "
     "workspace: a CUDA array of at least workspace_bytes('forward', ...) bytes. schedule: auto, stepwise, "
     "persistent, persistent_resident, persistent_streaming. Token ids are not checked on the host: an id outside "
     "[0, V) reads as a zero row, and invalid_tokens (None or a CUDA int32 array (1,)) has the number of such ids "
     "added to it. Masks and dropout as forward_cpu takes them, as CUDA arrays. allow_tf32=True lets float32 at "
     "B <= 32 without masks or dropout run the tensor-core tile (TF32 products, about 1e-3 relative); the default "
     "is exact float32. Returns the plan that ran. Does not synchronise.");

  Def(m, kBackwardCuda, [](const BoundArgs& a) -> py::object {
    return RunBackwardCuda(ResolveCell(a), a, "grad_preactivations", !a["cell"].is_none(), a["invalid_tokens"],
                           true);
  }, "Backward pass of a cell on the current CUDA device (see forward_cuda and backward_cpu; with cell given, "
     "grad_inputs may be None). grad_preactivations [L,T,B,GS*H] is scratch that ends up holding the cell's grad "
     "slots (tanh / relu: dLoss/dZ; GRU: [da_n | da_z | da_r | da_n r]; LSTM: [da_i | da_f | da_g | da_o]). Returns "
     "the plan that ran.");

  Def(m, kGruForwardCuda, [](const BoundArgs& a) -> py::object {
    return RunForwardCuda(Cell::kGru, a, py::none(), false);
  }, "forward_cuda(..., gates=gates, cell='gru'): the GRU's former entry point (shapes as gru_forward_cpu; stream, "
     "workspace of at least workspace_bytes('forward', ..., cell='gru') bytes and schedule as forward_cuda).");

  Def(m, kGruBackwardCuda, [](const BoundArgs& a) -> py::object {
    return RunBackwardCuda(Cell::kGru, a, "grad_gates", false, py::none(), false);
  }, "backward_cuda(..., gates=gates, cell='gru'): the GRU's former entry point; grad_gates [L,T,B,4H] is scratch "
     "that ends up holding the gates' gradients [dn | dz | dr | dn * r]. Returns the plan that ran.");

  m.def("device_info", [] {
#if defined(DEEPRNN_WITH_CUDA)
    deeprnn::DeviceProps props;
    CheckCuda(deeprnn::CudaCurrentDeviceProps(&props));
    std::string name;
    CheckCuda(deeprnn::CudaCurrentDeviceName(&name));
    int runtime = 0, driver = 0;
    CheckCuda(deeprnn::CudaVersions(&runtime, &driver));
    py::dict d = PropsDict(props);
    d["name"] = name;
    d["cuda_runtime_version"] = runtime;
    d["cuda_driver_version"] = driver;
    return d;
#else
    NoCuda("device_info");
#endif
  }, "device_info()\n\nProperties of the current CUDA device as the planner sees them, its name, and the CUDA "
     "runtime / driver versions (1000 * major + 10 * minor).");

  Def(m, kGridSyncBenchmark, [](const BoundArgs& a) {
    const int64_t syncs = IntArg(a["syncs"], "syncs", 0);
    const int blocks = static_cast<int>(IntArg(a["blocks"], "blocks", 0, INT32_MAX));
#if defined(DEEPRNN_WITH_CUDA)
    CheckCuda(deeprnn::CudaGridSyncBenchmark(syncs, blocks, reinterpret_cast<void*>(StreamArg(a))));
#else
    (void)syncs, (void)blocks;
    NoCuda("grid_sync_benchmark");
#endif
  }, "Queues one cooperative kernel doing `syncs` grid barriers (blocks=0: one block of 256 threads per SM); time "
     "it with CUDA events to get the cost of one grid synchronisation.");
}
