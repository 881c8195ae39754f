"""The benchmark configurations and their data: one table, fixed seeds, float32.

Plain module (no pytest) because three places need it: the pytest fixtures, the fresh subprocess that measures peak
memory (peak_memory.py) and the report (report.py). The configurations are those of
../shared/notes/performance.md; add one by adding a row to CONFIGS.
"""
import os
from dataclasses import dataclass

import numpy as np

DTYPE = np.float32
INPUT_SEED = 0     # the inputs of every configuration
WEIGHT_SEED = 1    # the weights every implementation draws (each its own layout, the same seed)

# Environment variable restricting the configurations, e.g. DEEPRNN_FAST_BENCH_CONFIGS=seed,small
CONFIGS_ENV = "DEEPRNN_FAST_BENCH_CONFIGS"


# Matrix-product work of one cell relative to the tanh RNN's: a GRU has 3 gates' products (z, r, n), an LSTM 4
# (i, f, g, o), each the size of the tanh RNN's one.
CELL_FLOP_FACTORS = {"tanh": 1, "gru": 3, "lstm": 4}


@dataclass(frozen=True)
class Config:
    name: str
    batch: int
    time: int
    features: int
    hidden: int
    layers: int

    def describe(self):
        return (f"B={self.batch}, T={self.time}, D={self.features}, H={self.hidden}, L={self.layers}")

    def train_step_flops(self, cell="tanh"):
        """FLOPs of forward + backward of the stacked `cell` (see CELL_FLOP_FACTORS): about 3x the forward's matrix
        products per cell (../shared/notes/performance.md). The pointwise work (activations, gates) is left out:
        the products are what the peak bounds."""
        if cell not in CELL_FLOP_FACTORS:
            raise ValueError(f"cell must be one of {list(CELL_FLOP_FACTORS)}; got {cell!r}")
        b, t, d, h, l = self.batch, self.time, self.features, self.hidden, self.layers
        tanh_rnn = 3 * 2 * b * t * (d * h + h * h + (l - 1) * 2 * h * h)
        return CELL_FLOP_FACTORS[cell] * tanh_rnn


CONFIGS = {c.name: c for c in (
    Config("seed", batch=1024, time=32, features=28, hidden=32, layers=2),     # d2l's language model
    Config("small", batch=32, time=128, features=64, hidden=256, layers=4),    # small batch: dispatch-bound
    Config("wide", batch=64, time=64, features=256, hidden=1024, layers=2),    # wide: FLOP-bound
)}


def selected_configs():
    """The configurations named in $DEEPRNN_FAST_BENCH_CONFIGS (comma-separated), or all of them."""
    text = os.environ.get(CONFIGS_ENV, "").strip()
    if not text:
        return list(CONFIGS.values())
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise ValueError(f"{CONFIGS_ENV} names unknown configurations {unknown}; "
                         f"expected a comma-separated subset of {list(CONFIGS)}")
    return [CONFIGS[n] for n in names]


def make_inputs(config):
    """Inputs [B, T, D], uniform in [-1, 1), the same on every call for a configuration."""
    rng = np.random.default_rng(INPUT_SEED)
    return rng.uniform(-1.0, 1.0, (config.batch, config.time, config.features)).astype(DTYPE)


def make_rnn_weights(config):
    """Weights of the tanh stacked RNN in the project's layout, drawn U(-1/sqrt(H), 1/sqrt(H)) as PyTorch's nn.RNN
    (so the activations stay away from saturation at every width).

    Returns (kernels, recurrent_kernels, biases): lists of L arrays, [D, H] or [H, H], [H, H], [H].
    """
    rng = np.random.default_rng(WEIGHT_SEED)
    h = config.hidden
    scale = 1.0 / np.sqrt(h)

    def draw(*shape):
        return rng.uniform(-scale, scale, shape).astype(DTYPE)

    kernels = [draw(config.features if l == 0 else h, h) for l in range(config.layers)]
    recurrent_kernels = [draw(h, h) for _ in range(config.layers)]
    biases = [draw(h) for _ in range(config.layers)]
    return kernels, recurrent_kernels, biases


def _uniform_weights(config, gates, bias_shape):
    """Per layer: kernel [in, gates*H], recurrent kernel [H, gates*H], bias `bias_shape(gates*H)`, each drawn
    U(-1/sqrt(H), 1/sqrt(H)) from the weight seed, all kernels first, then all recurrent kernels, then all biases."""
    rng = np.random.default_rng(WEIGHT_SEED)
    h = config.hidden
    scale = 1.0 / np.sqrt(h)

    def draw(*shape):
        return rng.uniform(-scale, scale, shape).astype(DTYPE)

    kernels = [draw(config.features if l == 0 else h, gates * h) for l in range(config.layers)]
    recurrent_kernels = [draw(h, gates * h) for _ in range(config.layers)]
    biases = [draw(*bias_shape(gates * h)) for _ in range(config.layers)]
    return kernels, recurrent_kernels, biases


def make_gru_weights(config):
    """Weights of the stacked GRU in Keras' GRUCell layout (reset_after=True), as deeprnn_fast.stacked_gru takes
    them: kernel [in, 3H] and recurrent kernel [H, 3H] with the gates in the order z | r | n, bias [2, 3H] (row 0
    the input bias, row 1 the recurrent bias); U(-1/sqrt(H), 1/sqrt(H)) as PyTorch's nn.GRU."""
    return _uniform_weights(config, 3, lambda n: (2, n))


def make_lstm_weights(config):
    """Weights of the stacked LSTM in Keras' LSTMCell layout: kernel [in, 4H] and recurrent kernel [H, 4H] with the
    gates in the order i | f | c | o (PyTorch's i | f | g | o), bias [4H]; U(-1/sqrt(H), 1/sqrt(H)) as nn.LSTM."""
    return _uniform_weights(config, 4, lambda n: (n,))
