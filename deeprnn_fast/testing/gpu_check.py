"""GPU check of the CUDA kernels: timings against cuDNN, correctness against the float64 oracle, sanitizers.

Run by benchmarks/gpu/check.sh on a CUDA machine (nvcc, PyTorch, NumPy; no TensorFlow, no network), which builds
the TF-free module deeprnn_fast._kernels first and then runs this script once per phase, each phase a process of
its own under `timeout`, in this order (the goals' numbers first, so that a short lease still gets them):
- timing: the configurations the goals are about, T = 128, B in {1, 8, 32, 256}, H in {256, 1024}, L in {2, 4}:
  forward and forward + backward of each cell (tanh RNN, GRU, LSTM; the planner's schedule) against PyTorch's
  nn.RNN(nonlinearity="tanh") / nn.GRU / nn.LSTM(num_layers=L) on cuDNN with TF32 not allowed and allowed; every
  time is N calls queued back to back between two CUDA events, divided by N, so that host overhead between calls
  is not counted as kernel time; plus the measured cost of one grid barrier (a cooperative kernel doing N grid
  syncs) and the "x floor" ratio of each forward time to (T + L - 1) barriers (goal: within 2x);
- correctness: forward and backward of every schedule against the float64 NumPy oracle (deeprnn_fast.testing.oracle)
  over a grid of shapes with edge cases, for every cell (tanh and relu RNN, GRU, LSTM; the gated cells up to
  H = 1024), dense inputs in both dtypes and token inputs in float32, on fresh random inputs each run (the seed is
  printed), every output poisoned with NaN before each run, the schedules compared with each other too;
- masks and dropout (in the correctness phase): every cell with each mask pattern (right / left padding, holes, a
  row that takes no step), each dropout alone and all of them together, against the float64 oracle of them
  (deeprnn_fast.testing.masked_oracle);
- sanitizers: the C++ self-check (CUDA library against the CPU library, every cell, dense and tokens), then
  compute-sanitizer memcheck and racecheck on its --sanitize cases (the B = 32 tile, blocks above 48 KB of shared
  memory), each in a fixed slot;
- report: no GPU; the tables and gpu_check.json from what the phases wrote.
Every result is written to --out as it is produced, one JSON line per check or timing row in results.jsonl (a kill
or a hang loses nothing already measured); with gpu_check.log, gpu_check_table.txt, gpu_check.json, selfcheck.log
and sanitizers.log (plus check.sh's build.log and ptxas.txt) that is at most 8 files, all the GPU machine returns.
--phase all runs the four in one process (the tests' way).

--dry-run goes through every phase without a GPU: correctness on the CPU backend of the same module, the planner's
choices and the timing table (on made-up numbers) for the timing configurations on an H200's properties, and the
sanitizer commands it would run (tests/test_gpu_check_dryrun.py runs it through check.sh --dry-run, which also
compiles the CUDA sources with nvcc where there is one). --backend emulated runs the CUDA entry points of a module
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

TIMING_T = 128
TIMING_CONFIGS = [(B, H, L) for B in (1, 8, 32, 256) for H in (256, 1024) for L in (2, 4)]
TIMED_CELLS = ("tanh", "gru", "lstm")  # relu times as tanh
PEERS = {"tanh": "nn.RNN", "gru": "nn.GRU", "lstm": "nn.LSTM"}
# What --out holds at most (the GPU machine returns no more than 8 files); check.sh adds build.log and ptxas.txt.
RESULTS_FILE = "results.jsonl"
OUT_FILES = (RESULTS_FILE, "gpu_check.log", "gpu_check_table.txt", "gpu_check.json", "selfcheck.log",
             "sanitizers.log")


class Log:
    """Prints and keeps every line, for the log file under --out."""

    def __init__(self):
        self.lines = []

    def __call__(self, *parts):
        line = " ".join(str(p) for p in parts)
        print(line, flush=True)
        self.lines.append(line)


class Results:
    """results.jsonl under `out_dir`: one JSON line per check or timing row, appended, flushed and synced as it is
    produced, so that a kill or a hang loses nothing already measured. Without an out_dir it only keeps them."""

    def __init__(self, out_dir):
        self.path = os.path.join(out_dir, RESULTS_FILE) if out_dir else None
        self.by_kind = {}  # this process's records, for a report without an out_dir
        if self.path:
            os.makedirs(out_dir, exist_ok=True)

    def __call__(self, kind, record):
        self.by_kind.setdefault(kind, []).append(record)
        line = json.dumps(dict(record, kind=kind), default=str)
        if self.path:
            with open(self.path, "a") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())
        return record


def read_results(out_dir):
    """The records of results.jsonl by kind (a torn last line, from a kill mid-write, is skipped)."""
    by_kind = {}
    path = os.path.join(out_dir, RESULTS_FILE)
    if not os.path.exists(path):
        return by_kind
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            by_kind.setdefault(record.pop("kind", "?"), []).append(record)
    return by_kind


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
                           cell=p["cell"], **p.get("modifiers", {}))
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
                            cell=p["cell"], **p.get("modifiers", {}))
        return {"schedule": "cpu"}


class _CudaEntryPoints:
    """forward_cuda / backward_cuda with a workspace from the backend's allocator."""
    schedules = SCHEDULES

    def workspace(self, direction, p):
        B, T, D, H, L = p["shape"]
        n = self.k.workspace_bytes(direction, B, T, D, H, L, p["dtype"], cell=p["cell"], tokens=p["tokens"])
        return self.empty_bytes(n)

    def forward(self, p, out, schedule, workspace=None, allow_tf32=False):
        return self.k.forward_cuda(p["inputs"], p["kernels"], p["recurrent_kernels"], p["biases"],
                                   p["initial_states"], out["outputs"], out["final_states"], out["activations"],
                                   workspace if workspace is not None else self.workspace("forward", p),
                                   stream=self.stream(), schedule=schedule, gates=out.get("gates"), cell=p["cell"],
                                   allow_tf32=allow_tf32, **p.get("modifiers", {}))

    def backward(self, p, out, g, schedule, workspace=None, allow_tf32=False):
        return self.k.backward_cuda(p["inputs"], p["kernels"], p["recurrent_kernels"], p["initial_states"],
                                    out["activations"], p["grad_outputs"], p["grad_final_states"], g["grad_inputs"],
                                    g["grad_kernels"], g["grad_recurrent_kernels"], g["grad_biases"],
                                    g["grad_initial_states"], g["grad_preactivations"],
                                    workspace if workspace is not None else self.workspace("backward", p),
                                    stream=self.stream(), schedule=schedule, gates=out.get("gates"),
                                    cell=p["cell"], allow_tf32=allow_tf32, **p.get("modifiers", {}))


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


