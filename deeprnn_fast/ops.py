"""The fused stacked-RNN ops, one per cell: the public wrappers and their registered gradients.

Split of work between the ops and Python: the op does everything that runs once per (layer, time step) - the
wavefront of fused cells forward, the reverse wavefront backward, and the weight-gradient products over all steps -
because those are what per-op dispatch makes slow. Python only checks arguments, stacks the initial states into one
tensor and splits the final states back into a list.

Every wrapper takes dense inputs [B, T, D] or integer token ids [B, T]: a token input computes what a one-hot input
of kernels[0]'s rows computes, without the one-hot tensor and its product (kernels[0] is then [vocabulary, G*H]), and
its gradient is a sum of rows. Every wrapper falls back to the same-named function of `deeprnn_fast.reference`, with
one warning, when the compiled library is unavailable, and, on a GPU, when the CUDA kernels fail their self-check
(deeprnn_fast/gpu_self_check.py, run once per device, cell and dtype before the first fused call there).
"""
import threading
import warnings

import numpy as np
import tensorflow as tf

from deeprnn_fast import _gpu_self_check_tf, _library, _validate, _xla, reference

__all__ = ["stacked_rnn", "stacked_gru", "stacked_lstm", "dropout_mask", "build_info", "SecondOrderGradientError"]


class SecondOrderGradientError(NotImplementedError, LookupError):
    """Differentiating the fused ops' gradients (second-order gradients, or forward-mode autodiff, which TensorFlow
    builds from them). A LookupError as well, as TensorFlow's own error for an op without a gradient, so that code
    catching that still catches this."""

    # Inside tf.function, AutoGraph re-raises an error as its own type only where that type's __init__ is
    # Exception's (else it becomes a StagingError); the inherited one is the same function in effect.
    __init__ = Exception.__init__


def build_info():
    """How the compiled library was built: the TensorFlow version, whether CUDA kernels were built and for which
    targets, whether the library can be loaded in this process (with the reason when it cannot), and the CPU
    instruction set its kernels run on here."""
    info = _library.read_build_info()
    result = {
        "built": info is not None,
        "tensorflow_version": info.get("tensorflow_version") if info else None,
        "running_tensorflow_version": tf.__version__,
        "cuda": bool(info and info.get("cuda")),
        "cuda_archs": list(info.get("cuda_archs", [])) if info else [],
        "library_path": _library.LIBRARY_PATH,
        "cpu_isa": _library.cpu_isa(),
    }
    try:
        _library.library()
        result["loadable"], result["error"] = True, None
    except _library.LibraryUnavailable as e:
        result["loadable"], result["error"] = False, str(e)
    return result


# The op of each cell in the compiled library, and the attributes that select the cell.
_FORWARD_OPS = {"tanh": "deeprnn_fast_stacked_rnn", "relu": "deeprnn_fast_stacked_rnn",
                "gru": "deeprnn_fast_stacked_gru", "lstm": "deeprnn_fast_stacked_lstm"}
_GRAD_OPS = {"DeeprnnFast>StackedRnn": "deeprnn_fast_stacked_rnn_grad",
             "DeeprnnFast>StackedGru": "deeprnn_fast_stacked_gru_grad",
             "DeeprnnFast>StackedLstm": "deeprnn_fast_stacked_lstm_grad"}


def _cell_attrs(cell):
    return {"activation": cell} if cell in _validate.RNN_ACTIVATIONS else {}


_xla_warned = set()
_xla_lock = threading.Lock()


def _warn_once_under_xla(cell):
    with _xla_lock:
        first = cell not in _xla_warned
        _xla_warned.add(cell)
    if first:
        warnings.warn(f"deeprnn_fast.stacked_{'rnn' if cell in _validate.RNN_ACTIVATIONS else cell} is being traced "
                      "for XLA (jit_compile=True), which cannot compile the fused op: running the plain-TensorFlow "
                      "reference there instead (same results; usually slower than the fused op without XLA)",
                      RuntimeWarning, stacklevel=4)


