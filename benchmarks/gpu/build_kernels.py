"""Builds the TF-free module deeprnn_fast._kernels and the C++ self-check, without setup.py (no TensorFlow needed).

    python benchmarks/gpu/build_kernels.py --out build/gpu_check [--cuda on|off|emulate] [--arch native|90|80;90]

Compiles the sources csrc/build.py lists (the one build description, shared with setup.py): the kernel library with
g++, the CUDA sources with nvcc (or, with --cuda emulate, with g++ against the CPU emulation of CUDA in
tests/cuda_emulation), and csrc/python/*.cc with the pybind11 and Python headers of the interpreter running this
script, all in parallel; then links
    OUT/_kernels<EXT_SUFFIX>        the module (load it with gpu_check --kernels, or copy it into deeprnn_fast/)
    OUT/stacked_rnn_selfcheck       tests/cuda_emulation/selfcheck_main.cc: the CUDA library against the CPU library
    OUT/ptxas_sm_XX.txt             nvcc's -Xptxas -v report (registers, shared memory, spills per kernel; the
                                    build prints how many kernels have a stack frame or spills: none should)
It needs pybind11 importable by this Python. Where it is not installed and nothing can be downloaded, carry a wheel
into the repository's .whl/ folder (`pip download pybind11 --no-deps -d .whl` on a machine with a network); this
script then installs it from there into OUT/pydeps (pip --no-index) or fails saying exactly that.
"""
import argparse
import glob
import importlib.util
import os
import subprocess
import sys
import sysconfig
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_build_description():
    spec = importlib.util.spec_from_file_location("deeprnn_build", os.path.join(ROOT, "csrc", "build.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD = load_build_description()


def find_pybind11(out_dir):
    try:
        import pybind11
        return pybind11.get_include()
    except ImportError:
        pass
    wheels = sorted(glob.glob(os.path.join(ROOT, ".whl", "pybind11-*.whl")))
    if not wheels:
        raise SystemExit(
            "build_kernels: pybind11 is not installed for " + sys.executable + " and no wheel was found in "
            + os.path.join(ROOT, ".whl") + ". On a machine with a network run `pip download pybind11 --no-deps -d "
            ".whl` in the repository and carry .whl/ (it is git-ignored) to this machine.")
    target = os.path.join(out_dir, "pydeps")
    cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--target", target, wheels[-1]]
    if subprocess.run(cmd).returncode != 0:
        raise SystemExit("build_kernels: could not install " + wheels[-1] + " with: " + " ".join(cmd))
    sys.path.insert(0, target)
    import pybind11
    return pybind11.get_include()


def native_archs():
    """Compute capabilities of the visible GPUs ("90"), from nvidia-smi, else PyTorch."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        caps = sorted({line.strip().replace(".", "") for line in out.stdout.splitlines() if line.strip()})
        if out.returncode == 0 and caps and all(c.isdigit() for c in caps):
            return caps
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        import torch
        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            return [f"{major}{minor}"]
    except ImportError:
        pass
    raise SystemExit("build_kernels: --arch native found no GPU (nvidia-smi and torch); give --arch, e.g. 90")


def run(cmd, log_path=None):
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if log_path:
        with open(log_path, "w") as f:
            f.write(result.stdout)
    if result.returncode != 0:
        sys.stderr.write(" ".join(cmd) + "\n" + result.stdout)
        raise SystemExit(f"build_kernels: {os.path.basename(cmd[0])} failed ({result.returncode})")
    return result.stdout


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "gpu_check"))
    ap.add_argument("--cuda", choices=("auto", "on", "off", "emulate"), default="auto")
    ap.add_argument("--arch", default="native", help="'native', or compute capabilities like '90' or '80;90'")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--no-selfcheck", action="store_true", help="build only the Python module")
    ap.add_argument("--asan", action="store_true", help="AddressSanitizer in the self-check (emulate only)")
    args = ap.parse_args(argv)

    started = time.time()
    out = os.path.abspath(args.out)
    objs = os.path.join(out, "objs")
    os.makedirs(objs, exist_ok=True)
    nvcc = BUILD.find_nvcc() if args.cuda in ("auto", "on") else None
    if args.cuda == "on" and nvcc is None:
        raise SystemExit("build_kernels: --cuda on but no nvcc (CUDA_HOME, /usr/local/cuda, PATH)")
    mode = "cuda" if nvcc else ("emulate" if args.cuda == "emulate" else "cpu")
    pybind_include = find_pybind11(out)
    py_include = sysconfig.get_paths()["include"]
    suffix = sysconfig.get_config_var("EXT_SUFFIX")

    with_cuda = ["-DDEEPRNN_WITH_CUDA=1"] if mode != "cpu" else []
    gxx = ["g++"] + BUILD.CXX_FLAGS + with_cuda
    emu = ["g++", "-O2", "-fPIC", "-Wall", "-Wno-psabi", "-Wno-unknown-pragmas", "-std=c++20",
           "-DDEEPRNN_CUDA_EMULATION=1", f"-I{ROOT}/tests/cuda_emulation", f"-I{ROOT}/csrc"]
    if args.asan:
        emu += ["-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    jobs, lib, py, selfcheck = [], [], [], []

    def obj(src, tag):
        return os.path.join(objs, tag + "_" + os.path.relpath(src, ROOT).replace(os.sep, "_") + ".o")

    # The emulation's CPU library is only the reference its kernels are checked against: the generic engine alone
    # does (and saves the wider instruction sets' compiles, the longest of the build).
    generic_only = mode == "emulate"
    for src in BUILD.library_sources():
        if generic_only and os.path.basename(src) in BUILD.WIDER_ISA_SOURCES:
            continue
        o = obj(src, "lib")
        jobs.append((gxx + (["-DDEEPRNN_CPU_GENERIC_ONLY=1"] if generic_only else []) + ["-c", src, "-o", o], None))
        lib.append(o)
    archs = []
    cuda_home = None
    if mode == "cuda":
        archs = native_archs() if args.arch == "native" else [a for a in args.arch.replace(",", ";").split(";") if a]
        cuda_home = os.path.dirname(os.path.dirname(nvcc))
        gencode = BUILD.gencode_flags(archs, ptx=False)
        for src in BUILD.cuda_sources():
            o = obj(src, "cu")
            log = os.path.join(objs, os.path.basename(src) + ".ptxas.txt")
            jobs.append(([nvcc] + BUILD.NVCC_FLAGS + ["-lineinfo"] + BUILD.PTXAS_REPORT_FLAGS + gencode
                         + ["-c", src, "-o", o], log))
            lib.append(o)
    elif mode == "emulate":
        for src in BUILD.cuda_sources():
            o = obj(src, "emu")
            jobs.append((emu + ["-x", "c++", "-c", src, "-o", o], None))
            lib.append(o)
    for src in BUILD.python_sources():
        o = obj(src, "py")
        jobs.append((gxx + ["-fvisibility=hidden", f"-I{pybind_include}", f"-I{py_include}", "-c", src, "-o", o],
                     None))
        py.append(o)
    selfcheck_src = os.path.join(ROOT, "tests", "cuda_emulation", "selfcheck_main.cc")
    build_selfcheck = mode != "cpu" and not args.no_selfcheck
    if build_selfcheck:
        o = obj(selfcheck_src, "selfcheck")
        flags = emu if mode == "emulate" else gxx + [f"-I{cuda_home}/include"]
        jobs.append((flags + ["-c", selfcheck_src, "-o", o], None))
        selfcheck.append(o)

    print(f"build_kernels: {mode} build ({', '.join('sm_' + a for a in archs) or 'no GPU code'}), "
          f"{len(jobs)} compiles on {args.jobs} jobs -> {out}", flush=True)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(lambda job: run(job[0], job[1]), jobs))

    link = ["-lpthread"]
    if mode == "cuda":
        # Static, private CUDA runtime: the module then loads without a system libcudart and exports no cuda* symbol.
        link = BUILD.cuda_link_flags(nvcc)
    sanitize = ["-fsanitize=address,undefined"] if (args.asan and mode == "emulate") else []
    module = os.path.join(out, "_kernels" + suffix)
    run(["g++", "-shared", "-o", module + ".tmp"] + lib + py + link)
    os.replace(module + ".tmp", module)
    if build_selfcheck:
        exe = os.path.join(out, "stacked_rnn_selfcheck")
        run(["g++", "-o", exe] + sanitize + lib + selfcheck + link)
    for a in archs:  # ptxas reports per architecture, for the CUDA resource table in benchmarks/README.md
        with open(os.path.join(out, f"ptxas_sm_{a}.txt"), "w") as f:
            for log in sorted(glob.glob(os.path.join(objs, "*.ptxas.txt"))):
                lines = open(log).read().splitlines()
                keep, current = [], None
                for line in lines:
                    if "Compiling entry function" in line:
                        current = f"for 'sm_{a}'" in line
                    if current:
                        keep.append(line)
                f.write(f"== {os.path.basename(log)}\n" + "\n".join(keep) + "\n")
    if archs:  # the no-spill rule the tests check for the package build (tests/test_build.py)
        kernels = []
        for log in sorted(glob.glob(os.path.join(objs, "*.ptxas.txt"))):
            kernels += BUILD.parse_ptxas(open(log).read())
        summary = BUILD.ptxas_summary(kernels)
        print(f"build_kernels: ptxas: {summary['kernels_per_arch']} kernels, at most {summary['max_registers']} "
              f"registers, {len(summary['spilling'])} with a stack frame or spills"
              + "".join("\n  " + s for s in summary["spilling"]), flush=True)
    print(f"build_kernels: done in {time.time() - started:.0f} s: {module}" +
          (f", {os.path.join(out, 'stacked_rnn_selfcheck')}" if build_selfcheck else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