def _run_recorded(backend, p, dtype, schedule, rec, records, log, prefix):
    """_run_both_passes, or None after recording why it could not run: "n/a" (with a note) where the schedule's
    weights cannot stay on chip for this shape, "ERROR" for any other failure."""
    try:
        return _run_both_passes(backend, p, dtype, schedule)
    except (RuntimeError, ValueError) as e:
        if "cannot stay on chip" in str(e):
            rec.update(status="n/a", note=str(e))
        else:
            rec.update(status="ERROR", error=str(e))
        records.append(rec)
        log(f"{prefix} {rec['status']}: {e}")
        return None


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


class _Recorded(list):
    """A list of records that also goes to the results file, record by record."""

    def __init__(self, sink, kind):
        super().__init__()
        self.sink, self.kind = sink, kind

    def append(self, record):
        super().append(record)
        if self.sink is not None:
            self.sink(self.kind, record)


def check_correctness(backend, shapes, seed, log, deadline, sink=None):
    """Every shape x input kind (dense float32 / float64, tokens float32) x cell on fresh random data, every
    schedule on the same data. Returns records (the cell in "activation", the input kind in "inputs"), each also
    given to sink("correctness", record) as soon as it is known."""
    rng = np.random.default_rng(seed)
    records = _Recorded(sink, "correctness")
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
                    ran = _run_recorded(backend, p, dtype, schedule, rec, records, log, prefix)
                    if ran is None:
                        continue
                    got, info, binfo = ran
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


# Masks and dropout (deeprnn/stacked.h Modifiers): (name, mask pattern, zero_output_for_mask, dropouts, per gate).
# Every mask pattern has a row that takes no step; each dropout alone, then all of them with a mask.
MODIFIER_VARIANTS = (("right-padded", "right", False, (), False), ("left-padded", "left", False, (), False),
                     ("holes, zero outputs", "holes", True, (), False), ("input dropout", None, False, ("input",), False),
                     ("recurrent dropout per gate", None, False, ("recurrent",), True),
                     ("between-layer dropout", None, False, ("between",), False),
                     ("all, left-padded", "left", False, ("input", "recurrent", "between"), False),
                     ("all per gate, holes", "holes", False, ("input", "recurrent", "between"), True))
# A small shape with L > 2, and one of several row and column tiles (B = 70 > 64 rows, H = 33 > 32 units).
MODIFIER_SHAPES = ((5, 6, 4, 9, 3), (70, 3, 3, 33, 2))


def _modifiers(rng, variant, shape, gates, dtype):
    """The mask and dropout masks of a variant, as the op takes them (dropout masks 0 or 1 / 0.7)."""
    _, pattern, zero_output, dropouts, per_gate = variant
    B, T, D, H, L = shape
    mods = {}
    if pattern is not None:
        lengths = np.maximum(1, T - np.arange(B) % (T + 1))
        steps = np.arange(T)[None, :]
        mask = {"right": steps < lengths[:, None], "left": steps >= T - lengths[:, None],
                "holes": rng.random((B, T)) > 0.35}[pattern]
        if B > 1:
            mask[-1] = False
        mods.update(mask=np.ascontiguousarray(mask), zero_output_for_mask=zero_output)
    count = gates if per_gate else 1
    drop = lambda *dims: ((rng.random(dims) > 0.3) / 0.7).astype(dtype)  # noqa: E731
    if "input" in dropouts:
        mods["input_dropout"] = [drop(count, B, D if l == 0 else H) for l in range(L)]
    if "recurrent" in dropouts:
        mods["recurrent_dropout"] = [drop(count, B, H) for _ in range(L)]
    if "between" in dropouts and L > 1:
        mods["between_dropout"] = drop(L - 1, T, B, H)
    return mods


