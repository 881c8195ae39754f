"""Fuzzing of every entry point of deeprnn_fast._kernels with hypothesis, in this process against the normal build
and, in a subprocess, against a build with AddressSanitizer (tests/kernels_asan_build.py), where a use-after-free
or an overflow kills the run.

Each example is a valid call (fresh random data of a random shape, dtype and cell) with up to a few changes drawn
at random: per-layer lists given as tuples, list subclasses, generators, stacked arrays, custom sequences or of the
wrong length; arrays of other dtypes or byte orders, strided, reversed, Fortran-ordered, misaligned, read-only,
masked or of the wrong shape; outputs overlapping other arguments (or lying just next to them), inputs shared;
malformed __cuda_array_interface__ dicts; bad scalars; missing, repeated and unknown arguments. The test knows
which changes keep the call valid, and asserts:
- a valid CPU call succeeds and matches the float64 oracle, and leaves its inputs as they were;
- a valid CUDA call gets as far as the device (RuntimeError: these machines have no GPU);
- any other call raises TypeError or ValueError, on one line that names the function or an argument, and writes
  nothing (every array, outputs included, is bitwise as before).
plan() and workspace_bytes() are fuzzed on shapes, dtypes, names and device dicts the same way."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deeprnn_fast.testing import oracle
from deeprnn_fast.testing.gpu_check import H200_PROPS
import kernels_asan_build
from kernels_testing import KERNELS_SO_ENV, REMOVE, CudaLike, cuda_module_checks_arguments, interface, load_kernels

kernels = load_kernels()
pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix, drawn on purpose

EXAMPLES = int(os.environ.get("DEEPRNN_FAST_FUZZ_EXAMPLES", "500"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
                suppress_health_check=list(HealthCheck))
ASAN_EXAMPLES = 100
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---- the entry points: each argument's role and shape ----

IN, OUT, LAYERS_IN, LAYERS_OUT, SCALAR = "in", "out", "layers_in", "layers_out", "scalar"
SCHEDULES = ("auto", "stepwise", "persistent", "persistent_resident", "persistent_streaming")


def _layer_shapes(kind, D, H, L, gates):
    G = gates * H
    return {"kernels": [(D if l == 0 else H, G) for l in range(L)], "recurrent_kernels": [(H, G)] * L,
            "biases": [(H,) if gates == 1 else (2, G)] * L}[kind]


def _arguments(entry, B, T, D, H, L):
    """(name, role, shape) of every argument of `entry`, in its signature's order; shape is a list for layers."""
    gru = entry.startswith("gru_")
    g = 3 if gru else 1
    cuda = entry.endswith("_cuda")
    backward = "backward" in entry
    args = [("inputs", IN, (B, T, D)), ("kernels", LAYERS_IN, _layer_shapes("kernels", D, H, L, g)),
            ("recurrent_kernels", LAYERS_IN, _layer_shapes("recurrent_kernels", D, H, L, g))]
    if not backward:
        args += [("biases", LAYERS_IN, _layer_shapes("biases", D, H, L, g)), ("initial_states", IN, (L, B, H)),
                 ("outputs", OUT, (B, T, H)), ("final_states", OUT, (L, B, H)), ("activations", OUT, (L, T, B, H))]
        if gru:
            args.append(("gates", OUT, (L, T, B, 4 * H)))
    else:
        args += [("initial_states", IN, (L, B, H)), ("activations", IN, (L, T, B, H))]
        if gru:
            args.append(("gates", IN, (L, T, B, 4 * H)))
        args += [("grad_outputs", IN, (B, T, H)), ("grad_final_states", IN, (L, B, H)),
                 ("grad_inputs", OUT, (B, T, D)),
                 ("grad_kernels", LAYERS_OUT, _layer_shapes("kernels", D, H, L, g)),
                 ("grad_recurrent_kernels", LAYERS_OUT, _layer_shapes("recurrent_kernels", D, H, L, g)),
                 ("grad_biases", LAYERS_OUT, _layer_shapes("biases", D, H, L, g)),
                 ("grad_initial_states", OUT, (L, B, H))]
        if not gru:
            args.append(("grad_preactivations", OUT, (L, T, B, H)))
        elif cuda:
            args.append(("grad_gates", OUT, (L, T, B, 4 * H)))
    if cuda:
        args.append(("workspace", OUT, None))
    if not gru:
        args.append(("activation", SCALAR, None))
    if cuda:
        args += [("stream", SCALAR, None), ("schedule", SCALAR, None)]
    return args


CPU_ENTRIES = ("forward_cpu", "backward_cpu", "gru_forward_cpu", "gru_backward_cpu")
CUDA_ENTRIES = ("forward_cuda", "backward_cuda", "gru_forward_cuda", "gru_backward_cuda")
DEFAULTS = {"activation": "tanh", "stream": 0, "schedule": "auto"}


# ---- a valid call ----

