// The arguments of deeprnn_fast._kernels' entry points, bound and parsed by the module itself rather than by
// pybind11: pybind11's "incompatible function arguments" message prints every argument of the call (whole arrays
// included) and does not say which one was wrong. Every error here is one line that names the argument.
#ifndef DEEPRNN_FAST_PYTHON_CALL_ARGUMENTS_H_
#define DEEPRNN_FAST_PYTHON_CALL_ARGUMENTS_H_

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace deeprnn_fast {

namespace py = pybind11;

// A message made safe to show on one line: control characters escaped, cut to `limit` characters.
std::string OneLine(const std::string& text, size_t limit = 300);
// A user's string quoted for a message ('tanh'), made one line and short.
std::string Quoted(const std::string& text);
// The name of an object's type, for messages ("numpy.ndarray", "generator").
std::string TypeName(py::handle obj);

// The default None of an optional parameter.
struct NoneDefault {};
constexpr NoneDefault kNoneDefault{};

// One parameter of an entry point: required (no default), or optional with a default of None, an int, a str or a
// bool.
struct Param {
  using Default = std::variant<std::monostate, NoneDefault, int64_t, std::string, bool>;  // monostate: required
  Param(const char* n) : name(n) {}  // NOLINT: a bare name is a required parameter
  Param(const char* n, NoneDefault) : name(n), fallback(NoneDefault{}) {}
  Param(const char* n, int64_t d) : name(n), fallback(d) {}
  Param(const char* n, const char* d) : name(n), fallback(std::string(d)) {}
  Param(const char* n, bool d) : name(n), fallback(d) {}
  const char* name;
  Default fallback;
};

// The parameters of one entry point, in order: `params` bind by position or keyword, `keyword_only` (after a `*`
// in the text) by keyword only, so that options added later never shift what a positional call means.
struct Signature {
  std::string function;
  std::vector<Param> params;
  std::vector<Param> keyword_only = {};
  // "forward_cpu(inputs, kernels, ..., activation='tanh', *, cell=None)", the first line of the entry point's
  // docstring.
  std::string Text() const;
  // params, then keyword_only.
  std::vector<Param> All() const;
};

// A call's arguments bound to the parameters of `signature` the way Python binds them (positional first, then
// keywords); missing, repeated, surplus and unknown arguments are TypeErrors worded as Python's own. Holds a
// reference to every argument for as long as it lives.
class BoundArgs {
 public:
  BoundArgs(const Signature& signature, const py::args& args, const py::kwargs& kwargs);
  // The argument (or its default) of parameter `name`; `name` must be one of the signature's.
  const py::object& operator[](const char* name) const;

 private:
  std::vector<Param> params_;  // the signature's, positional ones first
  std::string function_;
  std::vector<py::object> values_;
};

// A str argument, else TypeError.
std::string StrArg(py::handle obj, const std::string& name);
// An int argument (a Python int or anything with __index__, but not a bool) in [lo, hi], else TypeError /
// ValueError.
int64_t IntArg(py::handle obj, const std::string& name, int64_t lo = INT64_MIN, int64_t hi = INT64_MAX);
// A bool argument (True / False, or a NumPy bool), else TypeError.
bool BoolArg(py::handle obj, const std::string& name);

}  // namespace deeprnn_fast

#endif  // DEEPRNN_FAST_PYTHON_CALL_ARGUMENTS_H_
