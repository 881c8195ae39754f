"""deeprnn_fast: a fused stacked (deep) RNN for TensorFlow, on the CPU and in CUDA.

The TensorFlow parts load only where TensorFlow is installed, so that the framework-free pieces (the float64 NumPy
oracle and the pybind11 kernel module) also work on machines without it, such as the GPU machines this project
borrows.
"""
__version__ = "0.1.0"

try:
    import tensorflow as _tf  # noqa: F401
except ImportError:  # pragma: no cover - exercised on TF-free GPU machines
    _tf = None

if _tf is not None:
    from deeprnn_fast import reference  # noqa: F401
    from deeprnn_fast.ops import build_info, stacked_gru, stacked_lstm, stacked_rnn  # noqa: F401
    # Importing the layers registers them with Keras (for .keras files) and loads the op library (for SavedModels).
    from deeprnn_fast.layers import StackedGRU, StackedLSTM, StackedRNN, from_keras  # noqa: F401