class Call:
    """The arguments of one call (values by name, in signature order) and what the test knows about them."""

    def __init__(self, entry, shape, dtype, activation, rng):
        self.entry, self.shape, self.dtype, self.rng = entry, shape, np.dtype(dtype), rng
        self.cuda = entry.endswith("_cuda")
        B, T, D, H, L = shape
        self.spec = _arguments(entry, B, T, D, H, L)
        self.roles = {name: role for name, role, _ in self.spec}
        self.invalid = []   # why the call must be refused (empty: it must succeed)
        self.touched = set()  # slots already changed: (name, index or None)
        self.raw = set()  # CUDA calls: slots given a NumPy array on purpose (not wrapped as a CUDA array)
        self.values = self._valid_values(activation)

    def _valid_values(self, activation):
        B, T, D, H, L = self.shape
        gru = self.entry.startswith("gru_")
        # The backward passes' activations (and gates) are the forward's, as a caller would pass them.
        if gru:
            p = oracle.random_gru_problem(self.rng, B, T, D, H, L, dtype=self.dtype)
            _, _, act, gates = oracle.gru_forward(p.inputs, p.kernels, p.recurrent_kernels, p.biases,
                                                  p.initial_states)
        else:
            p = oracle.random_problem(self.rng, B, T, D, H, L, dtype=self.dtype, activation=activation)
            _, _, act = oracle.forward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states,
                                       activation)
            gates = None
        given = {"inputs": p.inputs, "kernels": p.kernels, "recurrent_kernels": p.recurrent_kernels,
                 "biases": p.biases, "initial_states": p.initial_states, "grad_outputs": p.grad_outputs,
                 "grad_final_states": p.grad_final_states, "activations": act.astype(self.dtype)}
        if gates is not None:
            given["gates"] = gates.astype(self.dtype)
        values = {}
        for name, role, shape in self.spec:
            if role == SCALAR:
                values[name] = activation if name == "activation" else DEFAULTS[name]
            elif name == "workspace":
                direction = "backward" if "backward" in self.entry else "forward"
                need = kernels.workspace_bytes(direction, B, T, D, H, L, self.dtype.name, cell="gru" if gru else "rnn")
                values[name] = _aligned_bytes(need + int(self.rng.integers(0, 300)), 256)
            elif role in (IN, LAYERS_IN):
                values[name] = given[name]
            elif role == OUT:
                values[name] = np.full(shape, np.nan, self.dtype)
            else:
                values[name] = [np.full(s, np.nan, self.dtype) for s in shape]
        return values

    @property
    def valid(self):
        return not self.invalid

    def slots(self, roles):
        """(name, index) of every slot with one of `roles` not changed yet (index None for a top-level one)."""
        out = []
        for name, role, _ in self.spec:
            if role not in roles:
                continue
            if role in (LAYERS_IN, LAYERS_OUT):
                if isinstance(self.values[name], list):
                    out += [(name, i) for i in range(len(self.values[name]))]
            else:
                out.append((name, None))
        return [s for s in out if s not in self.touched]

    def get(self, slot):
        name, i = slot
        return self.values[name] if i is None else self.values[name][i]

    def set(self, slot, value):
        name, i = slot
        if i is None:
            self.values[name] = value
        else:
            self.values[name][i] = value
        self.touched.add(slot)

    def is_output(self, slot):
        return self.roles[slot[0]] in (OUT, LAYERS_OUT)

    def label(self, slot):
        name, i = slot
        return name if i is None else f"{name}[{i}]"


def _c_strides(shape, itemsize):
    return tuple(int(np.prod(shape[i + 1:], dtype=np.int64)) * itemsize for i in range(len(shape)))


def _aligned_bytes(n, alignment):
    raw = np.empty(n + alignment, np.uint8)
    start = (-raw.ctypes.data) % alignment
    return raw[start:start + n]