def _fused(cell, inputs, kernels, recurrent_kernels, biases, initial_states, modifiers):
    reference_function = {"tanh": reference.stacked_rnn, "relu": reference.stacked_rnn,
                          "gru": reference.stacked_gru, "lstm": reference.stacked_lstm}[cell]

    def fallback(*arguments, **mods):
        return reference_function(*arguments, **_cell_attrs(cell), **mods)

    if _xla.in_xla_context():
        _warn_once_under_xla(cell)
        return fallback(inputs, kernels, recurrent_kernels, biases, initial_states, **modifiers)
    lib = _library.library_or_warn()
    if lib is None:
        return fallback(inputs, kernels, recurrent_kernels, biases, initial_states, **modifiers)
    args = _validate.stacked_args(cell, inputs, kernels, recurrent_kernels, biases, initial_states)

    def fused_op(*arguments, **mods):
        return _fused_op(lib, cell, _validate.stacked_args(cell, *arguments), mods)

    # On a GPU, the CUDA kernels first check themselves against the reference (once per device, cell and dtype).
    if not _gpu_self_check_tf.use_fused(cell, args.dtype, fused_op, fallback):
        return fallback(inputs, kernels, recurrent_kernels, biases, initial_states, **modifiers)
    return _fused_op(lib, cell, args, modifiers)


def _fused_op(lib, cell, args, modifiers):
    """The compiled op on validated arguments."""
    mods = _validate.modifier_args(args, **modifiers)
    lstm = _validate.CELLS[cell].states > 1
    states = tf.stack([tf.stack(pair) for pair in args.initial_states] if lstm else args.initial_states)
    if args.tokens is not None:
        dense, tokens = tf.zeros(tf.stack([tf.shape(args.tokens)[0], tf.shape(args.tokens)[1], 0]), args.dtype), \
            [args.tokens]
    else:
        dense, tokens = args.inputs, []
    results = getattr(lib, _FORWARD_OPS[cell])(
        dense, args.kernels, args.recurrent_kernels, args.biases, states, tokens,
        mask=[] if mods.mask is None else [mods.mask], input_dropout=mods.input_dropout or [],
        recurrent_dropout=mods.recurrent_dropout or [],
        between_dropout=[] if mods.between_dropout is None else [mods.between_dropout],
        zero_output_for_mask=mods.zero_output_for_mask, **_cell_attrs(cell))
    outputs, final_states = results[0], tf.unstack(results[1], num=args.layers)
    if lstm:
        final_states = [tuple(tf.unstack(pair, num=2)) for pair in final_states]
    return outputs, final_states


_MODIFIERS_DOC = """
    Keyword-only modifiers (all optional; what Keras' masking and the dropouts do, inside the fused op):
      mask: [B, T] booleans (Keras' masking): a row keeps every layer's states at a step it does not take, and its
        output repeats the last one (zeros before its first step taken).
      zero_output_for_mask: the output of a masked step is zeros instead (as keras.layers.RNN's argument).
      input_dropout: list of L tensors [masks, B, in_l] of 0 and 1 / (1 - rate): Keras' `dropout`, multiplying each
        cell's input before its input product, the same mask at every step; masks is 1, or the gate count for one
        mask per gate (Keras' implementation 1, used by its GRU and LSTM cells with recurrent dropout). With token
        inputs, layer 0's masks are over the vocabulary (the one-hot input's columns).
      recurrent_dropout: list of L tensors [masks, B, H]: Keras' `recurrent_dropout`, multiplying h_{t-1} in the
        recurrent product only.
      between_dropout: [L - 1, T, B, H]: torch.nn.RNN's `dropout`, a fresh mask for every step on each layer's
        output on its way into the next layer.
    No gradient flows to the masks."""


def stacked_rnn(inputs, kernels, recurrent_kernels, biases, initial_states=None, activation="tanh", **modifiers):
    """Fused stacked RNN: H_t^(l) = phi(H_t^(l-1) W_x^(l) + H_{t-1}^(l) W_h^(l) + b^(l)).

    Args:
      inputs: [B, T, D] float32 or float64 tensor (batch major, as in Keras), or [B, T] integer token ids.
      kernels: list of L tensors, [D, H] for the first layer and [H, H] for the others.
      recurrent_kernels: list of L tensors [H, H].
      biases: list of L tensors [H].
      initial_states: None (zeros) or a list of L tensors [B, H].
      activation: "tanh" or "relu".

    Returns:
      (outputs, final_states): the top layer's sequence [B, T, H] and a list of L final states [B, H].
      Differentiable with respect to every float tensor argument.
    """
    return _fused(_validate.rnn_activation(activation), inputs, kernels, recurrent_kernels, biases, initial_states,
                  modifiers)


