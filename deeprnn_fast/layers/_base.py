"""What every stacked recurrent Keras layer of this package shares, whatever its cell.

`StackedRecurrentBase` behaves as `keras.layers.RNN` over a stack of identical cells: `initial_state=`, masks,
`return_sequences`, `return_state`, `go_backwards`, `stateful` with `reset_state()`, and weights in the order of that
Keras layer. It adds dropout between layers (as `torch.nn.RNN(num_layers=L, dropout=p)`), casts around the fused op
for mixed precision, and picks for each call either the fused op or the step-by-step loop of `_stepwise`.

A subclass (one per cell type) supplies four things: the weights of one layer, whether the fused op supports its
settings, the fused call itself, and one cell step for the loop.
"""
import numbers
import warnings

import keras
import tensorflow as tf
# Keras' own RNN creates its state variables inside this scope, which keeps them out of `layer.weights`, so that
# get_weights() of a stateful layer has the same entries as that of a stateless one (and of keras.layers.RNN).
from keras.src.utils.tracking import DotNotTrackScope

from deeprnn_fast import _validate
from deeprnn_fast.layers import _fused
from deeprnn_fast.layers._stepwise import run_stacked_cells


def fresh_initializer(initializer):
    """A new instance of an initializer for each weight. Keras 3 initializers draw their seed once, at construction,
    so one instance shared by the weights of several layers would give same-shaped weights identical values (Keras'
    own stacks build one cell, and so one initializer, per layer)."""
    return initializer.__class__.from_config(initializer.get_config())