def _carve(first, second, overlap, rng):
    """Two fresh arrays shaped and typed as `first` and `second`, in one buffer: overlapping (the second starts
    inside the first) or adjacent (the second starts at the first's end, 8-byte aligned)."""
    n1, n2 = first.nbytes, second.nbytes
    start = 8 * int(rng.integers(0, max(n1 - 1, 0) // 8 + 1)) if overlap else -(-n1 // 8) * 8
    buffer = _aligned_bytes(max(n1, start + n2) + 8, 64)
    a = buffer[:n1].view(first.dtype).reshape(first.shape)
    b = buffer[start:start + n2].view(second.dtype).reshape(second.shape)
    return a, b


# ---- the changes ----

OTHER_DTYPES = [np.float16, np.int32, np.int64, np.complex64, np.bool_, np.uint8]


def _change_array(data, call):
    """One change to one array (or two, for sharing memory)."""
    arrays = [s for s in call.slots((IN, OUT, LAYERS_IN, LAYERS_OUT))
              if isinstance(call.get(s), np.ndarray) and s[0] != "workspace"]
    if not arrays:
        return
    slot = data.draw(st.sampled_from(arrays), label="slot")
    a = call.get(slot)
    kinds = ["dtype", "byteorder", "layout", "readonly", "shape", "not an array", "overlap", "adjacent", "shared"]
    if a.size:
        kinds.append("misaligned")
    if not call.cuda:
        kinds.append("subclass")
    else:
        kinds.append("workspace")
    kind = data.draw(st.sampled_from(kinds), label="array change")
    label = call.label(slot)
    if kind == "dtype":
        other = [d for d in OTHER_DTYPES + [np.float32, np.float64] if np.dtype(d) != a.dtype]
        with np.errstate(invalid="ignore"):  # NaN-poisoned outputs cast to integers
            call.set(slot, a.astype(data.draw(st.sampled_from(other), label="dtype")))
        call.invalid.append(f"{label}: dtype")
    elif kind == "byteorder":
        call.set(slot, a.astype(a.dtype.newbyteorder(">")))
        call.invalid.append(f"{label}: big-endian")
    elif kind == "layout":
        how = data.draw(st.sampled_from(["fortran", "strided", "reversed", "size-1 strides"]), label="layout")
        if how == "fortran":
            b = np.asfortranarray(a)
        elif how == "strided":
            axis = data.draw(st.integers(0, a.ndim - 1), label="axis")
            wide = list(a.shape)
            wide[axis] *= 2
            b = np.empty(wide, a.dtype)[(slice(None),) * axis + (slice(None, None, 2),)]
            b[...] = a
        elif how == "reversed":
            axis = data.draw(st.integers(0, a.ndim - 1), label="axis")
            b = np.flip(a.copy(), axis)  # values flipped too: the oracle reads what the call gets
        else:
            strides = [s if n != 1 else 3 * a.itemsize * 1001 for s, n in zip(a.strides, a.shape)]
            b = np.lib.stride_tricks.as_strided(a.copy(), a.shape, strides, writeable=True)
        call.set(slot, b)
        if not b.flags.c_contiguous:
            call.invalid.append(f"{label}: not C-contiguous ({how})")
    elif kind == "readonly":
        b = a.copy()
        b.setflags(write=False)
        call.set(slot, b)
        if call.is_output(slot):
            call.invalid.append(f"{label}: read-only output")
    elif kind == "shape":
        if data.draw(st.booleans(), label="change rank") or a.ndim == 0:
            shape = a.shape + (1,) if data.draw(st.booleans()) or a.ndim <= 1 else a.shape[:-1]
        else:
            axis = data.draw(st.integers(0, a.ndim - 1), label="axis")
            shape = list(a.shape)
            shape[axis] = shape[axis] + 1 if shape[axis] == 0 or data.draw(st.booleans()) else shape[axis] - 1
            shape = tuple(shape)
        call.set(slot, np.asarray(call.rng.uniform(-1, 1, shape), a.dtype))
        call.invalid.append(f"{label}: shape {shape}")
    elif kind == "not an array":
        options = [None, 3.5, "array", a.tolist(), CudaLike(a) if not call.cuda else a]
        replacement = data.draw(st.sampled_from(options), label="replacement")
        call.set(slot, replacement)
        if isinstance(replacement, np.ndarray):
            call.raw.add(slot)
        call.invalid.append(f"{label}: not an array ({type(replacement).__name__})")
    elif kind == "misaligned":
        shift = data.draw(st.integers(1, a.itemsize - 1), label="shift") if a.itemsize > 1 else 1
        raw = _aligned_bytes(a.nbytes + 16, 64)[shift:shift + a.nbytes]
        b = raw.view(a.dtype).reshape(a.shape)
        b[...] = a
        call.set(slot, b)
        call.invalid.append(f"{label}: misaligned by {shift}")
    elif kind == "subclass":
        b = np.ma.masked_array(a.copy()) if a.ndim != 2 or data.draw(st.booleans()) else np.asmatrix(a.copy())
        call.set(slot, b)
        call.invalid.append(f"{label}: {type(b).__name__}")
    elif kind == "workspace":
        if ("workspace", None) in call.touched:
            return
        B, T, D, H, L = call.shape
        direction = "backward" if "backward" in call.entry else "forward"
        need = kernels.workspace_bytes(direction, B, T, D, H, L, call.dtype.name,
                                       cell="gru" if call.entry.startswith("gru_") else "rnn")
        change = data.draw(st.sampled_from(["exact", "one byte short", "read-only", "over an argument"]),
                           label="workspace")
        if change == "read-only":
            ws = _aligned_bytes(need, 256)
            ws.setflags(write=False)
            call.invalid.append("workspace: read-only")
        elif change == "over an argument":  # both from the same 256-byte aligned address: only the overlap is wrong
            if not a.nbytes:
                return
            buffer = _aligned_bytes(max(need, a.nbytes), 256)
            ws = buffer[:need]
            moved = buffer[:a.nbytes].view(a.dtype).reshape(a.shape)
            moved[...] = a
            call.set(slot, moved)
            call.invalid.append(f"workspace over {label}")
        else:
            ws = _aligned_bytes(need - (change != "exact"), 256)
            if change != "exact":
                call.invalid.append("workspace: too small")
        call.set(("workspace", None), ws)
    else:  # memory shared with another argument
        others = [s for s in call.slots((IN, OUT, LAYERS_IN, LAYERS_OUT))
                  if s != slot and isinstance(call.get(s), np.ndarray)]
        if kind == "shared":  # the very same array object in two slots
            others = [s for s in others if call.get(s).shape == a.shape and call.get(s).dtype == a.dtype]
        # Carving would move the workspace off its 256-byte alignment (too small then): "workspace" covers it.
        others = [s for s in others if s[0] != "workspace"]
        if not others:
            return
        other = data.draw(st.sampled_from(others), label="other slot")
        b = call.get(other)
        if kind == "shared":
            call.set(other, a)
            call.touched.add(slot)  # a later change to either would undo the sharing
        else:
            first, second = _carve(a, b, kind == "overlap", call.rng)
            first[...] = a
            second[...] = b
            call.set(slot, first)
            call.set(other, second)
        if kind != "adjacent" and (call.is_output(slot) or call.is_output(other)) and a.nbytes and b.nbytes:
            call.invalid.append(f"{label} and {call.label(other)}: {kind} memory with an output")


def _interface_changes(data, d, nbytes, itemsize, output):
    """One change to a __cuda_array_interface__ dict: (the new dict, or what reading it raises; invalid?)."""
    kind = data.draw(st.sampled_from(["typestr", "version", "shape", "strides", "data", "mask", "stream", "extra",
                                      "not a dict", "raises"]), label="interface change")
    typestr = d["typestr"]
    if kind == "typestr":
        t = data.draw(st.sampled_from([">" + typestr[1:], "|" + typestr[1:], "=" + typestr[1:], typestr[1:], 4,
                                       typestr + "x"]), label="typestr")
        return dict(d, typestr=t), t != "|" + typestr[1:]
    if kind == "version":
        v = data.draw(st.sampled_from([0, 1, 2, 4, -1, "3", None, 3.0, True, REMOVE]), label="version")
        return _changed(d, version=v), v not in (0, 1, 2) or isinstance(v, bool)
    if kind == "shape":
        s = data.draw(st.sampled_from(["list", "float", "missing"]), label="shape")
        if s == "list":
            return dict(d, shape=list(d["shape"])), False
        if s == "float" and d["shape"]:
            return dict(d, shape=(float(d["shape"][0]),) + tuple(d["shape"][1:])), True
        return _changed(d, shape=REMOVE), True
    if kind == "strides":
        shape = d["shape"]
        c_strides = _c_strides(shape, itemsize)
        s = data.draw(st.sampled_from(["C", "too short", "swapped"]), label="strides")
        if s == "C":
            return dict(d, strides=c_strides), False
        if s == "too short":
            return dict(d, strides=c_strides[:-1]), True
        swapped = c_strides[::-1]
        contiguous = nbytes == 0 or all(a == b for a, b, n in zip(swapped, c_strides, shape) if n > 1)
        return dict(d, strides=swapped), not contiguous
    if kind == "data":
        pointer, readonly = d["data"]
        s = data.draw(st.sampled_from(["list", "short", "long", "negative", "float", "int flag", "null",
                                       "read-only"]), label="data")
        bad = {"list": [pointer, readonly], "short": (pointer,), "long": (pointer, readonly, 0),
               "negative": (-pointer, readonly), "float": (float(pointer), readonly), "int flag": (pointer, 0),
               "null": (0, readonly), "read-only": (pointer, True)}[s]
        invalid = s not in ("null", "read-only") or (s == "null" and nbytes > 0) or (s == "read-only" and output)
        return dict(d, data=bad), invalid
    if kind == "mask":
        m = data.draw(st.sampled_from([None, np.zeros(1, bool)]), label="mask")
        return dict(d, mask=m), m is not None
    if kind == "stream":
        s = data.draw(st.sampled_from([None, 1, 2, -1, "default", True]), label="stream")
        return dict(d, stream=s), s in (-1, "default") or isinstance(s, bool)
    if kind == "extra":
        return dict(d, descr=[("", typestr)], future_field=1), False
    if kind == "not a dict":
        return list(d.items()), True
    return data.draw(st.sampled_from([ValueError("device lost"), AttributeError("no such attribute")]),
                     label="raises"), True


def _changed(d, **changes):
    d = dict(d)
    for key, value in changes.items():
        if value is REMOVE:
            d.pop(key, None)
        else:
            d[key] = value
    return d


def _as_cuda(call):
    """Every NumPy array of the call as a CudaLike over the same memory (strides spelled out unless C-standard)."""
    def wrap(a):
        if not isinstance(a, np.ndarray):
            return a
        standard = _c_strides(a.shape, a.itemsize)
        return CudaLike(a, interface(a, strides=None if a.strides == standard else a.strides))

    for name, role, _ in call.spec:
        v = call.values[name]
        if role in (LAYERS_IN, LAYERS_OUT) and isinstance(v, list):
            call.values[name] = [x if (name, i) in call.raw else wrap(x) for i, x in enumerate(v)]
        elif role != SCALAR and (name, None) not in call.raw:
            call.values[name] = wrap(v)


def _change_interface(data, call):
    slots = [s for s in call.slots((IN, OUT, LAYERS_IN, LAYERS_OUT)) if isinstance(call.get(s), CudaLike)]
    if not slots:
        return
    slot = data.draw(st.sampled_from(slots), label="interface slot")
    c = call.get(slot)
    described, invalid = _interface_changes(data, c.described, c.memory.nbytes, c.memory.itemsize,
                                            call.is_output(slot))
    call.set(slot, CudaLike(c.memory, described))
    if invalid:
        call.invalid.append(f"{call.label(slot)}: interface {described!r:.80}")


class _Layers:
    """A custom sequence of per-layer arrays: len() and [] work."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class _LayerList(list):
    pass


def _change_sequence(data, call):
    names = [name for name, role, _ in call.spec if role in (LAYERS_IN, LAYERS_OUT)
             and isinstance(call.values[name], list) and not any(s[0] == name for s in call.touched)]
    if not names:
        return
    name = data.draw(st.sampled_from(names), label="list")
    items = call.values[name]
    kind = data.draw(st.sampled_from(["tuple", "list subclass", "generator", "stacked", "custom", "dict", "str",
                                      "shorter", "longer", "None"]), label="sequence")
    if kind == "tuple":
        call.values[name] = tuple(items)
    elif kind == "list subclass":
        call.values[name] = _LayerList(items)
    elif kind == "generator":
        # Fresh copies, alive only while the generator hands them out: the old binding kept pointers to them.
        call.values[name] = (np.array(x) if isinstance(x, np.ndarray) else x for x in items)
    elif kind == "stacked":
        try:
            call.values[name] = np.stack(items)
        except (ValueError, TypeError):
            call.values[name] = np.array(items + [None], dtype=object)[:-1]
    elif kind == "custom":
        call.values[name] = _Layers(items)
    elif kind == "dict":
        call.values[name] = dict(enumerate(items))
    elif kind == "str":
        call.values[name] = name
    elif kind == "shorter":
        call.values[name] = items[:-1]
    elif kind == "longer":
        call.values[name] = items + [items[-1]]
    else:
        call.values[name] = None
    call.touched.update((name, i) for i in range(len(items)))
    if kind not in ("tuple", "list subclass"):
        call.invalid.append(f"{name}: {kind}")


def _change_scalar(data, call):
    names = [name for name, role, _ in call.spec if role == SCALAR]
    if not names:
        return
    name = data.draw(st.sampled_from(names), label="scalar")
    if name == "activation":
        value = data.draw(st.one_of(st.sampled_from(["tanh", "relu", "sigmoid", "TANH", ""]),
                                    st.text(max_size=4), st.integers(-2, 2), st.none()), label="activation")
        ok = value in ("tanh", "relu")
    elif name == "stream":
        value = data.draw(st.one_of(st.integers(-3, 2 ** 65), st.floats(), st.text(max_size=2), st.booleans(),
                                    st.none()), label="stream")
        ok = type(value) is int and 0 <= value < 2 ** 63
    else:
        value = data.draw(st.one_of(st.sampled_from(SCHEDULES), st.text(max_size=6), st.integers()),
                          label="schedule")
        ok = value in SCHEDULES
    call.values[name] = value
    if not ok:
        call.invalid.append(f"{name}: {value!r:.40}")


def _bind(data, call):
    """The call's positional and keyword arguments, with at most one binding mistake."""
    names = [name for name, _, _ in call.spec]
    required = [n for n in names if n not in DEFAULTS]
    n_positional = data.draw(st.integers(0, len(names)), label="positional")
    mistake = data.draw(st.sampled_from([None] * 10 + ["missing", "unknown", "repeated", "too many", "defaults"]),
                        label="binding")
    kwargs = {n: call.values[n] for n in names[n_positional:]}
    if mistake == "missing":
        dropped = data.draw(st.sampled_from(required), label="dropped")
        n_positional = min(n_positional, names.index(dropped))
        kwargs = {n: call.values[n] for n in names[n_positional:] if n != dropped}
    elif mistake == "unknown":
        kwargs["bias"] = call.values.get("biases")
    elif mistake == "repeated" and n_positional:
        kwargs[names[0]] = call.values[names[0]]
    elif mistake == "too many":
        n_positional, kwargs = len(names), {}
    elif mistake == "defaults":  # optional arguments at their defaults may be left out
        for n in names[n_positional:]:
            if n in DEFAULTS and call.values[n] == DEFAULTS[n] and type(call.values[n]) is type(DEFAULTS[n]):
                kwargs.pop(n)
    args = [call.values[n] for n in names[:n_positional]] + (["extra"] if mistake == "too many" else [])
    if mistake in ("missing", "unknown", "too many") or (mistake == "repeated" and n_positional):
        call.invalid.append(f"binding: {mistake}")
    return args, kwargs


def _draw_call(data, entry):
    shape = (data.draw(st.integers(0, 3), label="B"), data.draw(st.integers(0, 3), label="T"),
             data.draw(st.integers(1, 3), label="D"), data.draw(st.integers(1, 4), label="H"),
             data.draw(st.integers(1, 3), label="L"))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    activation = data.draw(st.sampled_from(["tanh", "relu"]), label="activation")
    seed = data.draw(st.integers(0, 2 ** 32 - 1), label="seed")
    call = Call(entry, shape, dtype, activation, np.random.default_rng(seed))
    for _ in range(data.draw(st.sampled_from([0, 0, 1, 1, 1, 2]), label="array changes")):
        _change_array(data, call)
    if call.cuda:
        _as_cuda(call)
        if data.draw(st.integers(0, 3), label="interface change?") == 0:
            _change_interface(data, call)
    if data.draw(st.integers(0, 4), label="sequence change?") == 0:
        _change_sequence(data, call)
    if data.draw(st.integers(0, 5), label="scalar change?") == 0:
        _change_scalar(data, call)
    args, kwargs = _bind(data, call)
    return call, args, kwargs


# ---- what must happen ----

def _memory(value, out):
    """Every NumPy array reachable from an argument (through lists, tuples, dicts and CudaLike)."""
    if isinstance(value, CudaLike):
        _memory(value.memory, out)
    elif isinstance(value, np.ndarray) and value.dtype != object:
        out.append(value)
    elif isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.dtype == object):
        for v in value:
            _memory(v, out)
    elif isinstance(value, dict):
        for v in value.values():
            _memory(v, out)
    elif isinstance(value, _Layers):
        _memory(value.items, out)
    return out


def _snapshot(call):
    arrays = []
    for name, role, _ in call.spec:
        if role != SCALAR:
            _memory(call.values[name], arrays)
    return [(a, np.array(a, copy=True)) for a in arrays]


def _unchanged(snapshot):
    return all(a.tobytes() == b.tobytes() for a, b in snapshot)


def _reference(call):
    """The float64 oracle's outputs for the inputs as the call gives them: {output name: array or list}."""
    v = call.values
    B, T, D, H, L = call.shape
    f64 = lambda x: np.asarray(x, np.float64)  # noqa: E731
    kernels64 = [f64(k) for k in v["kernels"]]
    recurrent64 = [f64(k) for k in v["recurrent_kernels"]]
    gru = call.entry.startswith("gru_")
    zero_biases = [np.zeros((2, 3 * H) if gru else (H,))] * L  # the backward passes read none
    biases64 = [f64(b) for b in v["biases"]] if "biases" in v else zero_biases
    activation = v.get("activation", "tanh")
    if call.entry == "forward_cpu":
        y, fin, act = oracle.forward(f64(v["inputs"]), kernels64, recurrent64, biases64, f64(v["initial_states"]),
                                     activation)
        return {"outputs": y, "final_states": fin, "activations": act}
    if call.entry == "gru_forward_cpu":
        y, fin, act, gates = oracle.gru_forward(f64(v["inputs"]), kernels64, recurrent64, biases64,
                                                f64(v["initial_states"]))
        return {"outputs": y, "final_states": fin, "activations": act, "gates": gates}
    if call.entry == "backward_cpu":
        g = oracle.backward(f64(v["inputs"]), kernels64, recurrent64, zero_biases, f64(v["initial_states"]),
                            f64(v["activations"]), f64(v["grad_outputs"]), f64(v["grad_final_states"]), activation)
    else:
        g = oracle.gru_backward(f64(v["inputs"]), kernels64, recurrent64, zero_biases, f64(v["initial_states"]),
                                f64(v["activations"]), f64(v["gates"]), f64(v["grad_outputs"]),
                                f64(v["grad_final_states"]))
    out = {"grad_inputs": g.grad_inputs, "grad_kernels": g.grad_kernels,
           "grad_recurrent_kernels": g.grad_recurrent_kernels, "grad_biases": g.grad_biases,
           "grad_initial_states": g.grad_initial_states}
    if call.entry == "backward_cpu" and B and T:  # with nothing to compute, the scratch stays as it was
        out["grad_preactivations"] = g.grad_preactivations
    return out


TOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-11}


