"""Fixtures shared by the test files."""
import numpy as np
import pytest


@pytest.fixture
def rng(request):
    # Fresh data per test, reproducible from the test's name.
    return np.random.default_rng(abs(hash(request.node.nodeid)) % (2 ** 32))


@pytest.fixture(scope="module")
def require_library():
    """Fails (not skips) the module's tests when the compiled op does not load: they test the op itself."""
    import deeprnn_fast
    info = deeprnn_fast.build_info()
    if not info["loadable"]:
        pytest.fail(f"the compiled op must be built for these tests: {info['error']}")
