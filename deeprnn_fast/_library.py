"""Loads the compiled op library once, lazily, and refuses one built for another TensorFlow.

A library built against one TensorFlow and loaded into another can crash the process (TF's C++ ABI is not stable),
so the version recorded at build time (_build_info.json) is checked before tf.load_op_library is ever called.
"""
import json
import os
import sysconfig
import threading
import warnings

import tensorflow as tf

_HERE = os.path.dirname(os.path.abspath(__file__))
LIBRARY_PATH = os.path.join(_HERE, "_stacked_rnn_ops" + sysconfig.get_config_var("EXT_SUFFIX"))
BUILD_INFO_PATH = os.path.join(_HERE, "_build_info.json")

_lock = threading.Lock()
_state = {"loaded": False, "library": None, "error": None, "warned": False}


class LibraryUnavailable(RuntimeError):
    """The compiled op library is missing or does not match the running TensorFlow."""


def read_build_info():
    """The build record written by setup.py, or None when the library was never built here."""
    try:
        with open(BUILD_INFO_PATH) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _load():
    info = read_build_info()
    if info is None or not os.path.exists(LIBRARY_PATH):
        raise LibraryUnavailable(
            f"the compiled deeprnn_fast op library is not built ({LIBRARY_PATH} is missing); build it with "
            "`pip install --no-build-isolation .` or `python setup.py build_ext --inplace`")
    built, running = info.get("tensorflow_version"), tf.__version__
    if built != running:
        raise LibraryUnavailable(
            f"the deeprnn_fast op library was built against TensorFlow {built} but TensorFlow {running} is "
            "running; TensorFlow's C++ ABI differs between versions, so rebuild deeprnn_fast against this one")
    return tf.load_op_library(LIBRARY_PATH)


def library():
    """The loaded op module; raises LibraryUnavailable (always the same error) when it cannot be used."""
    with _lock:
        if not _state["loaded"]:
            _state["loaded"] = True
            try:
                _state["library"] = _load()
            except LibraryUnavailable as e:
                _state["error"] = e
            except tf.errors.NotFoundError as e:
                _state["error"] = LibraryUnavailable(f"the deeprnn_fast op library failed to load: {e}")
        if _state["error"] is not None:
            raise _state["error"]
        return _state["library"]


def library_or_warn():
    """The op module, or None after one warning per process saying why the reference implementation runs instead."""
    try:
        return library()
    except LibraryUnavailable as e:
        with _lock:
            first = not _state["warned"]
            _state["warned"] = True
        if first:
            warnings.warn(f"{e}. Falling back to the plain-TensorFlow reference implementation (slow).",
                          RuntimeWarning, stacklevel=3)
        return None


def cpu_isa():
    """The instruction set the CPU kernels run on in this process ("avx512", "avx2", "generic"), or None when the
    TF-free module deeprnn_fast._kernels, which reports it, is not built. A DEEPRNN_FAST_CPU_ISA that this processor
    cannot run is reported as its error message."""
    try:
        from deeprnn_fast import _kernels
    except ImportError:
        return None
    try:
        return _kernels.cpu_isa()
    except RuntimeError as e:
        return f"unavailable: {e}"