def _check(call, args, kwargs):
    fn = getattr(kernels, call.entry)
    snapshot = _snapshot(call)
    try:
        fn(*args, **kwargs)
    except (TypeError, ValueError) as e:
        message = str(e)
        assert not call.valid, f"a valid call was refused: {type(e).__name__}: {message}"
        assert "\n" not in message and len(message) < 400, f"not one short line: {message!r}"
        names = [call.entry] + [n for n, _, _ in call.spec]
        assert any(n in message for n in names), f"names no argument: {message!r}"
        assert _unchanged(snapshot), f"a refused call wrote into an array ({call.invalid}): {message}"
        return
    except RuntimeError as e:
        assert call.cuda and call.valid, f"RuntimeError for {'a CPU' if call.valid else 'an invalid'} call " \
                                         f"({call.invalid}): {e}"
        assert "cuda" in str(e).lower(), str(e)
        return
    assert call.valid, f"an invalid call was accepted: {call.invalid}"
    if call.cuda:  # without a GPU, only a call with nothing to compute may return without a CUDA call
        B, T = call.shape[:2]
        assert B == 0 or T == 0, "a CUDA call ran on a machine without a GPU"
        return
    want = _reference(call)
    for name, ref in want.items():
        got = call.values[name]
        pairs = zip(got, ref) if isinstance(ref, list) else [(got, ref)]
        for i, (g, r) in enumerate(pairs):
            err = oracle.relative_error(g, r)
            assert err <= TOL[call.dtype], f"{name}[{i}]: relative error {err} ({call.shape}, {call.dtype})"
    # Inputs untouched: every array that is not an output is bitwise as it was.
    outputs = []
    for name, role, _ in call.spec:
        if role in (OUT, LAYERS_OUT):
            _memory(call.values[name], outputs)
    out_ids = {id(a) for a in outputs}
    assert _unchanged([(a, b) for a, b in snapshot if id(a) not in out_ids]), "a call wrote into an input"


