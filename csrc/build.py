"""The one build description of csrc/: which sources make which library, with which flags, and where nvcc is.

Read by setup.py (the installed package: the TensorFlow op library and the pybind11 module) and by
benchmarks/gpu/build_kernels.py (the TF-free module and the CUDA self-check on GPU machines, or against the CUDA
emulation in the tests). Plain Python with no imports beyond the standard library, so that both can load it by
path without installing anything.

The parts of csrc/:
- the kernel library: csrc/engine/ (the wavefront engine: engine/cpu the CPU schedules and products, engine/plan
  the host-only CUDA planning, engine/cuda the CUDA kernels and their drivers) and csrc/cells/ (each cell's
  description and maths, CPU and CUDA, and the translation units that instantiate its CUDA passes);
- the adapters: csrc/tf/ (the TensorFlow ops, g++ with TensorFlow's flags) and csrc/python/ (the pybind11 module).
"""
import os
import re
import shutil
import subprocess
from glob import glob

CSRC = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(CSRC)

# g++ flags of every C++ source of the kernel library and the pybind11 module (the CPU engine's instruction sets
# are chosen per translation unit by `#pragma GCC target`, never by flags here).
CXX_FLAGS = ["-O3", "-fPIC", "-Wall", "-Wno-psabi", "-std=gnu++17", f"-I{CSRC}"]
NVCC_FLAGS = ["-O3", "-std=c++17", "-Xcompiler", "-fPIC", f"-I{CSRC}"]
DEFAULT_CUDA_ARCHS = "80;90"
# ptxas reports every kernel's registers, shared memory, stack frame and spills (parse_ptxas reads them).
PTXAS_REPORT_FLAGS = ["-Xptxas", "-v"]


# The CPU engine's translation units for instruction sets beyond the baseline (engine/cpu/isa_*.cc; isa_generic.cc is
# the baseline). A build may leave them out with -DDEEPRNN_CPU_GENERIC_ONLY=1 (engine/cpu/dispatch.cc).
WIDER_ISA_SOURCES = ("isa_avx2.cc", "isa_avx512.cc", "isa_avx512_emulated.cc")


def library_sources():
    """The kernel library's host C++ sources (CPU engine, cells' registry, CUDA launch planning)."""
    return sorted(glob(f"{CSRC}/engine/**/*.cc", recursive=True) + glob(f"{CSRC}/cells/**/*.cc", recursive=True))


def cuda_sources():
    """The CUDA kernels and their drivers: the engine's, and each cell's instantiation of its passes."""
    return sorted(glob(f"{CSRC}/engine/**/*.cu", recursive=True) + glob(f"{CSRC}/cells/**/*.cu", recursive=True))


def tf_sources():
    return sorted(glob(f"{CSRC}/tf/*.cc"))


def python_sources():
    return sorted(glob(f"{CSRC}/python/*.cc"))


def all_sources():
    """Every file the libraries are built from (headers included): what a cache of a build must hash."""
    return sorted(p for p in glob(f"{CSRC}/**/*", recursive=True) if os.path.isfile(p))


def find_nvcc(environ=os.environ):
    """nvcc from CUDA_HOME, /usr/local/cuda or PATH; None when absent or when DEEPRNN_FAST_CUDA=0 asks for a CPU-only
    build."""
    if environ.get("DEEPRNN_FAST_CUDA", "1") == "0":
        return None
    candidates = []
    if environ.get("CUDA_HOME"):
        candidates.append(os.path.join(environ["CUDA_HOME"], "bin", "nvcc"))
    candidates += ["/usr/local/cuda/bin/nvcc", shutil.which("nvcc") or ""]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return os.path.realpath(path)
    return None


def parse_archs(text):
    """'80;90' (or '80,90') -> ['80', '90']; ValueError naming the variable otherwise."""
    archs = [a.strip() for a in text.replace(",", ";").split(";") if a.strip()]
    if not archs or not all(a.isdigit() for a in archs):
        raise ValueError(f"CUDA architectures must be compute capabilities like '80;90'; got {text!r}")
    return archs


def gencode_flags(archs, ptx=True):
    """SASS for every architecture, plus PTX of the newest so that later GPUs can JIT it."""
    flags = []
    for a in archs:
        flags += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
    if ptx:
        flags += ["-gencode", f"arch=compute_{archs[-1]},code=compute_{archs[-1]}"]
    return flags


def cuda_link_flags(nvcc):
    """The CUDA runtime linked statically and kept private: TensorFlow's own library exports a CUDA 12 runtime that
    the library's calls would otherwise bind to (and the modules then load without a system libcudart)."""
    cuda_home = os.path.dirname(os.path.dirname(nvcc))
    return [f"-L{cuda_home}/lib64", "-l:libcudart_static.a", "-Wl,--exclude-libs,libcudart_static.a", "-ldl", "-lrt",
            "-lpthread"]


_ENTRY = re.compile(r"Compiling entry function '(?P<name>[^']+)' for '(?P<arch>sm_\d+)'")
_FRAME = re.compile(r"(?P<stack>\d+) bytes stack frame, (?P<stores>\d+) bytes spill stores, (?P<loads>\d+) bytes spill loads")
_USED = re.compile(r"Used (?P<regs>\d+) registers(?:.*?(?P<smem>\d+) bytes smem)?")


def parse_ptxas(text):
    """The kernels of a `-Xptxas -v` report: dicts of kernel (mangled name), arch ('sm_90'), registers,
    smem_bytes (static), stack_bytes, spill_store_bytes, spill_load_bytes."""
    kernels, current = [], None
    for line in text.splitlines():
        m = _ENTRY.search(line)
        if m:
            current = {"kernel": m["name"], "arch": m["arch"], "registers": None, "smem_bytes": 0,
                       "stack_bytes": None, "spill_store_bytes": None, "spill_load_bytes": None}
            kernels.append(current)
            continue
        if current is None:
            continue
        m = _FRAME.search(line)
        if m and current["stack_bytes"] is None:  # the entry's own (device functions follow with theirs)
            current.update(stack_bytes=int(m["stack"]), spill_store_bytes=int(m["stores"]),
                           spill_load_bytes=int(m["loads"]))
        m = _USED.search(line)
        if m:
            current["registers"] = int(m["regs"])
            current["smem_bytes"] = int(m["smem"] or 0)
    return kernels


def demangle(names):
    """C++ names of mangled kernel names (c++filt), or the mangled names where it is missing."""
    try:
        out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True, timeout=60)
        lines = out.stdout.splitlines()
        if out.returncode == 0 and len(lines) == len(names):
            return lines
    except (OSError, subprocess.TimeoutExpired):
        pass
    return list(names)


def ptxas_summary(kernels):
    """What the build record keeps of the reports: kernels per arch, and every kernel with a stack frame or
    spills (which the tests require to be none)."""
    archs = sorted({k["arch"] for k in kernels})
    spilling = [k for k in kernels if k["stack_bytes"] or k["spill_store_bytes"] or k["spill_load_bytes"]]
    names = demangle([k["kernel"] for k in spilling])
    return {"kernels_per_arch": {a: sum(k["arch"] == a for k in kernels) for a in archs},
            "wavefront_kernels_per_arch": {a: sum(k["arch"] == a and "WavefrontKernel" in k["kernel"]
                                                  for k in kernels) for a in archs},
            "max_registers": max((k["registers"] or 0 for k in kernels), default=0),
            "spilling": [f"{n} ({k['arch']}: {k['stack_bytes']} B stack, {k['spill_store_bytes']} B spill stores, "
                         f"{k['spill_load_bytes']} B spill loads)" for n, k in zip(names, spilling)]}
