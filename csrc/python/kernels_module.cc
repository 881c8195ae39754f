// deeprnn_fast._kernels: the kernel library (csrc/deeprnn) for Python without TensorFlow.
//
// - forward_cpu / backward_cpu run the CPU library on NumPy arrays;
// - forward_cuda / backward_cuda run the CUDA library on CUDA arrays of any library that exposes
//   __cuda_array_interface__ (PyTorch, CuPy, Numba), on the stream given (a cudaStream_t as an int, 0 = default);
// - gru_forward_cpu / gru_backward_cpu / gru_forward_cuda / gru_backward_cuda do the same for the fused stacked GRU
//   (deeprnn/stacked_gru.h, deeprnn/stacked_gru_cuda.h);
// - plan() shows the launch plan the CUDA library would use (on the current device, or on device properties given
//   as a dict, which needs no GPU and no CUDA build), for the tanh RNN or (cell="gru") the GRU.
// Every function writes into output arrays the caller allocated (so that a check can poison them first) and checks
// every shape and dtype first, raising ValueError / TypeError that names the argument. Without a CUDA build
// (DEEPRNN_WITH_CUDA undefined) the CUDA entry points raise RuntimeError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "deeprnn/launch_plan.h"
#include "deeprnn/stacked.h"
#include "deeprnn/stacked_cuda.h"

namespace py = pybind11;

namespace deeprnn_fast {
namespace {

using deeprnn::Shape;
using Activation = deeprnn::Cell;  // the tanh / relu RNN's cell, named by its activation

std::string DimsText(const std::vector<int64_t>& dims) {
  std::string s = "(";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + (dims.size() == 1 ? ",)" : ")");
}

Activation ParseActivation(const std::string& name) {
  if (name == "tanh") return deeprnn::Cell::kTanh;
  if (name == "relu") return deeprnn::Cell::kRelu;
  throw py::value_error("activation must be 'tanh' or 'relu'; got '" + name + "'");
}

[[noreturn, maybe_unused]] void NoCuda(const char* what) {
  throw std::runtime_error(std::string(what) +
                           ": deeprnn_fast._kernels was built without CUDA (no nvcc at build time, or "
                           "DEEPRNN_FAST_CUDA=0); rebuild on a machine with the CUDA toolkit");
}

// One array argument, host or device: where it is and what it holds.
struct ArrayView {
  void* data = nullptr;
  std::vector<int64_t> shape;
  char kind = 0;
  int itemsize = 0;
  bool readonly = false;
  bool has_stream = false;
  uintptr_t stream = 0;  // __cuda_array_interface__ v3 "stream": where the producer queued its work
};

std::string TypeName(py::handle obj) { return py::str(py::type::handle_of(obj).attr("__name__")); }

ArrayView HostView(py::handle obj, const std::string& name) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(name + " must be a numpy.ndarray; got " + TypeName(obj));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!(a.flags() & py::array::c_style)) throw py::value_error(name + " must be C-contiguous (np.ascontiguousarray)");
  ArrayView v;
  v.data = const_cast<void*>(a.data());  // outputs are checked for writability before use
  for (py::ssize_t i = 0; i < a.ndim(); ++i) v.shape.push_back(a.shape(i));
  v.kind = a.dtype().kind();
  v.itemsize = static_cast<int>(a.itemsize());
  v.readonly = !a.writeable();
  return v;
}

[[maybe_unused]] ArrayView CudaView(py::handle obj, const std::string& name) {
  if (!py::hasattr(obj, "__cuda_array_interface__"))
    throw py::type_error(name + " must be a CUDA array (an object with __cuda_array_interface__, such as a CUDA "
                         "torch.Tensor or a CuPy array); got " + TypeName(obj));
  py::dict cai = obj.attr("__cuda_array_interface__");
  ArrayView v;
  for (py::handle d : cai["shape"]) v.shape.push_back(d.cast<int64_t>());
  const std::string typestr = cai["typestr"].cast<std::string>();
  if (typestr.size() < 3 || typestr[0] == '>')
    throw py::value_error(name + ": unsupported __cuda_array_interface__ typestr '" + typestr + "'");
  v.kind = typestr[1];
  v.itemsize = std::stoi(typestr.substr(2));
  py::tuple data = cai["data"];
  v.data = reinterpret_cast<void*>(data[0].cast<uintptr_t>());
  v.readonly = data[1].cast<bool>();
  if (cai.contains("mask") && !cai["mask"].is_none()) throw py::value_error(name + ": masked CUDA arrays are not supported");
  if (cai.contains("strides") && !cai["strides"].is_none()) {
    std::vector<int64_t> strides;
    for (py::handle s : cai["strides"]) strides.push_back(s.cast<int64_t>());
    int64_t expected = v.itemsize;
    for (int i = static_cast<int>(v.shape.size()) - 1; i >= 0; --i) {
      if (v.shape[i] > 1 && strides[i] != expected)
        throw py::value_error(name + " must be C-contiguous (call .contiguous() / cupy.ascontiguousarray)");
      expected *= v.shape[i];
    }
  }
  if (cai.contains("stream") && !cai["stream"].is_none()) {
    v.has_stream = true;
    v.stream = cai["stream"].cast<uintptr_t>();
  }
  return v;
}

// Checks one argument against the shape and dtype the call needs.
void Expect(const ArrayView& v, const std::string& name, const std::vector<int64_t>& shape, int itemsize,
            bool writable) {
  if (v.kind != 'f' || v.itemsize != itemsize)
    throw py::type_error(name + " must be float" + std::to_string(8 * itemsize) + " (the dtype of inputs); got kind '" +
                         std::string(1, v.kind) + "' of " + std::to_string(v.itemsize) + " bytes");
  if (v.shape != shape)
    throw py::value_error(name + " must have shape " + DimsText(shape) + "; got " + DimsText(v.shape));
  if (writable && v.readonly) throw py::value_error(name + " is an output and must be writable");
}

using ViewFn = ArrayView (*)(py::handle, const std::string&);

std::vector<py::handle> AsList(py::handle obj, const std::string& name, int64_t layers) {
  if (!py::isinstance<py::sequence>(obj) || py::isinstance<py::str>(obj))
    throw py::type_error(name + " must be a list of arrays, one per layer");
  std::vector<py::handle> items;
  for (py::handle h : py::reinterpret_borrow<py::sequence>(obj)) items.push_back(h);
  if (layers >= 0 && static_cast<int64_t>(items.size()) != layers)
    throw py::value_error(name + " must hold one array per layer (" + std::to_string(layers) + "); got " +
                          std::to_string(items.size()));
  return items;
}

