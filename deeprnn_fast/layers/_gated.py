"""What the layers of the gated cells (StackedGRU, StackedLSTM) share beyond StackedRecurrentBase: Keras' gated-cell
arguments (recurrent_activation, use_cudnn, implementation), the activations the fused op computes (tanh, and the
sigmoid on the gates), Keras' count of dropout masks, and the call of the fused function."""
import keras
import tensorflow as tf

from deeprnn_fast.layers._activations import SIGMOID, TANH, is_one_of
from deeprnn_fast.layers._base import StackedRecurrentBase, check_implementation, check_use_cudnn


class GatedStackedBase(StackedRecurrentBase):
    """A subclass sets `gates` (and `fused_bias_shape` where the bias is not one row of gates * units), calls
    `_init_gated` in its __init__, and adds its own checks in `_fused_unsupported_reason`."""

    def _init_gated(self, recurrent_activation, use_cudnn, implementation):
        self.recurrent_activation = keras.activations.get(recurrent_activation)
        self.use_cudnn = check_use_cudnn(type(self).__name__, use_cudnn)
        self.implementation = check_implementation(implementation)

    def fused_bias_shape(self):
        """The shape of one layer's bias as the fused op takes it (zeros stand in without use_bias)."""
        return (self.gates * self.units,)

    def _fused_unsupported_reason(self):
        if not is_one_of(self.activation, TANH):
            return (f"the fused op computes activation='tanh' only, not "
                    f"{keras.activations.serialize(self.activation)!r}")
        if not is_one_of(self.recurrent_activation, SIGMOID):
            return (f"the fused op computes recurrent_activation='sigmoid' only, not "
                    f"{keras.activations.serialize(self.recurrent_activation)!r}")
        return None

    def _run_fused(self, function, inputs, cell_weights, initial_states, modifiers):
        dtype = cell_weights[0][0].dtype
        biases = [b if b is not None else tf.zeros(self.fused_bias_shape(), dtype) for _, _, b in cell_weights]
        return function(inputs, [k for k, _, _ in cell_weights], [r for _, r, _ in cell_weights], biases,
                        initial_states=initial_states, **modifiers)

    def _dropout_mask_count(self):
        # Keras' GRUCell and LSTMCell: implementation 1 (chosen, or forced by recurrent_dropout) draws one mask per
        # gate.
        return self.gates if self.implementation == 1 or self.recurrent_dropout > 0 else 1

    def get_config(self):
        config = super().get_config()
        config.update({
            "recurrent_activation": keras.activations.serialize(self.recurrent_activation),
            "use_cudnn": self.use_cudnn,
            "implementation": self.implementation,
        })
        return config