def check_modifiers(backend, seed, log, deadline, sink=None):
    """Masks and dropout against the float64 oracle of them (deeprnn_fast.testing.masked_oracle): every cell x
    variant (MODIFIER_VARIANTS) on fresh random data, dense float32 / float64 and tokens float32 in turn, on a
    small shape and a multi-tile one; every schedule on a GPU, one in turn elsewhere (the emulation is slow). The
    saved gates and grad slots are not compared (unspecified at skipped steps). Records go to
    sink("modifiers", record)."""
    from deeprnn_fast.testing import masked_oracle
    rng = np.random.default_rng(seed + 1)
    records = _Recorded(sink, "modifiers")
    every_schedule = backend.name == "cuda"
    log(f"masks and dropout: {len(CELLS)} cells x {len(MODIFIER_VARIANTS)} variants against the masked oracle, "
        f"{'every schedule' if every_schedule else 'one schedule in turn'}")
    index = 0
    for cell in CELLS:
        case = CELL_CASES[cell]
        for variant in MODIFIER_VARIANTS:
            index += 1
            if time.time() > deadline:
                log("masks and dropout: deadline reached; remaining cases skipped")
                records.append({"modifiers": variant[0], "status": "skipped (time budget)"})
                return records
            dtype, tokens = INPUT_KINDS[index % len(INPUT_KINDS)]
            multi_tile = index % 2 == 1 if every_schedule else index % 4 == 0
            shape = MODIFIER_SHAPES[1 if multi_tile else 0]
            problem = case.random_problem(rng, shape, dtype, tokens)
            mods = _modifiers(rng, variant, shape, case.gates, dtype)
            want = masked_oracle.run(cell, problem.inputs, problem.kernels, problem.recurrent_kernels,
                                     problem.biases, problem.initial_states, problem.grad_outputs,
                                     problem.grad_final_states, **mods)
            want = {k: v for k, v in want.items() if v is not None}
            p = _upload(backend, problem, dtype, cell)
            p["modifiers"] = {k: (v if isinstance(v, bool) else
                                  [backend.put(m) for m in v] if isinstance(v, list) else backend.put(v))
                              for k, v in mods.items()}
            # One in turn, shifted every fourth case so that the multi-tile cases meet each schedule too.
            turn = (index + index // 4) % len(backend.schedules)
            schedules = backend.schedules if every_schedule else (backend.schedules[turn],)
            kind = "tokens" if tokens else "dense"
            for schedule in schedules:
                rec = {"shape": shape, "dtype": np.dtype(dtype).name, "activation": cell, "inputs": kind,
                       "schedule": schedule, "modifiers": variant[0]}
                prefix = f"{str(shape):20} {rec['dtype']:7} {kind:6} {cell:4} {schedule:21} {variant[0]:28}"
                ran = _run_recorded(backend, p, dtype, schedule, rec, records, log, prefix)
                if ran is None:
                    continue
                got, info, binfo = ran
                errs = _errors(got, want)
                worst_name = max(errs, key=errs.get)
                ok = errs[worst_name] <= TOLERANCE[dtype]
                rec.update(status="ok" if ok else "FAIL", worst=errs[worst_name], worst_quantity=worst_name,
                           errors=errs, ran=f"{info.get('schedule', '?')}/{binfo.get('schedule', '?')}")
                records.append(rec)
                log(f"{prefix} {errs[worst_name]:10.2e} {worst_name:22} {rec['status']}")
    return records


def _under_timeout(cmd, seconds):
    """`cmd` run under coreutils' timeout (TERM, then KILL 5 s later): a GPU process that hangs is ended by the
    operating system, whatever state its driver calls are in. Returns (exit code or None for a timeout, text)."""
    wrapped = (["timeout", "-k", "5", f"{max(1, int(seconds))}"] + cmd) if shutil.which("timeout") else cmd
    try:
        proc = subprocess.run(wrapped, capture_output=True, text=True, timeout=seconds + 15)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return None, out
    return (None if proc.returncode in (124, 137) else proc.returncode), proc.stdout + proc.stderr


def run_selfcheck(binary, log, out_dir, timeout, dry_run=False):
    """The C++ self-check (CUDA library against the CPU library) on the GPU, no sanitizer."""
    if not binary:
        return {"status": "not run (no binary)"}
    if dry_run:
        log(f"C++ self-check: would run: timeout {timeout:.0f} {binary} --quick")
        return {"status": "not run (dry run)"}
    rc, text = _under_timeout([binary, "--quick"], timeout)
    _write(out_dir, "selfcheck.log", text)
    if rc is None:
        log(f"C++ self-check: TIMEOUT after {timeout:.0f} s")
        return {"status": "TIMEOUT"}
    last = (text.strip().splitlines() or ["(no output)"])[-1]
    log(f"C++ self-check (CUDA vs CPU library): exit {rc}: {last}")
    return {"status": "ok" if rc == 0 else "FAIL", "summary": last}


SANITIZER_SLOT_S = 60.0  # each tool's fixed slot (check.sh's budget has room for both)


def run_sanitizers(binary, log, out_dir, slot_s=SANITIZER_SLOT_S, dry_run=False, sink=None):
    """memcheck, then racecheck, each on the self-check's --sanitize cases in a slot of its own; both reports go to
    sanitizers.log (appended as each ends)."""
    results = {}
    tool_path = shutil.which("compute-sanitizer") or "/usr/local/cuda/bin/compute-sanitizer"
    if not binary:
        return {"all": "not run (no self-check binary)"}
    if not dry_run and not os.path.exists(tool_path):
        log("sanitizers: compute-sanitizer not found; skipped")
        return {"all": "skipped: compute-sanitizer not found"}
    for tool in ("memcheck", "racecheck"):
        cmd = [tool_path, "--tool", tool, "--error-exitcode", "3", binary, "--sanitize"]
        if dry_run:
            log(f"sanitizer {tool}: would run in a {slot_s:.0f} s slot: timeout {slot_s:.0f} {' '.join(cmd)}")
            results[tool] = "not run (dry run)"
            continue
        rc, text = _under_timeout(cmd, slot_s)
        if out_dir:
            with open(os.path.join(out_dir, "sanitizers.log"), "a") as f:
                f.write(f"== {tool} (exit {rc})\n{text}\n")
        summary = [l for l in text.splitlines() if "ERROR SUMMARY" in l or "RACECHECK SUMMARY" in l]
        if rc is None:
            status = f"TIMEOUT after {slot_s:.0f} s"
        elif rc == 0:
            status = "clean" + (f" ({summary[-1].strip()})" if summary else "")
        elif rc == 3:
            status = "ERRORS: " + (summary[-1].strip() if summary else "see log")
        elif "not supported" in text.lower() or "error 999" in text.lower():
            status = "tool does not work here: " + (text.strip().splitlines() or ["?"])[-1][:160]
        else:
            status = f"exit {rc}: " + (text.strip().splitlines() or ["?"])[-1][:160]
        results[tool] = status
        if sink is not None:
            sink("sanitizer", {"tool": tool, "status": status})
        log(f"sanitizer {tool}: {status}")
    return results


# ---- 3. timings ----

class CudaTimer:
    """Milliseconds per call: `fn` queued N times back to back between two CUDA events, the elapsed time divided by
    N (so that the host's work between calls overlaps the device's and is not counted as kernel time); the median
    of `samples` such batches, after a warm-up call. N adapts to the call's length (about `batch_ms` a batch)."""

    def __init__(self, torch):
        self.torch = torch

    def __call__(self, fn, samples=3, batch_ms=20.0, max_calls=200):
        torch = self.torch
        fn()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        n = int(min(max_calls, max(1, batch_ms / max(start.elapsed_time(end), 1e-3))))
        times = []
        for _ in range(samples):
            start.record()
            for _ in range(n):
                fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / n)
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
        t0 = timer(lambda: kernels.grid_sync_benchmark(0, blocks, stream))
        t1 = timer(lambda: kernels.grid_sync_benchmark(n, blocks, stream), samples=3, batch_ms=10.0)
        result[f"{per_sm}_per_sm"] = 1000.0 * (t1 - t0) / n
        log(f"grid barrier: {result[f'{per_sm}_per_sm']:.3f} us ({blocks} blocks x 256 threads; {n} barriers in "
            f"{t1:.3f} ms, empty launch {t0:.3f} ms)")
    return result


