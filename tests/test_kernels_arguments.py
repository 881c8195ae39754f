"""Regression tests of deeprnn_fast._kernels' argument checks, one per bug a hostile caller found: per-layer lists
given as other sequences (read through references that did not keep their items alive), arrays in the other byte
order or misaligned (silently wrong results), outputs sharing memory with other arguments, malformed
__cuda_array_interface__ dicts, pybind11's whole-array error dumps, and plan() on device properties no GPU has.
tests/test_kernels_fuzz.py runs this file again against the AddressSanitizer build."""
import gc

import numpy as np
import pytest

from deeprnn_fast.testing import oracle
from deeprnn_fast.testing.gpu_check import H200_PROPS
from kernels_testing import REMOVE, CudaLike, cuda_module_checks_arguments, interface, load_kernels

kernels = load_kernels()

TOL = {np.float32: 5e-5, np.float64: 1e-12}
SHAPE = (2, 3, 3, 4, 3)  # B, T, D, H, L


def _problem(dtype=np.float32, shape=SHAPE):
    return oracle.random_problem(np.random.default_rng(), *shape, dtype=dtype)


def _outputs(p):
    B, T, D, H, L = p.shape
    dtype = p.inputs.dtype
    return {"outputs": np.full((B, T, H), np.nan, dtype), "final_states": np.full((L, B, H), np.nan, dtype),
            "activations": np.full((L, T, B, H), np.nan, dtype)}


def _grads(p):
    B, T, D, H, L = p.shape
    nan = lambda *s: np.full(s, np.nan, p.inputs.dtype)  # noqa: E731
    return {"grad_inputs": nan(B, T, D), "grad_kernels": [nan(D if l == 0 else H, H) for l in range(L)],
            "grad_recurrent_kernels": [nan(H, H) for _ in range(L)], "grad_biases": [nan(H) for _ in range(L)],
            "grad_initial_states": nan(L, B, H), "grad_preactivations": nan(L, T, B, H)}


def _forward_args(p, **overrides):
    args = dict(inputs=p.inputs, kernels=p.kernels, recurrent_kernels=p.recurrent_kernels, biases=p.biases,
                initial_states=p.initial_states, **_outputs(p))
    args.update(overrides)
    return args


def _assert_forward_matches_oracle(p, args):
    want = oracle.forward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states, p.activation)
    for name, w in zip(("outputs", "final_states", "activations"), want):
        assert oracle.relative_error(args[name], w) <= TOL[p.inputs.dtype.type], name


def _backward_args(p, activations, **overrides):
    args = dict(inputs=p.inputs, kernels=p.kernels, recurrent_kernels=p.recurrent_kernels,
                initial_states=p.initial_states, activations=activations, grad_outputs=p.grad_outputs,
                grad_final_states=p.grad_final_states, **_grads(p))
    args.update(overrides)
    return args


def _one_line_naming(excinfo, *names):
    message = str(excinfo.value)
    assert "\n" not in message and len(message) < 300, message
    for name in names:
        assert name in message, message


# ---- per-layer lists ----

class _Sequence:
    """A custom sequence: len() and [] work, as for a list."""

    def __init__(self, items):
        self.items = list(items)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _not_lists(items):
    stacked = np.stack(items) if len({a.shape for a in items}) == 1 else np.array(items, dtype=object)
    return {"stacked ndarray": stacked, "generator of fresh copies": (a.copy() for a in items),
            "custom sequence": _Sequence(items), "dict": dict(enumerate(items)), "str": "kernels", "None": None,
            "single array": items[0]}


@pytest.mark.parametrize("argument", ["kernels", "recurrent_kernels", "biases"])
def test_forward_refuses_every_per_layer_argument_that_is_not_a_list_or_tuple(argument):
    p = _problem()
    for kind, value in _not_lists(getattr(p, argument)).items():
        with pytest.raises(TypeError) as e:
            kernels.forward_cpu(**_forward_args(p, **{argument: value}))
        _one_line_naming(e, argument, "a list or tuple of", "arrays")
        gc.collect()
    # The module still works, and lists, tuples and list subclasses are read alike.
    for convert in (list, tuple, type("Layers", (list,), {})):
        args = _forward_args(p, **{argument: convert(getattr(p, argument))})
        kernels.forward_cpu(**args)
        _assert_forward_matches_oracle(p, args)


