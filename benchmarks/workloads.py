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

    def train_step_flops(self):
        """FLOPs of forward + backward of the tanh stacked RNN: about 3x the forward's two matrix products per cell
        (../shared/notes/performance.md). A GRU does about 3x this; the figure is the common yardstick."""
        b, t, d, h, l = self.batch, self.time, self.features, self.hidden, self.layers
        return 3 * 2 * b * t * (d * h + h * h + (l - 1) * 2 * h * h)


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
