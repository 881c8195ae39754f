"""GPU check of the CUDA kernels: correctness against the float64 oracle, sanitizers, timings against cuDNN.

Run by benchmarks/gpu/check.sh on a CUDA machine (nvcc, PyTorch, NumPy; no TensorFlow, no network), which builds
the TF-free module deeprnn_fast._kernels first. Parts, in order, each bounded by a deadline so the whole check fits
the device lease:
1. correctness: forward and backward of every schedule against the float64 NumPy oracle (deeprnn_fast.testing.oracle)
   over a grid of shapes with edge cases, for every cell (tanh and relu RNN, GRU, LSTM; the gated cells up to
   H = 1024), dense inputs in both dtypes and token inputs (ids of a vocabulary of D) in float32, on fresh random
   inputs each run (the seed is printed), with every output poisoned with NaN before each run; the schedules are
   also compared with each other on the same inputs; plus the C++ self-check (CUDA library against the CPU
   library, every cell, dense and tokens) when its binary is given;
2. compute-sanitizer memcheck and racecheck on the C++ self-check's small cases, where the tool works;
3. timings with CUDA events (warm-up, median of several runs): forward and forward + backward of the fused tanh RNN
   against PyTorch's nn.RNN(nonlinearity="tanh", num_layers=L), of the fused GRU against nn.GRU(num_layers=L) and
   of the fused LSTM against nn.LSTM(num_layers=L) (all cuDNN) for B in {1, 32, 256}, H in {256, 1024},
   L in {2, 4, 8}, T = 256, and the cost of one grid barrier, for the goal "within 2x of (T + L - 1) grid
   barriers". The GRU and LSTM are timed with the planner's schedule only (the tanh RNN with each schedule), which
   keeps the whole check within its budget; configurations left when the deadline comes are reported as skipped.
It prints three tables (RNN, GRU, LSTM) and writes them, the full log and a JSON of every number under --out
(default $OUT).

--dry-run runs the whole correctness part on the CPU backend of the same module (no GPU, no PyTorch), plus the
planner's choices for the timing configurations on an H200's properties, so the script is known to work before a
GPU ever runs it (tests/test_gpu_check_dryrun.py runs it). --backend emulated runs the CUDA entry points of a module
built against the CPU emulation of CUDA (benchmarks/gpu/build_kernels.py --cuda emulate) on NumPy-backed arrays.
"""
import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

from deeprnn_fast.testing import oracle

# An H200's properties as cudaGetDeviceProperties reports them (for planning without a GPU).
H200_PROPS = dict(sm_count=132, smem_per_block_optin=232448, smem_per_sm=233472, reserved_smem_per_block=1024,
                  max_threads_per_sm=2048, max_blocks_per_sm=32, regs_per_sm=65536, cooperative_launch=True)

# (B, T, D, H, L): edge shapes (B = 1, T = 1, L = 1, L > T, T = 0, B = 0, H off every tile size) and shapes that
# reach every tile, split reductions and weights too large for the chip.
SHAPES_QUICK = [(1, 1, 1, 1, 1), (1, 7, 3, 17, 3), (3, 5, 7, 9, 2), (5, 3, 4, 33, 6), (2, 0, 3, 4, 2),
                (0, 3, 2, 4, 2), (33, 9, 20, 40, 2), (70, 4, 5, 70, 2)]
SHAPES_FULL = SHAPES_QUICK + [(16, 12, 8, 64, 3), (32, 64, 64, 256, 4), (1, 40, 32, 1024, 2),
                              (256, 8, 128, 512, 2), (4, 16, 16, 4096, 2), (64, 300, 16, 32, 2)]
SCHEDULES = ("stepwise", "persistent_resident", "persistent_streaming", "auto")
CELLS = ("tanh", "relu", "gru", "lstm")  # the RNN's two activations, then the gated cells


class CellCase:
    """What the check needs to know of a cell: its layouts (csrc/cells/<cell>/cell.h), its random problems and its
    oracle."""

    def __init__(self, name, gates, saved_slots, grad_slots, states, bias_rows):
        self.name, self.gates, self.saved_slots, self.grad_slots = name, gates, saved_slots, grad_slots
        self.states, self.bias_rows = states, bias_rows

    def random_problem(self, rng, shape, dtype, tokens):
        if self.name in ("tanh", "relu"):
            return oracle.random_problem(rng, *shape, dtype=dtype, activation=self.name, tokens=tokens)
        random = oracle.random_gru_problem if self.name == "gru" else oracle.random_lstm_problem
        return random(rng, *shape, dtype=dtype, tokens=tokens)

    def states_shape(self, L, B, H):
        return (L, B, H) if self.states == 1 else (L, self.states, B, H)

    def bias_shape(self, H):
        return (self.gates * H,) if self.bias_rows == 1 else (self.bias_rows, self.gates * H)

    def reference(self, problem):
        """The oracle's forward and backward, under the names of the module's outputs (grad_inputs None for
        tokens; grad_preactivations: the grad slots)."""
        args = (problem.inputs, problem.kernels, problem.recurrent_kernels, problem.biases, problem.initial_states)
        if self.name in ("tanh", "relu"):
            y, fin, act = oracle.forward(*args, self.name)
            g = oracle.backward(*args, act, problem.grad_outputs, problem.grad_final_states, self.name)
            ref = {"outputs": y, "final_states": fin, "activations": act, "grad_preactivations": g.grad_preactivations}
        else:
            fwd, bwd = ((oracle.gru_forward, oracle.gru_backward) if self.name == "gru"
                        else (oracle.lstm_forward, oracle.lstm_backward))
            y, fin, act, gates = fwd(*args)
            g = bwd(*args, act, gates, problem.grad_outputs, problem.grad_final_states)
            ref = {"outputs": y, "final_states": fin, "activations": act, "gates": gates,
                   "grad_preactivations": g.grad_gates}
        ref.update(grad_kernels=g.grad_kernels, grad_recurrent_kernels=g.grad_recurrent_kernels,
                   grad_biases=g.grad_biases, grad_initial_states=g.grad_initial_states)
        if g.grad_inputs is not None:
            ref["grad_inputs"] = g.grad_inputs
        return ref


