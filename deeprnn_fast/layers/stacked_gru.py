"""`StackedGRU`: a Keras 3 layer over the fused stacked-GRU op, a drop-in for
`keras.layers.RNN([keras.layers.GRUCell(units) for _ in range(num_layers)])` and for a `keras.Sequential` of
`keras.layers.GRU` layers."""
import keras
import tensorflow as tf

from deeprnn_fast.layers._activations import SIGMOID, TANH, is_one_of
from deeprnn_fast.layers._base import StackedRecurrentBase, check_implementation, fresh_initializer, input_product

__all__ = ["StackedGRU"]


@keras.saving.register_keras_serializable(package="deeprnn_fast")
class StackedGRU(StackedRecurrentBase):
    """`num_layers` GRU cells of `units` units each, stacked, run by one fused op.

    Computes what `keras.layers.RNN([keras.layers.GRUCell(units) for _ in range(num_layers)], return_sequences=...,
    return_state=..., go_backwards=..., stateful=...)` computes given the same weights (and so what a
    `keras.Sequential` of `num_layers` `keras.layers.GRU` layers computes, all but the last returning sequences), and
    `get_weights()` / `set_weights()` use that layer's order: per layer `kernel [in, 3 * units]`,
    `recurrent_kernel [units, 3 * units]`, `bias [2, 3 * units]` (`[3 * units]` with `reset_after=False`; no bias
    without `use_bias`), gates in Keras' order z, r, h.

    Args (those of `keras.layers.GRU`, plus `num_layers`; all are honoured or refused with an error):
      units: hidden units of every layer.
      num_layers: number of stacked layers.
      activation, recurrent_activation: "tanh" and "sigmoid" (the defaults) run fused; any other Keras activation
        runs the step-by-step loop (warned once).
      reset_after: True (Keras' default, the cuDNN-compatible form) runs fused; False (the reset gate applied
        before the recurrent product, a single bias [3 * units]) runs the step-by-step loop (warned once).
      use_bias, kernel_initializer, recurrent_initializer, bias_initializer, kernel_regularizer,
        recurrent_regularizer, bias_regularizer, activity_regularizer, kernel_constraint, recurrent_constraint,
        bias_constraint: as on `keras.layers.GRU`, applied to every layer.
      dropout: fraction of each layer's outputs dropped before they enter the next layer, in training only, drawn
        afresh for every time step (as `torch.nn.GRU(num_layers=L, dropout=p)`). Unlike GRU's `dropout`, the input
        of the first layer is never dropped.
      recurrent_dropout: as on GRU (one mask per gate, layer and call on the state entering the recurrent products);
        runs the step-by-step loop in training.
      return_sequences, return_state, go_backwards, stateful, zero_output_for_mask: as on `keras.layers.RNN`.
        With return_state the layer returns the output followed by one final state [batch, units] per layer.
      unroll: accepted for compatibility; it never changes a result.
      use_cudnn: "auto" or False; the layer runs its own fused op (CPU), never cuDNN, so True is refused.
      implementation: 1 or 2 (0, Keras 2's legacy value, too), accepted for compatibility: only how Keras splits
        its products, never a result.
      seed: seed of the dropout masks.
      vocabulary_size: None (the default) for float inputs [batch, time, features]; an integer V for integer token
        ids [batch, time] in [0, V) instead, layer 0's kernel then being [V, 3 * units]: as on `StackedRNN`.

    Call arguments: `sequences [batch, time, features]` (or token ids [batch, time]), `initial_state` (a list of
    num_layers tensors [batch, units]), `mask [batch, time]` (any mask; a masked step carries the previous output
    and states), `training`.

    Inside an XLA-compiled function (`jit_compile=True`) the layer runs `deeprnn_fast.reference.stacked_gru` (plain
    TensorFlow, which XLA compiles) instead of the fused op, with one warning.
    """

    fused_function_name = "stacked_gru"

    def __init__(self, units, num_layers, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, reset_after=True, use_cudnn="auto", zero_output_for_mask=False,
                 implementation=2, vocabulary_size=None, **kwargs):
        if use_cudnn not in ("auto", True, False):
            raise ValueError(f"use_cudnn must be 'auto', True or False; got {use_cudnn!r}")
        if use_cudnn is True:
            raise ValueError("StackedGRU runs its own fused op and never cuDNN, so use_cudnn=True cannot be honoured; "
                             "pass use_cudnn='auto' (the default) or False")
        super().__init__(units, num_layers, activation=activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
                         bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                         recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
                         dropout=dropout, recurrent_dropout=recurrent_dropout, return_sequences=return_sequences,
                         return_state=return_state, go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                         zero_output_for_mask=zero_output_for_mask, seed=seed, vocabulary_size=vocabulary_size,
                         **kwargs)
        self.recurrent_activation = keras.activations.get(recurrent_activation)
        self.reset_after = bool(reset_after)
        self.use_cudnn = use_cudnn
        self.implementation = check_implementation(implementation)

    def _build_cell_weights(self, layer, input_size):
        units = self.units
        kernel = self.add_weight(shape=(input_size, 3 * units), name=f"kernel_{layer}",
                                 initializer=fresh_initializer(self.kernel_initializer),
                                 regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        recurrent_kernel = self.add_weight(shape=(units, 3 * units), name=f"recurrent_kernel_{layer}",
                                           initializer=fresh_initializer(self.recurrent_initializer),
                                           regularizer=self.recurrent_regularizer,
                                           constraint=self.recurrent_constraint)
        bias = None
        if self.use_bias:
            # reset_after keeps an input and a recurrent bias, as Keras' GRUCell (and cuDNN) do.
            bias = self.add_weight(shape=(2, 3 * units) if self.reset_after else (3 * units,), name=f"bias_{layer}",
                                   initializer=fresh_initializer(self.bias_initializer),
                                   regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        return kernel, recurrent_kernel, bias

    def _fused_unsupported_reason(self):
        if not self.reset_after:
            return "the fused op computes the reset_after=True form of the GRU only, not reset_after=False"
        if not is_one_of(self.activation, TANH):
            return (f"the fused op computes activation='tanh' only, not "
                    f"{keras.activations.serialize(self.activation)!r}")
        if not is_one_of(self.recurrent_activation, SIGMOID):
            return (f"the fused op computes recurrent_activation='sigmoid' only, not "
                    f"{keras.activations.serialize(self.recurrent_activation)!r}")
        return None

    def _run_fused(self, function, inputs, cell_weights, initial_states):
        dtype = cell_weights[0][0].dtype
        biases = [b if b is not None else tf.zeros([2, 3 * self.units], dtype) for _, _, b in cell_weights]
        return function(inputs, [k for k, _, _ in cell_weights], [r for _, r, _ in cell_weights], biases,
                        initial_states=initial_states)

    def _recurrent_mask(self, state):
        """Keras' GRU recurrent_dropout: one [B, H] mask per gate (z, r, h), layer and call, the same for every
        step."""
        return [keras.random.dropout(tf.ones_like(state), rate=self.recurrent_dropout, seed=self.seed_generator)
                for _ in range(3)]

    def _cell_step(self, weights, recurrent_mask):
        kernel, recurrent_kernel, bias = weights
        units, reset_after = self.units, self.reset_after
        activation, recurrent_activation = self.activation, self.recurrent_activation
        if bias is None:
            input_bias = recurrent_bias = None
        elif reset_after:
            input_bias, recurrent_bias = bias[0], bias[1]
        else:
            input_bias, recurrent_bias = bias, None

        def recurrent_product(h_prev, gate):
            # Keras applies gate g's recurrent_dropout mask to the state entering that gate's product only.
            h = h_prev * recurrent_mask[gate] if recurrent_mask is not None else h_prev
            return tf.matmul(h, recurrent_kernel[:, gate * units:(gate + 1) * units])

        def step(x, states):
            # The operations of keras.layers.GRUCell.call.
            (h_prev,) = states
            matrix_x = input_product(x, kernel)
            if input_bias is not None:
                matrix_x = matrix_x + input_bias
            x_z, x_r, x_h = tf.split(matrix_x, 3, axis=-1)
            if reset_after:
                if recurrent_mask is None:
                    matrix_inner = tf.matmul(h_prev, recurrent_kernel)
                else:
                    matrix_inner = tf.concat([recurrent_product(h_prev, g) for g in range(3)], axis=-1)
                if recurrent_bias is not None:
                    matrix_inner = matrix_inner + recurrent_bias
                recurrent_z, recurrent_r, recurrent_h = tf.split(matrix_inner, 3, axis=-1)
            else:
                recurrent_z, recurrent_r = recurrent_product(h_prev, 0), recurrent_product(h_prev, 1)
            z = recurrent_activation(x_z + recurrent_z)
            r = recurrent_activation(x_r + recurrent_r)
            if reset_after:
                recurrent_h = r * recurrent_h
            else:
                h_masked = h_prev * recurrent_mask[2] if recurrent_mask is not None else h_prev
                recurrent_h = tf.matmul(r * h_masked, recurrent_kernel[:, 2 * units:])
            hh = activation(x_h + recurrent_h)
            h = z * h_prev + (1 - z) * hh
            return h, (h,)

        return step

    def get_config(self):
        config = super().get_config()
        config.update({
            "recurrent_activation": keras.activations.serialize(self.recurrent_activation),
            "reset_after": self.reset_after,
            "use_cudnn": self.use_cudnn,
            "implementation": self.implementation,
        })
        return config
