"""The book's experiment, epoch by epoch: `deeprnn-fast train` with its defaults (2 layers, 32 hidden, batch 1024,
SGD lr 2, gradient clipping to global norm 1, the book's initialisation and split) for one cell and implementation,
and the same model in PyTorch.

- TensorFlow (`fused`, `keras`, `reference`): deeprnn_fast.language_model's own build_model and train, exactly what
  the command line runs, minus writing the model directory.
- PyTorch (`torch`): one-hot inputs of the vocabulary, nn.RNN(tanh) / nn.GRU with num_layers=2, hidden 32,
  batch_first, a Linear readout; the book's initialisation (as language_model.model.book_initialize); per epoch
  the training windows reshuffled by the same NumPy generator and cut into batches of 1024, one SGD step each
  (mean token cross-entropy, clip_grad_norm_ to 1, lr 2), then the validation perplexity. The windows are the same
  arrays the TensorFlow runs train on.

An epoch's seconds cover its training steps and its validation, as language_model.model.train times them; the first
epoch includes tracing, so the median is taken over the others. The text is the book where it is found
($DEEPRNN_FAST_DATA, ../shared/data/timemachine.txt beside the repository, or the command line's cache), else a
synthetic corpus of the same size and alphabet (the record says which): never downloaded from here.
"""
import math
import os
import statistics
import time
from pathlib import Path

import numpy as np

from unavailable import Unavailable

HIDDEN, LAYERS = 32, 2   # `deeprnn-fast train` defaults
SEED = 0
SHARED_BOOK = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "timemachine.txt"
SYNTHETIC_CHARACTERS = 180_000  # about the book's length: 10,000 + 5,000 windows and its 28-token vocabulary
TF_IMPLEMENTATIONS = ("fused", "keras", "reference")


def synthetic_text(characters=SYNTHETIC_CHARACTERS, seed=SEED):
    """Words of 1-9 random lower-case letters separated by spaces: after the book's preprocessing, the book's
    vocabulary (space, 26 letters, <unk>)."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", np.uint8)
    chars = letters[rng.integers(0, 26, characters)]
    chars[rng.random(characters) < 0.18] = ord(" ")
    return chars.tobytes().decode("ascii")


def load_corpus():
    """(LanguageModelData, description of the source) with the book's preprocessing and split."""
    from deeprnn_fast.language_model import data

    if os.environ.get(data.DATA_ENV):  # named by the user: an error if it is missing, never replaced silently
        return data.load(), os.environ[data.DATA_ENV]
    if SHARED_BOOK.is_file():
        return data.load(str(SHARED_BOOK)), str(SHARED_BOOK)
    try:
        path = data.locate_text(download=False)
    except data.DataError:
        return data.prepare(synthetic_text()), f"synthetic ({SYNTHETIC_CHARACTERS} random letters and spaces)"
    return data.load(str(path)), str(path)


def _result(epoch_seconds, train_ppl, val_ppl):
    timed = epoch_seconds[1:] or epoch_seconds
    return {"epoch_seconds": epoch_seconds, "seconds_per_epoch_median": statistics.median(timed),
            "train_ppl": train_ppl, "val_ppl": val_ppl}


def run_tensorflow(corpus, cell, implementation, epochs):
    import keras

    import deeprnn_fast
    from deeprnn_fast.language_model import model as lm

    if implementation == "fused":
        info = deeprnn_fast.build_info()
        if not info["loadable"]:
            raise Unavailable(f"{info['error']} (the fused layer would time its plain-TensorFlow fallback)")
    keras.utils.set_random_seed(SEED)  # as the command line does before building the model
    config = lm.ModelConfig(corpus.vocab.idx_to_token, cell=cell, hidden=HIDDEN, layers=LAYERS,
                            implementation=implementation)
    model = lm.build_model(config, seed=SEED)
    if model.notice:
        raise Unavailable(model.notice)
    history = lm.train(model, corpus, lm.TrainConfig(epochs=epochs, seed=SEED))
    return {**_result(history.epoch_seconds, history.train_ppl, history.val_ppl),
            "recurrent_layer": type(model.rnn).__name__}


