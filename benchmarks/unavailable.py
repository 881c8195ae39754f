"""The one exception every builder of a benchmark case may raise (train_steps.py, torch_steps.py, book_epochs.py).
Its own module so that those files need not import each other (or TensorFlow) to share it."""


class Unavailable(Exception):
    """The implementation cannot run on this machine; the message says why (and the benchmark skips with it)."""
