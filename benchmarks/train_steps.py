"""The implementations under benchmark, each as a compiled training step.

A training step is forward + backward inside one `tf.function`: loss = sum(y^2) over the top layer's output
sequence y [B, T, H], gradients with respect to all trainable weights (not the inputs). Every builder creates its
weights and returns a callable taking no arguments that runs one step and returns the loss; its first call traces
the step, which is why the benchmarks call it once before measuring anything.

Every implementation belongs to one cell (tanh RNN, GRU, LSTM): the report compares each cell's project
implementation with that cell's peers, and counts that cell's FLOPs (workloads.CELL_FLOP_FACTORS). PyTorch's peers
are in torch_steps.py. To add a case, write a builder `(Config, inputs) -> step` and add one row to
IMPLEMENTATIONS. A builder raises `Unavailable` when its implementation cannot run here (the compiled library is not
built or does not load: see require_compiled_library; torch is not installed; the project has no such cell yet); the
benchmarks then skip the case with that reason instead of timing a fallback.
"""
import os
from dataclasses import dataclass
from typing import Callable

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import torch_steps  # noqa: E402
import workloads  # noqa: E402
from unavailable import Unavailable  # noqa: E402,F401  (train_steps.Unavailable is what callers catch)

PROJECT = "project"
PEER = "peer"
TANH, GRU, LSTM = "tanh", "gru", "lstm"  # the cells, as workloads.CELL_FLOP_FACTORS names them


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
    return _as_variables(workloads.make_rnn_weights(config))


def build_keras_simplernn(config, inputs):
    """Keras' stacked RNN: RNN([SimpleRNNCell(H)] * L) (one cell object per layer), generic while-loop path."""
    keras.utils.set_random_seed(workloads.WEIGHT_SEED)
    rnn = keras.layers.RNN([keras.layers.SimpleRNNCell(config.hidden) for _ in range(config.layers)],
                           return_sequences=True)
    rnn.build((None, config.time, config.features))
    return compile_train_step(rnn, rnn.trainable_variables, inputs)


def build_keras_gru(config, inputs):
    """A stack of L Keras GRU(H) layers; on the CPU Keras runs its generic loop (cuDNN is GPU-only)."""
    return _keras_layer_stack(config, inputs, keras.layers.GRU)


def _keras_layer_stack(config, inputs, layer_class):
    keras.utils.set_random_seed(workloads.WEIGHT_SEED)
    layers = [layer_class(config.hidden, return_sequences=True) for _ in range(config.layers)]
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


def _as_variables(weights):
    kernels, recurrent_kernels, biases = weights
    as_variables = lambda arrays, name: [tf.Variable(a, name=f"{name}_{l}") for l, a in enumerate(arrays)]
    return as_variables(kernels, "kernel"), as_variables(recurrent_kernels, "recurrent_kernel"), \
        as_variables(biases, "bias")


def gru_variables(config):
    """Weights of the stacked GRU in Keras' layout (workloads.make_gru_weights) as variables."""
    return _as_variables(workloads.make_gru_weights(config))


def build_reference_gru(config, inputs):
    """deeprnn_fast.reference.stacked_gru: the package's plain-TensorFlow GRU loop (Keras' GRUCell maths, one cell
    at a time, unrolled by tf.function), on the same weights as the fused GRU."""
    deeprnn_fast = _import_deeprnn_fast()
    kernels, recurrent_kernels, biases = gru_variables(config)

    def forward(x):
        outputs, _ = deeprnn_fast.reference.stacked_gru(x, kernels, recurrent_kernels, biases)
        return outputs

    return compile_train_step(forward, kernels + recurrent_kernels + biases, inputs)


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


# ----------------------------------------------------------------------------------------------------------------
# The LSTM. Its peers skip where the project's op is missing (an older build): they are timed to be compared with
# it, and would only lengthen every run.

LSTM_MISSING = "deeprnn_fast.stacked_lstm does not exist yet"


def _require_project_lstm():
    deeprnn_fast = _import_deeprnn_fast()
    stacked_lstm = getattr(deeprnn_fast, "stacked_lstm", None)
    if stacked_lstm is None:
        raise Unavailable(f"{LSTM_MISSING} (the LSTM peers run beside it once it does)")
    return deeprnn_fast, stacked_lstm


def lstm_variables(config):
    """Weights of the stacked LSTM in Keras' LSTMCell layout (workloads.make_lstm_weights) as variables."""
    return _as_variables(workloads.make_lstm_weights(config))


def build_keras_lstm(config, inputs):
    """A stack of L Keras LSTM(H) layers (generic loop on the CPU)."""
    _require_project_lstm()
    return _keras_layer_stack(config, inputs, keras.layers.LSTM)


