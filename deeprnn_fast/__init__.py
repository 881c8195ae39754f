"""deeprnn_fast: a fused stacked (deep) RNN for TensorFlow, on the CPU and in CUDA.

The TensorFlow parts load only where TensorFlow is installed, so that the framework-free pieces (the float64 NumPy
oracle and the pybind11 kernel module) also work on machines without it, such as the GPU machines this project
borrows.
"""
__version__ = "0.1.0"


def _started_as_command_line():
    """Whether this process is the command line (`deeprnn-fast`, `python -m deeprnn_fast`), whose Ctrl-C during the
    seconds TensorFlow takes to import should end it quietly rather than with a traceback of TensorFlow's import."""
    import os
    import sys
    if os.path.basename(sys.argv[0]) == "deeprnn-fast":
        return True
    argv = list(getattr(sys, "orig_argv", sys.argv))
    return "-m" in argv and argv[argv.index("-m") + 1:argv.index("-m") + 2] == ["deeprnn_fast"]


def _exit_on_ctrl_c_while_starting(signum, frame):
    """The command line's SIGINT handler while TensorFlow imports. Raising KeyboardInterrupt there is not enough: the
    import runs Python callbacks from C (protobuf's descriptor pool, among others), which print the interrupt's
    traceback and carry on, and the command then trains to the end. Nothing has been written yet, so it ends here."""
    import os
    import sys
    sys.stderr.write("deeprnn-fast: interrupted while starting\n")
    sys.stderr.flush()
    os._exit(130)


def _import_the_tensorflow_parts():
    global _tf, reference, build_info, dropout_mask, stacked_gru, stacked_lstm, stacked_rnn
    global StackedGRU, StackedLSTM, StackedRNN, from_keras
    try:
        import tensorflow as _tf  # noqa: F401
    except ImportError:  # pragma: no cover - exercised on TF-free GPU machines
        _tf = None

    if _tf is not None:
        from deeprnn_fast import reference  # noqa: F401
        from deeprnn_fast.ops import build_info, dropout_mask, stacked_gru, stacked_lstm, stacked_rnn  # noqa: F401
        # Importing the layers registers them with Keras (for .keras files) and loads the op library (for
        # SavedModels).
        from deeprnn_fast.layers import StackedGRU, StackedLSTM, StackedRNN, from_keras  # noqa: F401


if _started_as_command_line():
    import signal as _signal
    import threading as _threading
    # Only the main thread can install handlers; a SIGINT that is ignored (a background job) stays ignored.
    _takes_sigint = (_threading.current_thread() is _threading.main_thread() and
                     _signal.getsignal(_signal.SIGINT) is not _signal.SIG_IGN)
    if _takes_sigint:
        _previous_sigint = _signal.signal(_signal.SIGINT, _exit_on_ctrl_c_while_starting)
    try:
        _import_the_tensorflow_parts()
    finally:
        if _takes_sigint:  # None: a handler installed from C, which Python's own is the nearest to
            _signal.signal(_signal.SIGINT,
                           _signal.default_int_handler if _previous_sigint is None else _previous_sigint)
else:
    _import_the_tensorflow_parts()
