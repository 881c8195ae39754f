"""`StackedLSTM`: a Keras 3 layer over the fused stacked-LSTM op, a drop-in for
`keras.layers.RNN([keras.layers.LSTMCell(units) for _ in range(num_layers)])` and for a `keras.Sequential` of
`keras.layers.LSTM` layers."""
import keras
import tensorflow as tf

from deeprnn_fast.layers._base import base_arguments, fresh_initializer, gate_products
from deeprnn_fast.layers._gated import GatedStackedBase

__all__ = ["StackedLSTM"]


class _UnitForgetBias(keras.initializers.Initializer):
    """Keras' unit_forget_bias: the bias initializer's values for the gates i, c and o, ones for the forget gate f
    (keras.layers.LSTMCell.build), so that a fresh LSTM remembers by default."""

    def __init__(self, initializer, units):
        self.initializer, self.units = initializer, units

    def __call__(self, shape, dtype=None):
        units = self.units
        return tf.concat([self.initializer((units,), dtype=dtype), tf.ones((units,), dtype=dtype),
                          self.initializer((2 * units,), dtype=dtype)], 0)


@keras.saving.register_keras_serializable(package="deeprnn_fast")
class StackedLSTM(GatedStackedBase):
    """`num_layers` LSTM cells of `units` units each, stacked, run by one fused op.

    Computes what `keras.layers.RNN([keras.layers.LSTMCell(units) for _ in range(num_layers)], return_sequences=...,
    return_state=..., go_backwards=..., stateful=...)` computes given the same weights (and so what a
    `keras.Sequential` of `num_layers` `keras.layers.LSTM` layers computes, all but the last returning sequences),
    and `get_weights()` / `set_weights()` use that layer's order: per layer `kernel [in, 4 * units]`,
    `recurrent_kernel [units, 4 * units]`, `bias [4 * units]` (no bias without `use_bias`), gates in Keras' order
    i, f, c, o.

    Every layer has two states, h (its output) and c (its carry). With return_state the layer returns the output
    followed by h and c of every layer in turn, flat (`output, h_0, c_0, h_1, c_1, ...`; keras.layers.RNN over
    LSTMCells returns the same tensors nested per layer, `output, [h_0, c_0], [h_1, c_1], ...`), and
    `initial_state` takes the same list, flat or nested. For one layer that is what `keras.layers.LSTM` returns and
    takes: `output, h, c`.

    Args (those of `keras.layers.LSTM`, plus `num_layers` and `vocabulary_size`; all are honoured or refused with an
    error):
      units: hidden units of every layer.
      num_layers: number of stacked layers.
      activation, recurrent_activation: "tanh" and "sigmoid" (the defaults) run fused; any other Keras activation
        runs the step-by-step loop (warned once).
      use_bias, kernel_initializer, recurrent_initializer, bias_initializer, kernel_regularizer,
        recurrent_regularizer, bias_regularizer, activity_regularizer, kernel_constraint, recurrent_constraint,
        bias_constraint: as on `keras.layers.LSTM`, applied to every layer.
      unit_forget_bias: True (Keras' default) initialises the forget gate's bias to 1 (the other gates' from
        bias_initializer), as Keras does.
      dropout: as on LSTM: the fraction of each cell's input dropped (layer 0's input included), in training only,
        with masks drawn once per layer and call, the same at every step: one mask in implementation 2, one per gate
        (i, f, c, o) in implementation 1 (which recurrent_dropout > 0 forces, as in Keras). Runs fused.
      recurrent_dropout: as on LSTM: one mask per gate, layer and call on h_{t-1} in each gate's recurrent product.
        Runs fused.
      between_layer_dropout: PyTorch's dropout (`torch.nn.LSTM(num_layers=L, dropout=p)`), which LSTM lacks: the
        fraction of each layer's outputs dropped on their way into the next layer, in training only, drawn afresh
        for every time step; never on the raw input or the top layer's output. Runs fused.
      return_sequences, return_state, go_backwards, stateful, zero_output_for_mask: as on `keras.layers.RNN`.
      unroll: accepted for compatibility; it never changes a result.
      implementation: 1 or 2 (0, Keras 2's legacy value, too, which acts as 2): how Keras splits its products,
        which changes no result without dropout; with `dropout` it sets the number of input masks, as in Keras.
      use_cudnn: "auto" or False; the layer runs its own fused op, never cuDNN, so True is refused.
      seed: seed of the dropout masks.
      vocabulary_size: None (the default) for float inputs [batch, time, features]; an integer V for integer token
        ids [batch, time] in [0, V) instead, layer 0's kernel then being [V, 4 * units]: as on `StackedRNN`.

    Call arguments: `sequences [batch, time, features]` (or token ids [batch, time]), `initial_state` (a list of
    2 * num_layers tensors [batch, units]: h_0, c_0, h_1, c_1, ...), `mask [batch, time]` (any mask; a masked step
    carries the previous output and states), `training`.

    Inside an XLA-compiled function (`jit_compile=True`) the layer runs `deeprnn_fast.reference.stacked_lstm`
    (plain TensorFlow, which XLA compiles) instead of the fused op, with one warning.
    """

    state_names = ("h", "c")
    fused_function_name = "stacked_lstm"

    def __init__(self, units, num_layers, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, use_cudnn="auto", zero_output_for_mask=False,
                 implementation=2, vocabulary_size=None, between_layer_dropout=0.0,
                 **kwargs):
        super().__init__(**base_arguments(locals()), activity_regularizer=activity_regularizer, **kwargs)
        self._init_gated(recurrent_activation, use_cudnn, implementation)
        self.unit_forget_bias = bool(unit_forget_bias)

    def _build_cell_weights(self, layer, input_size):
        units = self.units
        kernel, recurrent_kernel = self._add_kernels(layer, input_size, gates=4)
        bias = None
        if self.use_bias:
            initializer = fresh_initializer(self.bias_initializer)
            if self.unit_forget_bias:
                initializer = _UnitForgetBias(initializer, units)
            bias = self.add_weight(shape=(4 * units,), name=f"bias_{layer}", initializer=initializer,
                                   regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        return kernel, recurrent_kernel, bias

    gates = 4

    def _cell_step(self, weights, input_masks, recurrent_masks):
        kernel, recurrent_kernel, bias = weights
        activation, recurrent_activation = self.activation, self.recurrent_activation

        def step(x, states):
            # The operations of keras.layers.LSTMCell.call: implementation 2 (one product per weight), or 1 (each
            # gate's products over its own masked x and h).
            h_prev, c_prev = states
            z = gate_products(x, kernel, input_masks, 4) + gate_products(h_prev, recurrent_kernel, recurrent_masks, 4)
            if bias is not None:
                z = z + bias
            z_i, z_f, z_c, z_o = tf.split(z, 4, axis=-1)
            i = recurrent_activation(z_i)
            f = recurrent_activation(z_f)
            c = f * c_prev + i * activation(z_c)
            o = recurrent_activation(z_o)
            h = o * activation(c)
            return h, (h, c)

        return step

    def get_config(self):
        config = super().get_config()
        config["unit_forget_bias"] = self.unit_forget_bias
        return config