def build_tf_lstm_loop(config, inputs):
    """A plain-TensorFlow LSTM: Python loops over layers and time steps of Keras' LSTMCell maths
    (i, f, c, o = split(x W + h U + b); c = f c + i tanh(c~); h = o tanh(c)), unrolled by tf.function."""
    _require_project_lstm()
    kernels, recurrent_kernels, biases = lstm_variables(config)

    def forward(x):
        steps = tf.unstack(x, num=config.time, axis=1)
        for w, u, b in zip(kernels, recurrent_kernels, biases):
            h = c = tf.zeros([config.batch, config.hidden], x.dtype)
            outputs = []
            for x_t in steps:
                i, f, g, o = tf.split(tf.matmul(x_t, w) + tf.matmul(h, u) + b, 4, axis=-1)
                c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
                h = tf.sigmoid(o) * tf.tanh(c)
                outputs.append(h)
            steps = outputs
        return tf.stack(steps, axis=1)

    return compile_train_step(forward, kernels + recurrent_kernels + biases, inputs)


def build_deeprnn_fast_lstm(config, inputs):
    """deeprnn_fast.stacked_lstm, assumed to take per-layer lists in Keras' LSTMCell layout (kernel [in, 4H],
    recurrent kernel [H, 4H], bias [4H]) as stacked_gru does in GRUCell's, and to return (outputs, final states)."""
    deeprnn_fast, stacked_lstm = _require_project_lstm()
    require_compiled_library(deeprnn_fast)
    kernels, recurrent_kernels, biases = lstm_variables(config)

    def forward(x):
        outputs, _ = stacked_lstm(x, kernels, recurrent_kernels, biases)
        return outputs

    return compile_train_step(forward, kernels + recurrent_kernels + biases, inputs)


def build_torch_lstm(config, inputs):
    _require_project_lstm()
    return torch_steps.build_torch_lstm(config, inputs)


# Cheap checks that raise Unavailable where a builder would, without building anything: the memory benchmark asks
# them before it starts a fresh process (TensorFlow's import alone takes seconds) only to learn that the case skips.

def _project_available():
    require_compiled_library(_import_deeprnn_fast())


def _project_lstm_available():
    deeprnn_fast, _ = _require_project_lstm()
    require_compiled_library(deeprnn_fast)


def _torch_lstm_available():
    _require_project_lstm()
    torch_steps.import_torch()


def _always_available():
    pass


@dataclass(frozen=True)
class Implementation:
    name: str     # the second half of a case id, e.g. "seed-keras_simplernn"
    role: str     # PROJECT (report.py computes its cell's peers' ratios against it) or PEER
    cell: str     # TANH, GRU or LSTM: the table it is compared in and the FLOPs it is credited with
    build: Callable  # (Config, inputs [B, T, D] float32 array) -> step; raises Unavailable to be skipped
    # True where the weights are workloads.py's (converted to the implementation's layout): those steps must all
    # give the cell's loss on the same config; False where the implementation draws its own (Keras' layers).
    shared_weights: bool = True
    framework: str = "tensorflow"
    check_available: Callable = _always_available  # () -> None; raises Unavailable as build would


# One row per case, grouped by cell.
IMPLEMENTATIONS = {i.name: i for i in (
    Implementation("keras_simplernn", PEER, TANH, build_keras_simplernn, shared_weights=False),
    Implementation("d2l_loop", PEER, TANH, build_d2l_loop),
    Implementation("reference", PEER, TANH, build_reference),
    Implementation("torch_rnn", PEER, TANH, torch_steps.build_torch_rnn, framework="torch",
                   check_available=torch_steps.import_torch),
    Implementation("deeprnn_fast", PROJECT, TANH, build_deeprnn_fast, check_available=_project_available),
    Implementation("keras_gru", PEER, GRU, build_keras_gru, shared_weights=False),
    Implementation("reference_gru", PEER, GRU, build_reference_gru),
    Implementation("torch_gru", PEER, GRU, torch_steps.build_torch_gru, framework="torch",
                   check_available=torch_steps.import_torch),
    Implementation("deeprnn_fast_gru", PROJECT, GRU, build_deeprnn_fast_gru, check_available=_project_available),
    Implementation("keras_lstm", PEER, LSTM, build_keras_lstm, shared_weights=False,
                   check_available=_require_project_lstm),
    Implementation("tf_lstm_loop", PEER, LSTM, build_tf_lstm_loop, check_available=_require_project_lstm),
    Implementation("torch_lstm", PEER, LSTM, build_torch_lstm, framework="torch",
                   check_available=_torch_lstm_available),
    Implementation("deeprnn_fast_lstm", PROJECT, LSTM, build_deeprnn_fast_lstm,
                   check_available=_project_lstm_available),
)}


def cases(configs):
    """(case id, Config, Implementation) for every configuration x implementation, ids "<config>-<implementation>"."""
    return [(f"{c.name}-{i.name}", c, i) for c in configs for i in IMPLEMENTATIONS.values()]