CELL_CASES = {"tanh": CellCase("tanh", 1, 0, 1, 1, 1), "relu": CellCase("relu", 1, 0, 1, 1, 1),
              "gru": CellCase("gru", 3, 4, 4, 1, 2), "lstm": CellCase("lstm", 4, 5, 4, 2, 1)}
# The gated cells' correctness cases stop at H = 1024, which already streams their weights (they do not fit on
# chip): the H = 4096 shape would add over a GB of float64 weights and minutes of oracle time per dtype, and test
# nothing new.
GATED_MAX_CHECK_HIDDEN = 1024
TOLERANCE = {np.float32: 1e-4, np.float64: 1e-9}
# (dtype, token inputs): dense inputs in both dtypes, tokens in float32.
INPUT_KINDS = ((np.float32, False), (np.float64, False), (np.float32, True))

TIMING_T = 256
TIMING_CONFIGS = [(B, H, L) for B in (1, 32, 256) for H in (256, 1024) for L in (2, 4, 8)]


class Log:
    """Prints and keeps every line, for the log file under --out."""

    def __init__(self):
        self.lines = []

    def __call__(self, *parts):
        line = " ".join(str(p) for p in parts)
        print(line, flush=True)
        self.lines.append(line)


def load_kernels(path=None):
    """deeprnn_fast._kernels, from `path` (a built .so) when given."""
    if path is None:
        from deeprnn_fast import _kernels
        return _kernels
    loaded = sys.modules.get("deeprnn_fast._kernels")
    if loaded is not None and os.path.realpath(getattr(loaded, "__file__", "")) != os.path.realpath(path):
        # CPython would hand back the module already imported under this name, not the one at `path`.
        raise SystemExit(f"gpu_check: deeprnn_fast._kernels is already imported from {loaded.__file__}; load {path} "
                         "in a fresh process")
    spec = importlib.util.spec_from_file_location("deeprnn_fast._kernels", path)
    if spec is None:
        raise SystemExit(f"gpu_check: {path} is not a loadable Python extension")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["deeprnn_fast._kernels"] = module
    return module


# ---- backends: where arrays live and which entry points run ----

class CpuBackend:
    """The CPU library on NumPy arrays (the dry run)."""
    name = "cpu"
    schedules = ("cpu",)

    def __init__(self, kernels):
        self.k = kernels

    def put(self, array):
        return np.ascontiguousarray(array)

    def poisoned(self, shape, dtype):
        return np.full(shape, np.nan, dtype)

    def get(self, array):
        return np.asarray(array)

    def synchronize(self):
        pass

    def forward(self, p, out, schedule):
        self.k.forward_cpu(p["inputs"], p["kernels"], p["recurrent_kernels"], p["biases"], p["initial_states"],
                           out["outputs"], out["final_states"], out["activations"], gates=out.get("gates"),
                           cell=p["cell"])
        return {"schedule": "cpu", "weights_on_chip": False}

    def backward(self, p, out, g, schedule):
        # The CPU pass keeps the grad slots of every cell only for tanh / relu below 128 rows (its scratch):
        # nothing to compare for the others.
        if p["cell"] not in ("tanh", "relu") or p["shape"][0] >= 128:
            g.pop("grad_preactivations", None)
        self.k.backward_cpu(p["inputs"], p["kernels"], p["recurrent_kernels"], p["initial_states"],
                            out["activations"], p["grad_outputs"], p["grad_final_states"], g["grad_inputs"],
                            g["grad_kernels"], g["grad_recurrent_kernels"], g["grad_biases"],
                            g["grad_initial_states"], g.get("grad_preactivations"), gates=out.get("gates"),
                            cell=p["cell"])
        return {"schedule": "cpu"}


