"""The layers' one seam to the compiled op: which fused function to call and whether the library is loaded.

Imported lazily so that `deeprnn_fast.layers` can be imported while `deeprnn_fast/__init__.py` is still loading.
"""

__all__ = ["library_loaded", "stacked_rnn"]


def library_loaded():
    """Whether the compiled op library is loaded.

    Without it `deeprnn_fast.stacked_rnn` still runs (it falls back to `deeprnn_fast.reference`, with its own
    warning), but the reference needs the number of time steps at trace time; the layers then use their step-by-step
    loop for sequences of unknown length.
    """
    from deeprnn_fast import _library
    try:
        _library.library()
        return True
    except _library.LibraryUnavailable:
        return False


def stacked_rnn(inputs, kernels, recurrent_kernels, biases, initial_states, activation):
    """`deeprnn_fast.stacked_rnn`: the fused op, or the reference where the library is not built."""
    from deeprnn_fast import ops
    return ops.stacked_rnn(inputs, kernels, recurrent_kernels, biases, initial_states=initial_states,
                           activation=activation)
