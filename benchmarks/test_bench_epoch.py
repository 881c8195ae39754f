"""The book's experiment per epoch (book_epochs.py): seconds per epoch, median, of `deeprnn-fast train`'s defaults
for --cell tanh and --cell gru with --implementation fused and keras, and of the same model in PyTorch; the
training and validation perplexities of every epoch go into extra_info (kind "epoch") beside the times.

Each case trains $DEEPRNN_FAST_BENCH_EPOCHS epochs (default 5; 2 under --benchmark-disable) in one call; the first
epoch includes tracing and is left out of the median. The time pytest-benchmark records is the whole run's.

    .venv/bin/python -m pytest benchmarks/test_bench_epoch.py            (-k gru, -k torch, ...)
"""
import math
import os

import pytest

import book_epochs
import machine
from unavailable import Unavailable

EPOCHS_ENV = "DEEPRNN_FAST_BENCH_EPOCHS"
CELLS = ("tanh", "gru")
IMPLEMENTATIONS = ("fused", "keras", "torch")


@pytest.fixture(scope="module")
def corpus():
    return book_epochs.load_corpus()


@pytest.fixture(scope="module")
def epochs(request):
    default = "2" if request.config.getoption("benchmark_disable", False) else "5"
    text = os.environ.get(EPOCHS_ENV, default)
    if not text.isdigit() or int(text) < 2:
        raise ValueError(f"{EPOCHS_ENV} must be an integer >= 2 (the first epoch is not timed); got {text!r}")
    return int(text)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("cell", CELLS)
def test_epoch(benchmark, corpus, epochs, cell, implementation):
    data, source = corpus
    benchmark.group = "book's experiment, seconds per epoch"
    try:
        result = benchmark.pedantic(book_epochs.run, args=(data, cell, implementation, epochs), rounds=1,
                                    iterations=1)
    except Unavailable as e:
        pytest.skip(str(e))
    benchmark.extra_info.update(machine.record(
        kind="epoch", cell=cell, implementation=implementation,
        role="project" if implementation == "fused" else "peer", epochs=epochs, data=source,
        data_sha1=data.sha1, vocab_size=len(data.vocab), train_windows=len(data.train), val_windows=len(data.val),
        hidden=book_epochs.HIDDEN, layers=book_epochs.LAYERS, **result))
    assert len(result["val_ppl"]) == epochs and len(result["epoch_seconds"]) == epochs
    # A model that learned nothing predicts every token uniformly: perplexity = the vocabulary's size.
    assert all(math.isfinite(p) for p in result["train_ppl"] + result["val_ppl"])
    assert result["train_ppl"][-1] < len(data.vocab), result["train_ppl"]
