"""Fixtures shared by the test files."""
import zlib

import numpy as np
import pytest

from fallback_switch import FALLBACK, FALLBACK_ENV


@pytest.fixture
def rng(request):
    # Fresh data per test, reproducible from the test's name (crc32, not hash(): str hashes change per process).
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture(scope="module")
def require_library():
    """Fails (not skips) the module's tests when the compiled op does not load: they test the op itself."""
    import deeprnn_fast
    info = deeprnn_fast.build_info()
    if not info["loadable"]:
        pytest.fail(f"the compiled op must be built for these tests: {info['error']}")


@pytest.fixture(scope="module")
def op_backend():
    """What the public wrappers run in an op-test module: "fused", the compiled op (which must load: a missing
    library fails these tests rather than passing them on the fallback), or with DEEPRNN_FAST_TEST_FALLBACK=1
    "fallback", the reference behind a library that raises LibraryUnavailable."""
    from deeprnn_fast import _library
    if not FALLBACK:
        import deeprnn_fast
        info = deeprnn_fast.build_info()
        if not info["loadable"]:
            pytest.fail(f"the compiled op must be built for these tests: {info['error']}")
        yield "fused"
        return

    def unavailable():
        raise _library.LibraryUnavailable(f"{FALLBACK_ENV}=1 treats the compiled library as unavailable")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_library, "library", unavailable)
        # The one warning per process is the subject of its own test, which resets this; here it would be noise.
        patch.setitem(_library._state, "warned", True)
        yield "fallback"


@pytest.fixture
def compiled_op(op_backend):
    """For tests of the compiled op itself (raw ops, kernel registration, the fused gradient's own behaviour):
    skipped when the op tests run on the fallback."""
    if op_backend == "fallback":
        pytest.skip(f"about the compiled op itself, which {FALLBACK_ENV}=1 treats as unavailable")
    from deeprnn_fast import _library
    return _library.library()
