"""The implementations under benchmark, each as a compiled training step.

A training step is forward + backward inside one `tf.function`: loss = sum(y^2) over the top layer's output
sequence y [B, T, H], gradients with respect to all trainable weights (not the inputs). Every builder creates its
weights and returns a callable taking no arguments that runs one step and returns the loss; its first call traces
the step, which is why the benchmarks call it once before measuring anything.

To add a case (e.g. the fused StackedGRU of issue 5), write a builder `(Config, inputs) -> step` and add one row to
IMPLEMENTATIONS. A builder raises `Unavailable` when its implementation cannot run here (the compiled library is not
built or does not load: see require_compiled_library); the benchmarks then skip the case with that reason instead of
timing a fallback.
"""
import os
from dataclasses import dataclass
from typing import Callable

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import workloads  # noqa: E402

PROJECT = "project"
PEER = "peer"


class Unavailable(Exception):
    """The implementation cannot run on this machine; the message says why."""


def compile_train_step(forward, variables, inputs):
    """forward: [B, T, D] tensor -> [B, T, H] tensor; variables: everything to differentiate with respect to."""
    x = tf.constant(inputs)

    @tf.function(input_signature=[tf.TensorSpec(x.shape, x.dtype)])
    def train_step(x):
        with tf.GradientTape() as tape:
            y = forward(x)
            loss = tf.reduce_sum(tf.square(y))
        gradients = tape.gradient(loss, variables)
        return loss, gradients

    def step():
        loss, _ = train_step(x)  # eager execution on the CPU is synchronous: the step is done on return
        return loss

    return step


def rnn_variables(config):
    kernels, recurrent_kernels, biases = workloads.make_rnn_weights(config)
    as_variables = lambda arrays, name: [tf.Variable(a, name=f"{name}_{l}") for l, a in enumerate(arrays)]
    return as_variables(kernels, "kernel"), as_variables(recurrent_kernels, "recurrent_kernel"), \
        as_variables(biases, "bias")


def build_keras_simplernn(config, inputs):
    """Keras' stacked RNN: RNN([SimpleRNNCell(H)] * L) (one cell object per layer), generic while-loop path."""
    keras.utils.set_random_seed(workloads.WEIGHT_SEED)
    rnn = keras.layers.RNN([keras.layers.SimpleRNNCell(config.hidden) for _ in range(config.layers)],
                           return_sequences=True)
    rnn.build((None, config.time, config.features))
    return compile_train_step(rnn, rnn.trainable_variables, inputs)


def build_keras_gru(config, inputs):
    """A stack of L Keras GRU(H) layers; on the CPU Keras runs its generic loop (cuDNN is GPU-only)."""
    keras.utils.set_random_seed(workloads.WEIGHT_SEED)
    layers = [keras.layers.GRU(config.hidden, return_sequences=True) for _ in range(config.layers)]
    width = config.features
    for layer in layers:
        layer.build((None, config.time, width))
        width = config.hidden

    def forward(x):
        for layer in layers:
            x = layer(x)
        return x

    return compile_train_step(forward, [v for layer in layers for v in layer.trainable_variables], inputs)


def build_d2l_loop(config, inputs):
    """d2l's StackedRNNScratch: time-major inputs, a Python loop over layers and over time steps of
    tanh(X W_xh + H W_hh + b), unrolled into one graph by tf.function. Independent of the package."""
    kernels, recurrent_kernels, biases = rnn_variables(config)

    def forward(x):
        steps = tf.unstack(tf.transpose(x, [1, 0, 2]), num=config.time)  # [T] x [B, D], as d2l's time-major loop
        for w_xh, w_hh, b_h in zip(kernels, recurrent_kernels, biases):
            h = tf.zeros([config.batch, config.hidden], x.dtype)
            outputs = []
            for x_t in steps:
                h = tf.tanh(tf.matmul(x_t, w_xh) + tf.matmul(h, w_hh) + b_h)
                outputs.append(h)
            steps = outputs
        return tf.stack(steps, axis=1)

    return compile_train_step(forward, kernels + recurrent_kernels + biases, inputs)