// Reads B, T, D from inputs [B,T,D] and H, L from kernels, the way the TF op does.
struct Problem {
  Shape shape;
  int itemsize;
};

// `gates` is 1 for the RNN (kernels[0] [D, H]) and 3 for the GRU (kernels[0] [D, 3H], gates z | r | n).
Problem ReadProblem(ViewFn view, py::handle inputs, py::handle kernels, int gates = 1) {
  ArrayView x = view(inputs, "inputs");
  if (x.shape.size() != 3) throw py::value_error("inputs must have shape (batch, time, features); got " + DimsText(x.shape));
  if (x.kind != 'f' || (x.itemsize != 4 && x.itemsize != 8))
    throw py::type_error("inputs must be float32 or float64");
  std::vector<py::handle> k = AsList(kernels, "kernels", -1);
  if (k.empty()) throw py::value_error("kernels must hold at least one array (one per layer)");
  ArrayView k0 = view(k[0], "kernels[0]");
  if (k0.shape.size() != 2 || k0.shape[0] != x.shape[2] || k0.shape[1] % gates != 0)
    throw py::value_error("kernels[0] must have shape (" + std::to_string(x.shape[2]) +
                          (gates == 1 ? ", units)" : ", 3 * units) (gates z, r, n side by side)") + "; got " +
                          DimsText(k0.shape));
  Problem p;
  p.shape = {x.shape[0], x.shape[1], x.shape[2], k0.shape[1] / gates, static_cast<int64_t>(k.size())};
  p.itemsize = x.itemsize;
  if (p.shape.input < 1 || p.shape.hidden < 1) throw py::value_error("features and units must be at least 1");
  return p;
}

// Pointers of every argument of one pass, checked.
template <typename T>
struct Pointers {
  std::vector<const T*> kernels, recurrent_kernels, biases;
  std::vector<T*> grad_kernels, grad_recurrent_kernels, grad_biases;
  std::vector<ArrayView> views;  // every array seen, for the producer streams of CUDA arrays

  const T* In(ViewFn view, py::handle obj, const std::string& name, const std::vector<int64_t>& shape) {
    views.push_back(view(obj, name));
    Expect(views.back(), name, shape, sizeof(T), false);
    return static_cast<const T*>(views.back().data);
  }
  T* Out(ViewFn view, py::handle obj, const std::string& name, const std::vector<int64_t>& shape) {
    views.push_back(view(obj, name));
    Expect(views.back(), name, shape, sizeof(T), true);
    return static_cast<T*>(views.back().data);
  }
  void Weights(ViewFn view, const Shape& s, py::handle k, py::handle rk, py::handle b) {
    auto ks = AsList(k, "kernels", s.layers), rks = AsList(rk, "recurrent_kernels", s.layers);
    for (int64_t l = 0; l < s.layers; ++l) {
      const std::string i = "[" + std::to_string(l) + "]";
      kernels.push_back(In(view, ks[l], "kernels" + i, {l == 0 ? s.input : s.hidden, s.hidden}));
      recurrent_kernels.push_back(In(view, rks[l], "recurrent_kernels" + i, {s.hidden, s.hidden}));
    }
    if (b.is_none()) {
      biases.assign(s.layers, nullptr);
    } else {
      auto bs = AsList(b, "biases", s.layers);
      for (int64_t l = 0; l < s.layers; ++l)
        biases.push_back(In(view, bs[l], "biases[" + std::to_string(l) + "]", {s.hidden}));
    }
  }
  void Grads(ViewFn view, const Shape& s, py::handle k, py::handle rk, py::handle b) {
    auto ks = AsList(k, "grad_kernels", s.layers), rks = AsList(rk, "grad_recurrent_kernels", s.layers);
    auto bs = AsList(b, "grad_biases", s.layers);
    for (int64_t l = 0; l < s.layers; ++l) {
      const std::string i = "[" + std::to_string(l) + "]";
      grad_kernels.push_back(Out(view, ks[l], "grad_kernels" + i, {l == 0 ? s.input : s.hidden, s.hidden}));
      grad_recurrent_kernels.push_back(Out(view, rks[l], "grad_recurrent_kernels" + i, {s.hidden, s.hidden}));
      grad_biases.push_back(Out(view, bs[l], "grad_biases" + i, {s.hidden}));
    }
  }
  // The GRU's weights: kernels [in, 3H], recurrent kernels [H, 3H], biases [2, 3H] (or None: not read).
  void GruWeightsIn(ViewFn view, const Shape& s, py::handle k, py::handle rk, py::handle b) {
    const int64_t H = s.hidden;
    auto ks = AsList(k, "kernels", s.layers), rks = AsList(rk, "recurrent_kernels", s.layers);
    for (int64_t l = 0; l < s.layers; ++l) {
      const std::string i = "[" + std::to_string(l) + "]";
      kernels.push_back(In(view, ks[l], "kernels" + i, {l == 0 ? s.input : H, 3 * H}));
      recurrent_kernels.push_back(In(view, rks[l], "recurrent_kernels" + i, {H, 3 * H}));
    }
    if (b.is_none()) {
      biases.assign(s.layers, nullptr);
    } else {
      auto bs = AsList(b, "biases", s.layers);
      for (int64_t l = 0; l < s.layers; ++l)
        biases.push_back(In(view, bs[l], "biases[" + std::to_string(l) + "]", {2, 3 * H}));
    }
  }
  void GruGradsOut(ViewFn view, const Shape& s, py::handle k, py::handle rk, py::handle b) {
    const int64_t H = s.hidden;
    auto ks = AsList(k, "grad_kernels", s.layers), rks = AsList(rk, "grad_recurrent_kernels", s.layers);
    auto bs = AsList(b, "grad_biases", s.layers);
    for (int64_t l = 0; l < s.layers; ++l) {
      const std::string i = "[" + std::to_string(l) + "]";
      grad_kernels.push_back(Out(view, ks[l], "grad_kernels" + i, {l == 0 ? s.input : H, 3 * H}));
      grad_recurrent_kernels.push_back(Out(view, rks[l], "grad_recurrent_kernels" + i, {H, 3 * H}));
      grad_biases.push_back(Out(view, bs[l], "grad_biases" + i, {2, 3 * H}));
    }
  }
  deeprnn::Weights<T> W() const { return {kernels.data(), recurrent_kernels.data(), biases.data()}; }
  deeprnn::Weights<T> GruW() const { return {kernels.data(), recurrent_kernels.data(), biases.data()}; }
  deeprnn::WeightGrads<T> GruG() const {
    return {grad_kernels.data(), grad_recurrent_kernels.data(), grad_biases.data()};
  }
  deeprnn::WeightGrads<T> G() const { return {grad_kernels.data(), grad_recurrent_kernels.data(), grad_biases.data()}; }
};