class _CudaEntryPoints:
    """forward_cuda / backward_cuda with a workspace from the backend's allocator."""
    schedules = SCHEDULES

    def workspace(self, direction, p):
        B, T, D, H, L = p["shape"]
        n = self.k.workspace_bytes(direction, B, T, D, H, L, p["dtype"], cell=p["cell"], tokens=p["tokens"])
        return self.empty_bytes(n)

    def forward(self, p, out, schedule, workspace=None):
        return self.k.forward_cuda(p["inputs"], p["kernels"], p["recurrent_kernels"], p["biases"],
                                   p["initial_states"], out["outputs"], out["final_states"], out["activations"],
                                   workspace if workspace is not None else self.workspace("forward", p),
                                   stream=self.stream(), schedule=schedule, gates=out.get("gates"), cell=p["cell"])

    def backward(self, p, out, g, schedule, workspace=None):
        return self.k.backward_cuda(p["inputs"], p["kernels"], p["recurrent_kernels"], p["initial_states"],
                                    out["activations"], p["grad_outputs"], p["grad_final_states"], g["grad_inputs"],
                                    g["grad_kernels"], g["grad_recurrent_kernels"], g["grad_biases"],
                                    g["grad_initial_states"], g["grad_preactivations"],
                                    workspace if workspace is not None else self.workspace("backward", p),
                                    stream=self.stream(), schedule=schedule, gates=out.get("gates"),
                                    cell=p["cell"])


class TorchCudaBackend(_CudaEntryPoints):
    """The CUDA library on PyTorch CUDA tensors, on PyTorch's current stream."""
    name = "cuda"

    def __init__(self, kernels):
        import torch
        self.torch = torch
        self.k = kernels

    def stream(self):
        return self.torch.cuda.current_stream().cuda_stream

    def put(self, array):
        return self.torch.from_numpy(np.ascontiguousarray(array)).to("cuda")

    def poisoned(self, shape, dtype):
        return self.torch.full(shape, float("nan"), dtype=getattr(self.torch, np.dtype(dtype).name), device="cuda")

    def empty_bytes(self, n):
        return self.torch.empty(max(n, 1), dtype=self.torch.uint8, device="cuda")

    def get(self, tensor):
        return tensor.cpu().numpy()

    def synchronize(self):
        self.torch.cuda.synchronize()


class FakeCudaArray:
    """A NumPy array dressed as a CUDA array (__cuda_array_interface__ v3), for a module whose CUDA entry points
    run on the CPU emulation of CUDA."""

    def __init__(self, array):
        self.array = np.ascontiguousarray(array)

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.array.shape, "typestr": self.array.dtype.str, "version": 3, "strides": None,
                "data": (self.array.ctypes.data, False)}


class EmulatedBackend(_CudaEntryPoints):
    name = "emulated"

    def __init__(self, kernels):
        self.k = kernels

    def stream(self):
        return 0

    def put(self, array):
        return FakeCudaArray(array)

    def poisoned(self, shape, dtype):
        return FakeCudaArray(np.full(shape, np.nan, dtype))

    def empty_bytes(self, n):
        return FakeCudaArray(np.empty(n + 256, np.uint8))

    def get(self, array):
        return array.array.copy()

    def synchronize(self):
        pass


# ---- 1. correctness ----

def _upload(backend, problem, dtype, cell):
    B, T, D, H, L = problem.shape
    return {
        "shape": (B, T, D, H, L), "dtype": np.dtype(dtype).name, "cell": cell, "tokens": problem.tokens,
        "inputs": backend.put(problem.inputs),
        "kernels": [backend.put(w) for w in problem.kernels],
        "recurrent_kernels": [backend.put(w) for w in problem.recurrent_kernels],
        "biases": [backend.put(b) for b in problem.biases],
        "initial_states": backend.put(problem.initial_states),
        "grad_outputs": backend.put(problem.grad_outputs),
        "grad_final_states": backend.put(problem.grad_final_states),
    }


def _buffers(backend, p, dtype):
    """NaN-poisoned outputs of both passes of p's cell (no grad_inputs with tokens; grad_preactivations: the grad
    slots)."""
    B, T, D, H, L = p["shape"]
    case = CELL_CASES[p["cell"]]
    G = case.gates
    out = {"outputs": backend.poisoned((B, T, H), dtype),
           "final_states": backend.poisoned(case.states_shape(L, B, H), dtype),
           "activations": backend.poisoned((L, T, B, H), dtype)}
    if case.saved_slots:
        out["gates"] = backend.poisoned((L, T, B, case.saved_slots * H), dtype)
    g = {"grad_inputs": None if p["tokens"] else backend.poisoned((B, T, D), dtype),
         "grad_kernels": [backend.poisoned((D if l == 0 else H, G * H), dtype) for l in range(L)],
         "grad_recurrent_kernels": [backend.poisoned((H, G * H), dtype) for _ in range(L)],
         "grad_biases": [backend.poisoned(case.bias_shape(H), dtype) for _ in range(L)],
         "grad_initial_states": backend.poisoned(case.states_shape(L, B, H), dtype),
         "grad_preactivations": backend.poisoned((L, T, B, case.grad_slots * H), dtype)}
    return out, g


def _run_both_passes(backend, p, dtype, schedule):
    """Forward then backward into NaN-poisoned outputs; returns (host results, forward info, backward info)."""
    out, g = _buffers(backend, p, dtype)
    info = backend.forward(p, out, schedule)
    binfo = backend.backward(p, out, g, schedule)
    backend.synchronize()
    host = {k: backend.get(v) for k, v in out.items()}
    for k, v in g.items():
        if v is not None:
            host[k] = [backend.get(x) for x in v] if isinstance(v, list) else backend.get(v)
    return host, info, binfo


