"""Helpers of the tests of deeprnn_fast._kernels' argument checks (test_kernels_arguments.py, test_kernels_fuzz.py):
which build of the module they test, and CUDA arrays made of host memory.

DEEPRNN_FAST_KERNELS_SO names a built module to test instead of the package's own (the fuzz test runs these files
again in a subprocess against the AddressSanitizer build, tests/kernels_asan_build.py)."""
import os

import pytest

KERNELS_SO_ENV = "DEEPRNN_FAST_KERNELS_SO"


def load_kernels():
    path = os.environ.get(KERNELS_SO_ENV)
    if path:
        from deeprnn_fast.testing.gpu_check import load_kernels as load
        return load(path)
    return pytest.importorskip("deeprnn_fast._kernels",
                               reason="deeprnn_fast._kernels is not built (python setup.py build_ext --inplace)")


REMOVE = object()  # a field value for interface(): delete the field


def interface(array, **changes):
    """The __cuda_array_interface__ (v3) of a NumPy array's memory, as a CUDA library would describe it; `changes`
    replace or add fields (a value of `REMOVE` deletes one)."""
    d = {"shape": tuple(array.shape), "typestr": array.dtype.str, "version": 3, "strides": None,
         "data": (array.ctypes.data, not array.flags.writeable)}
    for key, value in changes.items():
        if value is REMOVE:
            d.pop(key, None)
        else:
            d[key] = value
    return d


class CudaLike:
    """An object that says its memory is a CUDA array: `described` is the __cuda_array_interface__ it returns (or
    the exception reading it raises); `memory` keeps the host memory the pointer points into alive. For a module
    whose CUDA entry points never run a kernel here (no GPU), host memory is as good as device memory."""

    def __init__(self, memory, described=None):
        self.memory = memory
        self.described = interface(memory) if described is None else described

    @property
    def __cuda_array_interface__(self):
        if isinstance(self.described, BaseException):
            raise self.described
        return self.described


def cuda_module_checks_arguments(kernels):
    """Whether the CUDA entry points check their arguments here: a CUDA build (or the sanitized build's stand-in)
    with no GPU, so that no kernel ever runs on the host memory behind CudaLike arrays."""
    return kernels.has_cuda_build() and not kernels.cuda_available()
