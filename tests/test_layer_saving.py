"""Saving models that hold StackedRNN, StackedGRU and StackedLSTM: .keras files and model.export() SavedModels,
reloaded in this process and in a fresh one that imports deeprnn_fast (which registers the layer classes and loads the
op library)."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from layer_testing import random_weights
from deeprnn_fast.layers import StackedGRU, StackedLSTM, StackedRNN, _fused

REPO = Path(__file__).resolve().parents[1]

# The step-by-step loop announces itself once per layer (tested in test_layer_options.py); here it is noise.
pytestmark = pytest.mark.filterwarnings("ignore:.*step-by-step reference loop:UserWarning")


def masked_model(rng):
    """Masks, dropout, a regularizer and a Bidirectional wrapper: everything a config has to bring back."""
    inputs = keras.Input((6, 3))
    masked = keras.layers.Masking(0.0)(inputs)
    hidden = keras.layers.Bidirectional(StackedRNN(5, 2, dropout=0.3, return_sequences=True, seed=2,
                                                   kernel_regularizer="l2"))(masked)
    hidden = StackedGRU(4, 2, dropout=0.2, return_sequences=True, seed=3, reset_after=False)(hidden)
    hidden = StackedLSTM(3, 2, dropout=0.2, return_sequences=True, seed=4, unit_forget_bias=False)(hidden)
    hidden = StackedRNN(4, 3, activation="relu", go_backwards=True)(hidden)
    model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
    random_weights(model, rng)
    return model


def unmasked_model(rng):
    """No mask, so that the SavedModel holds the fused op wherever the library is built."""
    inputs = keras.Input((6, 3))
    sequence, *states = StackedRNN(5, 2, return_sequences=True, return_state=True)(inputs)
    sequence = StackedGRU(6, 2, return_sequences=True)(sequence)
    sequence, *lstm_states = StackedLSTM(3, 2, return_sequences=True, return_state=True, go_backwards=True)(sequence)
    hidden = keras.layers.Bidirectional(StackedRNN(4, 2))(sequence)
    outputs = keras.layers.Dense(2)(keras.layers.Concatenate()([hidden] + states + lstm_states))
    model = keras.Model(inputs, outputs)
    random_weights(model, rng)
    return model


def test_keras_file_round_trip_gives_identical_predictions(tmp_path):
    rng = np.random.default_rng(51)
    x = rng.uniform(-1, 1, (4, 6, 3)).astype(np.float32)
    x[1, 4:] = 0.0
    model = masked_model(rng)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), model.get_weights()))


FRESH_PROCESS = textwrap.dedent("""
    import sys
    import numpy as np
    import keras
    import tensorflow as tf
    import deeprnn_fast.layers  # registers StackedRNN and StackedGRU with Keras and loads the op library

    keras_file, saved_model, inputs, out_keras, out_saved_model, out_tfsm = sys.argv[1:]
    x = np.load(inputs)
    np.save(out_keras, keras.saving.load_model(keras_file).predict(x, verbose=0))
    reloaded = tf.saved_model.load(saved_model)  # kept in a name: its variables live as long as it does
    np.save(out_saved_model, reloaded.serve(tf.constant(x)).numpy())
    np.save(out_tfsm, np.asarray(keras.layers.TFSMLayer(saved_model, call_endpoint="serve")(x)))
""")


def test_keras_file_and_export_reload_in_a_fresh_process(tmp_path):
    rng = np.random.default_rng(52)
    x = rng.uniform(-1, 1, (3, 6, 3)).astype(np.float32)
    x[0, 3:] = 0.0
    masked, unmasked = masked_model(rng), unmasked_model(rng)
    masked.save(tmp_path / "masked.keras")
    unmasked.export(str(tmp_path / "saved_model"), verbose=False)
    if _fused.library_loaded():  # the export holds the fused op, so the reload below exercises it
        graph = (tmp_path / "saved_model" / "saved_model.pb").read_bytes()
        assert all(op in graph for op in (b"DeeprnnFast>StackedRnn", b"DeeprnnFast>StackedGru",
                                          b"DeeprnnFast>StackedLstm"))
    np.save(tmp_path / "x.npy", x)
    outputs = [tmp_path / f"{name}.npy" for name in ("keras", "saved_model", "tfsm")]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([str(REPO)] + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(tmp_path / "masked.keras"),
                             str(tmp_path / "saved_model"), str(tmp_path / "x.npy")] + [str(p) for p in outputs],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_array_equal(np.load(outputs[0]), masked.predict(x, verbose=0))
    expected = unmasked.predict(x, verbose=0)
    np.testing.assert_allclose(np.load(outputs[1]), expected, atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(np.load(outputs[2]), expected, atol=1e-6, rtol=1e-6)
