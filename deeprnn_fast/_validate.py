"""Argument checks shared by the fused ops' wrappers and the reference, for every cell.

Every error names the argument and the shape or dtype that was expected, so that bad input never reaches a kernel.
Dimensions that are unknown at trace time are left to the op kernel, which checks them again at run time.
"""
import numbers
from dataclasses import dataclass
from typing import List, Optional

import tensorflow as tf

FLOAT_DTYPES = (tf.float32, tf.float64)
TOKEN_DTYPES = (tf.int32, tf.int64)


@dataclass(frozen=True)
class CellLayout:
    """How a cell's weights and states look (the C++ library's CellLayout, csrc/deeprnn/stacked.h)."""
    gates: int                 # gate blocks of H columns in every weight matrix
    bias_rows: Optional[int]   # None: a layer's bias is [G*H]; else [bias_rows, G*H]
    states: int                # state tensors per layer (the LSTM's h and c)
    gate_names: str            # Keras' gate order, for messages


# The one name of each cell, as everywhere in the package (the C++ library's deeprnn::Cell).
CELLS = {
    "tanh": CellLayout(1, None, 1, ""),
    "relu": CellLayout(1, None, 1, ""),
    "gru": CellLayout(3, 2, 1, "z, r, n"),
    "lstm": CellLayout(4, None, 2, "i, f, c, o"),
}
RNN_ACTIVATIONS = ("tanh", "relu")


@dataclass
class StackedArgs:
    cell: str
    inputs: Optional[tf.Tensor]   # [B, T, D] floats, or None with tokens
    tokens: Optional[tf.Tensor]   # [B, T] int32 token ids (one-hot inputs of D = kernels[0] rows), or None
    kernels: List[tf.Tensor]
    recurrent_kernels: List[tf.Tensor]
    biases: List[tf.Tensor]
    initial_states: list          # per layer a tensor [B, H], or for the LSTM a pair (h, c)
    dtype: tf.DType
    batch: object  # int, or a scalar tensor when the batch size is only known at run time
    time: Optional[int]
    input_size: int
    hidden: int
    layers: int


def _as_list(name, value):
    if isinstance(value, (tf.Tensor, tf.Variable)) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list of tensors, one per layer; got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must hold at least one tensor (one per layer); got an empty list")
    return list(value)


def check_dense(name, value):
    """A short error for a sparse or ragged tensor, which would otherwise fail inside tf.convert_to_tensor with a
    message that prints every index and value it holds."""
    if isinstance(value, (tf.SparseTensor, tf.compat.v1.SparseTensorValue)):
        raise ValueError(f"{name} must be a dense tensor; got a tf.SparseTensor of shape {_shape_of(value)} "
                         "(densify it first, e.g. with tf.sparse.to_dense)")
    if isinstance(value, tf.RaggedTensor):
        raise ValueError(f"{name} must be a dense tensor; got a tf.RaggedTensor of shape {value.shape} "
                         "(densify it first, e.g. with its .to_tensor())")


def _shape_of(sparse):
    shape = getattr(sparse, "shape", None)
    return shape if shape is not None else list(sparse.dense_shape)


def _convert(name, value, dtype=None, allowed=FLOAT_DTYPES):
    check_dense(name, value)
    try:
        tensor = tf.convert_to_tensor(value, dtype=dtype)
    except (TypeError, ValueError) as e:
        expected = f" of dtype {dtype.name}" if dtype is not None else ""
        raise ValueError(f"{name} must be a tensor{expected}: {e}") from None
    if tensor.dtype not in allowed:
        raise ValueError(f"{name} must be {' or '.join(d.name for d in allowed)}; got {tensor.dtype.name}")
    return tensor


def _check_shape(name, tensor, expected):
    """expected: list of ints or None (unknown); compares rank and every known dimension."""
    shape = tensor.shape
    text = "[" + ", ".join("?" if e is None else str(e) for e in expected) + "]"
    if shape.rank is not None and shape.rank != len(expected):
        raise ValueError(f"{name} must have shape {text} (rank {len(expected)}); got shape {shape}")
    if shape.rank is None:
        return
    for got, want in zip(shape.as_list(), expected):
        if got is not None and want is not None and got != want:
            raise ValueError(f"{name} must have shape {text}; got shape {shape}")