struct ForwardArrays {
  py::handle inputs, kernels, recurrent_kernels, biases, initial_states, outputs, final_states, activations;
};

template <typename T>
struct ForwardPointers : Pointers<T> {
  const T* inputs;
  const T* initial_states;
  T *outputs, *final_states, *activations;
  ForwardPointers(ViewFn view, const Shape& s, const ForwardArrays& a) {
    const int64_t B = s.batch, TT = s.time, D = s.input, H = s.hidden, L = s.layers;
    inputs = this->In(view, a.inputs, "inputs", {B, TT, D});
    this->Weights(view, s, a.kernels, a.recurrent_kernels, a.biases);
    initial_states = this->In(view, a.initial_states, "initial_states", {L, B, H});
    outputs = this->Out(view, a.outputs, "outputs", {B, TT, H});
    final_states = this->Out(view, a.final_states, "final_states", {L, B, H});
    activations = this->Out(view, a.activations, "activations", {L, TT, B, H});
  }
};

struct BackwardArrays {
  py::handle inputs, kernels, recurrent_kernels, initial_states, activations, grad_outputs, grad_final_states,
      grad_inputs, grad_kernels, grad_recurrent_kernels, grad_biases, grad_initial_states, grad_preactivations;
};

template <typename T>
struct BackwardPointers : Pointers<T> {
  const T *inputs, *initial_states, *activations, *grad_outputs, *grad_final_states;
  T *grad_inputs, *grad_initial_states, *grad_preactivations;
  BackwardPointers(ViewFn view, const Shape& s, const BackwardArrays& a) {
    const int64_t B = s.batch, TT = s.time, D = s.input, H = s.hidden, L = s.layers;
    inputs = this->In(view, a.inputs, "inputs", {B, TT, D});
    this->Weights(view, s, a.kernels, a.recurrent_kernels, py::none());
    initial_states = this->In(view, a.initial_states, "initial_states", {L, B, H});
    activations = this->In(view, a.activations, "activations", {L, TT, B, H});
    grad_outputs = this->In(view, a.grad_outputs, "grad_outputs", {B, TT, H});
    grad_final_states = this->In(view, a.grad_final_states, "grad_final_states", {L, B, H});
    grad_inputs = this->Out(view, a.grad_inputs, "grad_inputs", {B, TT, D});
    this->Grads(view, s, a.grad_kernels, a.grad_recurrent_kernels, a.grad_biases);
    grad_initial_states = this->Out(view, a.grad_initial_states, "grad_initial_states", {L, B, H});
    grad_preactivations = this->Out(view, a.grad_preactivations, "grad_preactivations", {L, TT, B, H});
  }
};

struct GruForwardArrays {
  py::handle inputs, kernels, recurrent_kernels, biases, initial_states, outputs, final_states, activations, gates;
};

template <typename T>
struct GruForwardPointers : Pointers<T> {
  const T* inputs;
  const T* initial_states;
  T *outputs, *final_states, *activations, *gates;
  GruForwardPointers(ViewFn view, const Shape& s, const GruForwardArrays& a) {
    const int64_t B = s.batch, TT = s.time, D = s.input, H = s.hidden, L = s.layers;
    inputs = this->In(view, a.inputs, "inputs", {B, TT, D});
    this->GruWeightsIn(view, s, a.kernels, a.recurrent_kernels, a.biases);
    initial_states = this->In(view, a.initial_states, "initial_states", {L, B, H});
    outputs = this->Out(view, a.outputs, "outputs", {B, TT, H});
    final_states = this->Out(view, a.final_states, "final_states", {L, B, H});
    activations = this->Out(view, a.activations, "activations", {L, TT, B, H});
    gates = this->Out(view, a.gates, "gates", {L, TT, B, 4 * H});
  }
};

// grad_gates is None for the CPU pass (which keeps its own scratch) and a [L,T,B,4H] array for the CUDA pass.
struct GruBackwardArrays {
  py::handle inputs, kernels, recurrent_kernels, initial_states, activations, gates, grad_outputs, grad_final_states,
      grad_inputs, grad_kernels, grad_recurrent_kernels, grad_biases, grad_initial_states, grad_gates;
};

template <typename T>
struct GruBackwardPointers : Pointers<T> {
  const T *inputs, *initial_states, *activations, *gates, *grad_outputs, *grad_final_states;
  T *grad_inputs, *grad_initial_states, *grad_gates = nullptr;
  GruBackwardPointers(ViewFn view, const Shape& s, const GruBackwardArrays& a) {
    const int64_t B = s.batch, TT = s.time, D = s.input, H = s.hidden, L = s.layers;
    const int64_t G = 4 * H;
    inputs = this->In(view, a.inputs, "inputs", {B, TT, D});
    this->GruWeightsIn(view, s, a.kernels, a.recurrent_kernels, py::none());
    initial_states = this->In(view, a.initial_states, "initial_states", {L, B, H});
    activations = this->In(view, a.activations, "activations", {L, TT, B, H});
    gates = this->In(view, a.gates, "gates", {L, TT, B, G});
    grad_outputs = this->In(view, a.grad_outputs, "grad_outputs", {B, TT, H});
    grad_final_states = this->In(view, a.grad_final_states, "grad_final_states", {L, B, H});
    grad_inputs = this->Out(view, a.grad_inputs, "grad_inputs", {B, TT, D});
    this->GruGradsOut(view, s, a.grad_kernels, a.grad_recurrent_kernels, a.grad_biases);
    grad_initial_states = this->Out(view, a.grad_initial_states, "grad_initial_states", {L, B, H});
    if (!a.grad_gates.is_none()) grad_gates = this->Out(view, a.grad_gates, "grad_gates", {L, TT, B, G});
  }
};

// ---- CPU ----

deeprnn::Cell CellOf(Activation act) { return act; }