def _plan_text(info):
    return (info["schedule"] + ("+tc" if info.get("tensor_cores") else "+chip" if info["weights_on_chip"] else "")
            + f" t{info['tile']}")


def predicted_fwd_us(kernels, props, cell, B, T, H, L, allow_tf32, sync_us=None):
    """The cost model's forward wavefront time (csrc/engine/cuda/COST_MODEL.md) for the plan on `props` (None: the
    current GPU), with the measured grid barrier in place of the model's assumed one when given."""
    p = kernels.plan(B, T, H, H, L, "float32", "forward", "auto", props, cell=cell, allow_tf32=allow_tf32)
    c = p["cost"]
    us = c["sequence_us"]
    if sync_us is not None and p["schedule"] == "persistent":
        us += (T + L - 1) * (sync_us - c["sync_us"])
    return us, p["tensor_cores"]


def _time_ours(cell, backend, timer, rng, row):
    """Our pass of `cell` (the planner's schedule): forward, and forward + backward, into `row`; workspaces and
    outputs are allocated once, outside the timed calls."""
    B, T, D, H, L = row["B"], row["T"], row["D"], row["H"], row["L"]
    problem = CELL_CASES[cell].random_problem(rng, (B, T, D, H, L), np.float32, False)
    p = _upload(backend, problem, np.float32, cell)
    out, g = _buffers(backend, p, np.float32)
    ws_f, ws_b = backend.workspace("forward", p), backend.workspace("backward", p)

    def fwd():
        return backend.forward(p, out, "auto", ws_f)

    def bwd():
        return backend.backward(p, out, g, "auto", ws_b)

    row["plan_fwd"] = _plan_text(fwd())
    row["plan_bwd"] = _plan_text(bwd())
    row["ours_fwd_ms"] = timer(fwd)
    row["ours_fwdbwd_ms"] = timer(lambda: (fwd(), bwd()))
    if not backend.torch.isfinite(out["outputs"]).all():
        row["error"] = "non-finite outputs"
    if B > 32:
        return
    # The tensor-core tile (TF32 allowed), where the planner takes it: its time, and its outputs against the exact
    # pass's on the same inputs (TF32: about 1e-3 relative).
    exact_y = out["outputs"].clone()

    def fwd_tc():
        return backend.forward(p, out, "auto", ws_f, allow_tf32=True)

    def bwd_tc():
        return backend.backward(p, out, g, "auto", ws_b, allow_tf32=True)

    info = fwd_tc()
    if not info.get("tensor_cores"):
        return
    row["plan_fwd_tf32"] = _plan_text(info)
    backend.synchronize()
    torch = backend.torch
    row["tf32_vs_exact_rel"] = float(torch.linalg.vector_norm(out["outputs"] - exact_y)
                                     / torch.linalg.vector_norm(exact_y))
    row["plan_bwd_tf32"] = _plan_text(bwd_tc())
    row["ours_fwd_tf32_ms"] = timer(fwd_tc)
    row["ours_fwdbwd_tf32_ms"] = timer(lambda: (fwd_tc(), bwd_tc()))


