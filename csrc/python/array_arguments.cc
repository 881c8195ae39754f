#include "python/array_arguments.h"

#include <pybind11/numpy.h>

#include <algorithm>
#include <limits>

#include "python/call_arguments.h"

namespace deeprnn_fast {

namespace {

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
constexpr char kForeignByteOrder = '<';
constexpr const char* kMachineByteOrder = "big-endian";
constexpr const char* kForeignName = "little-endian";
#else
constexpr char kForeignByteOrder = '>';
constexpr const char* kMachineByteOrder = "little-endian";
constexpr const char* kForeignName = "big-endian";
#endif

constexpr int64_t kMaxBytes = int64_t{1} << 62;  // more than any real buffer; keeps every size sum in range
constexpr size_t kMaxDims = 32;

// Elements * itemsize, or -1 past kMaxBytes.
int64_t ExtentBytes(const std::vector<int64_t>& shape, int64_t itemsize) {
  int64_t n = itemsize;
  for (int64_t d : shape) {
    if (d == 0) return 0;
    if (n > kMaxBytes / d) n = -1;
    if (n >= 0) n *= d;
  }
  return n;
}

bool IsMemmap(py::handle obj) {
  // PyType_IsSubtype, not isinstance(): isinstance could run the object's own __class__.
  const py::object memmap = py::module_::import("numpy").attr("memmap");
  return PyType_Check(memmap.ptr()) &&
         PyType_IsSubtype(Py_TYPE(obj.ptr()), reinterpret_cast<PyTypeObject*>(memmap.ptr()));
}

// ---- __cuda_array_interface__ fields ----

class Interface {
 public:
  Interface(const std::string& name, py::handle dict) : name_(name), dict_(dict) {}

  // The field `key`, or an empty object when it is absent.
  py::object Get(const char* key) const {
    PyObject* v = PyDict_GetItemString(dict_.ptr(), key);  // borrowed; looks in the table, runs no user code
    return v ? py::reinterpret_borrow<py::object>(v) : py::object();
  }
  py::object Required(const char* key) const {
    py::object v = Get(key);
    if (!v) throw py::type_error(Label(key) + " is missing");
    return v;
  }
  std::string Label(const char* key) const { return name_ + ": __cuda_array_interface__['" + key + "']"; }

  // A Python int (not a bool) in [lo, hi]; nothing that could run the object's own code (__index__).
  int64_t Int(py::handle v, const std::string& label, int64_t lo, int64_t hi) const {
    if (!PyLong_Check(v.ptr()) || PyBool_Check(v.ptr()))
      throw py::type_error(label + " must be an int; got " + TypeName(v));
    int overflow = 0;
    const long long x = PyLong_AsLongLongAndOverflow(v.ptr(), &overflow);
    if (overflow != 0 || x < lo || x > hi)
      throw py::value_error(label + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]" +
                            (overflow ? "; got one that does not fit in 64 bits" : "; got " + std::to_string(x)));
    return static_cast<int64_t>(x);
  }

  // A tuple (or list) of ints >= 0.
  std::vector<int64_t> Ints(py::handle v, const char* key, int64_t lo) const {
    if (!PyTuple_Check(v.ptr()) && !PyList_Check(v.ptr()))
      throw py::type_error(Label(key) + " must be a tuple of ints; got " + TypeName(v));
    const bool tuple = PyTuple_Check(v.ptr());
    const Py_ssize_t n = tuple ? PyTuple_GET_SIZE(v.ptr()) : PyList_GET_SIZE(v.ptr());
    if (static_cast<size_t>(n) > kMaxDims)
      throw py::value_error(Label(key) + " has " + std::to_string(n) + " entries; at most " +
                            std::to_string(kMaxDims) + " are supported");
    std::vector<py::object> items;  // owned first: nothing below runs user code, but keep the rule simple
    for (Py_ssize_t i = 0; i < n; ++i)
      items.push_back(py::reinterpret_borrow<py::object>(tuple ? PyTuple_GET_ITEM(v.ptr(), i)
                                                                : PyList_GET_ITEM(v.ptr(), i)));
    std::vector<int64_t> out;
    for (size_t i = 0; i < items.size(); ++i)
      out.push_back(Int(items[i], Label(key) + "[" + std::to_string(i) + "]", lo, kMaxBytes));
    return out;
  }

