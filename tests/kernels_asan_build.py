"""Builds deeprnn_fast._kernels with AddressSanitizer, for the fuzz test's sanitized run (tests/test_kernels_fuzz.py).

g++ compiles the kernel library's host sources and the binding (csrc/python/*.cc; csrc/build.py lists them) with
-fsanitize=address at -O0 (half the compile time of -O1 on these files; the fuzzed shapes are tiny), and in place of the CUDA sources (which need nvcc) links
tests/kernels_asan/no_cuda_device.cc, which answers every CUDA call as a machine without a GPU does: so the module
has CUDA entry points whose argument checks run under the sanitizer too, ending in RuntimeError. The module is cached
in build/kernels_asan/<hash of the sources and flags>/ and only rebuilt when one changes; it is linked to a
temporary name and renamed, so that a failed build never leaves a module behind.

A Python process loads it with LD_PRELOAD="asan_runtime() cxx_runtime()" (the sanitizer's runtime must come before
every other library) and ASAN_OPTIONS=detect_leaks=0 (Python itself leaks by design at exit).
"""
import glob
import hashlib
import os
import shutil
import subprocess
import sysconfig
from concurrent.futures import ThreadPoolExecutor

from build_lock import exclusive

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = ["-O0", "-g", "-fsanitize=address", "-fno-omit-frame-pointer", "-fPIC", "-Wall", "-Wno-psabi",
         "-std=gnu++17", f"-I{ROOT}/csrc", "-DDEEPRNN_WITH_CUDA=1"]


def asan_runtime():
    """The path of g++'s libasan.so, or None when g++ or the runtime is missing."""
    if shutil.which("g++") is None:
        return None
    out = subprocess.run(["g++", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    # Without the runtime, g++ prints the bare name back.
    return out if os.path.isabs(out) and os.path.exists(out) else None


def cxx_runtime():
    """The path of g++'s libstdc++.so. Preloaded with libasan: the sanitizer looks up the C++ runtime's
    __cxa_throw when it starts, and Python itself does not load libstdc++."""
    return subprocess.run(["g++", "-print-file-name=libstdc++.so"], capture_output=True, text=True).stdout.strip()


def _sources():
    # csrc/build.py lists the sources: the kernel library's host code (the CPU engine, the cells, the CUDA planner)
    # and the binding; the CUDA sources are replaced by the stand-in.
    build = _build_description()
    compiled = sorted(build.library_sources() + build.python_sources()) + [
        f"{ROOT}/tests/kernels_asan/no_cuda_device.cc"]
    headers = sorted(glob.glob(f"{ROOT}/csrc/**/*.h", recursive=True))
    return compiled, headers


def _build_description():
    import importlib.util
    spec = importlib.util.spec_from_file_location("deeprnn_fast_build", os.path.join(ROOT, "csrc", "build.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(jobs=None):
    """Returns the path of the sanitized module, building it when the cache has none for these sources."""
    import pybind11

    compiled, headers = _sources()
    includes = [f"-I{pybind11.get_include()}", f"-I{sysconfig.get_paths()['include']}"]
    digest = hashlib.sha256(" ".join(FLAGS + includes).encode())
    for path in compiled + headers + [os.path.abspath(__file__)]:
        with open(path, "rb") as f:
            digest.update(os.path.relpath(path, ROOT).encode() + b"\0" + f.read())
    out = os.path.join(ROOT, "build", "kernels_asan", digest.hexdigest()[:16])
    module = os.path.join(out, "_kernels" + sysconfig.get_config_var("EXT_SUFFIX"))
    with exclusive(out + ".lock"):
        if not os.path.exists(module):
            _compile_and_link(compiled, includes, out, module, jobs)
    return module


def _compile_and_link(compiled, includes, out, module, jobs):
    os.makedirs(out, exist_ok=True)

    def compile_one(src):
        obj = os.path.join(out, os.path.relpath(src, ROOT).replace(os.sep, "_") + ".o")
        extra = ["-fvisibility=hidden"] + includes if "/csrc/python/" in src else []
        cmd = ["g++"] + FLAGS + extra + ["-c", src, "-o", obj]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stderr[-4000:]}")
        return obj

    # The binding's translation units are the slowest: start them first.
    order = sorted(compiled, key=lambda s: "/csrc/python/" not in s)
    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 2) as pool:
        objects = list(pool.map(compile_one, order))
    tmp = module + ".tmp"
    cmd = ["g++", "-shared", "-fsanitize=address", "-o", tmp] + objects + ["-lpthread"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stderr[-4000:]}")
    os.replace(tmp, module)
    for obj in objects:  # only the module is reused
        os.remove(obj)


if __name__ == "__main__":
    print(build())
