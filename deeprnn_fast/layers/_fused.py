"""The layers' one seam to the compiled op: which fused function to call and whether the library is loaded.

Imported lazily so that `deeprnn_fast.layers` can be imported while `deeprnn_fast/__init__.py` is still loading.
"""

__all__ = ["fused_function", "library_loaded"]


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


def fused_function(name, in_xla=False):
    """`deeprnn_fast.<name>` (the fused op, or the reference where the library is not built), or inside an XLA
    cluster `deeprnn_fast.reference.<name>`, the same maths in plain TensorFlow ops that XLA can compile. Both take
    the same arguments and return the same results."""
    from deeprnn_fast import ops, reference
    return getattr(reference if in_xla else ops, name)
