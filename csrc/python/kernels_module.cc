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
#include <vector>

#include "deeprnn/launch_plan.h"
#include "deeprnn/stacked_gru.h"
#include "deeprnn/stacked_gru_cuda.h"
#include "deeprnn/stacked_rnn.h"
#include "deeprnn/stacked_rnn_cuda.h"
#include "deeprnn/stacked.h"
#include "python/array_arguments.h"
#include "python/call_arguments.h"

namespace py = pybind11;

namespace deeprnn_fast {
namespace {

using deeprnn::Activation;
using deeprnn::Shape;

Activation ParseActivation(py::handle obj) {
  const std::string name = StrArg(obj, "activation");
  if (name == "tanh") return Activation::kTanh;
  if (name == "relu") return Activation::kRelu;
  throw py::value_error("activation must be 'tanh' or 'relu'; got " + Quoted(name));
}

[[noreturn, maybe_unused]] void NoCuda(const char* what) {
  throw std::runtime_error(std::string(what) +
                           ": deeprnn_fast._kernels was built without CUDA (no nvcc at build time, or "
                           "DEEPRNN_FAST_CUDA=0); rebuild on a machine with the CUDA toolkit");
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
    throw py::type_error("inputs must be float32 or float64; got " + DtypeText(x.kind, x.itemsize));
  std::vector<py::object> k = LayerList(kernels, "kernels", -1);
  if (k.empty()) throw py::value_error("kernels must hold at least one array (one per layer)");
  ArrayView k0 = view(k[0], "kernels[0]");
  if (k0.shape.size() != 2 || k0.shape[0] != x.shape[2] || k0.shape[1] % gates != 0)
    throw py::value_error("kernels[0] must have shape (" + std::to_string(x.shape[2]) +
                          (gates == 1 ? ", units)" : ", 3 * units) (gates z, r, n side by side)") + "; got " +
                          DimsText(k0.shape));
  Problem p;
  p.shape = {x.shape[0], x.shape[1], x.shape[2], k0.shape[1] / gates, static_cast<int64_t>(k.size())};
  p.itemsize = x.itemsize;
  if (p.shape.input < 1)
    throw py::value_error("inputs must have at least one feature (its last dimension); got shape " + DimsText(x.shape));
  if (p.shape.hidden < 1)
    throw py::value_error("kernels[0] must have at least one unit (its last dimension); got shape " +
                          DimsText(k0.shape));
  return p;
}

// Pointers of every argument of one pass, checked.
template <typename T>
struct Pointers {
  std::vector<const T*> kernels, recurrent_kernels, biases;
  std::vector<T*> grad_kernels, grad_recurrent_kernels, grad_biases;
  // Every array seen, holding each one alive (the GIL is released while the kernels run), for the overlap check
  // and the producer streams of CUDA arrays.
  std::vector<ArrayView> views;

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
  void Weights(ViewFn view, const Shape& s, py::handle k, py::handle rk, py::handle b) {
    auto ks = LayerList(k, "kernels", s.layers), rks = LayerList(rk, "recurrent_kernels", s.layers);
    for (int64_t l = 0; l < s.layers; ++l) {
      const std::string i = "[" + std::to_string(l) + "]";
      kernels.push_back(In(view, ks[l], "kernels" + i, {l == 0 ? s.input : s.hidden, s.hidden}));
      recurrent_kernels.push_back(In(view, rks[l], "recurrent_kernels" + i, {s.hidden, s.hidden}));
    }
    if (!b) {  // the backward pass, which reads no biases (a caller's None is refused: the passes need arrays)
      biases.assign(s.layers, nullptr);
    } else {
      auto bs = LayerList(b, "biases", s.layers);
      for (int64_t l = 0; l < s.layers; ++l)
        biases.push_back(In(view, bs[l], "biases[" + std::to_string(l) + "]", {s.hidden}));
    }
  }
  void Grads(ViewFn view, const Shape& s, py::handle k, py::handle rk, py::handle b) {
    auto ks = LayerList(k, "grad_kernels", s.layers), rks = LayerList(rk, "grad_recurrent_kernels", s.layers);
    auto bs = LayerList(b, "grad_biases", s.layers);
    for (int64_t l = 0; l < s.layers; ++l) {
      const std::string i = "[" + std::to_string(l) + "]";
      grad_kernels.push_back(Out(view, ks[l], "grad_kernels" + i, {l == 0 ? s.input : s.hidden, s.hidden}));
      grad_recurrent_kernels.push_back(Out(view, rks[l], "grad_recurrent_kernels" + i, {s.hidden, s.hidden}));
      grad_biases.push_back(Out(view, bs[l], "grad_biases" + i, {s.hidden}));
    }
  }
  // The GRU's weights: kernels [in, 3H], recurrent kernels [H, 3H], biases [2, 3H] (or a null handle: not read).
  void GruWeightsIn(ViewFn view, const Shape& s, py::handle k, py::handle rk, py::handle b) {
    const int64_t H = s.hidden;
    auto ks = LayerList(k, "kernels", s.layers), rks = LayerList(rk, "recurrent_kernels", s.layers);
    for (int64_t l = 0; l < s.layers; ++l) {
      const std::string i = "[" + std::to_string(l) + "]";
      kernels.push_back(In(view, ks[l], "kernels" + i, {l == 0 ? s.input : H, 3 * H}));
      recurrent_kernels.push_back(In(view, rks[l], "recurrent_kernels" + i, {H, 3 * H}));
    }
    if (!b) {  // the backward pass, which reads no biases
      biases.assign(s.layers, nullptr);
    } else {
      auto bs = LayerList(b, "biases", s.layers);
      for (int64_t l = 0; l < s.layers; ++l)
        biases.push_back(In(view, bs[l], "biases[" + std::to_string(l) + "]", {2, 3 * H}));
    }
  }
  void GruGradsOut(ViewFn view, const Shape& s, py::handle k, py::handle rk, py::handle b) {
    const int64_t H = s.hidden;
    auto ks = LayerList(k, "grad_kernels", s.layers), rks = LayerList(rk, "grad_recurrent_kernels", s.layers);
    auto bs = LayerList(b, "grad_biases", s.layers);
    for (int64_t l = 0; l < s.layers; ++l) {
      const std::string i = "[" + std::to_string(l) + "]";
      grad_kernels.push_back(Out(view, ks[l], "grad_kernels" + i, {l == 0 ? s.input : H, 3 * H}));
      grad_recurrent_kernels.push_back(Out(view, rks[l], "grad_recurrent_kernels" + i, {H, 3 * H}));
      grad_biases.push_back(Out(view, bs[l], "grad_biases" + i, {2, 3 * H}));
    }
  }
  deeprnn::Weights<T> W() const { return {kernels.data(), recurrent_kernels.data(), biases.data()}; }
  deeprnn::GruWeights<T> GruW() const { return {kernels.data(), recurrent_kernels.data(), biases.data()}; }
  deeprnn::GruWeightGrads<T> GruG() const {
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
    this->Weights(view, s, a.kernels, a.recurrent_kernels, py::handle());
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
    gates = this->Out(view, a.gates, "gates", {L, TT, B, deeprnn::kGruGateSlots * H});
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
    const int64_t G = deeprnn::kGruGateSlots * H;
    inputs = this->In(view, a.inputs, "inputs", {B, TT, D});
    this->GruWeightsIn(view, s, a.kernels, a.recurrent_kernels, py::handle());
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

deeprnn::Cell CellOf(Activation act) { return act == Activation::kRelu ? deeprnn::Cell::kRelu : deeprnn::Cell::kTanh; }

// A forced instruction set this processor lacks (DEEPRNN_FAST_CPU_ISA) is an error, not a crash.
void CheckCpuIsa() {
  const std::string error = deeprnn::CpuKernelIsaError();
  if (!error.empty()) throw std::runtime_error(error);
}

template <typename T>
void ForwardCpu(const Shape& s, Activation act, const ForwardArrays& a) {
  ForwardPointers<T> p(HostView, s, a);
  CheckNoOverlap(p.views);
  CheckCpuIsa();
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
  CheckNoOverlap(p.views);
  CheckCpuIsa();
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
  CheckNoOverlap(p.views);
  CheckCpuIsa();
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
  CheckNoOverlap(p.views);
  CheckCpuIsa();
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

bool ParseCell(py::handle obj) {  // true for the GRU
  const std::string name = StrArg(obj, "cell");
  if (name == "rnn") return false;
  if (name == "gru") return true;
  throw py::value_error("cell must be 'rnn' (tanh / relu RNN) or 'gru'; got " + Quoted(name));
}

py::dict PlanDict(const deeprnn::WavefrontPlan& plan, bool gru = false) {
  const deeprnn::WavefrontTile t = gru ? deeprnn::GruTileShape(plan.tile) : deeprnn::WavefrontTileShape(plan.tile);
  py::dict d;
  d["schedule"] = deeprnn::ScheduleName(plan.schedule);
  d["weights_on_chip"] = plan.weights_on_chip;
  d["tile"] = plan.tile;
  d["bm"] = t.bm;
  d["bn"] = t.bn;
  d["tm"] = t.tm;
  d["tn"] = t.tn;
  d["bk"] = t.bk;
  d["ks"] = deeprnn::WavefrontKs(t);
  d["row_tiles"] = plan.row_tiles;
  d["col_tiles"] = plan.col_tiles;
  d["grid"] = plan.grid;
  d["threads"] = deeprnn::kWavefrontThreads;
  d["smem_bytes"] = plan.smem_bytes;
  d["blocks_per_sm"] = plan.blocks_per_sm;
  d["launches"] = plan.launches;
  d["reason"] = plan.reason;
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
  const bool gru = ParseCell(a["cell"]);
  deeprnn::WavefrontPlan plan;
  deeprnn::CudaStatus st;
  if (a["device"].is_none()) {
#if defined(DEEPRNN_WITH_CUDA)
    if (!CudaAvailable()) throw std::runtime_error("plan(device=None) plans for the current GPU, and there is none");
    st = gru ? deeprnn::PlanStackedGruCuda(shape, itemsize, direction, schedule, &plan)
             : deeprnn::PlanStackedRnnCuda(shape, itemsize, direction, schedule, &plan);
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
    st = gru ? deeprnn::PlanGruWavefront(shape, itemsize, direction, d.props, schedule, occupancy, &plan)
             : deeprnn::PlanWavefront(shape, itemsize, direction, d.props, schedule, occupancy, &plan);
  }
  if (!st.ok()) throw py::value_error(OneLine(st.error));
  return PlanDict(plan, gru);
}

int64_t WorkspaceBytes(const BoundArgs& a) {
  const Shape shape = ShapeArgs(a);
  const bool gru = ParseCell(a["cell"]);
  const deeprnn::CudaStatus st = gru ? deeprnn::ValidateGruCudaShape(shape) : deeprnn::ValidateCudaShape(shape);
  if (!st.ok()) throw py::value_error(st.error);
  const int itemsize = ParseItemsize(a["dtype"]);
  const bool forward = ParseDirection(a["direction"]) == deeprnn::Direction::kForward;
  if (gru)
    return forward ? deeprnn::StackedGruForwardCudaWorkspaceBytes(shape, itemsize)
                   : deeprnn::StackedGruBackwardCudaWorkspaceBytes(shape, itemsize);
  return forward ? deeprnn::StackedRnnForwardCudaWorkspaceBytes(shape, itemsize)
                 : deeprnn::StackedRnnBackwardCudaWorkspaceBytes(shape, itemsize);
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

py::dict InfoDict(const deeprnn::CudaLaunchInfo& info, bool gru = false) {
  py::dict d = PlanDict(info.wavefront, gru);
  d["kernel_launches"] = info.kernel_launches;
  return d;
}

// The common part of every CUDA entry point: the workspace, the wait for the arrays' producers, then
// call(workspace, workspace_bytes, stream, &info) without the GIL, and its status turned into an exception.
template <typename Call>
py::dict RunCuda(std::vector<ArrayView>& views, int64_t workspace_needed, py::handle workspace, uintptr_t stream,
                 bool gru, Call&& call) {
  views.push_back(WorkspaceView(workspace, workspace_needed));
  CheckNoOverlap(views);
  const uintptr_t base = reinterpret_cast<uintptr_t>(views.back().data);
  const int64_t skip = static_cast<int64_t>((256 - base % 256) % 256);
  void* ws = reinterpret_cast<void*>(base + skip);
  const int64_t bytes = views.back().bytes - skip;
  WaitForProducers(views, stream);
  deeprnn::CudaLaunchInfo info;
  deeprnn::CudaStatus st;
  {
    py::gil_scoped_release release;
    st = call(ws, bytes, reinterpret_cast<void*>(stream), &info);
  }
  CheckCuda(st);
  return InfoDict(info, gru);
}

template <typename T>
py::dict ForwardCuda(const Shape& s, Activation act, const ForwardArrays& a, py::handle workspace, uintptr_t stream,
                     deeprnn::CudaSchedule schedule) {
  ForwardPointers<T> p(CudaView, s, a);
  return RunCuda(p.views, deeprnn::StackedRnnForwardCudaWorkspaceBytes(s, sizeof(T)), workspace, stream, false,
                 [&](void* ws, int64_t bytes, void* cuda_stream, deeprnn::CudaLaunchInfo* info) {
                   return deeprnn::StackedRnnForwardCuda<T>(s, act, p.inputs, p.W(), p.initial_states, p.outputs,
                                                            p.final_states, p.activations, ws, bytes, cuda_stream,
                                                            schedule, info);
                 });
}

template <typename T>
py::dict BackwardCuda(const Shape& s, Activation act, const BackwardArrays& a, py::handle workspace,
                      uintptr_t stream, deeprnn::CudaSchedule schedule) {
  BackwardPointers<T> p(CudaView, s, a);
  return RunCuda(p.views, deeprnn::StackedRnnBackwardCudaWorkspaceBytes(s, sizeof(T)), workspace, stream, false,
                 [&](void* ws, int64_t bytes, void* cuda_stream, deeprnn::CudaLaunchInfo* info) {
                   return deeprnn::StackedRnnBackwardCuda<T>(
                       s, act, p.inputs, p.W(), p.initial_states, p.activations, p.grad_outputs, p.grad_final_states,
                       p.grad_inputs, p.G(), p.grad_initial_states, p.grad_preactivations, ws, bytes, cuda_stream,
                       schedule, info);
                 });
}

template <typename T>
py::dict GruForwardCuda(const Shape& s, const GruForwardArrays& a, py::handle workspace, uintptr_t stream,
                        deeprnn::CudaSchedule schedule) {
  GruForwardPointers<T> p(CudaView, s, a);
  return RunCuda(p.views, deeprnn::StackedGruForwardCudaWorkspaceBytes(s, sizeof(T)), workspace, stream, true,
                 [&](void* ws, int64_t bytes, void* cuda_stream, deeprnn::CudaLaunchInfo* info) {
                   return deeprnn::StackedGruForwardCuda<T>(s, p.inputs, p.GruW(), p.initial_states, p.outputs,
                                                            p.final_states, p.activations, p.gates, ws, bytes,
                                                            cuda_stream, schedule, info);
                 });
}

template <typename T>
py::dict GruBackwardCuda(const Shape& s, const GruBackwardArrays& a, py::handle workspace, uintptr_t stream,
                         deeprnn::CudaSchedule schedule) {
  if (a.grad_gates.is_none()) throw py::type_error("grad_gates must be a CUDA array of shape (L, T, B, 4 * units)");
  GruBackwardPointers<T> p(CudaView, s, a);
  return RunCuda(p.views, deeprnn::StackedGruBackwardCudaWorkspaceBytes(s, sizeof(T)), workspace, stream, true,
                 [&](void* ws, int64_t bytes, void* cuda_stream, deeprnn::CudaLaunchInfo* info) {
                   return deeprnn::StackedGruBackwardCuda<T>(
                       s, p.inputs, p.GruW(), p.initial_states, p.activations, p.gates, p.grad_outputs,
                       p.grad_final_states, p.grad_inputs, p.GruG(), p.grad_initial_states, p.grad_gates, ws, bytes,
                       cuda_stream, schedule, info);
                 });
}

#endif  // DEEPRNN_WITH_CUDA

// ---- entry points ----

// The parameters of every entry point, in order (positional and keyword arguments bind to these names).
const Signature kForwardCpu{"forward_cpu",
                            {"inputs", "kernels", "recurrent_kernels", "biases", "initial_states", "outputs",
                             "final_states", "activations", {"activation", "tanh"}}};
const Signature kBackwardCpu{"backward_cpu",
                             {"inputs", "kernels", "recurrent_kernels", "initial_states", "activations",
                              "grad_outputs", "grad_final_states", "grad_inputs", "grad_kernels",
                              "grad_recurrent_kernels", "grad_biases", "grad_initial_states", "grad_preactivations",
                              {"activation", "tanh"}}};
const Signature kGruForwardCpu{"gru_forward_cpu",
                               {"inputs", "kernels", "recurrent_kernels", "biases", "initial_states", "outputs",
                                "final_states", "activations", "gates"}};
const Signature kGruBackwardCpu{"gru_backward_cpu",
                                {"inputs", "kernels", "recurrent_kernels", "initial_states", "activations", "gates",
                                 "grad_outputs", "grad_final_states", "grad_inputs", "grad_kernels",
                                 "grad_recurrent_kernels", "grad_biases", "grad_initial_states"}};
const Signature kWorkspaceBytes{"workspace_bytes",
                                {"direction", "batch", "time", "input", "hidden", "layers", "dtype",
                                 {"cell", "rnn"}}};
const Signature kPlan{"plan",
                      {"batch", "time", "input", "hidden", "layers", {"dtype", "float32"}, {"direction", "forward"},
                       {"schedule", "auto"}, {"device", kNoneDefault}, {"cell", "rnn"}}};
const Signature kForwardCuda{"forward_cuda",
                             {"inputs", "kernels", "recurrent_kernels", "biases", "initial_states", "outputs",
                              "final_states", "activations", "workspace", {"activation", "tanh"},
                              {"stream", int64_t{0}}, {"schedule", "auto"}}};
const Signature kBackwardCuda{"backward_cuda",
                              {"inputs", "kernels", "recurrent_kernels", "initial_states", "activations",
                               "grad_outputs", "grad_final_states", "grad_inputs", "grad_kernels",
                               "grad_recurrent_kernels", "grad_biases", "grad_initial_states", "grad_preactivations",
                               "workspace", {"activation", "tanh"}, {"stream", int64_t{0}}, {"schedule", "auto"}}};
const Signature kGruForwardCuda{"gru_forward_cuda",
                                {"inputs", "kernels", "recurrent_kernels", "biases", "initial_states", "outputs",
                                 "final_states", "activations", "gates", "workspace", {"stream", int64_t{0}},
                                 {"schedule", "auto"}}};
const Signature kGruBackwardCuda{"gru_backward_cuda",
                                 {"inputs", "kernels", "recurrent_kernels", "initial_states", "activations", "gates",
                                  "grad_outputs", "grad_final_states", "grad_inputs", "grad_kernels",
                                  "grad_recurrent_kernels", "grad_biases", "grad_initial_states", "grad_gates",
                                  "workspace", {"stream", int64_t{0}}, {"schedule", "auto"}}};
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

ForwardArrays ForwardArgs(const BoundArgs& a) {
  return {a["inputs"], a["kernels"], a["recurrent_kernels"], a["biases"], a["initial_states"], a["outputs"],
          a["final_states"], a["activations"]};
}

BackwardArrays BackwardArgs(const BoundArgs& a) {
  return {a["inputs"], a["kernels"], a["recurrent_kernels"], a["initial_states"], a["activations"],
          a["grad_outputs"], a["grad_final_states"], a["grad_inputs"], a["grad_kernels"],
          a["grad_recurrent_kernels"], a["grad_biases"], a["grad_initial_states"], a["grad_preactivations"]};
}

GruForwardArrays GruForwardArgs(const BoundArgs& a) {
  return {a["inputs"], a["kernels"], a["recurrent_kernels"], a["biases"], a["initial_states"], a["outputs"],
          a["final_states"], a["activations"], a["gates"]};
}

// grad_gates: None for the CPU pass.
GruBackwardArrays GruBackwardArgs(const BoundArgs& a, py::handle grad_gates) {
  return {a["inputs"], a["kernels"], a["recurrent_kernels"], a["initial_states"], a["activations"], a["gates"],
          a["grad_outputs"], a["grad_final_states"], a["grad_inputs"], a["grad_kernels"],
          a["grad_recurrent_kernels"], a["grad_biases"], a["grad_initial_states"], grad_gates};
}

[[maybe_unused]] uintptr_t StreamArg(const BoundArgs& a) {
  return static_cast<uintptr_t>(IntArg(a["stream"], "stream", 0, INT64_MAX));
}

}  // namespace
}  // namespace deeprnn_fast

PYBIND11_MODULE(_kernels, m) {
  using namespace deeprnn_fast;
  m.doc() = "deeprnn_fast's kernel library without TensorFlow: CPU passes on NumPy arrays, CUDA passes on "
            "__cuda_array_interface__ arrays, and the CUDA launch planner.";
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

  Def(m, kForwardCpu, [](const BoundArgs& a) {
    const Activation act = ParseActivation(a["activation"]);
    const Problem p = ReadProblem(HostView, a["inputs"], a["kernels"]);
    if (p.itemsize == 4) ForwardCpu<float>(p.shape, act, ForwardArgs(a));
    else ForwardCpu<double>(p.shape, act, ForwardArgs(a));
  }, "Forward pass on the CPU into the given arrays: inputs [B,T,D], kernels / recurrent_kernels / biases lists "
     "(or tuples) of L arrays, initial_states [L,B,H] -> outputs [B,T,H], final_states [L,B,H], activations "
     "[L,T,B,H]. Every array is a C-contiguous, aligned, native-byte-order numpy.ndarray of the inputs' dtype; "
     "no output may share memory with another argument.");

  Def(m, kBackwardCpu, [](const BoundArgs& a) {
    const Activation act = ParseActivation(a["activation"]);
    const Problem p = ReadProblem(HostView, a["inputs"], a["kernels"]);
    if (p.itemsize == 4) BackwardCpu<float>(p.shape, act, BackwardArgs(a));
    else BackwardCpu<double>(p.shape, act, BackwardArgs(a));
  }, "Backward pass on the CPU into the given arrays (grad_preactivations [L,T,B,H] is scratch that ends up "
     "holding dLoss/dZ); arrays as forward_cpu.");

  Def(m, kGruForwardCpu, [](const BoundArgs& a) {
    const Problem p = ReadProblem(HostView, a["inputs"], a["kernels"], 3);
    if (p.itemsize == 4) GruForwardCpu<float>(p.shape, GruForwardArgs(a));
    else GruForwardCpu<double>(p.shape, GruForwardArgs(a));
  }, "GRU forward pass on the CPU into the given arrays: inputs [B,T,D], kernels ([D,3H], then [H,3H]) / "
     "recurrent_kernels ([H,3H]) / biases ([2,3H]) lists of L arrays, initial_states [L,B,H] -> outputs [B,T,H], "
     "final_states [L,B,H], activations [L,T,B,H], gates [L,T,B,4H] (rows [z | r | n | q]); arrays as "
     "forward_cpu.");

  Def(m, kGruBackwardCpu, [](const BoundArgs& a) {
    const Problem p = ReadProblem(HostView, a["inputs"], a["kernels"], 3);
    if (p.itemsize == 4) GruBackwardCpu<float>(p.shape, GruBackwardArgs(a, py::none()));
    else GruBackwardCpu<double>(p.shape, GruBackwardArgs(a, py::none()));
  }, "GRU backward pass on the CPU into the given arrays (the gates' gradients live in a scratch buffer the call "
     "allocates itself).");

  Def(m, kWorkspaceBytes, [](const BoundArgs& a) { return WorkspaceBytes(a); },
      "Bytes of CUDA workspace forward_cuda / gru_forward_cuda ('forward') or backward_cuda / gru_backward_cuda "
      "('backward') needs (no GPU needed); cell: 'rnn' or 'gru'.");

  Def(m, kPlan, [](const BoundArgs& a) { return Plan(a); },
      "The CUDA launch plan of one pass (cell 'rnn' or 'gru') as a dict. device=None: the current GPU (CUDA "
      "build only); or a dict of device properties (sm_count, smem_per_block_optin, smem_per_sm, "
      "reserved_smem_per_block, max_threads_per_sm, max_blocks_per_sm, regs_per_sm, cooperative_launch, and "
      "optionally regs_per_thread or a fixed blocks_per_sm), which needs no GPU. Raises ValueError for shapes or "
      "schedules that cannot run and for device properties no GPU has.");

  Def(m, kForwardCuda, [](const BoundArgs& a) -> py::object {
#if defined(DEEPRNN_WITH_CUDA)
    const Activation act = ParseActivation(a["activation"]);
    const deeprnn::CudaSchedule sched = ParseSchedule(a["schedule"]);
    const uintptr_t stream = StreamArg(a);
    const Problem p = ReadProblem(CudaView, a["inputs"], a["kernels"]);
    return p.itemsize == 4 ? ForwardCuda<float>(p.shape, act, ForwardArgs(a), a["workspace"], stream, sched)
                           : ForwardCuda<double>(p.shape, act, ForwardArgs(a), a["workspace"], stream, sched);
#else
    (void)a;
    NoCuda("forward_cuda");
#endif
  }, "Forward pass on the current CUDA device, queued on `stream` (cudaStream_t as int; e.g. "
     "torch.cuda.current_stream().cuda_stream), into the given CUDA arrays (C-contiguous, little-endian, of the "
     "inputs' dtype; no output may share memory with another argument); workspace: a CUDA array of at least "
     "workspace_bytes('forward', ...) bytes. schedule: auto, stepwise, persistent, persistent_resident, "
     "persistent_streaming. Returns the plan that ran. Does not synchronise.");

  Def(m, kBackwardCuda, [](const BoundArgs& a) -> py::object {
#if defined(DEEPRNN_WITH_CUDA)
    const Activation act = ParseActivation(a["activation"]);
    const deeprnn::CudaSchedule sched = ParseSchedule(a["schedule"]);
    const uintptr_t stream = StreamArg(a);
    const Problem p = ReadProblem(CudaView, a["inputs"], a["kernels"]);
    return p.itemsize == 4 ? BackwardCuda<float>(p.shape, act, BackwardArgs(a), a["workspace"], stream, sched)
                           : BackwardCuda<double>(p.shape, act, BackwardArgs(a), a["workspace"], stream, sched);
#else
    (void)a;
    NoCuda("backward_cuda");
#endif
  }, "Backward pass on the current CUDA device (see forward_cuda). Returns the plan that ran.");

  Def(m, kGruForwardCuda, [](const BoundArgs& a) -> py::object {
#if defined(DEEPRNN_WITH_CUDA)
    const deeprnn::CudaSchedule sched = ParseSchedule(a["schedule"]);
    const uintptr_t stream = StreamArg(a);
    const Problem p = ReadProblem(CudaView, a["inputs"], a["kernels"], 3);
    return p.itemsize == 4 ? GruForwardCuda<float>(p.shape, GruForwardArgs(a), a["workspace"], stream, sched)
                           : GruForwardCuda<double>(p.shape, GruForwardArgs(a), a["workspace"], stream, sched);
#else
    (void)a;
    NoCuda("gru_forward_cuda");
#endif
  }, "GRU forward pass on the current CUDA device (shapes as gru_forward_cpu; stream, workspace of at least "
     "workspace_bytes('forward', ..., cell='gru') bytes and schedule as forward_cuda). Returns the plan that ran.");

  Def(m, kGruBackwardCuda, [](const BoundArgs& a) -> py::object {
#if defined(DEEPRNN_WITH_CUDA)
    const deeprnn::CudaSchedule sched = ParseSchedule(a["schedule"]);
    const uintptr_t stream = StreamArg(a);
    const Problem p = ReadProblem(CudaView, a["inputs"], a["kernels"], 3);
    const GruBackwardArrays arrays = GruBackwardArgs(a, a["grad_gates"]);
    return p.itemsize == 4 ? GruBackwardCuda<float>(p.shape, arrays, a["workspace"], stream, sched)
                           : GruBackwardCuda<double>(p.shape, arrays, a["workspace"], stream, sched);
#else
    (void)a;
    NoCuda("gru_backward_cuda");
#endif
  }, "GRU backward pass on the current CUDA device (see gru_forward_cuda); grad_gates [L,T,B,4H] is scratch that "
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