@pytest.mark.parametrize("entry", CPU_ENTRIES)
def test_cpu_entry_points(entry):
    @FUZZ
    @given(st.data())
    def run(data):
        _check(*_draw_call(data, entry))

    run()


@pytest.mark.skipif(not cuda_module_checks_arguments(kernels),
                    reason="needs a CUDA build of the module and no GPU (a CPU-only build's CUDA entry points check "
                           "nothing; on a GPU, host memory posing as CUDA arrays would reach a kernel)")
@pytest.mark.parametrize("entry", CUDA_ENTRIES)
def test_cuda_entry_points(entry):
    @FUZZ
    @given(st.data())
    def run(data):
        _check(*_draw_call(data, entry))

    run()


# ---- plan() and workspace_bytes() ----

_INTS = st.one_of(st.integers(0, 40), st.integers(-3, 0), st.sampled_from([2 ** 31, 2 ** 40, 2 ** 63 - 1, 2 ** 70]))
_NOT_INTS = st.sampled_from([1.5, "4", None, True, [3]])
_DEVICE_FIELDS = sorted(set(H200_PROPS) | {"cc_major", "cc_minor", "regs_per_thread", "blocks_per_sm"})
MUST, MUST_NOT, MAY = "must succeed", "must fail", "may fail"  # what sizes alone say of a call


