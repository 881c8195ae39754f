"""The masked and dropout training steps (issue 13), each as a compiled step, for test_bench_modifiers.py.

A case is configuration x cell (tanh RNN, GRU, LSTM) x variant x implementation:
  variants: "lengths" (random lengths in [T/2, T], right-padded), "holes" (a random [B, T] mask with about
    HOLE_FRACTION of the steps off, at least one step on per row), "dropout" (dropout = recurrent_dropout = DROPOUT,
    training=True), and "plain" (no mask, no dropout: the baseline a masked or dropout project step must stay within
    15 % of; project only);
  implementations: "deeprnn_fast" (the project's StackedRNN / StackedGRU / StackedLSTM) and "keras"
    (keras.layers.RNN over L cells of the same kind, each with the same dropout and recurrent_dropout).
The step is forward + backward inside one tf.function: y = layer(x, mask=mask, training=True), y times the mask when
there is one (so padded steps add nothing), loss = sum(y^2), gradients w.r.t. the layer's trainable variables.

The two implementations draw their own weights and their own dropout masks (both with Keras' meaning), so their
losses are not compared: this file times the work, the layers' tests
check the maths. Plain module (no pytest) so that report.py can share its names.
"""
import os
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import workloads  # noqa: E402
from unavailable import Unavailable  # noqa: E402

CONFIGS_DEFAULT = ("seed", "small")  # Keras' masked / dropout loops on `wide` take many seconds a step
MASK_SEED = 2                        # the lengths and holes of every configuration
DROPOUT = 0.2                        # both dropout and recurrent_dropout in the "dropout" variant
HOLE_FRACTION = 0.2

CELLS = ("tanh", "gru", "lstm")
PLAIN, LENGTHS, HOLES, DROPOUT_VARIANT = "plain", "lengths", "holes", "dropout"
VARIANTS = (PLAIN, LENGTHS, HOLES, DROPOUT_VARIANT)
MASKED_VARIANTS = (LENGTHS, HOLES)
PROJECT_IMPL, KERAS_IMPL = "deeprnn_fast", "keras"
IMPLEMENTATIONS = (PROJECT_IMPL, KERAS_IMPL)
PROJECT_LAYERS = {"tanh": "StackedRNN", "gru": "StackedGRU", "lstm": "StackedLSTM"}
KERAS_CELLS = {"tanh": "SimpleRNNCell", "gru": "GRUCell", "lstm": "LSTMCell"}


@dataclass(frozen=True)
class ModifierCase:
    config: workloads.Config
    cell: str
    variant: str
    implementation: str

    @property
    def id(self):
        return f"{self.config.name}-{self.cell}-{self.variant}-{self.implementation}"

    @property
    def role(self):
        return "project" if self.implementation == PROJECT_IMPL else "peer"

    @property
    def masked(self):
        return self.variant in MASKED_VARIANTS

    @property
    def rates(self):
        """(dropout, recurrent_dropout) of the layer."""
        return (DROPOUT, DROPOUT) if self.variant == DROPOUT_VARIANT else (0.0, 0.0)


def selected_configs():
    """workloads.selected_configs() when $DEEPRNN_FAST_BENCH_CONFIGS is set, else seed and small."""
    if os.environ.get(workloads.CONFIGS_ENV, "").strip():
        return workloads.selected_configs()
    return [workloads.CONFIGS[name] for name in CONFIGS_DEFAULT]


def cases(configs):
    """Every case of `configs`, in the order config, cell, variant, implementation (no Keras "plain")."""
    return [ModifierCase(config, cell, variant, implementation)
            for config in configs for cell in CELLS for variant in VARIANTS for implementation in IMPLEMENTATIONS
            if not (variant == PLAIN and implementation == KERAS_IMPL)]


def length_mask(config):
    """[B, T] bool: row b is on for its first n_b steps, n_b uniform in [T/2, T] (right padding)."""
    rng = np.random.default_rng(MASK_SEED)
    lengths = rng.integers(config.time // 2, config.time, size=config.batch, endpoint=True)
    return np.arange(config.time)[None, :] < lengths[:, None]


def hole_mask(config):
    """[B, T] bool with about HOLE_FRACTION of the steps off anywhere in a row; a row left all off gets its first
    step back, so that every row has one step the layer runs."""
    rng = np.random.default_rng(MASK_SEED + 1)
    mask = rng.uniform(size=(config.batch, config.time)) >= HOLE_FRACTION
    mask[~mask.any(axis=1), 0] = True
    return mask


def make_mask(case):
    if case.variant == LENGTHS:
        return length_mask(case.config)
    if case.variant == HOLES:
        return hole_mask(case.config)
    return None


def build_layer(case):
    import keras

    dropout, recurrent_dropout = case.rates
    c = case.config
    keras.utils.set_random_seed(workloads.WEIGHT_SEED)
    if case.implementation == PROJECT_IMPL:
        try:
            import deeprnn_fast
        except Exception as e:  # the package is being written: a reason to skip, not to fail
            raise Unavailable(f"deeprnn_fast does not import: {type(e).__name__}: {e}") from None
        info = deeprnn_fast.build_info()
        if not info["loadable"]:
            raise Unavailable(f"{info['error']} (the layers would time their Python fallback)")
        layer_class = getattr(deeprnn_fast, PROJECT_LAYERS[case.cell])
        layer = layer_class(c.hidden, num_layers=c.layers, return_sequences=True, dropout=dropout,
                            recurrent_dropout=recurrent_dropout)
    else:
        cell_class = getattr(keras.layers, KERAS_CELLS[case.cell])
        layer = keras.layers.RNN([cell_class(c.hidden, dropout=dropout, recurrent_dropout=recurrent_dropout)
                                  for _ in range(c.layers)], return_sequences=True)
    layer.build((None, c.time, c.features))
    return layer


def build_step(case, inputs):
    """The case's compiled training step: a callable of no arguments returning the loss (its first call traces)."""
    import tensorflow as tf

    layer = build_layer(case)
    variables = layer.trainable_variables
    x = tf.constant(inputs)
    mask_array = make_mask(case)

    if mask_array is None:
        @tf.function(input_signature=[tf.TensorSpec(x.shape, x.dtype)])
        def train_step(x):
            with tf.GradientTape() as tape:
                y = layer(x, training=True)
                loss = tf.reduce_sum(tf.square(y))
            return loss, tape.gradient(loss, variables)

        return lambda: train_step(x)[0]

    mask = tf.constant(mask_array)

    @tf.function(input_signature=[tf.TensorSpec(x.shape, x.dtype), tf.TensorSpec(mask.shape, tf.bool)])
    def masked_train_step(x, mask):
        with tf.GradientTape() as tape:
            y = layer(x, mask=mask, training=True)
            y = y * tf.cast(mask, y.dtype)[:, :, None]  # padded and skipped steps add nothing to the loss
            loss = tf.reduce_sum(tf.square(y))
        return loss, tape.gradient(loss, variables)

    return lambda: masked_train_step(x, mask)[0]
