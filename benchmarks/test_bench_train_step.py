"""Time of one training step (forward + backward, loss = sum(y^2), gradients w.r.t. all weights) per
configuration x implementation, with pytest-benchmark.

Each case builds its weights and compiled step, calls it once to trace it, then benchmark.pedantic runs one warm-up
round and $DEEPRNN_FAST_BENCH_ROUNDS (default 5) timed rounds of one step each; report.py takes the medians.
With --benchmark-disable every case runs its step twice (trace + one call): a smoke test.

The implementations that share workloads.py's weights (the project's, the plain-TF loops, PyTorch's) compute the
same function, so the first loss of each is checked against the first one seen of its cell and configuration: a
peer that computed something else (a gate order mixed up in a weight conversion) would time the wrong work.
"""
import gc

import numpy as np
import pytest

import train_steps

# Relative difference allowed between two implementations' float32 losses on the same weights: their summation
# orders differ (~1e-6 relative); a wrong weight layout changes the loss by far more than 1e-3.
LOSS_RTOL = 1e-3

_first_losses = {}  # (config, cell) -> (implementation, loss)


def check_same_loss(config, implementation, loss):
    if not implementation.shared_weights:
        return
    key = (config.name, implementation.cell)
    other, expected = _first_losses.setdefault(key, (implementation.name, loss))
    assert np.isclose(loss, expected, rtol=LOSS_RTOL, atol=0.0), \
        f"{implementation.name} gives loss {loss!r} on {config.name}, {other} {expected!r} on the same weights"


def test_train_step(benchmark, case, inputs, rounds, record_case):
    config, implementation = case
    try:
        step = implementation.build(config, inputs)
    except train_steps.Unavailable as e:
        pytest.skip(str(e))
    record_case("train_step")
    loss = float(step())  # trace; never timed
    assert loss > 0.0, "a loss of zero would mean the step computed nothing"
    check_same_loss(config, implementation, loss)
    benchmark.extra_info["first_loss"] = loss
    gc.collect()  # leave no garbage of the tracing to be collected inside a timed round
    benchmark.pedantic(step, rounds=rounds, iterations=1, warmup_rounds=1)
