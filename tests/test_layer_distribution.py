"""model.fit of a model holding StackedRNN, StackedGRU and StackedLSTM under tf.distribute: MirroredStrategy over two logical CPU
devices gives the losses of one device, and the same code runs under MultiWorkerMirroredStrategy (one worker; two
worker processes: test_layer_multi_worker.py).

Logical devices must be configured before TensorFlow initialises, and MultiWorkerMirroredStrategy must be created
before any other TensorFlow op, so each strategy trains in a fresh process.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

TRAIN = textwrap.dedent("""
    import json
    import sys

    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    name = sys.argv[1]
    if name == "multiworker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()  # no TF_CONFIG: one worker, local devices
    elif name == "mirrored":
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    else:
        strategy = tf.distribute.get_strategy()

    import keras
    import numpy as np
    from deeprnn_fast.layers import StackedGRU, StackedLSTM, StackedRNN

    rng = np.random.default_rng(61)
    x = rng.uniform(-1, 1, (16, 5, 3)).astype(np.float32)
    y = rng.uniform(-1, 1, (16, 5, 2)).astype(np.float32)
    with strategy.scope():
        model = keras.Sequential([keras.Input((5, 3)), StackedRNN(6, 2, return_sequences=True),
                                  StackedGRU(6, 2, return_sequences=True), StackedLSTM(4, 2, return_sequences=True),
                                  keras.layers.Dense(2)])
        model.set_weights([rng.normal(0, 0.4, w.shape).astype(np.float32) for w in model.get_weights()])
        model.compile(keras.optimizers.SGD(0.2), "mse")
    history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history["loss"]
    print(json.dumps({"loss": history, "replicas": strategy.num_replicas_in_sync}))
""")


def train(strategy):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([str(REPO)] + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    env.pop("TF_CONFIG", None)
    result = subprocess.run([sys.executable, "-c", TRAIN, strategy], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def single_device():
    return train("single")


def test_mirrored_strategy_on_two_devices_gives_the_single_device_losses(single_device):
    mirrored = train("mirrored")
    assert mirrored["replicas"] == 2
    assert single_device["loss"][-1] < single_device["loss"][0]
    np.testing.assert_allclose(mirrored["loss"], single_device["loss"], rtol=1e-5)


def test_multi_worker_mirrored_strategy_runs_the_same_code(single_device):
    multiworker = train("multiworker")
    np.testing.assert_allclose(multiworker["loss"], single_device["loss"], rtol=1e-5)