def _sizes(data):
    """Five sizes, and whether they are small valid ones (MUST), certainly invalid (MUST_NOT: not ints, too small,
    beyond 64 bits) or large (MAY: whether they fit the CUDA library's limits is its business)."""
    values, verdict = [], MUST
    for name in ("batch", "time", "input", "hidden", "layers"):
        lo = 0 if name in ("batch", "time") else 1
        v = data.draw(st.one_of(st.integers(lo, 40), _INTS, _NOT_INTS), label=name)
        values.append(v)
        if type(v) is not int or v < lo or v >= 2 ** 63:
            verdict = MUST_NOT
        elif v > 40 and verdict == MUST:
            verdict = MAY
    return values, verdict


def _device_field_is_bad(device, field, value):
    if field == "cooperative_launch":
        return not isinstance(value, bool)
    if type(value) is not int:
        return True
    if field == "regs_per_thread":
        return not 1 <= value <= 255
    if field == "blocks_per_sm":
        return not 0 <= value < 2 ** 31
    lo = 0 if field in ("reserved_smem_per_block", "cc_minor") else 1
    bad = not lo <= value < 2 ** 31
    if field == "smem_per_block_optin":
        bad = bad or value > device["smem_per_sm"]
    if field == "smem_per_sm":
        bad = bad or value < device["smem_per_block_optin"] or value < device["reserved_smem_per_block"]
    if field == "reserved_smem_per_block":
        bad = bad or value > device["smem_per_sm"]
    return bad


