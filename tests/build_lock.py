"""One builder at a time for the tests' cached builds (the CUDA emulation, the AddressSanitizer module): pytest -n
runs test files in several processes, and two of them may ask for the same build at once."""
import contextlib
import fcntl
import os


@contextlib.contextmanager
def exclusive(lock_path):
    """Holds an exclusive lock on `lock_path` (created, with its folder, when missing) for the block's duration;
    the lock goes with the process if it dies."""
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    with open(lock_path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