 private:
  const std::string& name_;
  py::handle dict_;
};

// A typestr like "<f4": byte order '<' or '|' (this machine is little-endian; CUDA devices are too), a kind letter,
// the item size in bytes.
void ParseTypestr(const Interface& cai, py::handle v, ArrayView* out) {
  const std::string label = cai.Label("typestr");
  if (!PyUnicode_Check(v.ptr())) throw py::type_error(label + " must be a str; got " + TypeName(v));
  const std::string t = StrArg(v, label);
  bool digits = t.size() >= 3 && t.size() <= 5;
  for (size_t i = 2; digits && i < t.size(); ++i) digits = t[i] >= '0' && t[i] <= '9';
  if (!digits || !((t[1] >= 'a' && t[1] <= 'z') || (t[1] >= 'A' && t[1] <= 'Z')))
    throw py::type_error(label + " must look like '<f4'; got " + Quoted(t));
  if (t[0] == '>') throw py::type_error(label + " is " + Quoted(t) + ": big-endian arrays are not supported");
  if (t[0] != '<' && t[0] != '|')
    throw py::type_error(label + " must start with '<' (little-endian) or '|'; got " + Quoted(t));
  out->kind = t[1];
  out->itemsize = std::stoi(t.substr(2));  // 1 to 3 digits
  if (out->itemsize < 1) throw py::type_error(label + " has an item size of 0 bytes: " + Quoted(t));
}

std::string ExceptionText(const py::error_already_set& e) {
  std::string text = reinterpret_cast<PyTypeObject*>(e.type().ptr())->tp_name;
  PyObject* message = PyObject_Str(e.value().ptr());
  std::string m;
  if (message != nullptr && PyUnicode_Check(message)) {
    Py_ssize_t size = 0;
    const char* data = PyUnicode_AsUTF8AndSize(message, &size);
    if (data) m.assign(data, static_cast<size_t>(size));
  }
  Py_XDECREF(message);
  PyErr_Clear();
  return OneLine(m.empty() ? text : text + ": " + m, 160);
}

}  // namespace

std::string DimsText(const std::vector<int64_t>& dims) {
  std::string s = "(";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + (dims.size() == 1 ? ",)" : ")");
}

std::string DtypeText(char kind, int itemsize) {
  if (kind == 'f') return "float" + std::to_string(8 * itemsize);
  if (kind == 'i') return "int" + std::to_string(8 * itemsize);
  if (kind == 'u') return "uint" + std::to_string(8 * itemsize);
  if (kind == 'c') return "complex" + std::to_string(8 * itemsize);
  if (kind == 'b') return "bool";
  return "kind " + Quoted(std::string(1, kind)) + " of " + std::to_string(itemsize) + " bytes";
}