def _errors(got, want):
    """Relative error per quantity (the worst layer for per-layer lists) that both hold."""
    errs = {}
    for name, ref in want.items():
        if name not in got:
            continue
        if isinstance(ref, list):
            errs[name] = max((oracle.relative_error(a, b) for a, b in zip(got[name], ref)), default=0.0)
        else:
            errs[name] = oracle.relative_error(got[name], ref)
    return errs


def check_correctness(backend, shapes, seed, log, deadline):
    """Every shape x input kind (dense float32 / float64, tokens float32) x cell on fresh random data, every
    schedule on the same data. Returns records (the cell in "activation", the input kind in "inputs")."""
    rng = np.random.default_rng(seed)
    records = []
    log(f"correctness: backend {backend.name}, seed {seed}, {len(shapes)} shapes x {len(INPUT_KINDS)} input kinds "
        f"(dense float32 / float64, tokens float32) x {len(CELLS)} cells ({', '.join(CELLS)}) x "
        f"{len(backend.schedules)} schedules; outputs NaN-poisoned before every run")
    log(f"{'B':>4} {'T':>4} {'D':>4} {'H':>5} {'L':>2} {'dtype':7} {'in':6} {'cell':4} {'schedule':21} {'ran':26} "
        f"{'worst rel err':>13} {'quantity':22} {'vs 1st sched':>12} status")
    for shape in shapes:
        for dtype, tokens in INPUT_KINDS:
            for cell in CELLS:
                if time.time() > deadline:
                    log("correctness: deadline reached; remaining cases skipped")
                    records.append({"shape": shape, "status": "skipped (time budget)"})
                    return records
                if cell in ("gru", "lstm") and shape[3] > GATED_MAX_CHECK_HIDDEN:
                    continue
                case = CELL_CASES[cell]
                problem = case.random_problem(rng, shape, dtype, tokens)
                ref = case.reference(problem)
                p = _upload(backend, problem, dtype, cell)
                kind = "tokens" if tokens else "dense"
                first = None
                for schedule in backend.schedules:
                    rec = {"shape": shape, "dtype": np.dtype(dtype).name, "activation": cell, "inputs": kind,
                           "schedule": schedule}
                    prefix = (f"{shape[0]:>4} {shape[1]:>4} {shape[2]:>4} {shape[3]:>5} {shape[4]:>2} "
                              f"{rec['dtype']:7} {kind:6} {cell:4} {schedule:21}")
                    try:
                        got, info, binfo = _run_both_passes(backend, p, dtype, schedule)
                    except (RuntimeError, ValueError) as e:
                        if schedule == "persistent_resident" and "cannot stay on chip" in str(e):
                            rec["status"] = "n/a"
                            rec["note"] = str(e)
                        else:
                            rec["status"] = "ERROR"
                            rec["error"] = str(e)
                        records.append(rec)
                        log(f"{prefix} {rec['status']}: {e}")
                        continue
                    errs = _errors(got, ref)
                    worst_name = max(errs, key=errs.get)
                    worst = errs[worst_name]
                    cross = 0.0
                    if first is None:
                        first = got
                    else:
                        cross = max(_errors(got, first).values())
                    ok = worst <= TOLERANCE[dtype] and cross <= 2 * TOLERANCE[dtype]
                    ran = (f"{info.get('schedule', '?')}{'+chip' if info.get('weights_on_chip') else ''}"
                           f"/{binfo.get('schedule', '?')}{'+chip' if binfo.get('weights_on_chip') else ''}")
                    rec.update(status="ok" if ok else "FAIL", worst=worst, worst_quantity=worst_name,
                               vs_first_schedule=cross, errors=errs, ran=ran,
                               tile=info.get("tile"), launches=info.get("kernel_launches"))
                    records.append(rec)
                    log(f"{prefix} {ran:26} {worst:13.2e} {worst_name:22} {cross:12.2e} {rec['status']}")
    return records


def run_selfcheck(binary, log, out_dir, timeout):
    """The C++ self-check (CUDA library against the CPU library) on the GPU, no sanitizer."""
    if not binary:
        return {"status": "not run (no binary)"}
    try:
        proc = subprocess.run([binary, "--quick"], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "TIMEOUT"}
    _write(out_dir, "selfcheck.log", proc.stdout + proc.stderr)
    last = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    log(f"C++ self-check (CUDA vs CPU library): exit {proc.returncode}: {last}")
    return {"status": "ok" if proc.returncode == 0 else "FAIL", "summary": last}


# ---- 2. sanitizers ----

