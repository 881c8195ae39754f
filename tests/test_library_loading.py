"""Loading the compiled library: the version guard and the one-warning fallback to the reference."""
import warnings

import numpy as np
import pytest
import tensorflow as tf

import deeprnn_fast
from deeprnn_fast import _library, reference
from op_testing import random_args


@pytest.fixture
def fresh_loader(monkeypatch):
    """A loader state as in a new process; the real one is put back afterwards."""
    state = {"loaded": False, "library": None, "error": None, "warned": False}
    monkeypatch.setattr(_library, "_state", state)
    return state


def test_refuses_a_library_built_for_another_tensorflow(fresh_loader, monkeypatch):
    monkeypatch.setattr(_library, "read_build_info", lambda: {"tensorflow_version": "2.0.0", "cuda": False})
    with pytest.raises(_library.LibraryUnavailable, match=r"built against TensorFlow 2\.0\.0 but TensorFlow "
                                                          + tf.__version__.replace(".", r"\.")):
        _library.library()
    info = deeprnn_fast.build_info()
    assert not info["loadable"] and "rebuild" in info["error"]


def test_missing_library_falls_back_to_the_reference_with_one_warning(fresh_loader, monkeypatch, tmp_path):
    monkeypatch.setattr(_library, "LIBRARY_PATH", str(tmp_path / "missing.so"))
    args = random_args(np.random.default_rng(3), 2, 3, 4, 5, 2)
    with pytest.warns(RuntimeWarning, match="Falling back to the plain-TensorFlow reference") as record:
        outputs, finals = deeprnn_fast.stacked_rnn(*args)
    assert len([w for w in record if issubclass(w.category, RuntimeWarning)]) == 1
    expected, expected_finals = reference.stacked_rnn(*args)
    np.testing.assert_array_equal(outputs, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second call must not warn again
        deeprnn_fast.stacked_rnn(*args)
    assert not deeprnn_fast.build_info()["loadable"]