ArrayView HostView(py::handle obj, const std::string& name) {
  const auto& api = py::detail::npy_api::get();
  if (!api.PyArray_Check_(obj.ptr()))
    throw py::type_error(name + " must be a numpy.ndarray; got " + TypeName(obj));
  if (Py_TYPE(obj.ptr()) != api.PyArray_Type_ && !IsMemmap(obj))
    throw py::type_error(name + " must be a plain numpy.ndarray, not a " + TypeName(obj) +
                         " (np.asarray gives one; a masked array's mask would be ignored)");
  const py::array a = py::reinterpret_borrow<py::array>(obj);
  ArrayView v;
  v.name = name;
  v.owner = a;
  v.resize_guard = py::weakref(py::handle(a));
  v.kind = a.dtype().kind();
  v.itemsize = static_cast<int>(a.itemsize());
  if (a.dtype().byteorder() == kForeignByteOrder)
    throw py::type_error(name + " must be in the machine's byte order (" + kMachineByteOrder + "); got a " +
                         kForeignName + " " + DtypeText(v.kind, v.itemsize) +
                         " array (x.astype(x.dtype.newbyteorder('=')) converts it)");
  if (!(a.flags() & py::array::c_style)) throw py::value_error(name + " must be C-contiguous (np.ascontiguousarray)");
  if (!(a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
    throw py::value_error(name + " must be aligned to its " + std::to_string(v.itemsize) +
                          "-byte elements (np.array(x) makes an aligned copy)");
  v.data = const_cast<void*>(a.data());  // outputs are checked for writability before use
  for (py::ssize_t i = 0; i < a.ndim(); ++i) v.shape.push_back(a.shape(i));
  v.bytes = static_cast<int64_t>(a.nbytes());
  v.readonly = !a.writeable();
  return v;
}

ArrayView CudaView(py::handle obj, const std::string& name) {
  PyObject* raw = PyObject_GetAttrString(obj.ptr(), "__cuda_array_interface__");
  if (raw == nullptr) {
    if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
      PyErr_Clear();
      throw py::type_error(name + " must be a CUDA array (an object with __cuda_array_interface__, such as a CUDA "
                           "torch.Tensor or a CuPy array); got " + TypeName(obj));
    }
    if (!PyErr_ExceptionMatches(PyExc_Exception)) throw py::error_already_set();  // KeyboardInterrupt and the like
    py::error_already_set e;
    throw py::type_error(name + ": reading its __cuda_array_interface__ raised " + ExceptionText(e));
  }
  const py::object dict = py::reinterpret_steal<py::object>(raw);
  if (!PyDict_Check(dict.ptr()))
    throw py::type_error(name + ": __cuda_array_interface__ must be a dict; got " + TypeName(dict));
  const Interface cai(name, dict);
  ArrayView v;
  v.name = name;
  v.owner = py::reinterpret_borrow<py::object>(obj);
  cai.Int(cai.Required("version"), cai.Label("version"), 0, 3);
  v.shape = cai.Ints(cai.Required("shape"), "shape", 0);
  ParseTypestr(cai, cai.Required("typestr"), &v);

  const py::object data = cai.Required("data");
  if (!PyTuple_Check(data.ptr()) || PyTuple_GET_SIZE(data.ptr()) != 2)
    throw py::type_error(cai.Label("data") + " must be a tuple (pointer, read_only); got " + TypeName(data));
  const py::object pointer = py::reinterpret_borrow<py::object>(PyTuple_GET_ITEM(data.ptr(), 0));
  const py::object readonly = py::reinterpret_borrow<py::object>(PyTuple_GET_ITEM(data.ptr(), 1));
  if (!PyLong_Check(pointer.ptr()) || PyBool_Check(pointer.ptr()))
    throw py::type_error(cai.Label("data") + "[0] (the pointer) must be an int; got " + TypeName(pointer));
  const unsigned long long address = PyLong_AsUnsignedLongLong(pointer.ptr());
  if (PyErr_Occurred() || address > std::numeric_limits<uintptr_t>::max()) {
    PyErr_Clear();
    throw py::value_error(cai.Label("data") + "[0] (the pointer) must be an address in [0, 2^64)");
  }
  v.readonly = BoolArg(readonly, cai.Label("data") + "[1] (read-only)");

  const py::object mask = cai.Get("mask");
  if (mask && !mask.is_none()) throw py::value_error(name + ": masked CUDA arrays are not supported");
  v.bytes = ExtentBytes(v.shape, v.itemsize);
  if (v.bytes < 0)
    throw py::value_error(cai.Label("shape") + " " + DimsText(v.shape) + " spans more than 2^62 bytes");
  const py::object strides = cai.Get("strides");
  if (strides && !strides.is_none()) {
    const std::vector<int64_t> s = cai.Ints(strides, "strides", -kMaxBytes);
    if (s.size() != v.shape.size())
      throw py::type_error(cai.Label("strides") + " must have one entry per dimension (" +
                           std::to_string(v.shape.size()) + "); got " + std::to_string(s.size()));
    int64_t expected = v.itemsize;
    for (int i = static_cast<int>(v.shape.size()) - 1; i >= 0 && v.bytes > 0; --i) {
      if (v.shape[i] > 1 && s[i] != expected)
        throw py::value_error(name + " must be C-contiguous (call .contiguous() / cupy.ascontiguousarray)");
      expected *= v.shape[i];
    }
  }
  if (v.bytes > 0 && address == 0) throw py::value_error(cai.Label("data") + "[0] (the pointer) is null");

  if (static_cast<uint64_t>(v.bytes) > std::numeric_limits<uintptr_t>::max() - address)
    throw py::value_error(cai.Label("data") + ": the array runs past the end of the address space");
  v.data = reinterpret_cast<void*>(static_cast<uintptr_t>(address));

  const py::object stream = cai.Get("stream");
  if (stream && !stream.is_none()) {
    v.has_stream = true;
    v.stream = static_cast<uintptr_t>(cai.Int(stream, cai.Label("stream"), 0, INT64_MAX));
  }
  return v;
}

std::vector<py::object> LayerList(py::handle obj, const std::string& name, int64_t layers) {
  const bool list = PyList_Check(obj.ptr()), tuple = PyTuple_Check(obj.ptr());
  if (!list && !tuple)
    throw py::type_error(name + " must be a list or tuple of " +
                         (layers >= 0 ? std::to_string(layers) + " arrays (one per layer)" : "arrays, one per layer") +
                         "; got " + TypeName(obj));
  // The list's own storage, read without running any of its code (a subclass's __iter__ or __getitem__), and
  // every item held: the caller's code that runs later (a __cuda_array_interface__ property) may empty the list.
  const Py_ssize_t n = list ? PyList_GET_SIZE(obj.ptr()) : PyTuple_GET_SIZE(obj.ptr());
  std::vector<py::object> items;
  items.reserve(static_cast<size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i)
    items.push_back(py::reinterpret_borrow<py::object>(list ? PyList_GET_ITEM(obj.ptr(), i)
                                                            : PyTuple_GET_ITEM(obj.ptr(), i)));
  if (layers >= 0 && static_cast<int64_t>(n) != layers)
    throw py::value_error(name + " must hold one array per layer (" + std::to_string(layers) + "); got " +
                          std::to_string(n));
  return items;
}

void Expect(const ArrayView& v, const std::vector<int64_t>& shape, int itemsize) {
  if (v.kind != 'f' || v.itemsize != itemsize)
    throw py::type_error(v.name + " must be float" + std::to_string(8 * itemsize) + " (the dtype of inputs); got " +
                         DtypeText(v.kind, v.itemsize));
  // NumPy arrays were checked by their flags; this catches CUDA pointers, whose misaligned loads would fault on
  // the GPU and leave the CUDA context unusable.
  const uintptr_t misaligned = reinterpret_cast<uintptr_t>(v.data) % static_cast<uintptr_t>(itemsize);
  if (v.bytes > 0 && misaligned != 0)
    throw py::value_error(v.name + " must be aligned to its " + std::to_string(itemsize) + "-byte elements; its "
                          "data pointer is " + std::to_string(misaligned) + " bytes past a boundary");
  if (v.shape != shape)
    throw py::value_error(v.name + " must have shape " + DimsText(shape) + "; got " + DimsText(v.shape));
  if (v.output && v.readonly) throw py::value_error(v.name + " is an output and must be writable");
}

void CheckNoOverlap(const std::vector<ArrayView>& views) {
  // Sweep the ranges by start address, keeping the furthest end seen so far among all views and among outputs:
  // every overlapping pair (P before Q) shows when Q is reached, as Q an output inside the first, or Q inside an
  // earlier output.
  std::vector<const ArrayView*> order;
  for (const ArrayView& v : views)
    if (v.bytes > 0) order.push_back(&v);
  auto begin = [](const ArrayView* v) { return reinterpret_cast<uintptr_t>(v->data); };
  auto end = [&](const ArrayView* v) { return begin(v) + static_cast<uintptr_t>(v->bytes); };
  std::stable_sort(order.begin(), order.end(), [&](const ArrayView* a, const ArrayView* b) {
    return begin(a) < begin(b);
  });
  const ArrayView *furthest = nullptr, *furthest_output = nullptr;
  for (const ArrayView* v : order) {
    auto refuse = [](const ArrayView* output, const ArrayView* other) {
      throw py::value_error(output->name + " is an output and shares memory with " + other->name +
                            "; an output must not overlap any other argument");
    };
    if (v->output && furthest && end(furthest) > begin(v)) refuse(v, furthest);
    if (furthest_output && end(furthest_output) > begin(v)) refuse(furthest_output, v);
    if (!furthest || end(v) > end(furthest)) furthest = v;
    if (v->output && (!furthest_output || end(v) > end(furthest_output))) furthest_output = v;
  }
}

}  // namespace deeprnn_fast