def run_sanitizers(binary, log, out_dir, deadline):
    results = {}
    tool_path = shutil.which("compute-sanitizer") or "/usr/local/cuda/bin/compute-sanitizer"
    if not binary:
        return {"all": "not run (no self-check binary)"}
    if not os.path.exists(tool_path):
        log("sanitizers: compute-sanitizer not found; skipped")
        return {"all": "skipped: compute-sanitizer not found"}
    for tool in ("memcheck", "racecheck"):
        budget = min(150.0, deadline - time.time())
        if budget < 20:
            results[tool] = "skipped (time budget)"
            log(f"sanitizer {tool}: skipped (time budget)")
            continue
        cmd = [tool_path, "--tool", tool, "--error-exitcode", "3", binary, "--sanitize"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=budget)
            text = proc.stdout + proc.stderr
            rc = proc.returncode
        except subprocess.TimeoutExpired as e:
            text = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            rc = None
        _write(out_dir, f"sanitizer_{tool}.log", text)
        summary = [l for l in text.splitlines() if "ERROR SUMMARY" in l or "RACECHECK SUMMARY" in l]
        if rc is None:
            status = f"TIMEOUT after {budget:.0f} s"
        elif rc == 0:
            status = "clean" + (f" ({summary[-1].strip()})" if summary else "")
        elif rc == 3:
            status = "ERRORS: " + (summary[-1].strip() if summary else "see log")
        elif "not supported" in text.lower() or "error 999" in text.lower():
            status = "tool does not work here: " + (text.strip().splitlines() or ["?"])[-1][:160]
        else:
            status = f"exit {rc}: " + (text.strip().splitlines() or ["?"])[-1][:160]
        results[tool] = status
        log(f"sanitizer {tool}: {status}")
    return results


# ---- 3. timings ----

class CudaTimer:
    """Median of CUDA-event timings after warm-up; the repetitions adapt to the call's length."""

    def __init__(self, torch):
        self.torch = torch

    def __call__(self, fn, warmup=2, min_reps=3, max_reps=15, target_ms=300.0):
        torch = self.torch
        for _ in range(warmup):
            fn()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        estimate = max(start.elapsed_time(end), 1e-3)
        reps = int(min(max_reps, max(min_reps, target_ms / estimate)))
        times = []
        for _ in range(reps):
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        return statistics.median(times)


def grid_sync_cost_us(kernels, torch, log):
    """Microseconds per grid barrier: (time of N barriers - time of none) / N, one block per SM and two."""
    timer = CudaTimer(torch)
    stream = torch.cuda.current_stream().cuda_stream
    sms = kernels.device_info()["sm_count"]
    result = {}
    for per_sm in (1, 2):
        blocks = sms * per_sm
        n = 2000
        t0 = timer(lambda: kernels.grid_sync_benchmark(0, blocks, stream), max_reps=20, target_ms=50)
        t1 = timer(lambda: kernels.grid_sync_benchmark(n, blocks, stream), max_reps=10, target_ms=100)
        result[f"{per_sm}_per_sm"] = 1000.0 * (t1 - t0) / n
        log(f"grid barrier: {result[f'{per_sm}_per_sm']:.2f} us ({blocks} blocks x 256 threads; {n} barriers in "
            f"{t1:.3f} ms, empty launch {t0:.3f} ms)")
    return result


GATED_TIMED = ("gru", "lstm")  # timed with the planner's schedule against nn.GRU / nn.LSTM


def _time_gated(cell, backend, timer, torch, rng, row):
    """Our GRU or LSTM (forward, and forward + backward, with the planner's schedule) into `row` under keys
    ours_<cell>_...; workspaces and outputs are allocated once, outside the timed calls."""
    B, T, D, H, L = row["B"], row["T"], row["D"], row["H"], row["L"]
    problem = CELL_CASES[cell].random_problem(rng, (B, T, D, H, L), np.float32, False)
    p = _upload(backend, problem, np.float32, cell)
    out, g = _buffers(backend, p, np.float32)
    ws_f, ws_b = backend.workspace("forward", p), backend.workspace("backward", p)

    def fwd():
        return backend.forward(p, out, "auto", ws_f)

    def bwd():
        return backend.backward(p, out, g, "auto", ws_b)

    info = fwd()
    row[f"ours_{cell}_fwd_plan"] = (info["schedule"] + ("+chip" if info["weights_on_chip"] else "")
                                    + f" t{info['tile']}")
    row[f"ours_{cell}_fwd_ms"] = timer(fwd)
    row[f"ours_{cell}_fwdbwd_ms"] = timer(lambda: (fwd(), bwd()))
    if not torch.isfinite(out["outputs"]).all():
        row[f"{cell}_error"] = "non-finite outputs"


def _time_peer(name, torch, timer, row):
    """PyTorch's cuDNN stack of `name` (rnn, gru, lstm) with num_layers=L: forward, and forward + backward."""
    B, T, D, H, L = row["B"], row["T"], row["D"], row["H"], row["L"]
    cls, kw = {"rnn": (torch.nn.RNN, {"nonlinearity": "tanh"}), "gru": (torch.nn.GRU, {}),
               "lstm": (torch.nn.LSTM, {})}[name]
    module = cls(D, H, num_layers=L, batch_first=True, device="cuda", **kw)
    x = torch.randn(B, T, D, device="cuda")
    states = [torch.randn(L, B, H, device="cuda") for _ in range(2 if name == "lstm" else 1)]
    dy = torch.randn(B, T, H, device="cuda")
    dstates = [torch.randn(L, B, H, device="cuda") for _ in states]
    initial = tuple(states) if name == "lstm" else states[0]

    def peer_fwd():
        with torch.no_grad():
            return module(x, initial)

    def peer_fwdbwd():
        xg = x.requires_grad_(True)
        y, final = module(xg, initial)
        finals = list(final) if name == "lstm" else [final]
        torch.autograd.backward([y] + finals, [dy] + dstates)

    row[f"{name}_fwd_ms"] = timer(peer_fwd)
    row[f"{name}_fwdbwd_ms"] = timer(peer_fwdbwd)
    del module


