"""What CI can check of the build without a GPU: the kernels registered per device and the library's symbols."""
import shutil
import subprocess

import pytest
from tensorflow.python.framework import kernels

import deeprnn_fast
from deeprnn_fast import _library


def registered(op_name):
    _library.library()  # registration happens when the library loads
    return {(k.device_type, k.constraint[0].allowed_values.list.type[0])
            for k in kernels.get_registered_kernels_for_op(op_name).kernel}


@pytest.mark.parametrize("op_name", ["DeeprnnFast>StackedRnn", "DeeprnnFast>StackedRnnGrad",
                                     "DeeprnnFast>StackedGru", "DeeprnnFast>StackedGruGrad"])
def test_kernels_are_registered_for_every_device_and_dtype(op_name):
    found = registered(op_name)
    devices = ["CPU", "GPU"] if deeprnn_fast.build_info()["cuda"] else ["CPU"]
    # DT_FLOAT = 1, DT_DOUBLE = 2
    assert found == {(d, t) for d in devices for t in (1, 2)}


def test_a_cuda_build_is_made_where_nvcc_is_present():
    nvcc = shutil.which("nvcc") or (shutil.which("/usr/local/cuda/bin/nvcc"))
    if nvcc is None:
        pytest.skip("no nvcc on this machine: the CPU-only build is expected")
    info = deeprnn_fast.build_info()
    assert info["cuda"], "nvcc is present but the library was built without CUDA kernels"
    assert "sm_80" in info["cuda_archs"] and "sm_90" in info["cuda_archs"]


@pytest.mark.skipif(shutil.which("nm") is None, reason="needs nm")
def test_library_neither_needs_nor_exports_cuda_runtime_symbols():
    # The CUDA runtime is linked statically and privately: an undefined cuda* symbol would bind to the CUDA 12
    # runtime inside TensorFlow's own library, an exported one would shadow it.
    dynamic = subprocess.run(["nm", "-D", _library.LIBRARY_PATH], capture_output=True, text=True, check=True).stdout
    cuda = [line for line in dynamic.splitlines() if line.split()[-1].startswith(("cuda", "__cuda"))]
    assert cuda == []