def test_gru_forward_refuses_missing_biases():
    # biases=None reached the GRU's CPU pass as null pointers, which it reads: a segmentation fault.
    p = oracle.random_gru_problem(np.random.default_rng(), 2, 3, 3, 4, 2)
    B, T, D, H, L = p.shape
    out = dict(_outputs(p), gates=np.full((L, T, B, 4 * H), np.nan, np.float32))
    with pytest.raises(TypeError) as e:
        kernels.gru_forward_cpu(p.inputs, p.kernels, p.recurrent_kernels, None, p.initial_states, **out)
    _one_line_naming(e, "biases must be a list or tuple of 2 arrays (one per layer); got NoneType")


@pytest.mark.parametrize("argument", ["grad_kernels", "grad_recurrent_kernels", "grad_biases"])
def test_backward_refuses_gradient_lists_that_are_not_lists(argument):
    # The old binding wrote gradients through the borrowed items of these: into freed memory for a generator.
    p = _problem()
    B, T, D, H, L = p.shape
    activations = oracle.forward(p.inputs, p.kernels, p.recurrent_kernels, p.biases, p.initial_states)[2]
    activations = activations.astype(np.float32)
    for kind, value in _not_lists(_grads(p)[argument]).items():
        with pytest.raises(TypeError) as e:
            kernels.backward_cpu(**_backward_args(p, activations, **{argument: value}))
        _one_line_naming(e, argument, "a list or tuple of 3 arrays")


def test_list_lengths_are_checked():
    p = _problem()
    with pytest.raises(ValueError) as e:
        kernels.forward_cpu(**_forward_args(p, biases=p.biases + [p.biases[0]]))
    _one_line_naming(e, "biases must hold one array per layer (3); got 4")
    with pytest.raises(ValueError) as e:
        kernels.forward_cpu(**_forward_args(p, kernels=[]))
    _one_line_naming(e, "kernels must hold at least one array")
    with pytest.raises(TypeError) as e:
        kernels.forward_cpu(**_forward_args(p, recurrent_kernels=[p.recurrent_kernels[0], None,
                                                                   p.recurrent_kernels[2]]))
    _one_line_naming(e, "recurrent_kernels[1] must be a numpy.ndarray; got NoneType")


# ---- host arrays: byte order, alignment, subclasses ----

def _misaligned(a):
    raw = np.zeros(a.nbytes + 1, np.uint8)
    m = raw[1:].view(a.dtype).reshape(a.shape)
    m[...] = a
    assert not m.flags.aligned
    return m


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_big_endian_and_misaligned_arrays_are_refused(dtype):
    p = _problem(dtype)
    swapped = lambda a: a.astype(a.dtype.newbyteorder(">"))  # noqa: E731 - same values, other byte order
    out = _outputs(p)
    cases = {"inputs": (swapped(p.inputs), _misaligned(p.inputs)),
             "kernels[1]": (swapped(p.kernels[1]), _misaligned(p.kernels[1])),
             "initial_states": (swapped(p.initial_states), _misaligned(p.initial_states)),
             "outputs": (swapped(out["outputs"]), _misaligned(out["outputs"]))}
    for name, (big, misaligned) in cases.items():
        for bad, error, text in ((big, TypeError, "byte order"), (misaligned, ValueError, "aligned")):
            if name == "kernels[1]":
                override = {"kernels": [p.kernels[0], bad, p.kernels[2]]}
            else:
                override = {name: bad}
            args = _forward_args(p, **override)
            with pytest.raises(error) as e:
                kernels.forward_cpu(**args)
            _one_line_naming(e, name, text)
            for key in ("outputs", "final_states", "activations"):  # refused before anything was written
                assert np.isnan(args[key]).all()
    # The same values in the machine's byte order, aligned, give the oracle's answer.
    args = _forward_args(p, inputs=swapped(p.inputs).astype(dtype))
    kernels.forward_cpu(**args)
    _assert_forward_matches_oracle(p, args)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix, on purpose
def test_array_subclasses_that_change_meaning_are_refused_and_memmaps_accepted(tmp_path):
    p = _problem()
    masked = np.ma.masked_array(p.inputs, mask=np.zeros(p.inputs.shape, bool))
    with pytest.raises(TypeError) as e:
        kernels.forward_cpu(**_forward_args(p, inputs=masked))
    _one_line_naming(e, "inputs", "MaskedArray")
    with pytest.raises(TypeError) as e:
        kernels.forward_cpu(**_forward_args(p, kernels=[np.asmatrix(p.kernels[0])] + p.kernels[1:]))
    _one_line_naming(e, "kernels[0]", "matrix")
    mapped = np.memmap(tmp_path / "inputs.bin", dtype=p.inputs.dtype, mode="w+", shape=p.inputs.shape)
    mapped[...] = p.inputs
    args = _forward_args(p, inputs=mapped)
    kernels.forward_cpu(**args)
    _assert_forward_matches_oracle(p, args)
    del mapped