def time_configs(kernels, torch, log, deadline, sync_us, schedules=("auto", "stepwise", "persistent")):
    """Ours (tanh RNN: forward per schedule, forward + backward with auto; GRU, LSTM: both with auto) against
    cuDNN's RNN, GRU and LSTM. Returns rows."""
    timer = CudaTimer(torch)
    backend = TorchCudaBackend(kernels)
    rows = []
    rng = np.random.default_rng(int(time.time()))
    for B, H, L in TIMING_CONFIGS:
        T, D = TIMING_T, H
        row = {"B": B, "H": H, "L": L, "T": T, "D": D}
        rows.append(row)
        if time.time() > deadline:
            row["skipped"] = "time budget"
            continue
        try:
            problem = oracle.random_problem(rng, B, T, D, H, L, np.float32, "tanh")
            p = _upload(backend, problem, np.float32, "tanh")
            out, g = _buffers(backend, p, np.float32)
            ws_f, ws_b = backend.workspace("forward", p), backend.workspace("backward", p)
            for schedule in schedules:
                try:
                    info = backend.forward(p, out, schedule, ws_f)
                except (RuntimeError, ValueError) as e:  # e.g. no cooperative launch here: time the others
                    row[f"ours_fwd_{schedule}_plan"] = f"unavailable: {e}"
                    continue
                row[f"ours_fwd_{schedule}_ms"] = timer(lambda: backend.forward(p, out, schedule, ws_f))
                row[f"ours_fwd_{schedule}_plan"] = (info["schedule"] + ("+chip" if info["weights_on_chip"] else "")
                                                    + f" t{info['tile']}")
            row["ours_fwdbwd_ms"] = timer(lambda: (backend.forward(p, out, "auto", ws_f),
                                                   backend.backward(p, out, g, "auto", ws_b)))
            if not torch.isfinite(out["outputs"]).all():
                row["error"] = "non-finite outputs"
            del p, out, g, ws_f, ws_b
            for cell in GATED_TIMED:
                try:
                    _time_gated(cell, backend, timer, torch, rng, row)
                except Exception as e:  # one cell's failure must not lose the others' numbers
                    row[f"{cell}_error"] = f"{type(e).__name__}: {e}"
            for name in ("rnn",) + GATED_TIMED:
                _time_peer(name, torch, timer, row)
            row["sync_floor_ms"] = (T + L - 1) * sync_us / 1000.0
        except Exception as e:  # one config's failure (e.g. out of memory) must not lose the others
            row["error"] = f"{type(e).__name__}: {e}"
        log(format_timing_row(row))
        for cell in GATED_TIMED:
            log(format_gated_timing_row(row, cell))
        torch.cuda.empty_cache()
    return rows


def _fmt(v, width=7, digits=2):
    return f"{v:{width}.{digits}f}" if isinstance(v, (int, float)) else f"{'-':>{width}}"


def _ratio(a, b):
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b > 0 else None


TIMING_HEADER = (f"{'B':>4} {'H':>5} {'L':>2} | {'ours fwd':>8} {'plan':22} {'stepw':>7} {'persist':>7} | "
                 f"{'rnn fwd':>7} {'x rnn':>6} | {'ours f+b':>8} {'rnn f+b':>7} {'x rnn':>6} | {'sync fl':>7} "
                 f"{'x floor':>7}")


def format_timing_row(r):
    if "skipped" in r:
        return f"{r['B']:>4} {r['H']:>5} {r['L']:>2} | skipped: {r['skipped']}"
    ours = r.get("ours_fwd_auto_ms")
    line = (f"{r['B']:>4} {r['H']:>5} {r['L']:>2} | {_fmt(ours, 8)} {str(r.get('ours_fwd_auto_plan', '-'))[:22]:22} "
            f"{_fmt(r.get('ours_fwd_stepwise_ms'))} {_fmt(r.get('ours_fwd_persistent_ms'))} | "
            f"{_fmt(r.get('rnn_fwd_ms'))} {_fmt(_ratio(ours, r.get('rnn_fwd_ms')), 6)} | "
            f"{_fmt(r.get('ours_fwdbwd_ms'), 8)} {_fmt(r.get('rnn_fwdbwd_ms'))} "
            f"{_fmt(_ratio(r.get('ours_fwdbwd_ms'), r.get('rnn_fwdbwd_ms')), 6)} | "
            f"{_fmt(r.get('sync_floor_ms'), 7, 3)} {_fmt(_ratio(ours, r.get('sync_floor_ms')))}")
    if "error" in r:
        line += f"  [{r['error']}]"
    return line


GATED_TIMING_HEADER = (f"{'B':>4} {'H':>5} {'L':>2} | {'ours fwd':>8} {'plan':22} {'cudnn':>7} {'x cudnn':>7} | "
                       f"{'ours f+b':>8} {'cudnn':>7} {'x cudnn':>7} | {'x floor':>7}")


