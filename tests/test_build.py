"""What CI can check of the build without a GPU: the kernels registered per device, the library's symbols, and
that no code compiled for a wider instruction set can run where the processor lacks it."""
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sysconfig

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


def _weak_symbols_with_vector_code(path):
    """(weak symbols of the object or library at `path` that are not specific to an instruction set yet hold VEX/EVEX
    instructions, its disassembly). A weak symbol is an inline or template function the linker keeps one copy of:
    if that copy came from a translation unit compiled for AVX2 or AVX-512, every caller would run it, also on a
    processor without those instructions. The engine's own per-set functions carry their `Isa` type in the name."""
    weak = {line.split()[-1] for line in subprocess.run(["nm", path], capture_output=True, text=True,
                                                          check=True).stdout.splitlines()
            if line.split()[-2:-1] in (["W"], ["V"])}
    disassembly = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path], capture_output=True, text=True,
                                 check=True).stdout
    offenders, current = set(), None
    for line in disassembly.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if header:
            current = header.group(1)
        elif current in weak and "Isa" not in current and re.search(r"\tv[a-z]", line):
            offenders.add(current)
    return offenders, disassembly


needs_binutils = pytest.mark.skipif(shutil.which("objdump") is None or shutil.which("nm") is None,
                                    reason="needs objdump and nm")


@needs_binutils
@pytest.mark.parametrize("name", WIDER_ISA_OBJECTS)
def test_no_shared_symbol_of_a_wider_instruction_set(name):
    # The engine is compiled once per instruction set (csrc/engine/cpu/isa_*.cc, the ISA rule in simd.h); the
    # object files name the translation unit that broke the rule (where the build kept them: setup.py's in-place
    # builds do, `pip install -e .` builds in a temporary directory, and the next test covers that case).
    obj = _isa_object(name)
    if obj is None:
        pytest.skip(f"no object file of {name}.cc under build/ (built elsewhere)")
    offenders, disassembly = _weak_symbols_with_vector_code(obj)
    assert not offenders, f"weak symbols of {name}.cc with vector instructions: {sorted(offenders)[:5]}"
    # And the instruction set really is there, where it should be.
    if name == "isa_avx512":
        assert "zmm" in disassembly


@needs_binutils
@pytest.mark.parametrize("module", ["_stacked_rnn_ops", "_kernels"])
def test_no_shared_symbol_of_the_linked_library_holds_wider_vector_code(module):
    # The same rule on what the linker kept, wherever the objects went: the op library and the TF-free binding.
    path = os.path.join(os.path.dirname(deeprnn_fast.__file__), module + sysconfig.get_config_var("EXT_SUFFIX"))
    if not os.path.exists(path):
        pytest.skip(f"{path} is not built")
    offenders, disassembly = _weak_symbols_with_vector_code(path)
    assert not offenders, f"weak symbols of {module} with vector instructions: {sorted(offenders)[:5]}"
    assert "zmm" in disassembly and "ymm" in disassembly, "the AVX-512 and AVX2 engines are not both linked in"


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
