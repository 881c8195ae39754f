"""Argument checks shared by the fused op wrapper and the reference.

Every error names the argument and the shape or dtype that was expected, so that bad input never reaches a kernel.
Dimensions that are unknown at trace time are left to the op kernel, which checks them again at run time.
"""
from dataclasses import dataclass
from typing import List, Optional

import tensorflow as tf

ACTIVATIONS = ("tanh", "relu")
FLOAT_DTYPES = (tf.float32, tf.float64)


@dataclass
class StackedRnnArgs:
    inputs: tf.Tensor
    kernels: List[tf.Tensor]
    recurrent_kernels: List[tf.Tensor]
    biases: List[tf.Tensor]
    initial_states: List[tf.Tensor]
    activation: str
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


def _convert(name, value, dtype=None):
    check_dense(name, value)
    try:
        tensor = tf.convert_to_tensor(value, dtype=dtype)
    except (TypeError, ValueError) as e:
        expected = f" of dtype {dtype.name}" if dtype is not None else ""
        raise ValueError(f"{name} must be a tensor{expected}: {e}") from None
    if tensor.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be float32 or float64; got {tensor.dtype.name}")
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


def _stacked_args(inputs, kernels, recurrent_kernels, biases, initial_states, gates, bias_rows):
    """The checks both cells share. `gates` column blocks of H per weight matrix (1 for the RNN, 3 for the GRU's
    z | r | n); biases are [H * gates] when bias_rows is None, else [bias_rows, H * gates].

    Returns (inputs, kernels, recurrent_kernels, biases, initial_states, dtype, batch, time, input_size, hidden,
    layers) with every tensor converted and checked."""
    inputs = _convert("inputs", inputs)
    dtype = inputs.dtype
    kernels = _as_list("kernels", kernels)
    recurrent_kernels = _as_list("recurrent_kernels", recurrent_kernels)
    biases = _as_list("biases", biases)
    layers = len(kernels)
    for name, lst in (("recurrent_kernels", recurrent_kernels), ("biases", biases)):
        if len(lst) != layers:
            raise ValueError(f"{name} must hold one tensor per layer ({layers}, as kernels); got {len(lst)}")

    def convert_all(name, lst):
        out = []
        for l, v in enumerate(lst):
            t = _convert(f"{name}[{l}]", v)
            if t.dtype != dtype:
                raise ValueError(f"{name}[{l}] must have the dtype of inputs ({dtype.name}); got {t.dtype.name}")
            out.append(t)
        return out

    kernels = convert_all("kernels", kernels)
    recurrent_kernels = convert_all("recurrent_kernels", recurrent_kernels)
    biases = convert_all("biases", biases)

    if inputs.shape.rank is not None and inputs.shape.rank != 3:
        raise ValueError(f"inputs must have shape [batch, time, features] (rank 3); got shape {inputs.shape}")
    in_shape = inputs.shape.as_list() if inputs.shape.rank else [None, None, None]
    _check_shape("kernels[0]", kernels[0], [None, None])
    input_size, columns = kernels[0].shape.as_list() if kernels[0].shape.rank else (None, None)
    units = "units" if gates == 1 else f"{gates} * units"
    if columns is None or columns % gates or columns == 0:
        what = "" if gates == 1 else " (the gates z, r, n side by side)"
        raise ValueError(f"kernels[0] must have a statically known shape [features, {units}]{what}; "
                         f"got {kernels[0].shape}")
    hidden = columns // gates
    if input_size is not None and in_shape[2] is not None and input_size != in_shape[2]:
        raise ValueError(f"kernels[0] must have shape [{in_shape[2]}, {columns}] (inputs have {in_shape[2]} "
                         f"features); got shape {kernels[0].shape}")
    input_size = input_size if input_size is not None else in_shape[2]
    bias_shape = [columns] if bias_rows is None else [bias_rows, columns]
    for l in range(layers):
        if l > 0:
            _check_shape(f"kernels[{l}]", kernels[l], [hidden, columns])
        _check_shape(f"recurrent_kernels[{l}]", recurrent_kernels[l], [hidden, columns])
        _check_shape(f"biases[{l}]", biases[l], bias_shape)

    batch = in_shape[0] if in_shape[0] is not None else tf.shape(inputs)[0]
    if initial_states is None:
        initial_states = [tf.zeros(tf.stack([batch, hidden]) if tf.is_tensor(batch) else [batch, hidden], dtype)
                          for _ in range(layers)]
    else:
        initial_states = _as_list("initial_states", initial_states)
        if len(initial_states) != layers:
            raise ValueError(f"initial_states must hold one [batch, {hidden}] tensor per layer ({layers});"
                             f" got {len(initial_states)}")
        initial_states = convert_all("initial_states", initial_states)
        static_batch = batch if isinstance(batch, int) else None
        for l, s in enumerate(initial_states):
            _check_shape(f"initial_states[{l}]", s, [static_batch, hidden])
    return (inputs, kernels, recurrent_kernels, biases, initial_states, dtype, batch, in_shape[1], input_size, hidden,
            layers)


def stacked_rnn_args(inputs, kernels, recurrent_kernels, biases, initial_states, activation):
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}; got {activation!r}")
    (inputs, kernels, recurrent_kernels, biases, initial_states, dtype, batch, time, input_size, hidden,
     layers) = _stacked_args(inputs, kernels, recurrent_kernels, biases, initial_states, gates=1, bias_rows=None)
    return StackedRnnArgs(inputs, kernels, recurrent_kernels, biases, initial_states, activation, dtype, batch, time,
                          input_size, hidden, layers)


@dataclass
class StackedGruArgs:
    inputs: tf.Tensor
    kernels: List[tf.Tensor]            # [in, 3H]: gates z | r | n side by side
    recurrent_kernels: List[tf.Tensor]  # [H, 3H]
    biases: List[tf.Tensor]             # [2, 3H]: input bias, recurrent bias
    initial_states: List[tf.Tensor]
    dtype: tf.DType
    batch: object  # int, or a scalar tensor when the batch size is only known at run time
    time: Optional[int]
    input_size: int
    hidden: int
    layers: int


def stacked_gru_args(inputs, kernels, recurrent_kernels, biases, initial_states):
    """The checks of stacked_rnn_args for the GRU's shapes: kernels [in, 3H], recurrent kernels [H, 3H], biases
    [2, 3H] (Keras' GRUCell with reset_after=True)."""
    return StackedGruArgs(*_stacked_args(inputs, kernels, recurrent_kernels, biases, initial_states, gates=3,
                                         bias_rows=2))
