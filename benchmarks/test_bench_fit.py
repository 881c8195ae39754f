"""Time of one model.fit epoch of a small stacked-RNN model: the layer `deeprnn_fast.StackedRNN` against the same model
built from Keras layers, `keras.layers.RNN([SimpleRNNCell] * L)`; the ratio Keras / deeprnn_fast is printed at the
end of the module and stored in each benchmark's extra_info.

The model is the size of d2l's language model (B=1024, T=32, D=28, H=32, L=2, a Dense readout, SGD): 10 batches of
random data per epoch. Each case trains one untimed epoch (tracing), then $DEEPRNN_FAST_BENCH_ROUNDS (default 5)
timed epochs. Select one side with -k deeprnn_fast or -k keras.

    .venv/bin/python -m pytest benchmarks/test_bench_fit.py
"""
import numpy as np
import pytest

import machine

BATCH, TIME, FEATURES, HIDDEN, LAYERS, CLASSES, BATCHES = 1024, 32, 28, 32, 2, 28, 10

_medians = {}


def stacked_rnn_layer(name):
    import keras

    if name == "deeprnn_fast":
        from deeprnn_fast.layers import StackedRNN
        return StackedRNN(HIDDEN, LAYERS, return_sequences=True)
    return keras.layers.RNN([keras.layers.SimpleRNNCell(HIDDEN) for _ in range(LAYERS)], return_sequences=True)


def build_model(name):
    import keras

    keras.utils.set_random_seed(1)  # the same initial weights for both sides
    model = keras.Sequential([keras.Input((TIME, FEATURES)), stacked_rnn_layer(name), keras.layers.Dense(CLASSES)])
    model.compile(keras.optimizers.SGD(1.0, global_clipnorm=1.0),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.fixture(scope="module")
def ratio_report(request):
    yield
    if "deeprnn_fast" in _medians and "keras" in _medians:
        line = (f"model.fit epoch (B={BATCH}, T={TIME}, D={FEATURES}, H={HIDDEN}, L={LAYERS}), median: keras "
                f"{_medians['keras'] * 1e3:.0f} ms, deeprnn_fast {_medians['deeprnn_fast'] * 1e3:.0f} ms, "
                f"keras / deeprnn_fast = {_medians['keras'] / _medians['deeprnn_fast']:.2f}x")
        # Printed past pytest's output capture, so that the ratio shows without -s.
        with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
            print("\n" + line)


@pytest.mark.parametrize("name", ["deeprnn_fast", "keras"])
def test_fit_epoch(benchmark, rounds, ratio_report, name):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (BATCH * BATCHES, TIME, FEATURES)).astype(np.float32)
    y = rng.integers(0, CLASSES, (BATCH * BATCHES, TIME))
    model = build_model(name)

    def epoch():
        return model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0).history["loss"][0]

    first = epoch()  # traces the train function; never timed
    assert np.isfinite(first) and first > 0
    benchmark.group = "model.fit epoch"
    benchmark.extra_info.update(machine.record(kind="fit_epoch", implementation=name, shape={
        "batch": BATCH, "time": TIME, "features": FEATURES, "hidden": HIDDEN, "layers": LAYERS, "batches": BATCHES}))
    benchmark.pedantic(epoch, rounds=rounds, iterations=1)
    if benchmark.stats is not None:  # None under --benchmark-disable
        _medians[name] = benchmark.stats.stats.median
        if len(_medians) == 2:
            benchmark.extra_info["keras_over_deeprnn_fast"] = _medians["keras"] / _medians["deeprnn_fast"]