def _inputs(value):
    """Float inputs [B, T, D], or integer token ids [B, T] (what a one-hot input of kernels[0]'s rows computes)."""
    check_dense("inputs", value)
    probe = value if tf.is_tensor(value) or isinstance(value, tf.Variable) else None
    if probe is None:
        try:
            probe = tf.convert_to_tensor(value)
        except (TypeError, ValueError) as e:
            raise ValueError(f"inputs must be a tensor: {e}") from None
    if probe.dtype in TOKEN_DTYPES and probe.shape.rank == 2:
        return None, probe
    if probe.dtype not in FLOAT_DTYPES:
        raise ValueError(f"inputs must be float32 or float64; got {probe.dtype.name} (integer token ids are "
                         f"accepted as a [batch, time] tensor; got shape {probe.shape})")
    inputs = _convert("inputs", probe, allowed=FLOAT_DTYPES)
    if inputs.shape.rank is not None and inputs.shape.rank != 3:
        raise ValueError(f"inputs must have shape [batch, time, features] (rank 3); got shape {inputs.shape}")
    return inputs, None


def _int32_tokens(tokens, vocabulary):
    """int64 ids as the int32 ids the op takes, after checking them against the vocabulary: a cast first would wrap
    an id past 2^31 into range. (Inside XLA, which runs no assertion, an id out of range becomes -1, which the
    reference gives a row of NaN.)"""
    from deeprnn_fast import _xla
    bad = tf.logical_or(tokens < 0, tokens >= vocabulary)
    if _xla.in_xla_context():
        return tf.cast(tf.where(bad, tf.constant(-1, tokens.dtype), tokens), tf.int32)
    first_bad = tf.concat([tf.boolean_mask(tokens, bad), tf.zeros([1], tokens.dtype)], axis=0)[0]
    message = tf.strings.format("tokens must lie in [0, {}) (the rows of kernels[0]); got {}", (vocabulary, first_bad))
    with tf.control_dependencies([tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)), [message])]):
        return tf.cast(tokens, tf.int32)