template <typename T>
void ForwardCpu(const Shape& s, Activation act, const ForwardArrays& a) {
  ForwardPointers<T> p(HostView, s, a);
  deeprnn::ForwardArgs<T> args;
  args.cell = CellOf(act);
  args.shape = s;
  args.inputs.dense = p.inputs;
  args.weights = p.W();
  args.initial_states = p.initial_states;
  args.outputs = p.outputs;
  args.final_states = p.final_states;
  args.activations = p.activations;
  py::gil_scoped_release release;
  deeprnn::StackedForwardCpu<T>(args, deeprnn::SerialFor);
}

template <typename T>
void BackwardCpu(const Shape& s, Activation act, const BackwardArrays& a) {
  BackwardPointers<T> p(HostView, s, a);
  deeprnn::BackwardArgs<T> args;
  args.cell = CellOf(act);
  args.shape = s;
  args.inputs.dense = p.inputs;
  args.weights = p.W();
  args.initial_states = p.initial_states;
  args.activations = p.activations;
  args.grad_outputs = p.grad_outputs;
  args.grad_final_states = p.grad_final_states;
  args.grad_inputs = p.grad_inputs;
  args.grad_weights = p.G();
  args.grad_initial_states = p.grad_initial_states;
  // The pass's scratch begins with dLoss/dZ of every cell for batches below 128 (larger ones keep two cells per
  // layer): that part is copied to grad_preactivations [L,T,B,H].
  std::vector<T> scratch(static_cast<size_t>(deeprnn::StackedBackwardCpuScratchSize(args.cell, s, sizeof(T))));
  py::gil_scoped_release release;
  deeprnn::StackedBackwardCpu<T>(args, scratch.data(), deeprnn::SerialFor);
  const size_t cells = static_cast<size_t>(s.layers * s.time * s.batch * s.hidden);
  std::copy_n(scratch.data(), std::min(cells, scratch.size()), p.grad_preactivations);
}

template <typename T>
void GruForwardCpu(const Shape& s, const GruForwardArrays& a) {
  GruForwardPointers<T> p(HostView, s, a);
  deeprnn::ForwardArgs<T> args;
  args.cell = deeprnn::Cell::kGru;
  args.shape = s;
  args.inputs.dense = p.inputs;
  args.weights = p.GruW();
  args.initial_states = p.initial_states;
  args.outputs = p.outputs;
  args.final_states = p.final_states;
  args.activations = p.activations;
  args.saved = p.gates;
  py::gil_scoped_release release;
  deeprnn::StackedForwardCpu<T>(args, deeprnn::SerialFor);
}

template <typename T>
void GruBackwardCpu(const Shape& s, const GruBackwardArrays& a) {
  GruBackwardPointers<T> p(HostView, s, a);
  deeprnn::BackwardArgs<T> args;
  args.cell = deeprnn::Cell::kGru;
  args.shape = s;
  args.inputs.dense = p.inputs;
  args.weights = p.GruW();
  args.initial_states = p.initial_states;
  args.activations = p.activations;
  args.saved = p.gates;
  args.grad_outputs = p.grad_outputs;
  args.grad_final_states = p.grad_final_states;
  args.grad_inputs = p.grad_inputs;
  args.grad_weights = p.GruG();
  args.grad_initial_states = p.grad_initial_states;
  py::gil_scoped_release release;
  std::vector<T> scratch(static_cast<size_t>(deeprnn::StackedBackwardCpuScratchSize(args.cell, s, sizeof(T))));
  deeprnn::StackedBackwardCpu<T>(args, scratch.data(), deeprnn::SerialFor);
}

// ---- planning (no GPU needed) ----

deeprnn::CudaSchedule ParseSchedule(const std::string& name) {
  deeprnn::CudaSchedule schedule;
  const deeprnn::CudaStatus st = deeprnn::ParseSchedule(name, &schedule);
  if (!st.ok()) throw py::value_error(st.error);
  return schedule;
}

int ParseItemsize(py::handle dtype) {
  const py::dtype dt = py::dtype::from_args(py::reinterpret_borrow<py::object>(dtype));
  if (dt.kind() != 'f' || (dt.itemsize() != 4 && dt.itemsize() != 8))
    throw py::type_error("dtype must be float32 or float64");
  return static_cast<int>(dt.itemsize());
}

deeprnn::Direction ParseDirection(const std::string& name) {
  if (name == "forward") return deeprnn::Direction::kForward;
  if (name == "backward") return deeprnn::Direction::kBackward;
  throw py::value_error("direction must be 'forward' or 'backward'; got '" + name + "'");
}

deeprnn::Cell ParseCell(const std::string& name) {
  deeprnn::Cell cell;
  if (name == "rnn") return deeprnn::Cell::kTanh;  // the tanh / relu RNN's plans are the same
  if (deeprnn::CellFromName(name, &cell)) return cell;
  throw py::value_error("cell must be 'tanh', 'relu', 'gru' or 'lstm' ('rnn': tanh); got '" + name + "'");
}