def _time_peer(cell, torch, timer, row):
    """PyTorch's cuDNN stack for `cell` with num_layers=L, with cuDNN's TF32 not allowed and allowed: forward, and
    forward + backward."""
    B, T, D, H, L = row["B"], row["T"], row["D"], row["H"], row["L"]
    cls, kw = {"tanh": (torch.nn.RNN, {"nonlinearity": "tanh"}), "gru": (torch.nn.GRU, {}),
               "lstm": (torch.nn.LSTM, {})}[cell]
    module = cls(D, H, num_layers=L, batch_first=True, device="cuda", **kw)
    x = torch.randn(B, T, D, device="cuda", requires_grad=True)
    states = [torch.randn(L, B, H, device="cuda") for _ in range(2 if cell == "lstm" else 1)]
    dy = torch.randn(B, T, H, device="cuda")
    dstates = [torch.randn(L, B, H, device="cuda") for _ in states]
    initial = tuple(states) if cell == "lstm" else states[0]

    def peer_fwd():
        with torch.no_grad():
            return module(x, initial)

    def peer_fwdbwd():
        y, final = module(x, initial)
        finals = list(final) if cell == "lstm" else [final]
        torch.autograd.backward([y] + finals, [dy] + dstates)

    allowed = torch.backends.cudnn.allow_tf32
    try:
        for tf32 in (False, True):
            torch.backends.cudnn.allow_tf32 = tf32
            suffix = "_tf32" if tf32 else ""
            row[f"cudnn_fwd{suffix}_ms"] = timer(peer_fwd)
            row[f"cudnn_fwdbwd{suffix}_ms"] = timer(peer_fwdbwd)
    finally:
        torch.backends.cudnn.allow_tf32 = allowed
    del module


def time_configs(kernels, torch, log, deadline, sync_us, sink=None):
    """Every timing configuration x timed cell: ours (the planner's schedule) against cuDNN (TF32 off and on). Each
    row goes to sink("timing", row) as soon as it is measured; rows left when the deadline comes say so."""
    timer = CudaTimer(torch)
    backend = TorchCudaBackend(kernels)
    rows = []
    rng = np.random.default_rng(int(time.time()))
    for B, H, L in TIMING_CONFIGS:
        for cell in TIMED_CELLS:
            T, D = TIMING_T, H
            row = {"cell": cell, "B": B, "H": H, "L": L, "T": T, "D": D}
            rows.append(row)
            if time.time() > deadline:
                row["skipped"] = "time budget"
            else:
                try:
                    _time_ours(cell, backend, timer, rng, row)
                except Exception as e:  # one row's failure (e.g. out of memory) must not lose the others
                    row["error"] = f"{type(e).__name__}: {e}"
                try:
                    _time_peer(cell, torch, timer, row)
                except Exception as e:
                    row["peer_error"] = f"{type(e).__name__}: {e}"
                if sync_us is not None:
                    row["sync_floor_ms"] = (T + L - 1) * sync_us / 1000.0
                try:  # the cost model beside the measurement, with the measured barrier
                    for tf32 in (False, True):
                        us, tc = predicted_fwd_us(kernels, None, cell, B, T, H, L, tf32, sync_us)
                        if tc or not tf32:
                            row["predicted_fwd_tf32_us" if tf32 else "predicted_fwd_us"] = us
                except Exception as e:
                    row["predict_error"] = f"{type(e).__name__}: {e}"
                torch.cuda.empty_cache()
            if sink is not None:
                sink("timing", row)
            log(format_timing_row(row))
    return rows