def _import_deeprnn_fast():
    try:
        import deeprnn_fast
    except Exception as e:  # the package is being written: any import failure is a reason to skip, not to fail
        raise Unavailable(f"deeprnn_fast does not import: {type(e).__name__}: {e}") from None
    return deeprnn_fast


def build_reference(config, inputs):
    """deeprnn_fast.reference.stacked_rnn: the package's plain-TensorFlow reference (and fallback)."""
    deeprnn_fast = _import_deeprnn_fast()
    kernels, recurrent_kernels, biases = rnn_variables(config)

    def forward(x):
        outputs, _ = deeprnn_fast.reference.stacked_rnn(x, kernels, recurrent_kernels, biases)
        return outputs

    return compile_train_step(forward, kernels + recurrent_kernels + biases, inputs)


def require_compiled_library(deeprnn_fast):
    """Raises Unavailable unless the fused op library loads: without it deeprnn_fast.stacked_rnn falls back to the
    reference, and the figures would be the reference's."""
    info = deeprnn_fast.build_info()
    if not info["loadable"]:
        raise Unavailable(f"{info['error']} (deeprnn_fast.stacked_rnn would time its Python fallback)")


def build_deeprnn_fast(config, inputs):
    """deeprnn_fast.stacked_rnn: the fused op."""
    deeprnn_fast = _import_deeprnn_fast()
    require_compiled_library(deeprnn_fast)
    kernels, recurrent_kernels, biases = rnn_variables(config)

    def forward(x):
        outputs, _ = deeprnn_fast.stacked_rnn(x, kernels, recurrent_kernels, biases)
        return outputs

    return compile_train_step(forward, kernels + recurrent_kernels + biases, inputs)


def gru_variables(config):
    """Weights of the stacked GRU in Keras' layout (kernel [in, 3H], recurrent kernel [H, 3H], bias [2, 3H]), drawn
    U(-1/sqrt(H), 1/sqrt(H)) as PyTorch's nn.GRU, from the weight seed."""
    rng = np.random.default_rng(workloads.WEIGHT_SEED)
    h = config.hidden
    scale = 1.0 / np.sqrt(h)

    def variable(name, *shape):
        return tf.Variable(rng.uniform(-scale, scale, shape).astype(workloads.DTYPE), name=name)

    kernels = [variable(f"kernel_{l}", config.features if l == 0 else h, 3 * h) for l in range(config.layers)]
    recurrent_kernels = [variable(f"recurrent_kernel_{l}", h, 3 * h) for l in range(config.layers)]
    biases = [variable(f"bias_{l}", 2, 3 * h) for l in range(config.layers)]
    return kernels, recurrent_kernels, biases


def build_deeprnn_fast_gru(config, inputs):
    """deeprnn_fast.stacked_gru: the fused GRU op (Keras' GRUCell maths, reset_after=True)."""
    deeprnn_fast = _import_deeprnn_fast()
    require_compiled_library(deeprnn_fast)
    from deeprnn_fast.ops import stacked_gru
    kernels, recurrent_kernels, biases = gru_variables(config)

    def forward(x):
        outputs, _ = stacked_gru(x, kernels, recurrent_kernels, biases)
        return outputs

    return compile_train_step(forward, kernels + recurrent_kernels + biases, inputs)


@dataclass(frozen=True)
class Implementation:
    name: str     # the second half of a case id, e.g. "seed-keras_simplernn"
    role: str     # PROJECT (report.py computes every peer's ratio against these) or PEER
    build: Callable  # (Config, inputs [B, T, D] float32 array) -> step; raises Unavailable to be skipped


# One row per case.
IMPLEMENTATIONS = {i.name: i for i in (
    Implementation("keras_simplernn", PEER, build_keras_simplernn),
    Implementation("keras_gru", PEER, build_keras_gru),
    Implementation("d2l_loop", PEER, build_d2l_loop),
    Implementation("reference", PEER, build_reference),
    Implementation("deeprnn_fast", PROJECT, build_deeprnn_fast),
    Implementation("deeprnn_fast_gru", PROJECT, build_deeprnn_fast_gru),
)}


def cases(configs):
    """(case id, Config, Implementation) for every configuration x implementation, ids "<config>-<implementation>"."""
    return [(f"{c.name}-{i.name}", c, i) for c in configs for i in IMPLEMENTATIONS.values()]
