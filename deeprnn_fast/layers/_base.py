"""What every stacked recurrent Keras layer of this package shares, whatever its cell.

`StackedRecurrentBase` behaves as `keras.layers.RNN` over a stack of identical cells: `initial_state=`, masks,
`return_sequences`, `return_state`, `go_backwards`, `stateful` with `reset_state()`, and weights in the order of that
Keras layer, for cells with one state per layer (the RNN, the GRU) or several (the LSTM's h and c). `dropout` and
`recurrent_dropout` are Keras' (one mask per cell and call on the cell's input and on h_{t-1}, as many masks as
Keras' cell draws); it adds dropout between layers (`between_layer_dropout`, as `torch.nn.RNN(num_layers=L,
dropout=p)`), token inputs (`vocabulary_size`), casts around the fused op for mixed precision, and picks for each call
the fused op (masks and every dropout included), the plain-TF reference of the same maths (inside an XLA-compiled
function, where the fused op cannot run) or the step-by-step loop of `_stepwise` (only for settings the fused maths
cannot express).

A subclass (one per cell type) supplies the names of a layer's states, the name of its fused function (in
`deeprnn_fast.ops` and `deeprnn_fast.reference` alike), and four methods: the weights of one layer, whether the fused
op supports its settings, the fused call itself, and one cell step for the loop.

Config versions: version 1 (configs without `config_version`, written before Keras' dropout was supported) stored
the between-layer dropout as `dropout`; `from_config` loads it as `between_layer_dropout`, so an old model trains as it
did. Version 2 (this one) stores `dropout` (Keras'), `recurrent_dropout` and `between_layer_dropout`.
"""
import inspect
import warnings

import keras
import tensorflow as tf
# Keras' own RNN creates its state variables inside this scope, which keeps them out of `layer.weights`, so that
# get_weights() of a stateful layer has the same entries as that of a stateless one (and of keras.layers.RNN).
from keras.src.utils.tracking import DotNotTrackScope

from deeprnn_fast import _validate
from deeprnn_fast.layers import _fused
from deeprnn_fast.layers._call_arguments import CallArgumentChecks
from deeprnn_fast.layers._stepwise import run_stacked_cells
from deeprnn_fast._xla import in_xla_context


def fresh_initializer(initializer):
    """A new instance of an initializer for each weight. Keras 3 initializers draw their seed once, at construction,
    so one instance shared by the weights of several layers would give same-shaped weights identical values (Keras'
    own stacks build one cell, and so one initializer, per layer)."""
    return initializer.__class__.from_config(initializer.get_config())


# The config format get_config writes; see the module docstring.
CONFIG_VERSION = 2


def input_product(x, kernel, mask=None):
    """(x * mask) W for a step's float inputs [B, D] (mask [B, D] or None); for token ids [B], the rows of W they
    pick, scaled by the mask at each row's token, which is what their one-hot vectors compute."""
    if not x.dtype.is_integer:
        return tf.matmul(x if mask is None else x * mask, kernel)
    rows = tf.gather(kernel, x)
    if mask is None:
        return rows
    return rows * tf.gather(mask, x[:, tf.newaxis], batch_dims=1)


def gate_products(x, kernel, masks, gates):
    """x W for a kernel of `gates` column blocks, with Keras' dropout masks: none (None), one mask for every block,
    or one mask per block (Keras' implementation 1), block g computed from x * masks[g]."""
    if masks is None or len(masks) == 1:
        return input_product(x, kernel, None if masks is None else masks[0])
    return tf.concat([input_product(x, block, m) for block, m in zip(tf.split(kernel, gates, axis=1), masks)],
                     axis=-1)


def _check_vocabulary_size(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"vocabulary_size must be None (float inputs) or a positive integer (the number of token "
                         f"ids); got {value!r}")
    return value


def check_implementation(value):
    """Keras' GRU and LSTM `implementation`: how Keras splits its products (1, 2; 0 is Keras 2's legacy value, which
    Keras 3 still takes), never what they compute; accepted and kept for compatibility."""
    if isinstance(value, bool) or value not in (0, 1, 2):
        raise ValueError(f"implementation must be 1 or 2 (as on Keras' GRU and LSTM; 0, Keras 2's legacy value, is "
                         f"accepted too); got {value!r}")
    return value


def check_use_cudnn(layer_name, value):
    """Keras' GRU and LSTM `use_cudnn`: "auto" and False are honoured (these layers never use cuDNN), True cannot be."""
    if value not in ("auto", True, False):
        raise ValueError(f"use_cudnn must be 'auto', True or False; got {value!r}")
    if value is True:
        raise ValueError(f"{layer_name} runs its own fused op and never cuDNN, so use_cudnn=True cannot be honoured; "
                         "pass use_cudnn='auto' (the default) or False")
    return value


_FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def _check_dtype(name, dtype):
    """The `dtype` argument resolved as Keras will, refused unless it computes and stores in floating point: an
    integer or string policy is otherwise accepted here and fails only when the layer is called."""
    if dtype is None:
        return
    try:
        policy = keras.dtype_policies.get(dtype)
    except (TypeError, ValueError):
        policy = None
    if policy is None or policy.compute_dtype not in _FLOAT_DTYPES or policy.variable_dtype not in _FLOAT_DTYPES:
        got = repr(dtype) if policy is None else f"{dtype!r} (computing in {policy.compute_dtype})"
        raise ValueError(f"{name} dtype must be a floating-point dtype or Keras dtype policy ('float32', 'float64', "
                         f"'mixed_float16', 'mixed_bfloat16', ...); got {got}")


def base_arguments(arguments):
    """The arguments of StackedRecurrentBase.__init__ among a layer's own, from `locals()` taken first thing in the
    layer's __init__: every layer keeps Keras' explicit signature (for help() and for Keras' argument checks) and
    hands the shared part on in one call."""
    names = inspect.signature(StackedRecurrentBase.__init__).parameters
    return {name: arguments[name] for name in names if name not in ("self", "kwargs") and name in arguments}


class StackedRecurrentBase(CallArgumentChecks, keras.layers.Layer):
    """Keras `RNN` semantics for a stack of `num_layers` cells of `units` units; see `StackedRNN` for the arguments."""

    # What a subclass sets: the states of one layer, in Keras' order, and the name of its function in
    # deeprnn_fast.ops and deeprnn_fast.reference.
    state_names = ("h",)
    fused_function_name = None

    def __init__(self, units, num_layers, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0,
                 return_sequences=False, return_state=False, go_backwards=False, stateful=False, unroll=False,
                 zero_output_for_mask=False, seed=None, vocabulary_size=None, between_layer_dropout=0.0, **kwargs):
        for name, value in (("units", units), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        _check_dtype(type(self).__name__, kwargs.get("dtype"))
        super().__init__(**kwargs)
        self.units = units
        self.num_layers = num_layers
        self.vocabulary_size = _check_vocabulary_size(vocabulary_size)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.recurrent_constraint = keras.constraints.get(recurrent_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.dropout = _validate.dropout_rate("dropout", dropout)
        self.recurrent_dropout = _validate.dropout_rate("recurrent_dropout", recurrent_dropout)
        self.between_layer_dropout = _validate.dropout_rate("between_layer_dropout", between_layer_dropout)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        # Only how Keras builds its loop; it never changes a result, and neither path here needs it.
        self.unroll = bool(unroll)
        # Set by keras.layers.Bidirectional (to return_sequences), as on keras.layers.RNN.
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        # Inside an XLA cluster the layer runs the plain-TF reference instead of the fused op (see call), so a model
        # holding it may be compiled with XLA, by jit_compile=True or by Keras' "auto".
        self.supports_jit = True
        self.states = None
        self.input_size = None
        with DotNotTrackScope():
            self._cell_weights = None
            self._fallbacks_warned = set()

    # ---- what a subclass supplies -----------------------------------------------------------------------------

    def _build_cell_weights(self, layer, input_size):
        """Creates layer `layer`'s weights (add_weight, in Keras' order, the kernel first) and returns them as a
        tuple."""
        raise NotImplementedError

    # ---- for the subclasses ------------------------------------------------------------------------------------

    def _add_kernels(self, layer, input_size, gates):
        """Layer `layer`'s kernel [input_size, gates * units] and recurrent kernel [units, gates * units], each with
        a fresh instance of its initializer, its regularizer and its constraint (Keras' names and order)."""
        width = gates * self.units
        kernel = self.add_weight(shape=(input_size, width), name=f"kernel_{layer}",
                                 initializer=fresh_initializer(self.kernel_initializer),
                                 regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        recurrent_kernel = self.add_weight(shape=(self.units, width), name=f"recurrent_kernel_{layer}",
                                           initializer=fresh_initializer(self.recurrent_initializer),
                                           regularizer=self.recurrent_regularizer,
                                           constraint=self.recurrent_constraint)
        return kernel, recurrent_kernel

    def _fused_unsupported_reason(self):
        """None where the fused op supports this layer's settings, else a short reason for the warning."""
        raise NotImplementedError

    def _run_fused(self, function, inputs, cell_weights, initial_states, modifiers):
        """`function` (the cell's function of deeprnn_fast.ops or of deeprnn_fast.reference) over the cells
        `cell_weights` (tuples as built, cast to the op's dtype), from initial_states as that function takes them,
        with `modifiers` (its keyword arguments mask=, input_dropout=, ...): (outputs, final states as it returns
        them)."""
        raise NotImplementedError

    def _cell_step(self, weights, input_masks, recurrent_masks):
        """One cell of the step-by-step loop: a callable (x_t, states) -> (h_t, new_states), states being the tuple
        of the layer's states (state_names); x_t is [B, D] floats, or [B] token ids in layer 0 of a layer with
        vocabulary_size (see input_product). input_masks / recurrent_masks: None, or the layer's Keras dropout masks
        (a list of 1 or `gates` tensors [B, width], see gate_products) on x_t / on h_{t-1} in the recurrent
        product."""
        raise NotImplementedError

    # The number of gate blocks of the cell's kernels (1 for the RNN).
    gates = 1

    def _dropout_mask_count(self):
        """How many masks Keras' cell draws for each of its dropouts: SimpleRNNCell one; GRUCell and LSTMCell one in
        implementation 2, one per gate in implementation 1, which recurrent_dropout > 0 forces."""
        return 1

    # ---- building ---------------------------------------------------------------------------------------------

    def build(self, sequences_shape, initial_state_shape=None):
        name = type(self).__name__
        shape = tuple(sequences_shape)
        if self.vocabulary_size is not None:
            if len(shape) != 2:
                raise ValueError(f"{name} with vocabulary_size={self.vocabulary_size} takes token ids of shape "
                                 f"[batch, time] (rank 2); got shape {shape}")
            self.input_size = self.vocabulary_size
        else:
            if len(shape) != 3:
                raise ValueError(f"{name} expects inputs of shape [batch, time, features] (rank 3); got shape "
                                 f"{shape}")
            if shape[-1] is None:
                raise ValueError(f"{name} needs the number of input features (the last dimension of "
                                 f"[batch, time, features]) when it is built; got shape {shape}")
            self.input_size = int(shape[-1])
        weights = [self._build_cell_weights(l, self.input_size if l == 0 else self.units)
                   for l in range(self.num_layers)]
        with DotNotTrackScope():
            self._cell_weights = tuple(weights)
        if self.stateful:
            if shape[0] is None:
                raise ValueError(f"A stateful {name} needs a static batch size (pass batch_size= or "
                                 f"batch_shape= to keras.Input); got inputs of shape {shape}")
            self._create_state_variables(int(shape[0]))

    def _create_state_variables(self, batch_size):
        # Flat, in Keras' order: layer 0's states, then layer 1's, ... (as tree.flatten of keras.layers.RNN.states).
        names = [f"state_{l}" if len(self.state_names) == 1 else f"state_{l}_{s}"
                 for l in range(self.num_layers) for s in self.state_names]
        with DotNotTrackScope():
            self.states = [keras.Variable(tf.zeros([batch_size, self.units]), trainable=False,
                                          dtype=self.variable_dtype, name=name) for name in names]

    def reset_state(self):
        """Zeroes the state variables of a stateful layer."""
        if self.states is not None:
            for variable in self.states:
                variable.assign(tf.zeros_like(variable))

    def reset_states(self):  # the name keras.layers.RNN also answers to
        self.reset_state()

    # ---- shapes and masks -------------------------------------------------------------------------------------

    @property
    def _num_states(self):
        return self.num_layers * len(self.state_names)

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, time = sequences_shape[0], sequences_shape[1]
        output = (batch, time, self.units) if self.return_sequences else (batch, self.units)
        if self.return_state:
            return (output,) + tuple((batch, self.units) for _ in range(self._num_states))
        return output

    def compute_mask(self, inputs, mask=None):
        # As keras.layers.RNN: the sequence output keeps the input's mask; states have none.
        mask = keras.tree.flatten(mask)[0] if mask is not None else None
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * self._num_states
        return output_mask

    # ---- the call ---------------------------------------------------------------------------------------------

    def call(self, sequences, initial_state=None, mask=None, training=None):
        in_xla = in_xla_context()
        inputs = self._checked_inputs(sequences)
        # The op has float32 and float64 kernels: half-precision policies compute in float32 and cast back.
        op_dtype = tf.float64 if self.compute_dtype == "float64" else tf.float32
        tokens = self.vocabulary_size is not None
        x = self._token_ids(inputs, in_xla) if tokens else tf.cast(inputs, op_dtype)
        states = self._initial_states(initial_state, inputs, op_dtype)
        mask = self._checked_mask(mask, inputs)
        if self.go_backwards:
            # Keras processes the reversed sequence and returns the outputs in that (reversed) order.
            x = tf.reverse(x, [1])
            mask = tf.reverse(mask, [1]) if mask is not None else None
        weights = [tuple(None if w is None else tf.cast(w, op_dtype) for w in cell) for cell in self._cell_weights]
        if tokens and in_xla:
            weights[0] = (_poisoned_kernel(weights[0][0]),) + weights[0][1:]
        training = bool(training) if training is not None else False
        modifiers = self._modifiers(x, mask, training, op_dtype)

        reason = self._stepwise_reason(inputs.shape[1] is not None, in_xla)
        if reason is not None:
            self._warn_fallback(reason)
            outputs, final_states = self._run_stepwise(x, weights, states, modifiers)
        else:
            outputs, final_states = self._call_fused(self._fused_function(in_xla), x, weights, states,
                                                     modifiers.fused())

        flat_states = [s for layer in final_states for s in layer]
        if self.stateful:
            for variable, state in zip(self.states, flat_states):
                variable.assign(tf.cast(state, variable.dtype))
        output = outputs if self.return_sequences else outputs[:, -1]
        output = tf.cast(output, self.compute_dtype)
        if self.return_state:
            return (output,) + tuple(tf.cast(s, self.compute_dtype) for s in flat_states)
        return output

    def _fused_function(self, in_xla):
        """The fused op's function, or inside an XLA cluster the reference's, which XLA can compile."""
        if in_xla:
            self._warn_once(
                f"{type(self).__name__} {self.name!r}: traced inside an XLA-compiled function (jit_compile=True), "
                f"which cannot hold the fused op (it has no XLA kernel); running "
                f"deeprnn_fast.reference.{self.fused_function_name} there instead: the same results, computed as "
                "separate small ops for every (layer, time step) that XLA compiles and fuses, usually slower than "
                "the fused op and compiling longer as num_layers x time steps grow.")
        return _fused.fused_function(self.fused_function_name, in_xla)

    def _call_fused(self, function, x, weights, states, modifiers):
        """_run_fused with the states as the function takes them: one tensor per layer, or a tuple of several."""
        single = len(self.state_names) == 1
        outputs, final_states = self._run_fused(function, x, weights, [s[0] if single else s for s in states],
                                                modifiers)
        return outputs, [(s,) if single else tuple(s) for s in final_states]

    def _modifiers(self, x, mask, training, dtype):
        """The call's mask and, in training, its dropout masks: Keras' (per layer, drawn once for the call) and
        those between layers (fresh for every step)."""
        batch = tf.shape(x)[0]
        widths = [self.input_size] + [self.units] * (self.num_layers - 1)
        count = self._dropout_mask_count()

        def keras_masks(kind, rate, widths):
            if not (training and rate > 0):
                return None
            return [self._cell_dropout_masks(l, kind, batch, width, dtype, count) for l, width in enumerate(widths)]

        between = None
        if training and self.between_layer_dropout > 0 and self.num_layers > 1:
            between = self._between_layer_masks(batch, tf.shape(x)[1], dtype)
        return _Modifiers(mask, self.zero_output_for_mask, keras_masks("input", self.dropout, widths),
                          keras_masks("recurrent", self.recurrent_dropout, [self.units] * self.num_layers), between)

    def _run_stepwise(self, x, weights, states, modifiers):
        steps = [self._cell_step(weights[l],
                                 None if modifiers.input_masks is None else _listed(modifiers.input_masks[l]),
                                 None if modifiers.recurrent_masks is None else _listed(modifiers.recurrent_masks[l]))
                 for l in range(self.num_layers)]
        return run_stacked_cells(steps, x, states, modifiers.mask, self.zero_output_for_mask, modifiers.between)

    def _stepwise_reason(self, time_known, in_xla):
        reason = self._fused_unsupported_reason()
        if reason is not None:
            return reason
        if not time_known and in_xla:
            return ("inside an XLA-compiled function the fused op cannot run, and the reference that stands in for "
                    "it there needs the number of time steps when the model is traced")
        if not time_known and not _fused.library_loaded():
            return ("the compiled op library is not built, and its fallback needs the number of time steps when the "
                    "model is traced")
        return None

    def _warn_fallback(self, reason):
        self._warn_once(f"{type(self).__name__} {self.name!r}: {reason}; running the step-by-step reference loop "
                        "instead (same results, slower).")

    def _warn_once(self, message):
        if message not in self._fallbacks_warned:
            self._fallbacks_warned.add(message)
            warnings.warn(message, stacklevel=4)

    def _between_layer_masks(self, batch, time, dtype):
        """Dropout between layers: one [L - 1, T, B, H] tensor of 0 and 1 / (1 - rate) (time major, as the fused op
        takes it), a fresh mask for every layer and step, drawn in one call. Tests replace this to hand both sides
        one set of masks."""
        shape = tf.stack([self.num_layers - 1, time, batch, self.units])
        return _dropout_mask(shape, self.between_layer_dropout, self.seed_generator, dtype)

    def _cell_dropout_masks(self, layer, kind, batch, width, dtype, count):
        """Keras' dropout ("input": `dropout` on the cell's input; "recurrent": `recurrent_dropout` on h_{t-1}) of
        layer `layer`: `count` masks [batch, width] of `dtype`, as one [count, B, width] tensor (or a list of
        `count` [B, width] tensors), drawn as Keras' DropoutRNNCell draws them: once per call, from the seed
        generator, the same for every step. Tests replace this to hand both sides one set of masks."""
        rate = self.dropout if kind == "input" else self.recurrent_dropout
        return _dropout_mask(tf.stack([count, batch, width]), rate, self.seed_generator, dtype)

    # ---- weights and config -----------------------------------------------------------------------------------

    @property
    def cell_weights(self):
        """Per layer, the tuple of its weight variables (as in get_weights(), bias None without use_bias)."""
        return self._cell_weights

    def get_config(self):
        config = {
            "units": self.units,
            "num_layers": self.num_layers,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": keras.regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": keras.constraints.serialize(self.recurrent_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "between_layer_dropout": self.between_layer_dropout,
            "config_version": CONFIG_VERSION,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
            "seed": self.seed,
            "vocabulary_size": self.vocabulary_size,
        }
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        version = config.pop("config_version", 1)
        if version == 1:
            # Written before Keras' dropout was supported, when `dropout` meant dropout between layers.
            config["between_layer_dropout"] = config.pop("dropout", 0.0)
            config["dropout"] = 0.0
        elif version != CONFIG_VERSION:
            raise ValueError(f"{cls.__name__} config_version {version!r} is not one this version of deeprnn_fast "
                             f"reads (1 or {CONFIG_VERSION}); it was written by a newer deeprnn_fast")
        return super().from_config(config)


class _Modifiers:
    """A call's mask and dropout masks, for the step-by-step loop (Keras' masks per layer: [count, B, width] or a
    list of count [B, width] tensors; the between-layer masks: one [L - 1, T, B, H] tensor) and, by fused(), as the
    fused op's keyword arguments."""

    def __init__(self, mask, zero_output_for_mask, input_masks, recurrent_masks, between):
        self.mask, self.zero_output_for_mask = mask, zero_output_for_mask
        self.input_masks, self.recurrent_masks, self.between = input_masks, recurrent_masks, between

    def fused(self):
        result = {}
        if self.mask is not None:
            result["mask"] = self.mask
            result["zero_output_for_mask"] = self.zero_output_for_mask
        if self.input_masks is not None:
            result["input_dropout"] = [_stacked(m) for m in self.input_masks]
        if self.recurrent_masks is not None:
            result["recurrent_dropout"] = [_stacked(m) for m in self.recurrent_masks]
        if self.between is not None:
            result["between_dropout"] = self.between
        return result


def _dropout_mask(shape, rate, seed_generator, dtype):
    from deeprnn_fast import ops  # lazily, as in layers/_fused.py: the package may still be loading
    return ops.dropout_mask(shape, rate, seed_generator, dtype)


def _stacked(masks):
    """A layer's Keras dropout masks as the fused op takes them, [count, B, width], from a tensor or a list."""
    return tf.stack(masks) if isinstance(masks, (list, tuple)) else masks


def _listed(masks):
    """A layer's Keras dropout masks as the step-by-step cells take them, a list of [B, width] tensors."""
    return list(masks) if isinstance(masks, (list, tuple)) else tf.unstack(masks)


def _poisoned_kernel(kernel):
    """Layer 0's kernel [V, G*H] with a row V of NaN, the row that `_token_ids` gives an out-of-range id inside XLA
    (where no assertion can stop the call)."""
    return tf.concat([kernel, tf.fill([1, kernel.shape[1]], tf.constant(float("nan"), kernel.dtype))], 0)
