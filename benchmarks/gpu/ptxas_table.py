"""The CUDA kernels' registers, shared memory and spills as Markdown tables, from `-Xptxas -v` reports.

    python benchmarks/gpu/ptxas_table.py build/temp*/deeprnn_objs/cu_*.o.log     # setup.py's CUDA build
    python benchmarks/gpu/ptxas_table.py build/gpu_check/objs/*.ptxas.txt       # benchmarks/gpu/build_kernels.py

The wavefront kernels (WavefrontKernel<Cell, T, tile, backward>) come as one row per cell, pass and dtype with the
registers of each tile (sm_90 / sm_80); every other kernel as a row of its own. Any stack frame or spill is listed
after the tables (the build record keeps the same list, and tests/test_build.py requires it to be empty).
"""
import importlib.util
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
spec = importlib.util.spec_from_file_location("deeprnn_build", os.path.join(ROOT, "csrc", "build.py"))
BUILD = importlib.util.module_from_spec(spec)
spec.loader.exec_module(BUILD)

WAVEFRONT = re.compile(r"WavefrontKernel<deeprnn::(?P<cell>\w+(?:<deeprnn::Cell::k\w+>)?), (?P<dtype>float|double), "
                       r"(?P<tile>\d), (?P<backward>true|false)>")
CELL_NAMES = {"RnnCell<deeprnn::Cell::kTanh>": "tanh", "RnnCell<deeprnn::Cell::kRelu>": "relu", "GruCell": "gru",
              "LstmCell": "lstm"}


def main(paths):
    kernels = []
    for path in paths:
        with open(path) as f:
            kernels += BUILD.parse_ptxas(f.read())
    for k, name in zip(kernels, BUILD.demangle([k["kernel"] for k in kernels])):
        k["name"] = name
    wavefront, other = {}, {}
    for k in kernels:
        m = WAVEFRONT.search(k["name"])
        if m:
            key = (CELL_NAMES.get(m["cell"], m["cell"]), "backward" if m["backward"] == "true" else "forward",
                   m["dtype"])
            wavefront.setdefault(key, {}).setdefault(int(m["tile"]), {})[k["arch"]] = k["registers"]
        else:
            other.setdefault(k["name"].split("(")[0], {})[k["arch"]] = k
    print("| cell | pass | dtype | " + " | ".join(f"tile {t}" for t in range(6)) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in range(6)) + " |")
    order = {"tanh": 0, "relu": 1, "gru": 2, "lstm": 3}
    for key in sorted(wavefront, key=lambda k: (order.get(k[0], 9), k[1] == "backward", k[2])):
        tiles = wavefront[key]
        cells = [f"{tiles.get(t, {}).get('sm_90', '-')} / {tiles.get(t, {}).get('sm_80', '-')}" for t in range(6)]
        print(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " |")
    print()
    print("| kernel | registers sm_90 | registers sm_80 | static smem (B) |")
    print("| --- | --- | --- | --- |")
    for name in sorted(other):
        k90, k80 = other[name].get("sm_90", {}), other[name].get("sm_80", {})
        print(f"| `{name}` | {k90.get('registers', '-')} | {k80.get('registers', '-')} | "
              f"{k90.get('smem_bytes', k80.get('smem_bytes', '-'))} |")
    spilling = BUILD.ptxas_summary(kernels)["spilling"]
    print()
    print(f"{len(kernels)} kernel builds; with a stack frame or spills: {len(spilling)}")
    for line in spilling:
        print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
