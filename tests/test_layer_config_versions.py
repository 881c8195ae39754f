"""Configs of the stacked layers across the change of `dropout`'s meaning: version 1 (no `config_version`, written
before Keras' cell dropout was supported) stored the between-layer dropout as `dropout` and must load as
`between_layer_dropout`; version 2 round-trips every dropout; an unknown version is refused by name."""
import json

import keras
import numpy as np
import pytest

from deeprnn_fast.layers import StackedGRU, StackedLSTM, StackedRNN

LAYERS = (StackedRNN, StackedGRU, StackedLSTM)


def version_1_config(layer_class):
    """A config as the layer wrote it before this change (git show HEAD~1:deeprnn_fast/layers/_base.py): the keys of
    today's minus between_layer_dropout and config_version, `dropout` holding the dropout between layers."""
    config = layer_class(4, 3, dropout=0.0, recurrent_dropout=0.1, seed=5).get_config()
    del config["between_layer_dropout"], config["config_version"]
    config["dropout"] = 0.35
    return json.loads(json.dumps(config))  # as read back from a .keras file


@pytest.mark.parametrize("layer_class", LAYERS)
def test_a_version_1_config_loads_its_dropout_as_dropout_between_layers(layer_class):
    layer = layer_class.from_config(version_1_config(layer_class))
    assert (layer.between_layer_dropout, layer.dropout, layer.recurrent_dropout) == (0.35, 0.0, 0.1)
    assert layer.get_config()["config_version"] == 2
    # Through Keras' own deserialization too, as load_model does it.
    serialized = {"module": "deeprnn_fast.layers", "class_name": layer_class.__name__,
                  "config": version_1_config(layer_class), "registered_name": f"deeprnn_fast>{layer_class.__name__}"}
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is layer_class and (restored.between_layer_dropout, restored.dropout) == (0.35, 0.0)


@pytest.mark.parametrize("layer_class", LAYERS)
def test_a_version_2_config_round_trips_every_dropout(layer_class):
    layer = layer_class(4, 3, dropout=0.2, recurrent_dropout=0.15, between_layer_dropout=0.3, seed=1)
    restored = layer_class.from_config(json.loads(json.dumps(layer.get_config())))
    assert (restored.dropout, restored.recurrent_dropout, restored.between_layer_dropout) == (0.2, 0.15, 0.3)
    assert restored.get_config() == layer.get_config()


def test_a_model_saved_with_every_dropout_trains_the_same_after_loading(tmp_path):
    rng = np.random.default_rng(91)
    inputs = keras.Input((5, 3))
    outputs = StackedGRU(4, 2, dropout=0.2, recurrent_dropout=0.1, between_layer_dropout=0.3, seed=2,
                         implementation=1)(inputs)
    model = keras.Model(inputs, outputs)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    layer = loaded.layers[-1]
    assert (layer.dropout, layer.recurrent_dropout, layer.between_layer_dropout, layer.implementation) == \
        (0.2, 0.1, 0.3, 1)
    x = rng.uniform(-1, 1, (2, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), model(x))


@pytest.mark.parametrize("version", [3, "2", None])
def test_an_unknown_config_version_is_refused_by_name(version):
    config = StackedRNN(4, 2).get_config()
    config["config_version"] = version
    with pytest.raises(ValueError, match=r"StackedRNN config_version .* is not one this version of deeprnn_fast "
                                         r"reads \(1 or 2\)"):
        StackedRNN.from_config(config)