def _assert_one_line(e, names):
    message = str(e)
    assert "\n" not in message and len(message) < 400, repr(message)
    assert any(n in message for n in names), repr(message)


# Words every plan() error names: an argument, a device property, or the pass whose plan failed.
PLAN_NAMES = ["batch", "time", "input", "hidden", "layers", "dtype", "direction", "schedule", "cell", "device",
              "forward", "backward"]


@FUZZ
@given(st.data())
def test_plan(data):
    sizes, verdict = _sizes(data)
    dtype = data.draw(st.sampled_from(["float32", "float64", np.float32, "float16", "int8", "xyz", 3]), label="dtype")
    direction = data.draw(st.sampled_from(["forward", "backward", "sideways", 1]), label="direction")
    schedule = data.draw(st.sampled_from(list(SCHEDULES) + ["fast", None]), label="schedule")
    cell = data.draw(st.sampled_from(["rnn", "gru", "lstm"]), label="cell")
    device = dict(H200_PROPS)
    bad_field = None  # the device property the call must be refused for
    change = data.draw(st.sampled_from([None, None, "value", "unknown key", "no sm_count", "not a dict"]),
                       label="device change")
    if change == "value":
        field = data.draw(st.sampled_from(_DEVICE_FIELDS), label="field")
        value = data.draw(st.one_of(st.sampled_from([0, -1, 1, 2, 2 ** 31, 2 ** 64, 1.5, "x", None, True]),
                                    st.integers(-10, 10 ** 6)), label="value")
        bad_field = field if _device_field_is_bad(device, field, value) else None
        device[field] = value
    elif change == "unknown key":
        device["smem"], bad_field = 3, "smem"
    elif change == "no sm_count":
        del device["sm_count"]
        bad_field = "sm_count"
    elif change == "not a dict":
        device, bad_field = list(device.items()), "device"
    names_ok = (dtype in ("float32", "float64", np.float32) and direction in ("forward", "backward")
                and schedule in SCHEDULES and cell in ("rnn", "gru", "lstm"))  # every cell plans (the LSTM too)
    try:
        plan = kernels.plan(*sizes, dtype, direction, schedule, device, cell)
    except (TypeError, ValueError) as e:
        _assert_one_line(e, PLAN_NAMES)
        if verdict != MUST_NOT and names_ok and bad_field:
            assert bad_field in str(e), f"expected an error naming {bad_field}: {e}"
        elif verdict == MUST and names_ok:
            # On a real device and small shapes only an explicitly requested persistent schedule, or blocks that
            # do not fit a device with little shared memory, may be impossible.
            assert schedule.startswith("persistent") or "shared memory" in str(e), f"valid plan() refused: {e}"
        return
    assert verdict != MUST_NOT and names_ok and bad_field is None, \
        f"plan() accepted {sizes}, {dtype!r}, {direction!r}, {schedule!r}, {cell!r}, {device}"
    assert plan["schedule"] in ("stepwise", "persistent") and plan["grid"] >= 0 and plan["launches"] >= 0
    if plan["launches"] and plan["schedule"] == "persistent":
        assert plan["grid"] <= device["sm_count"] * max(plan["blocks_per_sm"], 1)


