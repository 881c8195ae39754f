#include "python/call_arguments.h"

#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace deeprnn_fast {

namespace {

// The UTF-8 text of a Python str; a str that has none (a lone surrogate) reads as `fallback`, and the error
// Python raised is dropped.
bool Utf8(py::handle obj, std::string* out) {
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(obj.ptr(), &size);
  if (data == nullptr) {
    PyErr_Clear();
    return false;
  }
  out->assign(data, static_cast<size_t>(size));
  return true;
}

std::string RangeText(int64_t lo, int64_t hi) {
  if (lo == INT64_MIN && hi == INT64_MAX) return "an int that fits in 64 bits";
  if (hi == INT64_MAX) return "an int >= " + std::to_string(lo);
  return "an int in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
}

}  // namespace

std::string OneLine(const std::string& text, size_t limit) {
  std::string out;
  for (unsigned char c : text) {
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (out.size() <= limit) return out;
  size_t cut = limit;
  // Never cut inside a UTF-8 sequence: Python could not decode the message.
  while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
  return out.substr(0, cut) + "...";
}

std::string Quoted(const std::string& text) { return "'" + OneLine(text, 60) + "'"; }

std::string TypeName(py::handle obj) {
  // tp_name, not type(obj).__name__: reading an attribute could run the object's own code.
  return OneLine(Py_TYPE(obj.ptr())->tp_name, 80);
}

std::vector<Param> Signature::All() const {
  std::vector<Param> all = params;
  all.insert(all.end(), keyword_only.begin(), keyword_only.end());
  return all;
}

std::string Signature::Text() const {
  std::string s = function + "(";
  const std::vector<Param> all = All();
  for (size_t i = 0; i < all.size(); ++i) {
    if (i) s += ", ";
    if (i == params.size()) s += "*, ";
    s += all[i].name;
    const Param::Default& d = all[i].fallback;
    if (std::holds_alternative<NoneDefault>(d)) s += "=None";
    else if (std::holds_alternative<int64_t>(d)) s += "=" + std::to_string(std::get<int64_t>(d));
    else if (std::holds_alternative<std::string>(d)) s += "='" + std::get<std::string>(d) + "'";
    else if (std::holds_alternative<bool>(d)) s += std::get<bool>(d) ? "=True" : "=False";
  }
  return s + ")";
}

BoundArgs::BoundArgs(const Signature& signature, const py::args& args, const py::kwargs& kwargs)
    : params_(signature.All()), function_(signature.function), values_(params_.size()) {
  const std::string& f = signature.function;
  const size_t n = params_.size();
  const size_t positional = signature.params.size();
  if (args.size() > positional)
    throw py::type_error(f + "() takes at most " + std::to_string(positional) + " arguments (" +
                         std::to_string(args.size()) + " given)");
  for (size_t i = 0; i < args.size(); ++i) values_[i] = py::reinterpret_borrow<py::object>(args[i]);
  PyObject *key, *value;
  Py_ssize_t pos = 0;
  while (PyDict_Next(kwargs.ptr(), &pos, &key, &value)) {
    std::string name;
    if (!PyUnicode_Check(key) || !Utf8(key, &name))
      throw py::type_error(f + "() got a keyword argument whose name is not valid text");
    size_t i = 0;
    while (i < n && name != params_[i].name) ++i;
    if (i == n) throw py::type_error(f + "() got an unexpected keyword argument " + Quoted(name));
    if (values_[i]) throw py::type_error(f + "() got multiple values for argument '" + name + "'");
    values_[i] = py::reinterpret_borrow<py::object>(value);
  }
  for (size_t i = 0; i < n; ++i) {
    if (values_[i]) continue;
    const Param::Default& d = params_[i].fallback;
    if (std::holds_alternative<std::monostate>(d))
      throw py::type_error(f + "() missing required argument '" + params_[i].name + "'");
    if (std::holds_alternative<NoneDefault>(d)) values_[i] = py::none();
    else if (std::holds_alternative<int64_t>(d)) values_[i] = py::int_(std::get<int64_t>(d));
    else if (std::holds_alternative<bool>(d)) values_[i] = py::bool_(std::get<bool>(d));
    else values_[i] = py::str(std::get<std::string>(d));
  }
}

const py::object& BoundArgs::operator[](const char* name) const {
  for (size_t i = 0; i < params_.size(); ++i)
    if (std::strcmp(params_[i].name, name) == 0) return values_[i];
  throw std::logic_error(function_ + "(): no parameter named " + name);
}

std::string StrArg(py::handle obj, const std::string& name) {
  std::string text;
  if (!PyUnicode_Check(obj.ptr())) throw py::type_error(name + " must be a str; got " + TypeName(obj));
  if (!Utf8(obj, &text)) throw py::value_error(name + " must be a str of valid text (it holds a lone surrogate)");
  return text;
}

int64_t IntArg(py::handle obj, const std::string& name, int64_t lo, int64_t hi) {
  if (PyBool_Check(obj.ptr())) throw py::type_error(name + " must be an int; got bool");
  PyObject* index = PyNumber_Index(obj.ptr());
  if (index == nullptr) {
    PyErr_Clear();
    throw py::type_error(name + " must be an int; got " + TypeName(obj));
  }
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(index, &overflow);
  Py_DECREF(index);
  if (overflow != 0) throw py::value_error(name + " must be " + RangeText(lo, hi) + "; got one that does not fit in 64 bits");
  if (v < lo || v > hi) throw py::value_error(name + " must be " + RangeText(lo, hi) + "; got " + std::to_string(v));
  return static_cast<int64_t>(v);
}

bool BoolArg(py::handle obj, const std::string& name) {
  const std::string type = Py_TYPE(obj.ptr())->tp_name;
  if (PyBool_Check(obj.ptr()) || type == "numpy.bool" || type == "numpy.bool_") {
    const int truth = PyObject_IsTrue(obj.ptr());
    if (truth >= 0) return truth != 0;
    PyErr_Clear();
  }
  throw py::type_error(name + " must be a bool; got " + TypeName(obj));
}

}  // namespace deeprnn_fast
