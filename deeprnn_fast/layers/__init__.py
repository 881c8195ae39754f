"""Keras 3 layers over the fused ops: drop-ins for Keras' own stacked recurrent layers."""
from deeprnn_fast.layers import _fused
from deeprnn_fast.layers.convert import from_keras
from deeprnn_fast.layers.stacked_gru import StackedGRU
from deeprnn_fast.layers.stacked_lstm import StackedLSTM
from deeprnn_fast.layers.stacked_rnn import StackedRNN

__all__ = ["StackedGRU", "StackedLSTM", "StackedRNN", "from_keras"]

# Load the op library now where it is built: a SavedModel holding the fused op can only be reloaded in a process
# where the op is registered, and users expect `import deeprnn_fast` to be all that takes.
_fused.library_loaded()