def format_gated_timing_row(r, cell):
    if "skipped" in r:
        return f"{r['B']:>4} {r['H']:>5} {r['L']:>2} | skipped: {r['skipped']}"
    ours, peer = r.get(f"ours_{cell}_fwd_ms"), r.get(f"{cell}_fwd_ms")
    ours_fb, peer_fb = r.get(f"ours_{cell}_fwdbwd_ms"), r.get(f"{cell}_fwdbwd_ms")
    line = (f"{r['B']:>4} {r['H']:>5} {r['L']:>2} | {_fmt(ours, 8)} "
            f"{str(r.get(f'ours_{cell}_fwd_plan', '-'))[:22]:22} {_fmt(peer)} {_fmt(_ratio(ours, peer))} | "
            f"{_fmt(ours_fb, 8)} {_fmt(peer_fb)} {_fmt(_ratio(ours_fb, peer_fb))} | "
            f"{_fmt(_ratio(ours, r.get('sync_floor_ms')))}")
    if f"{cell}_error" in r:
        line += f"  [{r[f'{cell}_error']}]"
    return line


def timing_table(rows, header_lines):
    lines = list(header_lines)
    lines.append("fused tanh RNN vs cuDNN: times in ms (median of CUDA-event timings); 'x rnn' = ours / cuDNN RNN "
                 "(below 1: ours faster); 'sync fl' = (T + L - 1) x one grid barrier; 'x floor' = ours fwd / that "
                 "(goal: <= 2)")
    lines.append(TIMING_HEADER)
    lines.extend(format_timing_row(r) for r in rows)
    for cell, peer in (("gru", "nn.GRU"), ("lstm", "nn.LSTM")):
        lines.append("")
        lines.append(f"fused {cell.upper()} vs cuDNN {peer}(num_layers=L): times in ms; 'x cudnn' = ours / cuDNN "
                     "(below 1: ours faster); 'x floor' = ours fwd / the sync floor above")
        lines.append(GATED_TIMING_HEADER)
        lines.extend(format_gated_timing_row(r, cell) for r in rows)
    return lines


def plan_table(kernels, props, log):
    """What the planner picks for the timing configurations on `props` (no GPU needed)."""
    log(f"planner's choices for T = {TIMING_T}, float32, on {props.get('name', 'the given device')} "
        f"({props['sm_count']} SMs):")
    for cell in ("tanh", "gru", "lstm"):  # relu plans as tanh
        for B, H, L in TIMING_CONFIGS:
            parts = []
            for direction in ("forward", "backward"):
                p = kernels.plan(B, TIMING_T, H, H, L, "float32", direction, "auto", props, cell=cell)
                parts.append(f"{direction[0]}wd {p['schedule']}{'+chip' if p['weights_on_chip'] else ''} "
                             f"tile {p['tile']} ({p['bm']}x{p['bn']}) grid {p['grid']} smem {p['smem_bytes']}")
            log(f"  {cell} B={B:<3} H={H:<4} L={L}: " + " | ".join(parts))


# ---- driver ----

def _write(out_dir, name, text):
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, name), "w") as f:
            f.write(text if text.endswith("\n") else text + "\n")


