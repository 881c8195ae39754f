"""Keras' own test suites of SimpleRNN, GRU and LSTM (shipped in the Keras wheel, keras/src/layers/rnn/*_test.py),
run against the fused layers with one layer each: StackedRNN for SimpleRNN, StackedGRU for GRU, StackedLSTM for LSTM.

Each suite is loaded as a private copy of its module whose `layers` namespace answers the Keras layer's name with the
fused layer, so every test of the suite (run_layer_test's shape, serialization, training and mixed-precision checks,
Keras' expected values for initial states, go_backwards, stateful, masks and unroll) runs unchanged against it.
Every test of the three suites applies and runs; Keras itself skips one on this backend (GRUTest's torch-only
cuDNN dispatch test).
"""
import importlib.util
import sys
from pathlib import Path

import keras
import pytest

from deeprnn_fast.layers import StackedGRU, StackedLSTM, StackedRNN

KERAS_RNN_TESTS = Path(keras.__file__).parent / "src" / "layers" / "rnn"

# The step-by-step loop announces itself once per layer (tested elsewhere); here it is noise.
pytestmark = pytest.mark.filterwarnings("ignore:.*step-by-step reference loop:UserWarning")


def one_layer(stacked_class):
    """The stacked layer with num_layers=1 by default, under the Keras layer's signature `Layer(units, ...)`;
    registered so that run_layer_test's serialization round trip finds it."""
    def __init__(self, units, num_layers=1, **kwargs):
        stacked_class.__init__(self, units, num_layers, **kwargs)

    cls = type(f"OneLayer{stacked_class.__name__}", (stacked_class,), {"__init__": __init__})
    return keras.saving.register_keras_serializable(package="deeprnn_fast_keras_suites")(cls)


class _LayersWith:
    """keras.src.layers, but `name` is the fused layer."""

    def __init__(self, name, layer_class):
        self._name, self._layer_class = name, layer_class

    def __getattr__(self, attribute):
        if attribute == self._name:
            return self._layer_class
        return getattr(keras.src.layers, attribute)


def suite(module_name, keras_name, stacked_class):
    """A private copy of keras/src/layers/rnn/<module_name>.py whose `layers.<keras_name>` is the fused layer."""
    spec = importlib.util.spec_from_file_location(f"deeprnn_fast_suite_{module_name}",
                                                  KERAS_RNN_TESTS / f"{module_name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # absl's parameterized tests look their module up by name
    spec.loader.exec_module(module)
    module.layers = _LayersWith(keras_name, one_layer(stacked_class))
    return module


_simple_rnn = suite("simple_rnn_test", "SimpleRNN", StackedRNN)
_gru = suite("gru_test", "GRU", StackedGRU)
_lstm = suite("lstm_test", "LSTM", StackedLSTM)


class TestKerasSimpleRNNSuiteOnStackedRNN(_simple_rnn.SimpleRNNTest):
    pass


class TestKerasGRUSuiteOnStackedGRU(_gru.GRUTest):
    pass


class TestKerasLSTMSuiteOnStackedLSTM(_lstm.LSTMTest):
    pass


@pytest.mark.parametrize("module, keras_name, stacked_class", [
    (_simple_rnn, "SimpleRNN", StackedRNN), (_gru, "GRU", StackedGRU), (_lstm, "LSTM", StackedLSTM)])
def test_the_suites_run_the_fused_layers(module, keras_name, stacked_class):
    # Without this, a suite that quietly still built Keras' own layer would pass and prove nothing.
    layer = getattr(module.layers, keras_name)(3)
    assert isinstance(layer, stacked_class) and layer.num_layers == 1
    assert module.layers.Dense is keras.layers.Dense
