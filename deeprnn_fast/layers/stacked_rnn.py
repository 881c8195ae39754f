"""`StackedRNN`: a Keras 3 layer over the fused stacked-RNN op, a drop-in for
`keras.layers.RNN([keras.layers.SimpleRNNCell(units, activation) for _ in range(num_layers)])`."""
import keras
import tensorflow as tf

from deeprnn_fast.layers._activations import RELU, TANH, is_one_of
from deeprnn_fast.layers._base import StackedRecurrentBase, base_arguments, fresh_initializer, gate_products

__all__ = ["StackedRNN"]

# Activations the fused op computes itself, by the name it takes; any other Keras activation runs the loop.
_FUSED_ACTIVATIONS = (("tanh", TANH), ("relu", RELU))


@keras.saving.register_keras_serializable(package="deeprnn_fast")
class StackedRNN(StackedRecurrentBase):
    """`num_layers` SimpleRNN cells of `units` units each, stacked, run by one fused op.

    Computes what `keras.layers.RNN([keras.layers.SimpleRNNCell(units, activation) for _ in range(num_layers)],
    return_sequences=..., return_state=..., go_backwards=..., stateful=...)` computes given the same weights, and
    `get_weights()` / `set_weights()` use that layer's order: per layer `kernel [in, units]`,
    `recurrent_kernel [units, units]`, `bias [units]` (no bias without `use_bias`).

    Args (those of `keras.layers.SimpleRNN`, plus `num_layers`; all are honoured):
      units: hidden units of every layer.
      num_layers: number of stacked layers.
      activation: "tanh" or "relu" run fused; any other Keras activation runs the step-by-step loop (warned once).
      use_bias, kernel_initializer, recurrent_initializer, bias_initializer, kernel_regularizer,
        recurrent_regularizer, bias_regularizer, activity_regularizer, kernel_constraint, recurrent_constraint,
        bias_constraint: as on `keras.layers.SimpleRNN`, applied to every layer.
      dropout: as on SimpleRNN: the fraction of each cell's input dropped (layer 0's input included), in training
        only, with one mask per layer and call, the same at every step. Runs fused.
      recurrent_dropout: as on SimpleRNN: one mask per layer and call on h_{t-1} in the recurrent product. Runs fused.
      between_layer_dropout: PyTorch's dropout (`torch.nn.RNN(num_layers=L, dropout=p)`), which SimpleRNN lacks:
        the fraction of each layer's outputs dropped on their way into the next layer, in training only, drawn
        afresh for every time step; never on the raw input or the top layer's output. Runs fused.
      return_sequences, return_state, go_backwards, stateful, zero_output_for_mask: as on `keras.layers.RNN`.
        With return_state the layer returns the output followed by one final state [batch, units] per layer.
      unroll: accepted for compatibility; it never changes a result.
      seed: seed of the dropout masks.
      vocabulary_size: None (the default) for float inputs [batch, time, features]; an integer V for integer token
        ids [batch, time] in [0, V) instead. Layer 0's kernel is then [V, units], the same weights as the layer fed
        tf.one_hot(ids, V) (get_weights / set_weights carry over 1:1), and the fused op picks its rows instead of
        multiplying by one-hot vectors. An id out of range is an InvalidArgumentError naming the tokens (inside an
        XLA-compiled function, where nothing can raise, its sequence computes NaN).

    Call arguments: `sequences [batch, time, features]` (or token ids [batch, time]), `initial_state` (a list of
    num_layers tensors [batch, units]), `mask [batch, time]` (any mask; a masked step carries the previous output
    and states), `training`.

    Inside an XLA-compiled function (`jit_compile=True`) the layer runs `deeprnn_fast.reference.stacked_rnn` (plain
    TensorFlow, which XLA compiles) instead of the fused op, with one warning.
    """

    fused_function_name = "stacked_rnn"

    def __init__(self, units, num_layers, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, zero_output_for_mask=False, seed=None, vocabulary_size=None,
                 between_layer_dropout=0.0,
                 **kwargs):
        super().__init__(**base_arguments(locals()), activity_regularizer=activity_regularizer, **kwargs)
        self._fused_activation = next((name for name, functions in _FUSED_ACTIVATIONS
                                       if is_one_of(self.activation, functions)), None)

    def _build_cell_weights(self, layer, input_size):
        kernel, recurrent_kernel = self._add_kernels(layer, input_size, gates=1)
        bias = None
        if self.use_bias:
            bias = self.add_weight(shape=(self.units,), name=f"bias_{layer}",
                                   initializer=fresh_initializer(self.bias_initializer),
                                   regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        return kernel, recurrent_kernel, bias

    def _fused_unsupported_reason(self):
        if self._fused_activation is None:
            return f"the fused op computes tanh and relu only, not {keras.activations.serialize(self.activation)!r}"
        return None

    def _run_fused(self, function, inputs, cell_weights, initial_states, modifiers):
        dtype = cell_weights[0][0].dtype
        biases = [b if b is not None else tf.zeros([self.units], dtype) for _, _, b in cell_weights]
        return function(inputs, [k for k, _, _ in cell_weights], [r for _, r, _ in cell_weights], biases,
                        initial_states=initial_states, activation=self._fused_activation, **modifiers)

    def _cell_step(self, weights, input_masks, recurrent_masks):
        kernel, recurrent_kernel, bias = weights
        activation = self.activation

        def step(x, states):
            # The operations, and their order, of keras.layers.SimpleRNNCell.call.
            (h_prev,) = states
            h = gate_products(x, kernel, input_masks, 1)
            if bias is not None:
                h = h + bias
            output = h + gate_products(h_prev, recurrent_kernel, recurrent_masks, 1)
            output = activation(output) if activation is not None else output
            return output, (output,)

        return step
