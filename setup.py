"""Builds deeprnn_fast from source against the installed TensorFlow.

Two shared libraries come out of csrc/ (csrc/build.py describes the sources and flags, for this file and for
benchmarks/gpu/build_kernels.py):
- deeprnn_fast/_stacked_rnn_ops.so: the TensorFlow op library (kernel library + TF adapter csrc/tf/);
- deeprnn_fast/_kernels.<abi>.so: a pybind11 module over the same kernel library (csrc/python/), with no TensorFlow.

Where nvcc is found (CUDA_HOME, /usr/local/cuda, or PATH) the CUDA sources are compiled too and both libraries get
GPU kernels; DEEPRNN_FAST_CUDA=0 forces a CPU-only build. DEEPRNN_FAST_CUDA_ARCHS (default "80;90") names the
targets; PTX of the newest is embedded as well. Any failed compile or link fails the build: there is never an
install without the library. Install with `pip install --no-build-isolation .` so that the op is built against
the TensorFlow it will run with; deeprnn_fast refuses to load a library built for another TensorFlow.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
TF_REQUIREMENT = "tensorflow>=2.21,<2.22"


def load_build_description():
    spec = importlib.util.spec_from_file_location("deeprnn_build", os.path.join(ROOT, "csrc", "build.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD = load_build_description()


def cuda_archs():
    try:
        return BUILD.parse_archs(os.environ.get("DEEPRNN_FAST_CUDA_ARCHS", BUILD.DEFAULT_CUDA_ARCHS))
    except ValueError as e:
        raise SystemExit(f"DEEPRNN_FAST_CUDA_ARCHS: {e}")


def up_to_date(cmd):
    """Whether the object a compile command writes was compiled by the same command and is newer than its source,
    every header it read (the dependency file g++ / nvcc wrote beside it with -MD) and this build description: a
    rebuild after editing one file then recompiles what depends on it, not everything."""
    obj = cmd[cmd.index("-o") + 1]
    deps = obj + ".d"
    if not all(os.path.exists(p) for p in (obj, deps, obj + ".cmd", obj + ".log")):
        return False
    with open(obj + ".cmd") as f:
        if f.read() != " ".join(cmd):
            return False
    with open(deps) as f:
        text = f.read().replace("\\\n", " ")
    inputs = text.split(":", 1)[1].split() if ":" in text else []
    inputs += [os.path.join(ROOT, "setup.py"), os.path.join(ROOT, "csrc", "build.py")]
    built = os.path.getmtime(obj)
    return all(os.path.exists(p) and os.path.getmtime(p) <= built for p in inputs) and bool(inputs)


def compile_once(cmd):
    if up_to_date(cmd):
        return ""
    obj = cmd[cmd.index("-o") + 1]
    output = run(cmd + ["-MD", "-MF", obj + ".d"])
    with open(obj + ".log", "w") as f:  # what the compiler said: for nvcc, ptxas' report of every kernel
        f.write(output)
    with open(obj + ".cmd", "w") as f:
        f.write(" ".join(cmd))
    return output


def run(cmd):
    print(" ".join(cmd), flush=True)
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout)
        raise SystemExit(f"deeprnn_fast build failed: {cmd[0]} exited with {result.returncode}")
    return result.stdout


class BuildLibraries(build_ext):
    """Compiles csrc/ with g++ and nvcc directly: TF's headers need its own flags, and .cu files must never see them."""

    def run(self):
        super().run()
        if self.inplace:  # setuptools copies the libraries into the source tree; the build record goes with them
            shutil.copy(self._build_info_path, os.path.join(ROOT, "deeprnn_fast", "_build_info.json"))

    def build_extensions(self):
        import pybind11
        import tensorflow as tf

        nvcc = BUILD.find_nvcc()
        archs = cuda_archs() if nvcc else []
        build_dir = os.path.abspath(os.path.join(self.build_temp, "deeprnn_objs"))
        os.makedirs(build_dir, exist_ok=True)
        jobs = []

        def obj(src, tag):
            rel = os.path.relpath(src, ROOT).replace(os.sep, "_")
            return os.path.join(build_dir, f"{tag}_{rel}.o")

        defines = ["-DDEEPRNN_WITH_CUDA=1"] if nvcc else []
        common = ["g++"] + BUILD.CXX_FLAGS + defines
        library_objs = []
        for src in BUILD.library_sources():
            o = obj(src, "lib")
            jobs.append(common + ["-c", src, "-o", o])
            library_objs.append(o)
        cuda_objs = []
        if nvcc:
            for src in BUILD.cuda_sources():
                o = obj(src, "cu")
                jobs.append([nvcc] + BUILD.NVCC_FLAGS + BUILD.PTXAS_REPORT_FLAGS + BUILD.gencode_flags(archs)
                            + ["-c", src, "-o", o])
                cuda_objs.append(o)
        library_objs += cuda_objs
        tf_objs = []
        tf_cuda = ["-DGOOGLE_CUDA=1"] if nvcc else []
        for src in BUILD.tf_sources():
            o = obj(src, "tf")
            jobs.append(common + tf.sysconfig.get_compile_flags() + tf_cuda + ["-O2", "-c", src, "-o", o])
            tf_objs.append(o)
        py_objs = []
        py_includes = [f"-I{pybind11.get_include()}", f"-I{sysconfig.get_paths()['include']}"]
        for src in BUILD.python_sources():
            o = obj(src, "py")
            jobs.append(common + ["-fvisibility=hidden"] + py_includes + ["-c", src, "-o", o])
            py_objs.append(o)

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            list(pool.map(compile_once, jobs))
        # Registers, shared memory and spills of every CUDA kernel, for the build record (tests/test_build.py
        # requires no spills).
        ptxas = []
        for o in cuda_objs:
            with open(o + ".log") as f:
                ptxas += BUILD.parse_ptxas(f.read())

        cuda_link = BUILD.cuda_link_flags(nvcc) if nvcc else []
        ops_lib = self.get_ext_fullpath("deeprnn_fast._stacked_rnn_ops")
        kernels_lib = self.get_ext_fullpath("deeprnn_fast._kernels")
        package_dir = os.path.dirname(ops_lib)
        os.makedirs(package_dir, exist_ok=True)
        # Link to a temporary name and rename: a failed link never leaves a half-written library behind.
        run(["g++", "-shared", "-o", ops_lib + ".tmp"] + library_objs + tf_objs + cuda_link
            + tf.sysconfig.get_link_flags() + ["-Wl,--no-undefined", "-lpthread"])
        os.replace(ops_lib + ".tmp", ops_lib)
        if py_objs:
            run(["g++", "-shared", "-o", kernels_lib + ".tmp"] + library_objs + py_objs + cuda_link + ["-lpthread"])
            os.replace(kernels_lib + ".tmp", kernels_lib)

        info = {
            "tensorflow_version": tf.__version__,
            "cuda": bool(nvcc),
            "cuda_archs": [f"sm_{a}" for a in archs] + ([f"compute_{archs[-1]}"] if archs else []),
            "nvcc": run([nvcc, "--version"]).strip().splitlines()[-1] if nvcc else None,
            "ptxas": BUILD.ptxas_summary(ptxas) if nvcc else None,
        }
        self._build_info_path = os.path.join(package_dir, "_build_info.json")
        with open(self._build_info_path, "w") as f:
            json.dump(info, f, indent=2)
        print(f"deeprnn_fast: built {'with CUDA (' + ', '.join(info['cuda_archs']) + ')' if nvcc else 'CPU only (no nvcc found)'}"
              f" against TensorFlow {tf.__version__}", flush=True)


