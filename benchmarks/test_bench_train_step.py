"""Time of one training step (forward + backward, loss = sum(y^2), gradients w.r.t. all weights) per
configuration x implementation, with pytest-benchmark.

Each case builds its weights and compiled step, calls it once to trace it, then benchmark.pedantic runs one warm-up
round and $DEEPRNN_FAST_BENCH_ROUNDS (default 5) timed rounds of one step each; report.py takes the medians.
With --benchmark-disable every case runs its step twice (trace + one call): a smoke test.
"""
import gc

import pytest

import train_steps


def test_train_step(benchmark, case, inputs, rounds, record_case):
    config, implementation = case
    record_case("train_step")
    try:
        step = implementation.build(config, inputs)
    except train_steps.Unavailable as e:
        pytest.skip(str(e))
    loss = step()  # trace; never timed
    assert float(loss) > 0.0, "a loss of zero would mean the step computed nothing"
    gc.collect()  # leave no garbage of the tracing to be collected inside a timed round
    benchmark.pedantic(step, rounds=rounds, iterations=1, warmup_rounds=1)