py::dict PlanDict(const deeprnn::WavefrontPlan& plan, bool = false) {
  py::dict d;
  d["schedule"] = deeprnn::ScheduleName(plan.schedule);
  d["weights_on_chip"] = plan.weights_on_chip;
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

deeprnn::DeviceProps PropsFromDict(const py::dict& d) {
  deeprnn::DeviceProps p;
  auto get = [&](const char* key, int64_t fallback) {
    return d.contains(key) ? d[key].cast<int64_t>() : fallback;
  };
  static const std::set<std::string> known = {"sm_count", "smem_per_block_optin", "smem_per_sm",
                                              "reserved_smem_per_block", "max_threads_per_sm", "max_blocks_per_sm",
                                              "regs_per_sm", "cooperative_launch", "cc_major", "cc_minor",
                                              "regs_per_thread", "blocks_per_sm", "name", "multiprocessors"};
  for (auto item : d) {
    const std::string key = py::str(item.first);
    if (!known.count(key)) throw py::value_error("unknown device property '" + key + "'");
  }
  if (!d.contains("sm_count")) throw py::value_error("device properties need at least 'sm_count'");
  p.sm_count = static_cast<int>(get("sm_count", 0));
  p.smem_per_block_optin = get("smem_per_block_optin", 227 * 1024);
  p.smem_per_sm = get("smem_per_sm", 228 * 1024);
  p.reserved_smem_per_block = get("reserved_smem_per_block", 1024);
  p.max_threads_per_sm = static_cast<int>(get("max_threads_per_sm", 2048));
  p.max_blocks_per_sm = static_cast<int>(get("max_blocks_per_sm", 32));
  p.regs_per_sm = static_cast<int>(get("regs_per_sm", 65536));
  p.cooperative_launch = d.contains("cooperative_launch") ? d["cooperative_launch"].cast<bool>() : true;
  p.cc_major = static_cast<int>(get("cc_major", 9));
  p.cc_minor = static_cast<int>(get("cc_minor", 0));
  return p;
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

py::dict Plan(int64_t batch, int64_t time, int64_t input, int64_t hidden, int64_t layers, py::handle dtype,
              const std::string& direction, const std::string& schedule, py::object device, const std::string& cell) {
  const Shape shape{batch, time, input, hidden, layers};
  const int itemsize = ParseItemsize(dtype);
  const deeprnn::Cell c = ParseCell(cell);
  deeprnn::WavefrontPlan plan;
  deeprnn::CudaStatus st;
  if (device.is_none()) {
#if defined(DEEPRNN_WITH_CUDA)
    if (!CudaAvailable()) throw std::runtime_error("plan(device=None) plans for the current GPU, and there is none");
    st = deeprnn::PlanStackedCuda(c, shape, itemsize, ParseDirection(direction), ParseSchedule(schedule), &plan);
#else
    NoCuda("plan(device=None) plans for the current GPU");
#endif
  } else {
    const py::dict d = device.cast<py::dict>();
    const deeprnn::DeviceProps props = PropsFromDict(d);
    // The kernels use at most 128 registers per thread (__launch_bounds__(256, 2)); a test may fix the occupancy.
    const int regs = d.contains("regs_per_thread") ? d["regs_per_thread"].cast<int>() : 128;
    const int fixed = d.contains("blocks_per_sm") ? d["blocks_per_sm"].cast<int>() : -1;
    const deeprnn::OccupancyFn occupancy = [&](int, int64_t smem) {
      if (smem > props.smem_per_block_optin) return 0;
      return fixed >= 0 ? fixed : deeprnn::EstimateBlocksPerSm(props, smem, deeprnn::kWavefrontThreads, regs);
    };
    st = deeprnn::PlanWavefront(c, shape, itemsize, ParseDirection(direction), props, ParseSchedule(schedule),
                                occupancy, &plan);
  }
  if (!st.ok()) throw py::value_error(st.error);
  return PlanDict(plan);
}

int64_t WorkspaceBytes(const std::string& direction, int64_t batch, int64_t time, int64_t input, int64_t hidden,
                       int64_t layers, py::handle dtype, const std::string& cell, bool tokens) {
  const Shape shape{batch, time, input, hidden, layers};
  const deeprnn::Cell c = ParseCell(cell);
  const deeprnn::CudaStatus st = deeprnn::ValidateCudaShape(c, shape);
  if (!st.ok()) throw py::value_error(st.error);
  const int itemsize = ParseItemsize(dtype);
  const bool forward = ParseDirection(direction) == deeprnn::Direction::kForward;
  return forward ? deeprnn::StackedForwardCudaWorkspaceBytes(c, shape, itemsize)
                 : deeprnn::StackedBackwardCudaWorkspaceBytes(c, shape, itemsize, tokens);
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
void* Workspace(py::handle workspace, int64_t needed, int64_t* bytes) {
  ArrayView w = CudaView(workspace, "workspace");
  int64_t n = w.itemsize;
  for (int64_t d : w.shape) n *= d;
  const uintptr_t base = reinterpret_cast<uintptr_t>(w.data);
  const uintptr_t aligned = (base + 255) / 256 * 256;
  n -= static_cast<int64_t>(aligned - base);
  if (n < needed)
    throw py::value_error("workspace must hold at least " + std::to_string(needed) +
                          " bytes from its first 256-byte aligned address; got " + std::to_string(std::max<int64_t>(n, 0)));
  if (w.readonly) throw py::value_error("workspace must be writable");
  *bytes = n;
  return reinterpret_cast<void*>(aligned);
}

py::dict InfoDict(const deeprnn::CudaLaunchInfo& info) {
  py::dict d = PlanDict(info.wavefront);
  d["kernel_launches"] = info.kernel_launches;
  return d;
}

// The common part of every CUDA entry point: the workspace, the wait for the arrays' producers, then
// call(launch) without the GIL, and its status turned into an exception.
template <typename Call>
py::dict RunCuda(const std::vector<ArrayView>& views, int64_t workspace_needed, py::handle workspace, uintptr_t stream,
                 deeprnn::CudaSchedule schedule, Call&& call) {
  deeprnn::CudaLaunch launch;
  launch.workspace = Workspace(workspace, workspace_needed, &launch.workspace_bytes);
  WaitForProducers(views, stream);
  deeprnn::CudaLaunchInfo info;
  launch.stream = reinterpret_cast<void*>(stream);
  launch.schedule = schedule;
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
py::dict ForwardCuda(const Shape& s, Activation act, const ForwardArrays& a, py::handle workspace, uintptr_t stream,
                     deeprnn::CudaSchedule schedule) {
  ForwardPointers<T> p(CudaView, s, a);
  deeprnn::ForwardArgs<T> args;
  args.cell = act;
  args.shape = s;
  args.inputs.dense = p.inputs;
  args.weights = p.W();
  args.initial_states = p.initial_states;
  args.outputs = p.outputs;
  args.final_states = p.final_states;
  args.activations = p.activations;
  return RunCuda(p.views, deeprnn::StackedForwardCudaWorkspaceBytes(act, s, sizeof(T)), workspace, stream, schedule,
                 [&](const deeprnn::CudaLaunch& launch) { return deeprnn::StackedForwardCuda<T>(args, launch); });
}

template <typename T>
py::dict BackwardCuda(const Shape& s, Activation act, const BackwardArrays& a, py::handle workspace,
                      uintptr_t stream, deeprnn::CudaSchedule schedule) {
  BackwardPointers<T> p(CudaView, s, a);
  deeprnn::BackwardArgs<T> args;
  args.cell = act;
  args.shape = s;
  args.inputs.dense = p.inputs;
  args.weights = p.W();
  args.initial_states = p.initial_states;
  args.activations = p.activations;
  args.grad_outputs = p.grad_outputs;
  args.grad_final_states = p.grad_final_states;
  args.grad_inputs = p.grad_inputs;
  args.grad_weights = p.G();
  args.grad_initial_states = p.grad_initial_states;
  return RunCuda(p.views, deeprnn::StackedBackwardCudaWorkspaceBytes(act, s, sizeof(T)), workspace, stream, schedule,
                 [&](const deeprnn::CudaLaunch& launch) {
                   return deeprnn::StackedBackwardCuda<T>(args, p.grad_preactivations, launch);
                 });
}

template <typename T>
py::dict GruForwardCuda(const Shape& s, const GruForwardArrays& a, py::handle workspace, uintptr_t stream,
                        deeprnn::CudaSchedule schedule) {
  GruForwardPointers<T> p(CudaView, s, a);
  deeprnn::ForwardArgs<T> args;
  args.cell = deeprnn::Cell::kGru;
  args.shape = s;
  args.inputs.dense = p.inputs;
  args.weights = p.GruW();
  args.initial_states = p.initial_states;
  args.outputs = p.outputs;
  args.final_states = p.final_states;
  args.activations = p.activations;
  args.saved = p.gates;
  return RunCuda(p.views, deeprnn::StackedForwardCudaWorkspaceBytes(args.cell, s, sizeof(T)), workspace, stream,
                 schedule,
                 [&](const deeprnn::CudaLaunch& launch) { return deeprnn::StackedForwardCuda<T>(args, launch); });
}

template <typename T>
py::dict GruBackwardCuda(const Shape& s, const GruBackwardArrays& a, py::handle workspace, uintptr_t stream,
                         deeprnn::CudaSchedule schedule) {
  if (a.grad_gates.is_none()) throw py::type_error("grad_gates must be a CUDA array of shape (L, T, B, 4 * units)");
  GruBackwardPointers<T> p(CudaView, s, a);
  deeprnn::BackwardArgs<T> args;
  args.cell = deeprnn::Cell::kGru;
  args.shape = s;
  args.inputs.dense = p.inputs;
  args.weights = p.GruW();
  args.initial_states = p.initial_states;
  args.activations = p.activations;
  args.saved = p.gates;
  args.grad_outputs = p.grad_outputs;
  args.grad_final_states = p.grad_final_states;
  args.grad_inputs = p.grad_inputs;
  args.grad_weights = p.GruG();
  args.grad_initial_states = p.grad_initial_states;
  return RunCuda(p.views, deeprnn::StackedBackwardCudaWorkspaceBytes(args.cell, s, sizeof(T)), workspace, stream,
                 schedule, [&](const deeprnn::CudaLaunch& launch) {
                   return deeprnn::StackedBackwardCuda<T>(args, p.grad_gates, launch);
                 });
}

#endif  // DEEPRNN_WITH_CUDA

}  // namespace
}  // namespace deeprnn_fast

PYBIND11_MODULE(_kernels, m) {
  using namespace deeprnn_fast;
  m.doc() = "deeprnn_fast's kernel library without TensorFlow: CPU passes on NumPy arrays, CUDA passes on "
            "__cuda_array_interface__ arrays, and the CUDA launch planner.";

  m.def("has_cuda_build", [] {
#if defined(DEEPRNN_WITH_CUDA)
    return true;
#else
    return false;
#endif
  }, "True when the module was compiled with the CUDA kernels.");
  m.def("cuda_available", &CudaAvailable, "True when the module has CUDA kernels and a CUDA device is visible.");
  m.def("cpu_isa", [] { return std::string(deeprnn::CpuKernelIsa()); },
        "The instruction set of the CPU passes: 'avx512', 'avx2' or 'generic' (DEEPRNN_FAST_CPU_ISA forces one).");

  m.def(
      "forward_cpu",
      [](py::handle inputs, py::handle kernels, py::handle recurrent_kernels, py::handle biases,
         py::handle initial_states, py::handle outputs, py::handle final_states, py::handle activations,
         const std::string& activation) {
        const Activation act = ParseActivation(activation);
        const Problem p = ReadProblem(HostView, inputs, kernels);
        const ForwardArrays a{inputs, kernels, recurrent_kernels, biases, initial_states, outputs, final_states,
                              activations};
        if (p.itemsize == 4) ForwardCpu<float>(p.shape, act, a);
        else ForwardCpu<double>(p.shape, act, a);
      },
      py::arg("inputs"), py::arg("kernels"), py::arg("recurrent_kernels"), py::arg("biases"),
      py::arg("initial_states"), py::arg("outputs"), py::arg("final_states"), py::arg("activations"),
      py::arg("activation") = "tanh",
      "Forward pass on the CPU into the given arrays: inputs [B,T,D], kernels / recurrent_kernels / biases lists "
      "of L arrays, initial_states [L,B,H] -> outputs [B,T,H], final_states [L,B,H], activations [L,T,B,H].");

  m.def(
      "backward_cpu",
      [](py::handle inputs, py::handle kernels, py::handle recurrent_kernels, py::handle initial_states,
         py::handle activations, py::handle grad_outputs, py::handle grad_final_states, py::handle grad_inputs,
         py::handle grad_kernels, py::handle grad_recurrent_kernels, py::handle grad_biases,
         py::handle grad_initial_states, py::handle grad_preactivations, const std::string& activation) {
        const Activation act = ParseActivation(activation);
        const Problem p = ReadProblem(HostView, inputs, kernels);
        const BackwardArrays a{inputs, kernels, recurrent_kernels, initial_states, activations, grad_outputs,
                               grad_final_states, grad_inputs, grad_kernels, grad_recurrent_kernels, grad_biases,
                               grad_initial_states, grad_preactivations};
        if (p.itemsize == 4) BackwardCpu<float>(p.shape, act, a);
        else BackwardCpu<double>(p.shape, act, a);
      },
      py::arg("inputs"), py::arg("kernels"), py::arg("recurrent_kernels"), py::arg("initial_states"),
      py::arg("activations"), py::arg("grad_outputs"), py::arg("grad_final_states"), py::arg("grad_inputs"),
      py::arg("grad_kernels"), py::arg("grad_recurrent_kernels"), py::arg("grad_biases"),
      py::arg("grad_initial_states"), py::arg("grad_preactivations"), py::arg("activation") = "tanh",
      "Backward pass on the CPU into the given arrays (grad_preactivations [L,T,B,H] is scratch that ends up "
      "holding dLoss/dZ).");

  m.def(
      "gru_forward_cpu",
      [](py::handle inputs, py::handle kernels, py::handle recurrent_kernels, py::handle biases,
         py::handle initial_states, py::handle outputs, py::handle final_states, py::handle activations,
         py::handle gates) {
        const Problem p = ReadProblem(HostView, inputs, kernels, 3);
        const GruForwardArrays a{inputs, kernels, recurrent_kernels, biases, initial_states, outputs, final_states,
                                 activations, gates};
        if (p.itemsize == 4) GruForwardCpu<float>(p.shape, a);
        else GruForwardCpu<double>(p.shape, a);
      },
      py::arg("inputs"), py::arg("kernels"), py::arg("recurrent_kernels"), py::arg("biases"),
      py::arg("initial_states"), py::arg("outputs"), py::arg("final_states"), py::arg("activations"),
      py::arg("gates"),
      "GRU forward pass on the CPU into the given arrays: inputs [B,T,D], kernels ([D,3H], then [H,3H]) / "
      "recurrent_kernels ([H,3H]) / biases ([2,3H]) lists of L arrays, initial_states [L,B,H] -> outputs [B,T,H], "
      "final_states [L,B,H], activations [L,T,B,H], gates [L,T,B,4H] (rows [z | r | n | q]).");

  m.def(
      "gru_backward_cpu",
      [](py::handle inputs, py::handle kernels, py::handle recurrent_kernels, py::handle initial_states,
         py::handle activations, py::handle gates, py::handle grad_outputs, py::handle grad_final_states,
         py::handle grad_inputs, py::handle grad_kernels, py::handle grad_recurrent_kernels, py::handle grad_biases,
         py::handle grad_initial_states) {
        const Problem p = ReadProblem(HostView, inputs, kernels, 3);
        const GruBackwardArrays a{inputs, kernels, recurrent_kernels, initial_states, activations, gates,
                                  grad_outputs, grad_final_states, grad_inputs, grad_kernels,
                                  grad_recurrent_kernels, grad_biases, grad_initial_states, py::none()};
        if (p.itemsize == 4) GruBackwardCpu<float>(p.shape, a);
        else GruBackwardCpu<double>(p.shape, a);
      },
      py::arg("inputs"), py::arg("kernels"), py::arg("recurrent_kernels"), py::arg("initial_states"),
      py::arg("activations"), py::arg("gates"), py::arg("grad_outputs"), py::arg("grad_final_states"),
      py::arg("grad_inputs"), py::arg("grad_kernels"), py::arg("grad_recurrent_kernels"), py::arg("grad_biases"),
      py::arg("grad_initial_states"),
      "GRU backward pass on the CPU into the given arrays (the gates' gradients live in a scratch buffer the call "
      "allocates itself).");

  m.def("workspace_bytes", &WorkspaceBytes, py::arg("direction"), py::arg("batch"), py::arg("time"),
        py::arg("input"), py::arg("hidden"), py::arg("layers"), py::arg("dtype"), py::arg("cell") = "rnn",
        py::arg("tokens") = false,
        "Bytes of CUDA workspace forward_cuda / gru_forward_cuda ('forward') or backward_cuda / gru_backward_cuda "
        "('backward') needs (no GPU needed); cell: 'rnn' or 'gru'.");

  m.def("plan", &Plan, py::arg("batch"), py::arg("time"), py::arg("input"), py::arg("hidden"), py::arg("layers"),
        py::arg("dtype") = "float32", py::arg("direction") = "forward", py::arg("schedule") = "auto",
        py::arg("device") = py::none(), py::arg("cell") = "rnn",
        "The CUDA launch plan of one pass (cell 'rnn' or 'gru') as a dict. device=None: the current GPU (CUDA "
        "build only); or a dict of "
        "device properties (sm_count, smem_per_block_optin, smem_per_sm, reserved_smem_per_block, "
        "max_threads_per_sm, max_blocks_per_sm, regs_per_sm, cooperative_launch, and optionally regs_per_thread "
        "or a fixed blocks_per_sm), which needs no GPU. Raises ValueError for shapes or schedules that cannot run.");

  m.def(
      "forward_cuda",
      [](py::handle inputs, py::handle kernels, py::handle recurrent_kernels, py::handle biases,
         py::handle initial_states, py::handle outputs, py::handle final_states, py::handle activations,
         py::handle workspace, const std::string& activation, uintptr_t stream, const std::string& schedule) {
#if defined(DEEPRNN_WITH_CUDA)
        const Activation act = ParseActivation(activation);
        const deeprnn::CudaSchedule sched = ParseSchedule(schedule);
        const Problem p = ReadProblem(CudaView, inputs, kernels);
        const ForwardArrays a{inputs, kernels, recurrent_kernels, biases, initial_states, outputs, final_states,
                              activations};
        return p.itemsize == 4 ? ForwardCuda<float>(p.shape, act, a, workspace, stream, sched)
                               : ForwardCuda<double>(p.shape, act, a, workspace, stream, sched);
#else
        (void)inputs, (void)kernels, (void)recurrent_kernels, (void)biases, (void)initial_states, (void)outputs;
        (void)final_states, (void)activations, (void)workspace, (void)activation, (void)stream, (void)schedule;
        NoCuda("forward_cuda");
#endif
      },
      py::arg("inputs"), py::arg("kernels"), py::arg("recurrent_kernels"), py::arg("biases"),
      py::arg("initial_states"), py::arg("outputs"), py::arg("final_states"), py::arg("activations"),
      py::arg("workspace"), py::arg("activation") = "tanh", py::arg("stream") = 0, py::arg("schedule") = "auto",
      "Forward pass on the current CUDA device, queued on `stream` (cudaStream_t as int; e.g. "
      "torch.cuda.current_stream().cuda_stream), into the given CUDA arrays; workspace: a CUDA array of at least "
      "workspace_bytes('forward', ...) bytes. schedule: auto, stepwise, persistent, persistent_resident, "
      "persistent_streaming. Returns the plan that ran. Does not synchronise.");

  m.def(
      "backward_cuda",
      [](py::handle inputs, py::handle kernels, py::handle recurrent_kernels, py::handle initial_states,
         py::handle activations, py::handle grad_outputs, py::handle grad_final_states, py::handle grad_inputs,
         py::handle grad_kernels, py::handle grad_recurrent_kernels, py::handle grad_biases,
         py::handle grad_initial_states, py::handle grad_preactivations, py::handle workspace,
         const std::string& activation, uintptr_t stream, const std::string& schedule) {
#if defined(DEEPRNN_WITH_CUDA)
        const Activation act = ParseActivation(activation);
        const deeprnn::CudaSchedule sched = ParseSchedule(schedule);
        const Problem p = ReadProblem(CudaView, inputs, kernels);
        const BackwardArrays a{inputs, kernels, recurrent_kernels, initial_states, activations, grad_outputs,
                               grad_final_states, grad_inputs, grad_kernels, grad_recurrent_kernels, grad_biases,
                               grad_initial_states, grad_preactivations};
        return p.itemsize == 4 ? BackwardCuda<float>(p.shape, act, a, workspace, stream, sched)
                               : BackwardCuda<double>(p.shape, act, a, workspace, stream, sched);
#else
        (void)inputs, (void)kernels, (void)recurrent_kernels, (void)initial_states, (void)activations;
        (void)grad_outputs, (void)grad_final_states, (void)grad_inputs, (void)grad_kernels;
        (void)grad_recurrent_kernels, (void)grad_biases, (void)grad_initial_states, (void)grad_preactivations;
        (void)workspace, (void)activation, (void)stream, (void)schedule;
        NoCuda("backward_cuda");
#endif
      },
      py::arg("inputs"), py::arg("kernels"), py::arg("recurrent_kernels"), py::arg("initial_states"),
      py::arg("activations"), py::arg("grad_outputs"), py::arg("grad_final_states"), py::arg("grad_inputs"),
      py::arg("grad_kernels"), py::arg("grad_recurrent_kernels"), py::arg("grad_biases"),
      py::arg("grad_initial_states"), py::arg("grad_preactivations"), py::arg("workspace"),
      py::arg("activation") = "tanh", py::arg("stream") = 0, py::arg("schedule") = "auto",
      "Backward pass on the current CUDA device (see forward_cuda). Returns the plan that ran.");

  m.def(
      "gru_forward_cuda",
      [](py::handle inputs, py::handle kernels, py::handle recurrent_kernels, py::handle biases,
         py::handle initial_states, py::handle outputs, py::handle final_states, py::handle activations,
         py::handle gates, py::handle workspace, uintptr_t stream, const std::string& schedule) {
#if defined(DEEPRNN_WITH_CUDA)
        const deeprnn::CudaSchedule sched = ParseSchedule(schedule);
        const Problem p = ReadProblem(CudaView, inputs, kernels, 3);
        const GruForwardArrays a{inputs, kernels, recurrent_kernels, biases, initial_states, outputs, final_states,
                                 activations, gates};
        return p.itemsize == 4 ? GruForwardCuda<float>(p.shape, a, workspace, stream, sched)
                               : GruForwardCuda<double>(p.shape, a, workspace, stream, sched);
#else
        (void)inputs, (void)kernels, (void)recurrent_kernels, (void)biases, (void)initial_states, (void)outputs;
        (void)final_states, (void)activations, (void)gates, (void)workspace, (void)stream, (void)schedule;
        NoCuda("gru_forward_cuda");
#endif
      },
      py::arg("inputs"), py::arg("kernels"), py::arg("recurrent_kernels"), py::arg("biases"),
      py::arg("initial_states"), py::arg("outputs"), py::arg("final_states"), py::arg("activations"),
      py::arg("gates"), py::arg("workspace"), py::arg("stream") = 0, py::arg("schedule") = "auto",
      "GRU forward pass on the current CUDA device (shapes as gru_forward_cpu; stream, workspace of at least "
      "workspace_bytes('forward', ..., cell='gru') bytes and schedule as forward_cuda). Returns the plan that ran.");

  m.def(
      "gru_backward_cuda",
      [](py::handle inputs, py::handle kernels, py::handle recurrent_kernels, py::handle initial_states,
         py::handle activations, py::handle gates, py::handle grad_outputs, py::handle grad_final_states,
         py::handle grad_inputs, py::handle grad_kernels, py::handle grad_recurrent_kernels, py::handle grad_biases,
         py::handle grad_initial_states, py::handle grad_gates, py::handle workspace, uintptr_t stream,
         const std::string& schedule) {
#if defined(DEEPRNN_WITH_CUDA)
        const deeprnn::CudaSchedule sched = ParseSchedule(schedule);
        const Problem p = ReadProblem(CudaView, inputs, kernels, 3);
        const GruBackwardArrays a{inputs, kernels, recurrent_kernels, initial_states, activations, gates,
                                  grad_outputs, grad_final_states, grad_inputs, grad_kernels,
                                  grad_recurrent_kernels, grad_biases, grad_initial_states, grad_gates};
        return p.itemsize == 4 ? GruBackwardCuda<float>(p.shape, a, workspace, stream, sched)
                               : GruBackwardCuda<double>(p.shape, a, workspace, stream, sched);
#else
        (void)inputs, (void)kernels, (void)recurrent_kernels, (void)initial_states, (void)activations, (void)gates;
        (void)grad_outputs, (void)grad_final_states, (void)grad_inputs, (void)grad_kernels;
        (void)grad_recurrent_kernels, (void)grad_biases, (void)grad_initial_states, (void)grad_gates;
        (void)workspace, (void)stream, (void)schedule;
        NoCuda("gru_backward_cuda");
#endif
      },
      py::arg("inputs"), py::arg("kernels"), py::arg("recurrent_kernels"), py::arg("initial_states"),
      py::arg("activations"), py::arg("gates"), py::arg("grad_outputs"), py::arg("grad_final_states"),
      py::arg("grad_inputs"), py::arg("grad_kernels"), py::arg("grad_recurrent_kernels"), py::arg("grad_biases"),
      py::arg("grad_initial_states"), py::arg("grad_gates"), py::arg("workspace"), py::arg("stream") = 0,
      py::arg("schedule") = "auto",
      "GRU backward pass on the current CUDA device (see gru_forward_cuda); grad_gates [L,T,B,4H] is scratch that "
      "ends up holding the gates' gradients [dn | dz | dr | dn * r]. Returns the plan that ran.");

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
  }, "Properties of the current CUDA device as the planner sees them, its name, and the CUDA runtime / driver "
     "versions (1000 * major + 10 * minor).");

  m.def(
      "grid_sync_benchmark",
      [](int64_t syncs, int blocks, uintptr_t stream) {
#if defined(DEEPRNN_WITH_CUDA)
        CheckCuda(deeprnn::CudaGridSyncBenchmark(syncs, blocks, reinterpret_cast<void*>(stream)));
#else
        (void)syncs, (void)blocks, (void)stream;
        NoCuda("grid_sync_benchmark");
#endif
      },
      py::arg("syncs"), py::arg("blocks") = 0, py::arg("stream") = 0,
      "Queues one cooperative kernel doing `syncs` grid barriers (blocks=0: one block of 256 threads per SM); time "
      "it with CUDA events to get the cost of one grid synchronisation.");
}