setup(
    name="deeprnn_fast",
    version="0.1.0",
    description="A fused stacked (deep) RNN for TensorFlow: CPU and CUDA kernels, Keras layers, a language model",
    packages=find_packages(include=["deeprnn_fast", "deeprnn_fast.*"]),
    package_data={"deeprnn_fast": ["_build_info.json", "*.so"]},
    # Placeholder extensions tell setuptools the two outputs; BuildLibraries builds them itself.
    ext_modules=[Extension("deeprnn_fast._stacked_rnn_ops", sources=[])]
    + ([Extension("deeprnn_fast._kernels", sources=[])] if BUILD.python_sources() else []),
    cmdclass={"build_ext": BuildLibraries},
    python_requires=">=3.10",
    # pybind11 is needed to build only (pyproject.toml's build requirements); tqdm and matplotlib only by the
    # command line's `train` (its progress bar and plot).
    install_requires=[TF_REQUIREMENT, "numpy"],
    # PyTorch's nn.RNN / nn.GRU / nn.LSTM as benchmark peers (benchmarks/torch_steps.py); the CPU wheel on these
    # machines. Without it those cases skip with the reason.
    extras_require={"cli": ["tqdm", "matplotlib"], "bench": ["torch==2.13.0"]},
    entry_points={"console_scripts": ["deeprnn-fast=deeprnn_fast.language_model.cli:main"]},
    zip_safe=False,
)
