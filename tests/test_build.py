"""What CI can check of the build without a GPU: the kernels registered per device, the library's symbols, and
that no code compiled for a wider instruction set can run where the processor lacks it."""
import glob
import importlib.util
import os
import re
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
                                     "DeeprnnFast>StackedGru", "DeeprnnFast>StackedGruGrad",
                                     "DeeprnnFast>StackedLstm", "DeeprnnFast>StackedLstmGrad"])
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


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _build_description():
    """csrc/build.py, the build description setup.py and benchmarks/gpu/build_kernels.py read."""
    spec = importlib.util.spec_from_file_location("deeprnn_build", os.path.join(ROOT, "csrc", "build.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The translation units compiled for a wider instruction set than the baseline: the engine's, from the build
# description (so a new isa_*.cc is checked once the build knows it), and the mask kernel, whose AVX2 functions are
# baseline-file functions with a target attribute.
WIDER_ISA_OBJECTS = [os.path.splitext(name)[0] for name in _build_description().WIDER_ISA_SOURCES] + ["dropout_mask"]


def _isa_object(name):
    found = sorted(glob.glob(os.path.join(ROOT, "build", "temp*", "deeprnn_objs", f"lib_csrc_engine_cpu_{name}.cc.o")))
    return found[-1] if found else None


@pytest.mark.skipif(shutil.which("objdump") is None or shutil.which("nm") is None, reason="needs objdump and nm")
@pytest.mark.parametrize("name", WIDER_ISA_OBJECTS)
def test_no_shared_symbol_of_a_wider_instruction_set(name):
    # The engine is compiled once per instruction set (csrc/engine/cpu/isa_*.cc, the ISA rule in simd.h). A weak
    # symbol (an inline or template function the linker keeps one copy of) that is not specific to its instruction
    # set must hold baseline code: if the copy compiled with AVX2 or AVX-512 won, every caller would run it, also on
    # a processor without those instructions.
    obj = _isa_object(name)
    if obj is None:
        pytest.skip(f"no object file of {name}.cc under build/ (built elsewhere)")
    weak = {line.split()[-1] for line in subprocess.run(["nm", obj], capture_output=True, text=True,
                                                          check=True).stdout.splitlines()
            if line.split()[-2:-1] in (["W"], ["V"])}
    disassembly = subprocess.run(["objdump", "-d", "--no-show-raw-insn", obj], capture_output=True, text=True,
                                 check=True).stdout
    offenders, current = set(), None
    for line in disassembly.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if header:
            current = header.group(1)
        elif current in weak and "Isa" not in current and re.search(r"\tv[a-z]", line):
            offenders.add(current)
    assert not offenders, f"weak symbols of {name}.cc with vector instructions: {sorted(offenders)[:5]}"
    # And the instruction set really is there, where it should be.
    if name == "isa_avx512":
        assert "zmm" in disassembly


def test_cuda_kernels_compile_for_both_targets_without_spills():
    """ptxas -v of the CUDA build (setup.py keeps its summary in the build record): every wavefront kernel - four
    cells, two passes, six tiles, two dtypes, and the tensor-core tile's per cell and pass (float32 only) - for sm_80
    and sm_90, none with a stack frame or spills (a spill puts the accumulators in local memory; the kernels' launch
    bounds are set so that none does)."""
    info = _library.read_build_info()
    if not (info and info.get("cuda")):
        pytest.skip("not a CUDA build: no ptxas report")
    ptxas = info.get("ptxas")
    assert ptxas, "the CUDA build kept no ptxas report (rebuild: setup.py passes -Xptxas -v)"
    wavefront = 4 * 2 * 6 * 2 + 4 * 2
    assert ptxas["wavefront_kernels_per_arch"] == {"sm_80": wavefront, "sm_90": wavefront}
    assert ptxas["kernels_per_arch"]["sm_80"] == ptxas["kernels_per_arch"]["sm_90"] > 4 * 2 * 6 * 2
    assert ptxas["spilling"] == []