def stacked_gru(inputs, kernels, recurrent_kernels, biases, initial_states=None, **modifiers):
    """Fused stacked GRU: Keras' GRUCell with reset_after=True (its default, the cuDNN-compatible form), per layer

        z = sigmoid(x Wx_z + bx_z + h Wh_z + bh_z),  r = sigmoid(x Wx_r + bx_r + h Wh_r + bh_r),
        n = tanh(x Wx_n + bx_n + r * (h Wh_n + bh_n)),  h' = z * h + (1 - z) * n.

    Args:
      inputs: [B, T, D] float32 or float64 tensor (batch major, as in Keras), or [B, T] integer token ids.
      kernels: list of L tensors, [D, 3H] for the first layer and [H, 3H] for the others: Keras' `kernel`, the
        gates' columns side by side in the order z, r, n.
      recurrent_kernels: list of L tensors [H, 3H]: Keras' `recurrent_kernel`.
      biases: list of L tensors [2, 3H]: Keras' `bias`, the input bias in row 0 and the recurrent bias in row 1.
      initial_states: None (zeros) or a list of L tensors [B, H].

    Returns:
      (outputs, final_states): the top layer's sequence [B, T, H] and a list of L final states [B, H].
      Differentiable with respect to every float tensor argument.
    """
    return _fused("gru", inputs, kernels, recurrent_kernels, biases, initial_states, modifiers)


def stacked_lstm(inputs, kernels, recurrent_kernels, biases, initial_states=None, **modifiers):
    """Fused stacked LSTM: Keras' LSTMCell (sigmoid recurrent activation, tanh activation), per layer

        [i, f, g, o] = x Wx + h Wh + b (gate order i, f, c, o),  i, f, o sigmoid, g tanh,
        c' = f * c + i * g,  h' = o * tanh(c').

    Args:
      inputs: [B, T, D] float32 or float64 tensor (batch major, as in Keras), or [B, T] integer token ids.
      kernels: list of L tensors, [D, 4H] for the first layer and [H, 4H] for the others: Keras' `kernel`.
      recurrent_kernels: list of L tensors [H, 4H]: Keras' `recurrent_kernel`.
      biases: list of L tensors [4H]: Keras' `bias`.
      initial_states: None (zeros) or a list of L pairs (h, c) of [B, H] tensors.

    Returns:
      (outputs, final_states): the top layer's h sequence [B, T, H] and a list of L pairs (h, c) of [B, H].
      Differentiable with respect to every float tensor argument.
    """
    return _fused("lstm", inputs, kernels, recurrent_kernels, biases, initial_states, modifiers)


def dropout_mask(shape, rate, seed, dtype=tf.float32):
    """A dropout mask: 0 where an element is dropped, 1 / (1 - rate) where it is kept, each element kept with
    probability 1 - rate, independently of the others. What the layers multiply with for every dropout they apply.

    The mask is exactly `deeprnn_fast.reference.dropout_mask(shape, rate, seed, dtype)`: TensorFlow's stateless
    uniform bits for `seed` (`tf.random.stateless_uniform(..., dtype=tf.uint32)`, Philox4x32-10), thresholded. The
    compiled op draws the same bits several times faster than TensorFlow's random ops on the CPU; in an XLA-compiled
    function, without the library, or on a GPU, the reference draws them, so every path gives the same masks.

    Args:
      shape: the mask's shape (a list or a 1-D integer tensor).
      rate: the probability of dropping an element, a Python number in [0, 1).
      seed: a stateless seed: [2] int32/int64 (a Keras SeedGenerator's next()), or a keras.random.SeedGenerator,
        which is advanced as Keras' own random ops advance it.
      dtype: float32 or float64.
    """
    rate = _validate.dropout_rate("rate", rate)
    if np.float32(rate) >= 1:
        raise ValueError(f"rate must be a fraction in [0, 1); got {rate!r}, which is 1 in float32")
    dtype = tf.as_dtype(dtype)
    if dtype not in (tf.float32, tf.float64):
        raise TypeError(f"dropout_mask's dtype must be float32 or float64; got {dtype.name}")
    if hasattr(seed, "next") and callable(seed.next):  # a keras.random.SeedGenerator
        seed = seed.next()
    seed = tf.convert_to_tensor(seed)
    if seed.dtype not in (tf.int32, tf.int64) or seed.shape.rank not in (None, 1) or seed.shape[0] not in (None, 2):
        raise ValueError(f"dropout_mask's seed must be a [2] int32 or int64 tensor; got {seed.dtype.name} "
                         f"{seed.shape}")
    if _xla.in_xla_context() or _gpus_present():
        return reference.dropout_mask(shape, rate, seed, dtype)
    try:
        lib = _library.library()
    except _library.LibraryUnavailable:
        return reference.dropout_mask(shape, rate, seed, dtype)
    return lib.deeprnn_fast_dropout_mask(shape, seed, rate=rate, dtype=dtype)