def _fmt(v, width=7, digits=2):
    return f"{v:{width}.{digits}f}" if isinstance(v, (int, float)) else f"{'-':>{width}}"


def _ratio(a, b):
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b > 0 else None


TIMING_HEADER = (f"{'cell':4} {'B':>4} {'H':>5} {'L':>2} | {'ours fwd':>8} {'plan':20} {'cudnn':>7} {'x':>5} "
                 f"{'tf32':>7} {'x':>5} | {'ours f+b':>8} {'cudnn':>7} {'x':>5} {'tf32':>7} {'x':>5} | "
                 f"{'sync fl':>7} {'x floor':>7} | {'tc fwd':>7} {'x tf32':>6} {'tc f+b':>7} {'x floor':>7} | "
                 f"{'pred':>7} {'pred tc':>7}")


def format_timing_row(r):
    head = f"{r['cell']:4} {r['B']:>4} {r['H']:>5} {r['L']:>2} |"
    if "skipped" in r:
        return f"{head} skipped: {r['skipped']}"
    ours, ours_fb = r.get("ours_fwd_ms"), r.get("ours_fwdbwd_ms")
    line = (f"{head} {_fmt(ours, 8)} {str(r.get('plan_fwd', '-'))[:20]:20} "
            f"{_fmt(r.get('cudnn_fwd_ms'))} {_fmt(_ratio(ours, r.get('cudnn_fwd_ms')), 5)} "
            f"{_fmt(r.get('cudnn_fwd_tf32_ms'))} {_fmt(_ratio(ours, r.get('cudnn_fwd_tf32_ms')), 5)} | "
            f"{_fmt(ours_fb, 8)} {_fmt(r.get('cudnn_fwdbwd_ms'))} {_fmt(_ratio(ours_fb, r.get('cudnn_fwdbwd_ms')), 5)} "
            f"{_fmt(r.get('cudnn_fwdbwd_tf32_ms'))} {_fmt(_ratio(ours_fb, r.get('cudnn_fwdbwd_tf32_ms')), 5)} | "
            f"{_fmt(r.get('sync_floor_ms'), 7, 3)} {_fmt(_ratio(ours, r.get('sync_floor_ms')))} | ")
    tc, tc_fb = r.get("ours_fwd_tf32_ms"), r.get("ours_fwdbwd_tf32_ms")
    pred, pred_tc = r.get("predicted_fwd_us"), r.get("predicted_fwd_tf32_us")
    line += (f"{_fmt(tc)} {_fmt(_ratio(tc, r.get('cudnn_fwd_tf32_ms')), 6)} {_fmt(tc_fb)} "
             f"{_fmt(_ratio(tc, r.get('sync_floor_ms')))} | {_fmt(pred / 1000 if pred else None, 7, 3)} "
             f"{_fmt(pred_tc / 1000 if pred_tc else None, 7, 3)}")
    for key in ("error", "peer_error", "predict_error"):
        if key in r:
            line += f"  [{key}: {r[key]}]"
    return line


def timing_table(rows, header_lines):
    lines = list(header_lines)
    lines.append(f"times in ms per call (N calls back to back between CUDA events, median of 3 batches); T = "
                 f"{TIMING_T}, D = H, float32, the planner's schedule; 'cudnn' = PyTorch's nn.RNN(tanh) / nn.GRU / "
                 "nn.LSTM(num_layers=L) with cuDNN's TF32 not allowed, 'tf32' allowed; 'x' = ours / that (below 1: "
                 "ours faster); 'sync fl' = (T + L - 1) x one grid barrier; 'x floor' = ours fwd / that (goal: <= 2); "
                 "'tc' = ours with TF32 allowed (the tensor-core tile, B <= 32 where planned; 'x tf32' against cuDNN "
                 "with TF32); 'pred' / 'pred tc' = the cost model's forward (COST_MODEL.md) with the measured barrier")
    for cell in TIMED_CELLS:
        lines.append("")
        lines.append(f"fused {cell.upper() if cell != 'tanh' else 'tanh RNN'} vs cuDNN {PEERS[cell]}(num_layers=L)")
        lines.append(TIMING_HEADER)
        lines.extend(format_timing_row(r) for r in rows if r.get("cell") == cell)
    return lines