@FUZZ
@given(st.data())
def test_workspace_bytes(data):
    direction = data.draw(st.sampled_from(["forward", "backward", "up"]), label="direction")
    sizes, verdict = _sizes(data)
    dtype = data.draw(st.sampled_from(["float32", "float64", "int32", None, 2.0]), label="dtype")
    cell = data.draw(st.sampled_from(["rnn", "gru", 7]), label="cell")
    names_ok = direction in ("forward", "backward") and dtype in ("float32", "float64", None) and cell in ("rnn", "gru")
    try:
        n = kernels.workspace_bytes(direction, *sizes, dtype, cell=cell)
    except (TypeError, ValueError) as e:
        _assert_one_line(e, ["batch", "time", "input", "hidden", "layers", "dtype", "direction", "cell"])
        assert not (verdict == MUST and names_ok), f"a valid workspace_bytes() was refused: {e}"
        return
    assert verdict != MUST_NOT and names_ok, f"workspace_bytes() accepted {direction!r}, {sizes}, {dtype!r}, {cell!r}"
    assert n > 0 and n % 256 == 0


# ---- the same under AddressSanitizer ----

@pytest.mark.skipif(bool(os.environ.get(KERNELS_SO_ENV)), reason="this is the sanitized run itself")
def test_under_address_sanitizer():
    runtime = kernels_asan_build.asan_runtime()
    if runtime is None:
        pytest.skip("g++ or its AddressSanitizer runtime (libasan) is missing")
    module = kernels_asan_build.build()
    env = dict(os.environ, LD_PRELOAD=" ".join([runtime, kernels_asan_build.cxx_runtime()]),
               ASAN_OPTIONS="detect_leaks=0", PYTHONMALLOC="malloc",  # every Python object freed through ASan
               PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", **{KERNELS_SO_ENV: module},
               DEEPRNN_FAST_FUZZ_EXAMPLES=str(ASAN_EXAMPLES),
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    # No TensorFlow in the sanitized process (deeprnn_fast imports it when it can): only the module is under test.
    # -s: the sanitizer writes its report to the process's stderr, which pytest's capture would swallow.
    script = ("import sys; sys.modules['tensorflow'] = None; import pytest; "
              "sys.exit(pytest.main(['-q', '-s', '-p', 'no:cacheprovider', 'tests/test_kernels_fuzz.py', "
              "'tests/test_kernels_arguments.py']))")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    report = proc.stdout[-6000:] + proc.stderr[-6000:]
    assert "AddressSanitizer" not in proc.stderr, report
    assert proc.returncode == 0, report
    # Everything ran, the CUDA entry points included (the sanitized build has them); only this test skipped.
    assert re.search(r"\b\d+ passed, 1 skipped\b", proc.stdout), report