_gpus = []


def _gpus_present():
    """Whether this process sees a GPU (asked once). The mask op has a CPU kernel only: with a GPU about, TensorFlow's
    own stateless ops draw the same masks where the model runs, without a copy from the host."""
    if not _gpus:
        _gpus.append(bool(tf.config.list_logical_devices("GPU")))
    return _gpus[0]


for _function in (stacked_rnn, stacked_gru, stacked_lstm):
    _function.__doc__ = _function.__doc__.rstrip() + "\n" + _MODIFIERS_DOC


def _stacked_grad(op, grad_outputs, grad_final_states, *_grad_saved):
    """One fused backward op for every cell's forward op. The activations and gates outputs exist for this
    function only; their gradients are ignored. An input whose gradient nobody asked for (a constant, tokens)
    costs nothing: the tape says which (skip_input_indices), and the op then skips dX."""
    n = op.get_attr("N")
    inputs = op.inputs[0]
    kernels = list(op.inputs[1:1 + n])
    recurrent_kernels = list(op.inputs[1 + n:1 + 2 * n])
    initial_states = op.inputs[1 + 3 * n]
    # The optional lists after the initial states, in the op's order.
    lists, start = {}, 2 + 3 * n
    for name, count in (("tokens", "num_tokens"), ("mask", "num_masks"), ("input_dropout", "num_input_dropout"),
                        ("recurrent_dropout", "num_recurrent_dropout"), ("between_dropout", "num_between_dropout")):
        size = op.get_attr(count)
        lists[name] = list(op.inputs[start:start + size])
        start += size
    tokens = lists["tokens"]
    has_tokens = bool(tokens)
    skip = getattr(op, "skip_input_indices", None) or ()
    compute_grad_inputs = not has_tokens and 0 not in skip
    attrs = {"activation": op.get_attr("activation")} if op.type == "DeeprnnFast>StackedRnn" else {}
    saved = list(op.outputs[2:])  # activations, and the gates of a cell that saves them
    grads = getattr(_library.library(), _GRAD_OPS[op.type])(
        inputs, kernels, recurrent_kernels, initial_states, *saved, grad_outputs, grad_final_states, **lists,
        compute_grad_inputs=compute_grad_inputs, zero_output_for_mask=op.get_attr("zero_output_for_mask"), **attrs)
    grad_inputs, grad_kernels, grad_recurrent, grad_biases, grad_initial = grads
    return ([grad_inputs if compute_grad_inputs else None] + list(grad_kernels) + list(grad_recurrent)
            + list(grad_biases) + [grad_initial] + [None] * sum(len(v) for v in lists.values()))


def _no_second_order_gradient(op, *grads):
    """The gradient of every gradient op: it says what is missing and what to use instead."""
    forward = op.type[:-len("Grad")]
    function = {"DeeprnnFast>StackedRnn": "stacked_rnn", "DeeprnnFast>StackedGru": "stacked_gru",
                "DeeprnnFast>StackedLstm": "stacked_lstm"}[forward]
    raise SecondOrderGradientError(
        f"second-order gradients (and forward-mode autodiff) of the fused {forward} op are not implemented: its "
        f"gradient op {op.type} has no gradient; use deeprnn_fast.reference.{function}, the same maths in plain "
        "TensorFlow, where they are needed")


for _op_type in _GRAD_OPS:
    tf.RegisterGradient(_op_type)(_stacked_grad)
    tf.RegisterGradient(_op_type + "Grad")(_no_second_order_gradient)
