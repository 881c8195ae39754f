"""`StackedGRU`: a Keras 3 layer over the fused stacked-GRU op, a drop-in for
`keras.layers.RNN([keras.layers.GRUCell(units) for _ in range(num_layers)])` and for a `keras.Sequential` of
`keras.layers.GRU` layers."""
import keras
import tensorflow as tf

from deeprnn_fast.layers._base import base_arguments, fresh_initializer, gate_products
from deeprnn_fast.layers._gated import GatedStackedBase

__all__ = ["StackedGRU"]


@keras.saving.register_keras_serializable(package="deeprnn_fast")
class StackedGRU(GatedStackedBase):
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
      dropout: as on GRU: the fraction of each cell's input dropped (layer 0's input included), in training only,
        with masks drawn once per layer and call, the same at every step: one mask in implementation 2, one per gate
        (z, r, h) in implementation 1 (which recurrent_dropout > 0 forces, as in Keras). Runs fused.
      recurrent_dropout: as on GRU: one mask per gate, layer and call on h_{t-1} in each gate's recurrent product.
        Runs fused.
      between_layer_dropout: PyTorch's dropout (`torch.nn.GRU(num_layers=L, dropout=p)`), which GRU lacks: the
        fraction of each layer's outputs dropped on their way into the next layer, in training only, drawn afresh
        for every time step; never on the raw input or the top layer's output. Runs fused.
      return_sequences, return_state, go_backwards, stateful, zero_output_for_mask: as on `keras.layers.RNN`.
        With return_state the layer returns the output followed by one final state [batch, units] per layer.
      unroll: accepted for compatibility; it never changes a result.
      use_cudnn: "auto" or False; the layer runs its own fused op (CPU), never cuDNN, so True is refused.
      implementation: 1 or 2 (0, Keras 2's legacy value, too, which acts as 2): how Keras splits its products,
        which changes no result without dropout; with `dropout` it sets the number of input masks, as in Keras.
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
                 implementation=2, vocabulary_size=None, between_layer_dropout=0.0,
                 **kwargs):
        super().__init__(**base_arguments(locals()), activity_regularizer=activity_regularizer, **kwargs)
        self._init_gated(recurrent_activation, use_cudnn, implementation)
        self.reset_after = bool(reset_after)

    def _build_cell_weights(self, layer, input_size):
        units = self.units
        kernel, recurrent_kernel = self._add_kernels(layer, input_size, gates=3)
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
        return super()._fused_unsupported_reason()

    def fused_bias_shape(self):
        return (2, 3 * self.units)  # the op's [bx; bh] rows (reset_after, the only form it computes)

    gates = 3

    def _cell_step(self, weights, input_masks, recurrent_masks):
        kernel, recurrent_kernel, bias = weights
        units, reset_after = self.units, self.reset_after
        activation, recurrent_activation = self.activation, self.recurrent_activation
        if bias is None:
            input_bias = recurrent_bias = None
        elif reset_after:
            input_bias, recurrent_bias = bias[0], bias[1]
        else:
            input_bias, recurrent_bias = bias, None

        def masked_state(h_prev, gate):
            # Keras applies gate g's recurrent_dropout mask to the state entering that gate's product only.
            return h_prev * recurrent_masks[gate] if recurrent_masks is not None else h_prev

        def step(x, states):
            # The operations of keras.layers.GRUCell.call (implementation 2, or 1 with per-gate masks).
            (h_prev,) = states
            matrix_x = gate_products(x, kernel, input_masks, 3)
            if input_bias is not None:
                matrix_x = matrix_x + input_bias
            x_z, x_r, x_h = tf.split(matrix_x, 3, axis=-1)
            if reset_after:
                matrix_inner = gate_products(h_prev, recurrent_kernel, recurrent_masks, 3)
                if recurrent_bias is not None:
                    matrix_inner = matrix_inner + recurrent_bias
                recurrent_z, recurrent_r, recurrent_h = tf.split(matrix_inner, 3, axis=-1)
            else:
                recurrent_z, recurrent_r = (tf.matmul(masked_state(h_prev, g),
                                                      recurrent_kernel[:, g * units:(g + 1) * units])
                                            for g in range(2))
            z = recurrent_activation(x_z + recurrent_z)
            r = recurrent_activation(x_r + recurrent_r)
            if reset_after:
                recurrent_h = r * recurrent_h
            else:
                recurrent_h = tf.matmul(r * masked_state(h_prev, 2), recurrent_kernel[:, 2 * units:])
            hh = activation(x_h + recurrent_h)
            h = z * h_prev + (1 - z) * hh
            return h, (h,)

        return step

    def get_config(self):
        config = super().get_config()
        config["reset_after"] = self.reset_after
        return config