def _check_rate(name, value):
    # A bool or a string would pass float() (True is 1.0, "0.5" 0.5), None would fail inside it without the name.
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a fraction in [0, 1) (a number); got {value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be a fraction in [0, 1); got {value!r}")
    return float(value)


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


class StackedRecurrentBase(keras.layers.Layer):
    """Keras `RNN` semantics for a stack of `num_layers` cells of `units` units; see `StackedRNN` for the arguments."""

    def __init__(self, units, num_layers, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0,
                 return_sequences=False, return_state=False, go_backwards=False, stateful=False, unroll=False,
                 zero_output_for_mask=False, seed=None, **kwargs):
        for name, value in (("units", units), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        _check_dtype(type(self).__name__, kwargs.get("dtype"))
        super().__init__(**kwargs)
        self.units = units
        self.num_layers = num_layers
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
        self.dropout = _check_rate("dropout", dropout)
        self.recurrent_dropout = _check_rate("recurrent_dropout", recurrent_dropout)
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
        # The fused op has no XLA kernel: without this, Keras compiles models with XLA on GPU machines by itself.
        self.supports_jit = False
        self.states = None
        self.input_size = None
        with DotNotTrackScope():
            self._cell_weights = None
            self._fallbacks_warned = set()

    # ---- what a subclass supplies -----------------------------------------------------------------------------

    def _build_cell_weights(self, layer, input_size):
        """Creates layer `layer`'s weights (add_weight, in Keras' order) and returns them as a tuple."""
        raise NotImplementedError

    def _fused_unsupported_reason(self):
        """None where the fused op supports this layer's settings, else a short reason for the warning."""
        raise NotImplementedError

    def _run_fused(self, inputs, cell_weights, initial_states):
        """The fused op over the cells `cell_weights` (tuples as built, cast to inputs.dtype): (outputs, states)."""
        raise NotImplementedError

    def _cell_step(self, weights, recurrent_mask):
        """One cell of the step-by-step loop: a callable (x_t, h_prev) -> h_t; recurrent_mask multiplies h_prev
        where the state enters the recurrent product (Keras' recurrent_dropout), None for none."""
        raise NotImplementedError

    # ---- building ---------------------------------------------------------------------------------------------

    def build(self, sequences_shape, initial_state_shape=None):
        shape = tuple(sequences_shape)
        if len(shape) != 3:
            raise ValueError(f"{type(self).__name__} expects inputs of shape [batch, time, features] (rank 3); "
                             f"got shape {shape}")
        if shape[-1] is None:
            raise ValueError(f"{type(self).__name__} needs the number of input features (the last dimension of "
                             f"[batch, time, features]) when it is built; got shape {shape}")
        self.input_size = int(shape[-1])
        weights = [self._build_cell_weights(l, self.input_size if l == 0 else self.units)
                   for l in range(self.num_layers)]
        with DotNotTrackScope():
            self._cell_weights = tuple(weights)
        if self.stateful:
            if shape[0] is None:
                raise ValueError(f"A stateful {type(self).__name__} needs a static batch size (pass batch_size= or "
                                 f"batch_shape= to keras.Input); got inputs of shape {shape}")
            self._create_state_variables(int(shape[0]))

    def _create_state_variables(self, batch_size):
        with DotNotTrackScope():
            self.states = [keras.Variable(tf.zeros([batch_size, self.units]), trainable=False,
                                          dtype=self.variable_dtype, name=f"state_{l}")
                           for l in range(self.num_layers)]

    def reset_state(self):
        """Zeroes the state variables of a stateful layer."""
        if self.states is not None:
            for variable in self.states:
                variable.assign(tf.zeros_like(variable))

    def reset_states(self):  # the name keras.layers.RNN also answers to
        self.reset_state()

    # ---- shapes and masks -------------------------------------------------------------------------------------

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, time = sequences_shape[0], sequences_shape[1]
        output = (batch, time, self.units) if self.return_sequences else (batch, self.units)
        if self.return_state:
            return (output,) + tuple((batch, self.units) for _ in range(self.num_layers))
        return output

    def compute_mask(self, inputs, mask=None):
        # As keras.layers.RNN: the sequence output keeps the input's mask; states have none.
        mask = keras.tree.flatten(mask)[0] if mask is not None else None
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * self.num_layers
        return output_mask

    # ---- the call ---------------------------------------------------------------------------------------------

    def call(self, sequences, initial_state=None, mask=None, training=None):
        inputs = self._checked_inputs(sequences)
        # The op has float32 and float64 kernels: half-precision policies compute in float32 and cast back.
        op_dtype = tf.float64 if self.compute_dtype == "float64" else tf.float32
        x = tf.cast(inputs, op_dtype)
        states = self._initial_states(initial_state, inputs, op_dtype)
        mask = self._checked_mask(mask, inputs)
        if self.go_backwards:
            # Keras processes the reversed sequence and returns the outputs in that (reversed) order.
            x = tf.reverse(x, [1])
            mask = tf.reverse(mask, [1]) if mask is not None else None
        weights = [tuple(None if w is None else tf.cast(w, op_dtype) for w in cell) for cell in self._cell_weights]
        training = bool(training) if training is not None else False
        drop_between = training and self.dropout > 0 and self.num_layers > 1
        drop_recurrent = training and self.recurrent_dropout > 0

        reason = self._stepwise_reason(mask, drop_recurrent, inputs.shape[1] is not None)
        if reason is not None:
            self._warn_fallback(reason)
            outputs, final_states = self._run_stepwise(x, weights, states, mask, drop_between, drop_recurrent)
        elif drop_between:
            outputs, final_states = self._run_fused_layer_by_layer(x, weights, states)
        else:
            outputs, final_states = self._run_fused(x, weights, states)

        if self.stateful:
            for variable, state in zip(self.states, final_states):
                variable.assign(tf.cast(state, variable.dtype))
        output = outputs if self.return_sequences else outputs[:, -1]
        output = tf.cast(output, self.compute_dtype)
        if self.return_state:
            return (output,) + tuple(tf.cast(s, self.compute_dtype) for s in final_states)
        return output

    def _run_stepwise(self, x, weights, states, mask, drop_between, drop_recurrent):
        between = None
        if drop_between:
            like = tf.ones(tf.stack([tf.shape(x)[0], tf.shape(x)[1], self.units]), x.dtype)
            between = [self._between_layer_mask(like) for _ in range(self.num_layers - 1)]
        steps = [self._cell_step(weights[l], self._recurrent_mask(states[l]) if drop_recurrent else None)
                 for l in range(self.num_layers)]
        return run_stacked_cells(steps, x, states, mask, self.zero_output_for_mask, between)

    def _run_fused_layer_by_layer(self, x, weights, states):
        """Dropout between layers: one fused call per layer keeps the fused kernel for every layer."""
        final_states = []
        layer_input = x
        for l in range(self.num_layers):
            outputs, (state,) = self._run_fused(layer_input, [weights[l]], [states[l]])
            final_states.append(state)
            if l < self.num_layers - 1:
                layer_input = outputs * self._between_layer_mask(outputs)
        return outputs, final_states

    def _stepwise_reason(self, mask, drop_recurrent, time_known):
        if mask is not None:
            return "the fused op takes no mask"
        if drop_recurrent:
            return "the fused op has no recurrent_dropout"
        reason = self._fused_unsupported_reason()
        if reason is not None:
            return reason
        if not time_known and not _fused.library_loaded():
            return ("the compiled op library is not built, and its fallback needs the number of time steps when the "
                    "model is traced")
        return None

    def _warn_fallback(self, reason):
        if reason not in self._fallbacks_warned:
            self._fallbacks_warned.add(reason)
            warnings.warn(f"{type(self).__name__} {self.name!r}: {reason}; running the step-by-step reference loop "
                          "instead (same results, slower).", stacklevel=3)

    def _between_layer_mask(self, like):
        """Dropout between layers: a fresh [B, T, H] mask of 0 and 1 / (1 - dropout), independent for every step."""
        return keras.random.dropout(tf.ones_like(like), rate=self.dropout, seed=self.seed_generator)

    def _recurrent_mask(self, state):
        """Keras' recurrent_dropout: one [B, H] mask per layer and call, the same for every time step."""
        return keras.random.dropout(tf.ones_like(state), rate=self.recurrent_dropout, seed=self.seed_generator)

    # ---- argument checks (every error names the expected shape) -----------------------------------------------

    def _checked_inputs(self, sequences):
        name = type(self).__name__
        _validate.check_dense(f"{name} inputs", sequences)
        inputs = tf.convert_to_tensor(sequences)
        if not inputs.dtype.is_floating:
            raise ValueError(f"{name} expects floating-point inputs of shape [batch, time, features]; got dtype "
                             f"{inputs.dtype.name} (cast them first, e.g. tf.cast(x, 'float32'))")
        if inputs.shape.rank != 3:
            raise ValueError(f"{name} expects inputs of shape [batch, time, {self.input_size}] (rank 3); got shape "
                             f"{inputs.shape}")
        if inputs.shape[-1] != self.input_size:
            raise ValueError(f"{name} {self.name!r} was built for inputs of shape [batch, time, {self.input_size}]; "
                             f"got shape {inputs.shape}")
        if inputs.shape[1] == 0:
            raise ValueError(f"{name} needs at least one time step; got inputs of shape {inputs.shape}")
        if self.stateful and inputs.shape[0] is not None and inputs.shape[0] != self.states[0].shape[0]:
            raise ValueError(f"A stateful {name} keeps states of shape [{self.states[0].shape[0]}, {self.units}]: "
                             f"its inputs must have shape [{self.states[0].shape[0]}, time, {self.input_size}]; got "
                             f"shape {inputs.shape}")
        return inputs

    def _initial_states(self, initial_state, inputs, op_dtype):
        name, units, layers = type(self).__name__, self.units, self.num_layers
        batch = inputs.shape[0]
        if initial_state is None:
            if self.stateful:
                return [tf.cast(v.value, op_dtype) for v in self.states]
            zeros = tf.zeros(tf.stack([tf.shape(inputs)[0], units]) if batch is None else [batch, units], op_dtype)
            return [zeros] * layers
        # Also accepts Keras' nested form ([[h0], [h1], ...], as keras.layers.RNN returns its states).
        given = keras.tree.flatten(initial_state)
        expected = f"[{'batch' if batch is None else batch}, {units}]"
        if len(given) != layers:
            raise ValueError(f"{name} initial_state must be a list of {layers} tensors of shape {expected}, one per "
                             f"layer; got {len(given)} tensors")
        states = []
        for l, state in enumerate(given):
            state = tf.convert_to_tensor(state)
            if not state.dtype.is_floating:
                raise ValueError(f"{name} initial_state[{l}] must be floating-point, of shape {expected}; got dtype "
                                 f"{state.dtype.name}")
            shape = state.shape
            if (shape.rank != 2 or shape[1] != units
                    or (batch is not None and shape[0] is not None and shape[0] != batch)):
                raise ValueError(f"{name} initial_state[{l}] must have shape {expected}; got shape {shape}")
            states.append(tf.cast(state, op_dtype))
        return states

    def _checked_mask(self, mask, inputs):
        if mask is None:
            return None
        mask = tf.convert_to_tensor(mask)
        if mask.shape.rank == 3 and mask.shape[-1] == 1:
            mask = tf.squeeze(mask, -1)
        batch, time = inputs.shape[0], inputs.shape[1]
        if mask.shape.rank != 2 or any(m is not None and i is not None and m != i
                                       for m, i in zip(mask.shape, (batch, time))):
            raise ValueError(f"{type(self).__name__} expects a mask of shape [batch, time] = "
                             f"[{'batch' if batch is None else batch}, {'time' if time is None else time}]; got "
                             f"shape {mask.shape}")
        return tf.cast(mask, tf.bool)

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
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}