def stacked_args(cell, inputs, kernels, recurrent_kernels, biases, initial_states):
    """Checks and converts the arguments of `deeprnn_fast.stacked_*` / `deeprnn_fast.reference.stacked_*` for `cell`
    (one of CELLS); returns a StackedArgs."""
    layout = CELLS[cell]
    gates = layout.gates
    dense, tokens = _inputs(inputs)
    kernels = _as_list("kernels", kernels)
    recurrent_kernels = _as_list("recurrent_kernels", recurrent_kernels)
    biases = _as_list("biases", biases)
    layers = len(kernels)
    for name, lst in (("recurrent_kernels", recurrent_kernels), ("biases", biases)):
        if len(lst) != layers:
            raise ValueError(f"{name} must hold one tensor per layer ({layers}, as kernels); got {len(lst)}")
    kernel0 = _convert("kernels[0]", kernels[0])
    dtype = dense.dtype if dense is not None else kernel0.dtype

    def convert_all(name, lst):
        out = []
        for l, v in enumerate(lst):
            t = _convert(f"{name}[{l}]", v)
            if t.dtype != dtype:
                source = "inputs" if dense is not None else "kernels[0]"
                raise ValueError(f"{name}[{l}] must have the dtype of {source} ({dtype.name}); got {t.dtype.name}")
            out.append(t)
        return out

    kernels = convert_all("kernels", kernels)
    recurrent_kernels = convert_all("recurrent_kernels", recurrent_kernels)
    biases = convert_all("biases", biases)

    source = dense if dense is not None else tokens
    in_shape = source.shape.as_list() if source.shape.rank else [None, None, None]
    _check_shape("kernels[0]", kernels[0], [None, None])
    input_size, columns = kernels[0].shape.as_list() if kernels[0].shape.rank else (None, None)
    units = "units" if gates == 1 else f"{gates} * units"
    rows = "features" if dense is not None else "vocabulary"
    if columns is None or columns % gates or columns == 0:
        what = "" if gates == 1 else f" (the gates {layout.gate_names} side by side)"
        raise ValueError(f"kernels[0] must have a statically known shape [{rows}, {units}]{what}; "
                         f"got {kernels[0].shape}")
    hidden = columns // gates
    if dense is not None and input_size is not None and in_shape[2] is not None and input_size != in_shape[2]:
        raise ValueError(f"kernels[0] must have shape [{in_shape[2]}, {columns}] (inputs have {in_shape[2]} "
                         f"features); got shape {kernels[0].shape}")
    if dense is not None and input_size is None:
        input_size = in_shape[2]
    if tokens is not None and input_size is None:
        raise ValueError("with token inputs, kernels[0] must have a statically known number of rows (the "
                         f"vocabulary); got {kernels[0].shape}")
    if tokens is not None and tokens.dtype != tf.int32:
        tokens = _int32_tokens(tokens, input_size)
    bias_shape = [columns] if layout.bias_rows is None else [layout.bias_rows, columns]
    for l in range(layers):
        if l > 0:
            _check_shape(f"kernels[{l}]", kernels[l], [hidden, columns])
        _check_shape(f"recurrent_kernels[{l}]", recurrent_kernels[l], [hidden, columns])
        _check_shape(f"biases[{l}]", biases[l], bias_shape)

    batch = in_shape[0] if in_shape[0] is not None else tf.shape(source)[0]
    zeros = lambda: tf.zeros(tf.stack([batch, hidden]) if tf.is_tensor(batch) else [batch, hidden], dtype)  # noqa
    static_batch = batch if isinstance(batch, int) else None
    if initial_states is None:
        initial_states = [zeros() if layout.states == 1 else tuple(zeros() for _ in range(layout.states))
                          for _ in range(layers)]
    else:
        initial_states = _as_list("initial_states", initial_states)
        if len(initial_states) != layers:
            each = f"[batch, {hidden}] tensor" if layout.states == 1 else f"pair (h, c) of [batch, {hidden}] tensors"
            raise ValueError(f"initial_states must hold one {each} per layer ({layers}); got {len(initial_states)}")
        if layout.states == 1:
            initial_states = convert_all("initial_states", initial_states)
            for l, s in enumerate(initial_states):
                _check_shape(f"initial_states[{l}]", s, [static_batch, hidden])
        else:
            pairs = []
            for l, pair in enumerate(initial_states):
                if not isinstance(pair, (list, tuple)) or len(pair) != layout.states:
                    raise ValueError(f"initial_states[{l}] must be a pair (h, c) of [batch, {hidden}] tensors; got "
                                     f"{type(pair).__name__}")
                pair = tuple(convert_all(f"initial_states[{l}]", list(pair)))
                for name, s in zip("hc", pair):
                    _check_shape(f"initial_states[{l}].{name}", s, [static_batch, hidden])
                pairs.append(pair)
            initial_states = pairs
    return StackedArgs(cell, dense, tokens, kernels, recurrent_kernels, biases, initial_states, dtype, batch,
                       in_shape[1], input_size, hidden, layers)


def rnn_activation(activation):
    if activation not in RNN_ACTIVATIONS:
        raise ValueError(f"activation must be one of {RNN_ACTIVATIONS}; got {activation!r}")
    return activation