def plan_table(kernels, props, log, sink=None):
    """What the planner picks for the timing configurations on `props` (no GPU needed)."""
    log(f"planner's choices for T = {TIMING_T}, float32, on {props.get('name', 'the given device')} "
        f"({props['sm_count']} SMs):")
    for cell in TIMED_CELLS:
        for B, H, L in TIMING_CONFIGS:
            parts = []
            row = {"cell": cell, "B": B, "H": H, "L": L, "T": TIMING_T, "dry_run": True}
            for direction in ("forward", "backward"):
                p = kernels.plan(B, TIMING_T, H, H, L, "float32", direction, "auto", props, cell=cell)
                row["plan_fwd" if direction == "forward" else "plan_bwd"] = _plan_text(p)
                parts.append(f"{direction[0]}wd {p['schedule']}{'+chip' if p['weights_on_chip'] else ''} "
                             f"tile {p['tile']} ({p['bm']}x{p['bn']}) grid {p['grid']} smem {p['smem_bytes']}")
            for tf32 in (False, True):
                us, tc = predicted_fwd_us(kernels, props, cell, B, TIMING_T, H, L, tf32)
                if tc or not tf32:
                    row["predicted_fwd_tf32_us" if tf32 else "predicted_fwd_us"] = us
                    parts.append(f"predicted fwd {'tf32 ' if tf32 else ''}{us:.0f} us")
            if sink is not None:
                sink("timing", row)
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


PHASES = ("timing", "correctness", "sanitizers", "report")