# ---- outputs sharing memory ----

def test_outputs_that_share_memory_with_any_argument_are_refused():
    p = _problem()
    B, T, D, H, L = p.shape
    out = _outputs(p)
    # final_states is the very array given as initial_states.
    with pytest.raises(ValueError) as e:
        kernels.forward_cpu(**_forward_args(p, final_states=p.initial_states))
    _one_line_naming(e, "final_states", "initial_states", "shares memory")
    # activations overlaps the last element of inputs by a few bytes.
    n_in, n_act = p.inputs.size, L * T * B * H
    buffer = np.empty(n_in + n_act - 1, np.float32)
    inputs, activations = buffer[:n_in].reshape(p.inputs.shape), buffer[n_in - 1:].reshape(L, T, B, H)
    inputs[...] = p.inputs
    with pytest.raises(ValueError) as e:
        kernels.forward_cpu(**_forward_args(p, inputs=inputs, activations=activations))
    _one_line_naming(e, "activations", "inputs")
    # Two outputs over the same memory.
    with pytest.raises(ValueError) as e:
        kernels.forward_cpu(**_forward_args(p, outputs=out["outputs"], final_states=out["outputs"].reshape(-1)[
            :L * B * H].reshape(L, B, H)))
    _one_line_naming(e, "outputs", "final_states")
    # An output over the second half of a weight in a per-layer list.
    buffer = np.empty(H * H // 2 + L * B * H, np.float32)
    weight, final_states = buffer[:H * H].reshape(H, H), buffer[H * H // 2:].reshape(L, B, H)
    weight[...] = p.recurrent_kernels[2]
    with pytest.raises(ValueError) as e:
        kernels.forward_cpu(**_forward_args(p, recurrent_kernels=p.recurrent_kernels[:2] + [weight],
                                            final_states=final_states))
    _one_line_naming(e, "final_states", "recurrent_kernels[2]")

    # Adjacent, not overlapping: accepted, and right.
    buffer = np.empty(n_in + n_act, np.float32)
    inputs, activations = buffer[:n_in].reshape(p.inputs.shape), buffer[n_in:].reshape(L, T, B, H)
    inputs[...] = p.inputs
    args = _forward_args(p, inputs=inputs, activations=activations)
    kernels.forward_cpu(**args)
    _assert_forward_matches_oracle(p, args)


def test_inputs_may_share_memory_and_empty_outputs_never_overlap():
    p = _problem(shape=(2, 3, 4, 4, 2))
    p.recurrent_kernels = [p.kernels[1], p.kernels[1]]  # the same array for three weights
    args = _forward_args(p)
    kernels.forward_cpu(**args)
    _assert_forward_matches_oracle(p, args)
    # T = 0: outputs and activations are empty and may sit anywhere, even on an input.
    p = _problem(shape=(2, 0, 3, 4, 2))
    args = _forward_args(p, outputs=p.inputs.reshape(2, 0, 4), activations=p.inputs.reshape(2, 0, 2, 4))
    kernels.forward_cpu(**args)
    _assert_forward_matches_oracle(p, args)


# ---- messages ----

def test_errors_are_one_line_even_for_large_arrays_and_keyword_mistakes():
    p = _problem(shape=(64, 20, 30, 40, 2))
    cases = [(TypeError, dict(activation=3), "activation must be a str; got int"),
             (ValueError, dict(activation="sig\nmoid"), "activation must be 'tanh' or 'relu'; got 'sig\\nmoid'"),
             (TypeError, dict(activations=p.inputs.tolist()), "activations must be a numpy.ndarray; got list"),
             (TypeError, dict(bias=p.biases), "forward_cpu() got an unexpected keyword argument 'bias'")]
    for error, override, text in cases:
        with pytest.raises(error) as e:
            kernels.forward_cpu(**_forward_args(p, **override))
        _one_line_naming(e, text)
    args = _forward_args(p)
    del args["outputs"]
    with pytest.raises(TypeError) as e:
        kernels.forward_cpu(**args)
    _one_line_naming(e, "forward_cpu() missing required argument 'outputs'")
    with pytest.raises(TypeError) as e:
        kernels.forward_cpu(p.inputs, **_forward_args(p))
    _one_line_naming(e, "forward_cpu() got multiple values for argument 'inputs'")
    with pytest.raises(TypeError) as e:
        kernels.forward_cpu(*_forward_args(p).values(), "tanh", 1)
    _one_line_naming(e, "forward_cpu() takes at most 9 arguments (10 given)")


# ---- plan() on device properties ----

@pytest.mark.parametrize("field,value", [("sm_count", 0), ("sm_count", -4), ("smem_per_block_optin", 0),
                                         ("smem_per_sm", -1), ("max_threads_per_sm", 0), ("max_blocks_per_sm", 0),
                                         ("regs_per_sm", 0), ("reserved_smem_per_block", -1), ("cc_major", 0),
                                         ("smem_per_block_optin", 2 * H200_PROPS["smem_per_sm"]),
                                         ("smem_per_sm", 2 ** 40)])
@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_plan_refuses_device_properties_no_gpu_has(field, value, cell):
    with pytest.raises(ValueError) as e:
        kernels.plan(4, 8, 16, 32, 2, device=dict(H200_PROPS, **{field: value}), cell=cell)
    _one_line_naming(e, "device property", field)


def test_plan_device_property_types():
    for field, value, text in [("sm_count", 1.5, "device property sm_count must be an int; got float"),
                               ("sm_count", "132", "device property sm_count must be an int; got str"),
                               ("cooperative_launch", 1, "device property cooperative_launch must be a bool"),
                               ("regs_per_thread", 0, "device property regs_per_thread must be an int in [1, 255]")]:
        with pytest.raises((TypeError, ValueError)) as e:
            kernels.plan(4, 8, 16, 32, 2, device=dict(H200_PROPS, **{field: value}))
        _one_line_naming(e, text)
    with pytest.raises(TypeError) as e:
        kernels.plan(4, 8, 16, 32, 2, device=[132])
    _one_line_naming(e, "device must be None or a dict of device properties; got list")
    with pytest.raises(TypeError) as e:
        kernels.plan(4.0, 8, 16, 32, 2, device=H200_PROPS)
    _one_line_naming(e, "batch must be an int; got float")
    with pytest.raises(TypeError) as e:
        kernels.plan(4, 8, 16, 32, 2, dtype="float8", device=H200_PROPS)
    _one_line_naming(e, "dtype must be float32 or float64")
    # One SM is a real (small) device.
    assert kernels.plan(4, 8, 16, 32, 2, device=dict(H200_PROPS, sm_count=1))["grid"] >= 1


# ---- CUDA entry points (where a CUDA build has no GPU: no kernel runs on the host memory behind CudaLike) ----

needs_cuda_checks = pytest.mark.skipif(not cuda_module_checks_arguments(kernels),
                                       reason="needs a CUDA build of the module and no GPU (the CUDA entry points "
                                              "of a CPU-only build check nothing)")


def _cuda_forward_args(p, **overrides):
    args = {k: (CudaLike(v) if isinstance(v, np.ndarray) else [CudaLike(a) for a in v])
            for k, v in _forward_args(p).items()}
    args["workspace"] = CudaLike(np.empty(4096, np.uint8))
    args.update(overrides)
    return args


@needs_cuda_checks
def test_cuda_valid_arguments_reach_the_device_call():
    p = _problem()
    with pytest.raises(RuntimeError, match="(?i)cuda"):
        kernels.forward_cuda(**_cuda_forward_args(p))
    with pytest.raises(RuntimeError, match="(?i)cuda"):  # tuples and byte-order-free typestrs are fine too
        kernels.forward_cuda(**_cuda_forward_args(p, kernels=tuple(CudaLike(k) for k in p.kernels),
                                                  biases=[CudaLike(b, interface(b, typestr="|f4"))
                                                          for b in p.biases]))


@needs_cuda_checks
def test_cuda_list_emptied_while_it_is_read_keeps_its_arrays_alive():
    # A __cuda_array_interface__ property runs the caller's code in the middle of the checks; this one drops every
    # other reference to the weights. The binding holds its own.
    p = _problem()
    args = _cuda_forward_args(p)
    weights = args["recurrent_kernels"]

    class Emptying(CudaLike):
        @property
        def __cuda_array_interface__(self):
            weights.clear()
            gc.collect()
            return interface(self.memory)

    args["initial_states"] = Emptying(p.initial_states)
    with pytest.raises(RuntimeError, match="(?i)cuda"):
        kernels.forward_cuda(**args)


@needs_cuda_checks
@pytest.mark.parametrize("change,error,text", [
    (dict(typestr=">f4"), TypeError, "big-endian"),
    (dict(typestr="=f4"), TypeError, "must start with '<'"),
    (dict(typestr="f4"), TypeError, "must look like '<f4'"),
    (dict(typestr=4), TypeError, "must be a str"),
    (dict(typestr="<i4"), TypeError, "must be float32"),
    (dict(version=4), ValueError, "['version'] must be in [0, 3]"),
    (dict(version="3"), TypeError, "['version'] must be an int"),
    (dict(version=REMOVE), TypeError, "['version'] is missing"),
    (dict(shape=[2, 3.0, 3]), TypeError, "['shape'][1] must be an int"),
    (dict(shape=(2, -3, 3)), ValueError, "['shape'][1] must be in [0,"),
    (dict(shape=(2, 3)), ValueError, "inputs must have shape (batch, time, features)"),
    (dict(shape="23"), TypeError, "['shape'] must be a tuple of ints"),
    (dict(data=[0, False]), TypeError, "['data'] must be a tuple (pointer, read_only)"),
    (dict(data=(0, False, 1)), TypeError, "['data'] must be a tuple (pointer, read_only)"),
    (dict(data=(-8, False)), ValueError, "(the pointer) must be an address"),
    (dict(data=(1.0, False)), TypeError, "(the pointer) must be an int"),
    (dict(data=(0, False)), ValueError, "(the pointer) is null"),
    (dict(data=(2 ** 64 - 16, False)), ValueError, "past the end of the address space"),
    (dict(data=(4096, 0)), TypeError, "(read-only) must be a bool"),
    (dict(strides=(4, 4, 4)), ValueError, "must be C-contiguous"),
    (dict(strides=(4, 4)), TypeError, "['strides'] must have one entry per dimension"),
    (dict(mask=np.zeros(3)), ValueError, "masked CUDA arrays are not supported"),
    (dict(stream=-1), ValueError, "['stream'] must be in [0,"),
    (dict(stream="default"), TypeError, "['stream'] must be an int"),
])
def test_cuda_malformed_interfaces_are_one_line_errors_naming_the_argument(change, error, text):
    p = _problem()
    with pytest.raises(error) as e:
        kernels.forward_cuda(**_cuda_forward_args(p, inputs=CudaLike(p.inputs, interface(p.inputs, **change))))
    _one_line_naming(e, "inputs", text)


@needs_cuda_checks
def test_cuda_interfaces_that_are_not_dicts_or_fail_to_read():
    p = _problem()
    for described, text in [([("shape", (2,))], "__cuda_array_interface__ must be a dict; got list"),
                            (ValueError("driver\nexploded"), "raised ValueError: driver\\nexploded"),
                            (AttributeError("nope"), "must be a CUDA array")]:
        with pytest.raises(TypeError) as e:
            kernels.forward_cuda(**_cuda_forward_args(p, initial_states=CudaLike(p.initial_states, described)))
        _one_line_naming(e, "initial_states", text)


@needs_cuda_checks
def test_cuda_outputs_overlapping_inputs_or_the_workspace_are_refused():
    p = _problem()
    out = _outputs(p)
    with pytest.raises(ValueError) as e:  # the pointer of an input, the extent of an output
        kernels.forward_cuda(**_cuda_forward_args(p, outputs=CudaLike(
            out["outputs"], interface(out["outputs"], data=(p.initial_states.ctypes.data + 4, False)))))
    _one_line_naming(e, "outputs", "initial_states", "shares memory")
    workspace = np.empty(4096, np.uint8)
    with pytest.raises(ValueError) as e:
        kernels.forward_cuda(**_cuda_forward_args(p, workspace=CudaLike(workspace), activations=CudaLike(
            out["activations"], interface(out["activations"], data=(workspace.ctypes.data + 1024, False)))))
    _one_line_naming(e, "workspace", "activations")
    with pytest.raises(ValueError) as e:
        kernels.forward_cuda(**_cuda_forward_args(p, outputs=CudaLike(
            out["outputs"], interface(out["outputs"], data=(out["outputs"].ctypes.data, True)))))
    _one_line_naming(e, "outputs is an output and must be writable")
    for stream, error in ((-1, ValueError), ("0", TypeError), (1.0, TypeError)):
        with pytest.raises(error) as e:
            kernels.forward_cuda(**_cuda_forward_args(p), stream=stream)
        _one_line_naming(e, "stream")