def dropout_rate(name, value):
    """A dropout rate: a real number in [0, 1), as a float; TypeError / ValueError naming the argument otherwise."""
    # A bool or a string would pass float() (True is 1.0, "0.5" 0.5), None would fail inside it without the name.
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a fraction in [0, 1) (a number); got {value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be a fraction in [0, 1); got {value!r}")
    return float(value)


@dataclass
class ModifierArgs:
    """Masks and dropout of a call (the C++ library's Modifiers, csrc/deeprnn/stacked.h), checked."""
    mask: Optional[tf.Tensor] = None                # [B, T] bool
    zero_output_for_mask: bool = False
    input_dropout: Optional[List[tf.Tensor]] = None      # L x [masks, B, in_l]
    recurrent_dropout: Optional[List[tf.Tensor]] = None  # L x [masks, B, H]
    between_dropout: Optional[tf.Tensor] = None     # [L - 1, T, B, H]

    def any(self):
        return (self.mask is not None or self.input_dropout is not None or self.recurrent_dropout is not None
                or self.between_dropout is not None)


def _dropout_list(name, value, args, widths):
    """A per-layer list of dropout masks [masks, B, width] ([B, width] is taken as one mask); masks is 1 or the
    cell's gate count, the same for every layer."""
    if value is None:
        return None
    layers, gates = args.layers, CELLS[args.cell].gates
    value = _as_list(name, value)
    if len(value) != layers:
        raise ValueError(f"{name} must hold one tensor per layer ({layers}); got {len(value)}")
    out, counts = [], set()
    static_batch = args.batch if isinstance(args.batch, int) else None
    for l, v in enumerate(value):
        t = _convert(f"{name}[{l}]", v)
        if t.dtype != args.dtype:
            raise ValueError(f"{name}[{l}] must have the dtype of the weights ({args.dtype.name}); got {t.dtype.name}")
        if t.shape.rank == 2:
            t = t[tf.newaxis]
        masks = "1" if gates == 1 else f"1 or {gates} (one per gate, in the order {CELLS[args.cell].gate_names})"
        if t.shape.rank != 3 or t.shape[0] not in (1, gates):
            raise ValueError(f"{name}[{l}] must have shape [masks, batch, {widths[l]}] with masks {masks}; got shape "
                             f"{tf.convert_to_tensor(v).shape}")
        _check_shape(f"{name}[{l}]", t, [t.shape[0], static_batch, widths[l]])
        counts.add(t.shape[0])
        out.append(t)
    if len(counts) > 1:
        raise ValueError(f"{name} must hold as many masks for every layer; got {sorted(counts)}")
    return out


def modifier_args(args, mask=None, zero_output_for_mask=False, input_dropout=None, recurrent_dropout=None,
                  between_dropout=None):
    """Checks the masks and dropout masks of a call against its StackedArgs; returns a ModifierArgs."""
    static_batch = args.batch if isinstance(args.batch, int) else None
    result = ModifierArgs(zero_output_for_mask=bool(zero_output_for_mask))
    if mask is not None:
        check_dense("mask", mask)
        try:
            mask = tf.convert_to_tensor(mask)
        except (TypeError, ValueError) as e:
            raise ValueError(f"mask must be a [batch, time] tensor of booleans: {e}") from None
        if mask.dtype != tf.bool and not (mask.dtype.is_integer or mask.dtype.is_floating):
            raise ValueError(f"mask must be a [batch, time] tensor of booleans; got dtype {mask.dtype.name}")
        _check_shape("mask", mask, [static_batch, args.time])
        result.mask = tf.cast(mask, tf.bool) if mask.dtype != tf.bool else mask
    widths = [args.input_size] + [args.hidden] * (args.layers - 1)
    result.input_dropout = _dropout_list("input_dropout", input_dropout, args, widths)
    result.recurrent_dropout = _dropout_list("recurrent_dropout", recurrent_dropout, args, [args.hidden] * args.layers)
    if between_dropout is not None:
        if args.layers < 2:
            raise ValueError("between_dropout needs at least two layers (it drops a layer's output on its way into "
                             "the next)")
        t = _convert("between_dropout", between_dropout)
        if t.dtype != args.dtype:
            raise ValueError(f"between_dropout must have the dtype of the weights ({args.dtype.name}); got "
                             f"{t.dtype.name}")
        _check_shape("between_dropout", t, [args.layers - 1, args.time, static_batch, args.hidden])
        result.between_dropout = t
    return result