class _TorchLanguageModel:
    """tokens [B, T] -> logits [B, T, V]: one-hot, nn.RNN / nn.GRU, nn.Linear (the book's RNNLM)."""

    def __init__(self, torch, cell, vocab_size):
        self.torch, self.vocab_size = torch, vocab_size
        if cell == "gru":
            self.rnn = torch.nn.GRU(vocab_size, HIDDEN, num_layers=LAYERS, batch_first=True)
        else:
            self.rnn = torch.nn.RNN(vocab_size, HIDDEN, num_layers=LAYERS, nonlinearity=cell, batch_first=True)
        self.readout = torch.nn.Linear(HIDDEN, vocab_size)
        self.parameters = list(self.rnn.parameters()) + list(self.readout.parameters())
        self._book_initialize(cell)

    def _book_initialize(self, cell):
        """As language_model.model.book_initialize: the GRU's every weight and bias U(-1/sqrt(H), 1/sqrt(H)); the
        tanh / relu RNN's weights N(0, 0.01) and biases zero."""
        rng = np.random.default_rng(SEED)
        bound = 1.0 / math.sqrt(HIDDEN)
        named = list(self.rnn.named_parameters()) + list(self.readout.named_parameters())
        with self.torch.no_grad():
            for name, parameter in named:
                shape = tuple(parameter.shape)
                if cell == "gru":
                    value = rng.uniform(-bound, bound, shape)
                elif name.startswith("bias"):
                    value = np.zeros(shape)
                else:
                    value = rng.normal(0.0, 0.01, shape)
                parameter.copy_(self.torch.from_numpy(value.astype(np.float32)))

    def __call__(self, tokens):
        x = self.torch.nn.functional.one_hot(tokens, self.vocab_size).to(self.torch.float32)
        outputs, _ = self.rnn(x)
        return self.readout(outputs)


def run_torch(corpus, cell, epochs, batch_size=1024, lr=2.0, clip=1.0):
    from torch_steps import import_torch

    torch = import_torch()
    torch.manual_seed(SEED)
    functional = torch.nn.functional
    model = _TorchLanguageModel(torch, cell, len(corpus.vocab))
    optimizer = torch.optim.SGD(model.parameters, lr=lr)
    windows = torch.from_numpy(np.asarray(corpus.train, np.int64))
    x_train, y_train = windows[:, :-1].contiguous(), windows[:, 1:].contiguous()
    val = torch.from_numpy(np.asarray(corpus.val, np.int64))
    x_val, y_val = val[:, :-1].contiguous(), val[:, 1:].contiguous()
    rng = np.random.default_rng(SEED)  # the shuffling generator language_model.model.train uses
    epoch_seconds, train_ppl, val_ppl = [], [], []
    for epoch in range(epochs):
        start = time.perf_counter()
        order = torch.from_numpy(rng.permutation(len(x_train)))
        loss_sum = 0.0
        for i in range(0, len(order), batch_size):
            batch = order[i:i + batch_size]
            logits = model(x_train[batch])
            loss = functional.cross_entropy(logits.reshape(-1, model.vocab_size), y_train[batch].reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters, clip)
            optimizer.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"PyTorch's training loss became {value} in epoch {epoch + 1}")
            loss_sum += value * len(batch)
        with torch.no_grad():
            total = sum(float(functional.cross_entropy(model(x_val[i:i + batch_size]).reshape(-1, model.vocab_size),
                                                       y_val[i:i + batch_size].reshape(-1), reduction="sum"))
                        for i in range(0, len(x_val), batch_size))
        epoch_seconds.append(time.perf_counter() - start)
        train_ppl.append(math.exp(loss_sum / len(order)))
        val_ppl.append(math.exp(total / y_val.numel()))
    return {**_result(epoch_seconds, train_ppl, val_ppl), "recurrent_layer": f"torch.nn.{type(model.rnn).__name__}",
            "torch_threads": torch.get_num_threads()}


def run(corpus, cell, implementation, epochs):
    """{"epoch_seconds", "seconds_per_epoch_median", "train_ppl", "val_ppl" (per epoch), ...}; raises Unavailable
    where the implementation cannot run here."""
    if implementation == "torch":
        return run_torch(corpus, cell, epochs)
    if implementation not in TF_IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {TF_IMPLEMENTATIONS + ('torch',)}; got {implementation!r}")
    return run_tensorflow(corpus, cell, implementation, epochs)
