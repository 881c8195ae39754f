"""Training scaled out over two worker processes: MultiWorkerMirroredStrategy across two processes on the loopback
address (TF_CONFIG naming two free local ports), a model of StackedLSTM (token inputs), StackedGRU and StackedRNN,
giving the losses and weights of one process training on the whole (global) batch.

The workers run a custom training loop (strategy.run and the Keras optimizer, which all-reduces the gradients):
Keras 3's model.fit cannot run across several workers (keras-team/keras#20585; in Keras 3.15 it fails before the first
step, reducing the data batch in Model._maybe_symbolic_build), whatever the layers.
"""
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_SECONDS = 240
# How gRPC says that a port chosen free was taken by another process before the worker bound it.
PORT_TAKEN = ("Address already in use", "Failed to add port")

TRAIN = textwrap.dedent("""
    import json
    import os

    import tensorflow as tf

    # Created before any other op, as MultiWorkerMirroredStrategy requires; it reads the cluster from TF_CONFIG.
    strategy = (tf.distribute.MultiWorkerMirroredStrategy() if "TF_CONFIG" in os.environ
                else tf.distribute.get_strategy())

    import keras
    import numpy as np
    from deeprnn_fast.layers import StackedGRU, StackedLSTM, StackedRNN

    GLOBAL_BATCH, VOCABULARY = 8, 7
    rng = np.random.default_rng(81)
    tokens = rng.integers(0, VOCABULARY, (16, 5)).astype(np.int32)
    targets = rng.uniform(-1, 1, (16, 5, 2)).astype(np.float32)

    def dataset(context):
        # Worker i takes examples i, i + 2, ...: every global batch of 8 is the single process's, split in two.
        per_replica = context.get_per_replica_batch_size(GLOBAL_BATCH)
        examples = tf.data.Dataset.from_tensor_slices((tokens, targets))
        return examples.shard(context.num_input_pipelines, context.input_pipeline_id).batch(per_replica)

    with strategy.scope():
        model = keras.Sequential([keras.Input((5,), dtype="int32"),
                                  StackedLSTM(6, 2, return_sequences=True, vocabulary_size=VOCABULARY),
                                  StackedGRU(5, 1, return_sequences=True), StackedRNN(4, 2, return_sequences=True),
                                  keras.layers.Dense(2)])
        model.set_weights([rng.normal(0, 0.4, w.shape).astype(np.float32) for w in model.get_weights()])
        optimizer = keras.optimizers.SGD(0.3)
        optimizer.build(model.trainable_variables)

    @tf.function
    def train_step(iterator):
        def step(x, y):
            with tf.GradientTape() as tape:
                per_example = tf.reduce_mean(tf.square(model(x, training=True) - y), axis=[1, 2])
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=GLOBAL_BATCH)
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))  # all-reduced across replicas
            return loss
        return strategy.reduce("SUM", strategy.run(step, args=next(iterator)), axis=None)

    losses = []
    for epoch in range(2):
        iterator = iter(strategy.distribute_datasets_from_function(dataset))
        losses += [float(train_step(iterator)) for _ in range(2)]
    print(json.dumps({"loss": losses, "replicas": strategy.num_replicas_in_sync,
                      "weights": [w.tolist() for w in model.get_weights()]}))
""")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(**extra):
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
                PYTHONPATH=os.pathsep.join([str(REPO)] + os.environ.get("PYTHONPATH", "").split(os.pathsep)),
                **extra)


class PortTaken(RuntimeError):
    """A worker could not bind its port: another process took it after free_port() chose it."""


def run_together(environments, tmp_path):
    """Runs TRAIN once per environment, all at once; waits for all, stops the others at once when one fails, and
    always kills every process it started. Returns what each printed last, parsed."""
    processes, logs = [], []
    try:
        for index, env in enumerate(environments):
            out, err = tmp_path / f"process{index}.out", tmp_path / f"process{index}.err"
            logs.append((out, err))
            with open(out, "w") as stdout, open(err, "w") as stderr:
                processes.append(subprocess.Popen([sys.executable, "-c", TRAIN], stdout=stdout, stderr=stderr,
                                                  env=env))
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while any(p.poll() is None for p in processes):
            failed = [i for i, p in enumerate(processes) if p.poll() not in (None, 0)]
            if failed:
                stderr = logs[failed[0]][1].read_text()
                if any(text in stderr for text in PORT_TAKEN):
                    raise PortTaken(stderr[-3000:])
                raise AssertionError(f"process {failed[0]} failed:\n{stderr[-3000:]}")
            assert time.monotonic() < deadline, f"the processes did not finish within {TIMEOUT_SECONDS} s"
            time.sleep(0.2)
        results = []
        for index, (process, (out, err)) in enumerate(zip(processes, logs)):
            assert process.returncode == 0, f"process {index} failed:\n{err.read_text()[-3000:]}"
            lines = out.read_text().strip().splitlines()
            assert lines, f"process {index} printed nothing; stderr:\n{err.read_text()[-3000:]}"
            results.append(json.loads(lines[-1]))
        return results
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()


def worker_environments():
    """TF_CONFIG of a two-worker cluster on two free loopback ports, one environment per worker."""
    ports = [free_port(), free_port()]
    return [environment(TF_CONFIG=json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                              "task": {"type": "worker", "index": index}}))
            for index in range(2)]


def test_two_workers_train_to_the_losses_of_one_process_on_the_global_batch(tmp_path):
    alone_environment = environment()
    alone_environment.pop("TF_CONFIG", None)
    try:
        alone, *workers = run_together([alone_environment] + worker_environments(), tmp_path)
    except PortTaken:  # once more, on two other ports
        alone, *workers = run_together([alone_environment] + worker_environments(), tmp_path)
    assert alone["replicas"] == 1 and all(w["replicas"] == 2 for w in workers)
    first_epoch, second_epoch = sum(alone["loss"][:2]), sum(alone["loss"][2:])  # two batches per epoch
    assert second_epoch < first_epoch, alone["loss"]
    for worker in workers:
        np.testing.assert_allclose(worker["loss"], alone["loss"], rtol=1e-5)
        for got, expected in zip(worker["weights"], alone["weights"]):
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