def _versions(kernels, torch):
    info = {}
    if torch is not None:
        info["gpu"] = torch.cuda.get_device_name()
        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
        info["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
    try:
        d = kernels.device_info()
        info["cuda_runtime_linked"] = f"{d['cuda_runtime_version'] // 1000}.{d['cuda_runtime_version'] % 1000 // 10}"
        info["cuda_driver_api"] = f"{d['cuda_driver_version'] // 1000}.{d['cuda_driver_version'] % 1000 // 10}"
        info["sm_count"] = d["sm_count"]
        info["compute_capability"] = f"{d['cc_major']}.{d['cc_minor']}"
    except RuntimeError:
        pass
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        if smi.returncode == 0:
            info["driver"] = smi.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="correctness part only, on the CPU backend")
    ap.add_argument("--backend", choices=("auto", "cpu", "cuda", "emulated"), default="auto")
    ap.add_argument("--quick", action="store_true", help="small shapes only")
    ap.add_argument("--shapes", help="correctness shapes instead of the built-in grid: 'B,T,D,H,L;B,T,D,H,L;...'")
    ap.add_argument("--kernels", help="path of the built _kernels module (default: import deeprnn_fast._kernels)")
    ap.add_argument("--selfcheck", help="path of the C++ self-check binary (for its run and the sanitizers)")
    ap.add_argument("--out", default=os.environ.get("OUT") or None, help="directory for the table, log and JSON")
    ap.add_argument("--deadline", type=float, default=None,
                    help="epoch seconds by which everything must be done (default: now + --budget-s)")
    ap.add_argument("--budget-s", type=float, default=420.0)
    ap.add_argument("--seed", type=int, default=None, help="default: fresh from the clock")
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--skip-sanitizers", action="store_true")
    args = ap.parse_args(argv)

    started = time.time()
    deadline = args.deadline if args.deadline is not None else started + args.budget_s
    log = Log()
    kernels = load_kernels(args.kernels)
    backend_name = args.backend
    if backend_name == "auto":
        backend_name = "cpu" if args.dry_run else "cuda"
    if args.dry_run and backend_name == "cuda":
        raise SystemExit("gpu_check: --dry-run runs on the CPU (or emulated) backend")
    torch = None
    if backend_name == "cuda":
        try:
            import torch
        except ImportError:
            raise SystemExit("gpu_check: the cuda backend needs PyTorch (for allocations, streams and the cuDNN peers)")
        if not torch.cuda.is_available() or not kernels.cuda_available():
            raise SystemExit(f"gpu_check: no usable GPU (torch sees one: {torch.cuda.is_available()}; module built "
                             f"with CUDA: {kernels.has_cuda_build()}, sees one: {kernels.cuda_available()})")
        backend = TorchCudaBackend(kernels)
    elif backend_name == "emulated":
        backend = EmulatedBackend(kernels)
    else:
        backend = CpuBackend(kernels)

    versions = _versions(kernels, torch) if backend_name == "cuda" else {}
    header = [f"deeprnn_fast GPU check ({'dry run, ' if args.dry_run else ''}backend {backend.name}) "
              f"{time.strftime('%Y-%m-%d %H:%M:%S')}"]
    if versions:
        header.append("  ".join(f"{k}: {v}" for k, v in versions.items()))
    for line in header:
        log(line)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    shapes = SHAPES_QUICK if (args.quick or backend_name != "cuda") else SHAPES_FULL
    if args.shapes:
        try:
            shapes = [tuple(int(v) for v in item.split(",")) for item in args.shapes.split(";") if item.strip()]
        except ValueError:
            raise SystemExit(f"gpu_check: --shapes must look like '2,5,3,7,3;1,4,6,16,2'; got {args.shapes!r}")
        if not shapes or any(len(shape) != 5 for shape in shapes):
            raise SystemExit(f"gpu_check: every --shapes entry needs 5 sizes B,T,D,H,L; got {args.shapes!r}")
    # The correctness part gets at most 40% of what is left; timings get the rest.
    correctness_deadline = time.time() + 0.4 * max(0.0, deadline - time.time())
    records = check_correctness(backend, shapes, seed, log, correctness_deadline)
    failed = [r for r in records if r.get("status") in ("FAIL", "ERROR")]
    checked = [r for r in records if r.get("status") == "ok"]
    log(f"correctness: {len(checked)} ok, {len(failed)} failed, "
        f"{sum(1 for r in records if r.get('status') == 'n/a')} n/a (weights do not fit on chip), "
        f"{sum(1 for r in records if 'skipped' in str(r.get('status')))} skipped")

    result = {"versions": versions, "seed": seed, "correctness": records}
    if backend_name == "cuda":
        result["selfcheck"] = run_selfcheck(args.selfcheck, log, args.out, timeout=max(10.0, min(90.0, deadline - time.time())))
        if result["selfcheck"]["status"] == "FAIL":
            failed.append(result["selfcheck"])
        if not args.skip_sanitizers:
            result["sanitizers"] = run_sanitizers(args.selfcheck, log, args.out, deadline - 150)
            if any(str(v).startswith("ERRORS") for v in result["sanitizers"].values()):
                failed.append(result["sanitizers"])
        table = []
        if not args.skip_timing:
            result["grid_sync_us"] = grid_sync_cost_us(kernels, torch, log)
            log(TIMING_HEADER)
            result["timings"] = time_configs(kernels, torch, log, deadline - 20, result["grid_sync_us"]["1_per_sm"])
            table = timing_table(result["timings"], header + [
                f"grid barrier: {result['grid_sync_us']['1_per_sm']:.2f} us (1 block/SM), "
                f"{result['grid_sync_us']['2_per_sm']:.2f} us (2 blocks/SM); T = {TIMING_T}, D = H, float32; "
                f"correctness: {len(checked)} ok, {len(failed)} failed; sanitizers: {result.get('sanitizers', '-')}"])
            log("")
            for line in table:
                log(line)
        _write(args.out, "gpu_check_table.txt", "\n".join(table))
    else:
        plan_table(kernels, dict(H200_PROPS, name="an H200 (properties given by hand)"), log)
        # Exercise the report on fake numbers, so that a formatting bug shows before a GPU run.
        fake = [{"B": 1, "H": 256, "L": 2, "ours_fwd_auto_ms": 1.0, "ours_fwd_auto_plan": "persistent+chip t0",
                 "rnn_fwd_ms": 2.0, "sync_floor_ms": 0.5, "ours_gru_fwd_ms": 1.5,
                 "ours_gru_fwd_plan": "persistent+chip t0", "gru_fwd_ms": 2.5, "ours_gru_fwdbwd_ms": 4.0,
                 "gru_fwdbwd_ms": 6.0, "ours_lstm_fwd_ms": 1.7, "ours_lstm_fwd_plan": "persistent+chip t0",
                 "lstm_fwd_ms": 2.7, "ours_lstm_fwdbwd_ms": 4.4, "lstm_fwdbwd_ms": 6.6},
                {"B": 256, "H": 1024, "L": 8, "skipped": "time budget"}]
        for line in timing_table(fake, ["(dry run: table format with made-up numbers)"]):
            log(line)
    result["elapsed_s"] = time.time() - started
    log(f"gpu_check: {'FAILED' if failed else 'PASSED'} in {result['elapsed_s']:.0f} s")
    _write(args.out, "gpu_check.log", "\n".join(log.lines))
    if args.out:
        with open(os.path.join(args.out, "gpu_check.json"), "w") as f:
            json.dump(result, f, indent=1, default=str)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