def _report(out_dir, sink, log, header, dry_run):
    """gpu_check.json and gpu_check_table.txt from results.jsonl (whatever the phases got to write; without an
    out_dir, this process's records)."""
    got = read_results(out_dir) if out_dir else sink.by_kind
    result = {"versions": (got.get("versions") or [{}])[-1], "seed": (got.get("seed") or [{}])[-1].get("seed"),
              "correctness": got.get("correctness", []), "modifiers": got.get("modifiers", []),
              "timings": got.get("timing", []),
              "grid_sync_us": (got.get("grid_sync") or [None])[-1],
              "selfcheck": (got.get("selfcheck") or [None])[-1],
              "sanitizers": {r["tool"]: r["status"] for r in got.get("sanitizer", [])}}
    records = result["correctness"] + result["modifiers"]
    failed = [r for r in records if r.get("status") in ("FAIL", "ERROR")]
    checked = [r for r in records if r.get("status") == "ok"]
    if result["selfcheck"] and result["selfcheck"].get("status") in ("FAIL", "TIMEOUT"):
        failed.append(result["selfcheck"])
    if any(str(v).startswith("ERRORS") for v in result["sanitizers"].values()):
        failed.append(result["sanitizers"])
    sync = result["grid_sync_us"]
    summary = (f"correctness: {len(checked)} ok, {len(failed)} failed; sanitizers: {result['sanitizers'] or '-'}; "
               f"grid barrier: " + (f"{sync['1_per_sm']:.3f} us (1 block/SM), {sync['2_per_sm']:.3f} us (2 blocks/SM)"
                                    if sync else "-"))
    if dry_run:
        # The report on made-up numbers, so that a formatting bug shows before a GPU run.
        rows = [{"cell": c, "B": 1, "H": 256, "L": 2, "ours_fwd_ms": 1.0, "plan_fwd": "persistent+chip t0",
                 "cudnn_fwd_ms": 2.0, "cudnn_fwd_tf32_ms": 1.8, "ours_fwdbwd_ms": 3.0, "cudnn_fwdbwd_ms": 6.0,
                 "cudnn_fwdbwd_tf32_ms": 5.0, "sync_floor_ms": 0.5} for c in TIMED_CELLS]
        rows.append({"cell": "lstm", "B": 256, "H": 1024, "L": 4, "skipped": "time budget"})
        table = timing_table(rows, header + ["(dry run: table format with made-up numbers)", summary])
    else:
        table = timing_table(result["timings"], header + [summary])
    for line in table:
        log(line)
    _write(out_dir, "gpu_check_table.txt", "\n".join(table))
    if out_dir:
        with open(os.path.join(out_dir, "gpu_check.json"), "w") as f:
            json.dump(result, f, indent=1, default=str)
    return failed, checked


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="every phase without a GPU (correctness on the CPU)")
    ap.add_argument("--phase", choices=("all",) + PHASES, default="all",
                    help="one phase (check.sh runs each in its own process, under timeout), or all of them")
    ap.add_argument("--backend", choices=("auto", "cpu", "cuda", "emulated"), default="auto")
    ap.add_argument("--quick", action="store_true", help="small shapes only")
    ap.add_argument("--shapes", help="correctness shapes instead of the built-in grid: 'B,T,D,H,L;B,T,D,H,L;...'")
    ap.add_argument("--kernels", help="path of the built _kernels module (default: import deeprnn_fast._kernels)")
    ap.add_argument("--selfcheck", help="path of the C++ self-check binary (for its run and the sanitizers)")
    ap.add_argument("--out", default=os.environ.get("OUT") or None, help="directory for the results")
    ap.add_argument("--deadline", type=float, default=None,
                    help="epoch seconds by which this process must be done (default: now + --budget-s)")
    ap.add_argument("--budget-s", type=float, default=420.0)
    ap.add_argument("--sanitizer-slot-s", type=float, default=SANITIZER_SLOT_S, help="each sanitizer's fixed slot")
    ap.add_argument("--seed", type=int, default=None, help="default: fresh from the clock")
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--skip-sanitizers", action="store_true")
    args = ap.parse_args(argv)

    started = time.time()
    deadline = args.deadline if args.deadline is not None else started + args.budget_s
    phases = PHASES if args.phase == "all" else (args.phase,)
    if args.skip_timing:
        phases = tuple(p for p in phases if p != "timing")
    if args.skip_sanitizers:
        phases = tuple(p for p in phases if p != "sanitizers")
    if args.out and args.phase == "all":  # a fresh run of every phase: no stale records
        for name in OUT_FILES:
            if os.path.exists(os.path.join(args.out, name)):
                os.remove(os.path.join(args.out, name))
    sink = Results(args.out)
    log = Log()
    kernels = load_kernels(args.kernels)
    backend_name = args.backend
    if backend_name == "auto":
        backend_name = "cpu" if args.dry_run else "cuda"
    if args.dry_run and backend_name == "cuda":
        raise SystemExit("gpu_check: --dry-run runs on the CPU (or emulated) backend")
    gpu = backend_name == "cuda"
    needs_gpu = gpu and any(p != "report" for p in phases)
    torch = None
    if needs_gpu:
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

    header = [f"deeprnn_fast GPU check ({'dry run, ' if args.dry_run else ''}backend {backend.name}) "
              f"{time.strftime('%Y-%m-%d %H:%M:%S')}"]
    if needs_gpu:
        versions = _versions(kernels, torch)
        sink("versions", versions)
        header.append("  ".join(f"{k}: {v}" for k, v in versions.items()))
    for line in header:
        log(line)
    log(f"phases: {', '.join(phases)}; {max(0.0, deadline - started):.0f} s")

    if "timing" in phases:
        if gpu:
            sync = grid_sync_cost_us(kernels, torch, log)
            sink("grid_sync", sync)
            log(TIMING_HEADER)
            time_configs(kernels, torch, log, deadline - 10, sync["1_per_sm"], sink)
        else:
            plan_table(kernels, dict(H200_PROPS, name="an H200 (properties given by hand)"), log, sink)
            log("x floor: ours fwd / ((T + L - 1) grid barriers), measured on a GPU only")

    if "correctness" in phases:
        seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
        sink("seed", {"seed": seed})
        shapes = SHAPES_QUICK if (args.quick or not gpu) else SHAPES_FULL
        if args.shapes:
            try:
                shapes = [tuple(int(v) for v in item.split(",")) for item in args.shapes.split(";") if item.strip()]
            except ValueError:
                raise SystemExit(f"gpu_check: --shapes must look like '2,5,3,7,3;1,4,6,16,2'; got {args.shapes!r}")
            if not shapes or any(len(shape) != 5 for shape in shapes):
                raise SystemExit(f"gpu_check: every --shapes entry needs 5 sizes B,T,D,H,L; got {args.shapes!r}")
        # With the sanitizers in the same process, they keep their slots.
        reserve = 2 * args.sanitizer_slot_s + 30 if ("sanitizers" in phases and gpu) else 0
        # The masks and dropout cases (small shapes, seconds on a GPU) keep 30 s of their own after these.
        records = check_correctness(backend, shapes, seed, log, deadline - reserve - 30, sink)
        log(f"correctness: {sum(r.get('status') == 'ok' for r in records)} ok, "
            f"{sum(r.get('status') in ('FAIL', 'ERROR') for r in records)} failed, "
            f"{sum(1 for r in records if r.get('status') == 'n/a')} n/a (weights do not fit on chip), "
            f"{sum(1 for r in records if 'skipped' in str(r.get('status')))} skipped")
        records = check_modifiers(backend, seed, log, deadline - reserve, sink)
        log(f"masks and dropout: {sum(r.get('status') == 'ok' for r in records)} ok, "
            f"{sum(r.get('status') in ('FAIL', 'ERROR') for r in records)} failed, "
            f"{sum(1 for r in records if 'skipped' in str(r.get('status')))} skipped")

    if "sanitizers" in phases:
        selfcheck = run_selfcheck(args.selfcheck, log, args.out, timeout=max(10.0, min(60.0, deadline - time.time())),
                                  dry_run=not gpu)
        sink("selfcheck", selfcheck)
        run_sanitizers(args.selfcheck, log, args.out, args.sanitizer_slot_s, dry_run=not gpu, sink=sink)

    failed = []
    if "report" in phases:
        failed, _ = _report(args.out, sink, log, header, args.dry_run)
    elapsed = time.time() - started
    log(f"gpu_check: {'FAILED' if failed else 'PASSED'} ({', '.join(phases)}) in {elapsed:.0f} s")
    if args.out:  # appended: each phase's process adds its part
        with open(os.path.join(args.out, "gpu_check.log"), "a") as f:
            f.write("\n".join(log.lines) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
