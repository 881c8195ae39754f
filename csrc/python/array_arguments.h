// Array arguments of deeprnn_fast._kernels: NumPy arrays (host) and __cuda_array_interface__ objects (device),
// checked down to every way a buffer can differ from what the kernels read (type, dtype, byte order, alignment,
// contiguity, writability, extent), per-layer lists held by owning references, and outputs that share memory with
// another argument. Every error is a one-line TypeError / ValueError that names the argument.
#ifndef DEEPRNN_FAST_PYTHON_ARRAY_ARGUMENTS_H_
#define DEEPRNN_FAST_PYTHON_ARRAY_ARGUMENTS_H_

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

namespace deeprnn_fast {

namespace py = pybind11;

// One array argument, host or device: where it is and what it holds. `owner` keeps the object (and so its memory)
// alive for as long as the view is used, whatever the caller does with its own references meanwhile.
struct ArrayView {
  std::string name;  // as in messages: "inputs", "kernels[1]"
  py::object owner;
  // NumPy arrays: a weak reference, which makes NumPy refuse to resize the array (even with refcheck=False, from
  // another thread while the kernels run without the GIL) and so free the memory under them.
  py::object resize_guard;
  void* data = nullptr;
  std::vector<int64_t> shape;
  char kind = 0;      // NumPy kind: 'f' float, 'i' int, ...
  int itemsize = 0;
  int64_t bytes = 0;  // extent in memory (C-contiguous): elements * itemsize
  bool readonly = false;
  bool output = false;   // written by the call (set by the caller of HostView / CudaView)
  bool has_stream = false;
  uintptr_t stream = 0;  // __cuda_array_interface__ v3 "stream": where the producer queued its work
};

// "(2, 5, 7)", "(7,)": a shape as Python writes it.
std::string DimsText(const std::vector<int64_t>& dims);
// "float32", "int64", ...: a NumPy kind and item size as a dtype name.
std::string DtypeText(char kind, int itemsize);

// A C-contiguous, aligned NumPy array in the machine's byte order (a plain ndarray or a np.memmap; subclasses that
// change what the data means, such as masked arrays and np.matrix, are refused), else TypeError / ValueError.
ArrayView HostView(py::handle obj, const std::string& name);
// A C-contiguous array described by a well-formed __cuda_array_interface__ (versions 0 to 3, little-endian or
// byte-order-free typestr, no mask), else TypeError / ValueError.
ArrayView CudaView(py::handle obj, const std::string& name);
using ViewFn = ArrayView (*)(py::handle, const std::string&);

// The items of a per-layer argument: a list or tuple (of `layers` items, when layers >= 0), held by owning
// references. Any other object - a generator, a NumPy array, a custom sequence, a str, a dict - is a TypeError:
// reading it could run its own code, and what it hands out need not stay alive.
std::vector<py::object> LayerList(py::handle obj, const std::string& name, int64_t layers);

// Checks a view against the dtype (float of `itemsize` bytes) and shape the call needs; its data must be aligned to
// its elements, and outputs (v.output) must be writable.
void Expect(const ArrayView& v, const std::vector<int64_t>& shape, int itemsize);

// Raises ValueError naming both arguments when the memory of an output overlaps that of any other argument
// (inputs may share memory with each other; empty arrays overlap nothing).
void CheckNoOverlap(const std::vector<ArrayView>& views);

}  // namespace deeprnn_fast

#endif  // DEEPRNN_FAST_PYTHON_ARRAY_ARGUMENTS_H_
