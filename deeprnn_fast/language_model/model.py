"""The book's character-level language model: one-hot tokens, a stacked RNN, a Dense readout to the vocabulary.

Everything the command line needs besides the data: building the model with one of three recurrent stacks (the
fused layer, the plain-TensorFlow reference, Keras' own cells) and the book's initialisation, the training loop
(d2l's Trainer: plain SGD with global-norm gradient clipping, loss = mean cross-entropy over all tokens), evaluation
as perplexity, greedy generation, the perplexity plot, and saving / loading a model directory.
"""
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import keras
import numpy as np
import tensorflow as tf

from deeprnn_fast import reference
from deeprnn_fast.language_model import model_dir
from deeprnn_fast.language_model.data import LanguageModelData, Vocab, check_prefix

CELLS = model_dir.CELLS
IMPLEMENTATIONS = model_dir.IMPLEMENTATIONS
# A mean token loss (nats) beyond this is divergence, not learning: a uniform guess over the vocabulary scores
# ln(V), about 3.3 for the book's 28 tokens, and exp of it (the perplexity) would overflow a float past about 709.
DIVERGED_LOSS = 100.0


@dataclass
class ModelConfig:
    """What it takes to rebuild a model: saved as model.json next to the weights."""
    vocab: List[str]
    cell: str = "tanh"
    hidden: int = 32
    layers: int = 2
    dropout: float = 0.0  # Keras' cell dropout (the book's GRUCell(dropout=...)): each cell's input, one mask a call
    implementation: str = "fused"
    between_layer_dropout: float = 0.0  # PyTorch's dropout between layers, a fresh mask every step

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}; got {self.cell!r}")
        if self.implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {', '.join(IMPLEMENTATIONS)}; got {self.implementation!r}")
        for name in ("hidden", "layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        for name in ("dropout", "between_layer_dropout"):
            rate = getattr(self, name)
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
                raise ValueError(f"{name} must be in [0, 1); got {rate!r}")
        if len(self.vocab) < 2:
            raise ValueError(f"vocab must hold at least 2 tokens; got {self.vocab!r}")


# ----------------------------------------------------------------------------------------------------------------
# Initialisation. With Keras' defaults (glorot / orthogonal) these small models overfit and miss the book's
# perplexities (../shared/notes/performance.md); the book's models start small instead. The weights are drawn here,
# after the layers are built, so that every implementation starts from the same rule (and, given the same seed and
# weight layout, the same values) whatever initializers its layer uses.

def book_initialize(model, seed: int):
    """The book's scratch RNN: every weight N(0, 0.01), biases zero. The book's GRU (PyTorch's nn.GRU and
    nn.Linear): every weight and bias U(-1/sqrt(H), 1/sqrt(H)) (the readout's fan-in is H as well)."""
    rng = np.random.default_rng(seed)
    bound = 1.0 / math.sqrt(model.config.hidden)
    for variable in model.weights:
        shape = tuple(variable.shape)
        if model.config.cell == "gru":
            value = rng.uniform(-bound, bound, shape)
        elif variable.name.startswith("bias"):
            value = np.zeros(shape)
        else:
            value = rng.normal(0.0, 0.01, shape)
        variable.assign(value.astype(variable.dtype))


def _fresh(initializer):
    """A new instance of an initializer. Keras 3 initializers draw their seed once, at construction, so one
    instance shared by several weights would give weights of the same shape identical values."""
    return initializer.__class__.from_config(initializer.get_config())


# ----------------------------------------------------------------------------------------------------------------
# The recurrent stacks. Each is a Keras layer called as layer(x [B, T, D], initial_state=None or L states [B, H],
# training=...) and returning [outputs [B, T, H], state_1, ..., state_L], like keras.layers.RNN with
# return_sequences=True and return_state=True, with its weights in that layer's order (per layer kernel,
# recurrent_kernel, bias), so that the tanh / relu stacks share weights.

class ReferenceStackedRNN(keras.layers.Layer):
    """The stacked RNN on `deeprnn_fast.reference.stacked_rnn`: a plain TensorFlow graph unrolled over time.

    Dropout as in the fused layer: `dropout` is Keras' (each cell's input times one mask per call), and
    `between_layer_dropout` torch.nn.RNN's (each layer's outputs but the last's times a fresh mask at every step on
    their way into the next layer).
    """

    def __init__(self, units, num_layers, activation="tanh", kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", dropout=0.0, between_layer_dropout=0.0,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self.units, self.num_layers, self.activation, self.dropout = units, num_layers, activation, dropout
        self.between_layer_dropout = between_layer_dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, inputs_shape, initial_state_shape=None):
        self.kernels, self.recurrent_kernels, self.biases = [], [], []
        for l in range(self.num_layers):
            fan_in = inputs_shape[-1] if l == 0 else self.units
            self.kernels.append(self.add_weight(shape=(fan_in, self.units), name=f"kernel_{l}",
                                                initializer=_fresh(self.kernel_initializer)))
            self.recurrent_kernels.append(self.add_weight(shape=(self.units, self.units), name=f"recurrent_kernel_{l}",
                                                          initializer=_fresh(self.recurrent_initializer)))
            self.biases.append(self.add_weight(shape=(self.units,), name=f"bias_{l}",
                                               initializer=_fresh(self.bias_initializer)))

    def call(self, inputs, initial_state=None, training=False):
        states = list(initial_state) if initial_state is not None else None
        modifiers = {}
        batch = tf.shape(inputs)[0]
        if training and self.dropout > 0:
            widths = [self.kernels[0].shape[0]] + [self.units] * (self.num_layers - 1)
            modifiers["input_dropout"] = [
                keras.random.dropout(tf.ones(tf.stack([1, batch, w]), self.kernels[0].dtype), self.dropout,
                                     seed=self.seed_generator) for w in widths]
        if training and self.between_layer_dropout > 0 and self.num_layers > 1:
            shape = tf.stack([self.num_layers - 1, tf.shape(inputs)[1], batch, self.units])
            modifiers["between_dropout"] = keras.random.dropout(tf.ones(shape, self.kernels[0].dtype),
                                                                self.between_layer_dropout, seed=self.seed_generator)
        outputs, finals = reference.stacked_rnn(inputs, self.kernels, self.recurrent_kernels, self.biases, states,
                                                self.activation, **modifiers)
        return [outputs, *finals]


def _keras_stack(config: ModelConfig) -> keras.layers.Layer:
    """Keras' own cells, as the book's TensorFlow code builds them (its dropout is Keras': on every cell's input).
    Keras has no dropout between layers: a config asking for it is refused."""
    if config.between_layer_dropout > 0:
        raise ValueError("implementation 'keras' has no dropout between layers (between_layer_dropout="
                         f"{config.between_layer_dropout}); Keras' cells take `dropout` only")
    def cell():
        if config.cell == "gru":
            return keras.layers.GRUCell(config.hidden, dropout=config.dropout)  # reset_after: nn.GRU's formulation
        return keras.layers.SimpleRNNCell(config.hidden, activation=config.cell, dropout=config.dropout)
    return keras.layers.RNN([cell() for _ in range(config.layers)], return_sequences=True, return_state=True)


# The fused layers take the token ids themselves (vocabulary_size): x W_x of a one-hot x is a row of W_x, so the
# first layer's input product becomes a gather, the [B, T, V] one-hot tensor is never built, and no gradient is
# computed for an input that needs none. The kernel keeps its [V, H] shape, so model directories are unchanged.

def _fused_stack(config: ModelConfig) -> keras.layers.Layer:
    from deeprnn_fast.layers import StackedRNN
    return StackedRNN(config.hidden, config.layers, activation=config.cell, dropout=config.dropout,
                      between_layer_dropout=config.between_layer_dropout, return_sequences=True, return_state=True,
                      vocabulary_size=len(config.vocab))


def _fused_gru_stack(config: ModelConfig) -> keras.layers.Layer:
    from deeprnn_fast.layers import StackedGRU
    return StackedGRU(config.hidden, config.layers, dropout=config.dropout,
                      between_layer_dropout=config.between_layer_dropout, return_sequences=True, return_state=True,
                      vocabulary_size=len(config.vocab))


def build_recurrent_stack(config: ModelConfig):
    """The recurrent stack for config.implementation, and a one-line notice (else None) when another one had to
    stand in: Keras' GRU cells for a GRU until deeprnn_fast.layers.StackedGRU exists."""
    if config.implementation == "keras":
        return _keras_stack(config), None
    if config.cell != "gru":
        if config.implementation == "reference":
            return ReferenceStackedRNN(config.hidden, config.layers, config.cell, dropout=config.dropout,
                                       between_layer_dropout=config.between_layer_dropout), None
        return _fused_stack(config), None
    # The fused GRU layer runs its own plain-TF loop where the op cannot, so it serves as the reference too.
    try:
        return _fused_gru_stack(config), None
    except ImportError:
        return _keras_stack(config), (f"--implementation {config.implementation} has no GRU yet "
                                      "(deeprnn_fast.layers.StackedGRU): using Keras' GRU cells instead")


class CharLanguageModel(keras.Model):
    """tokens [B, T] -> logits [B, T, V]: one-hot, the stacked RNN, a Dense readout (the book's RNNLM). The fused
    layers take the ids directly (their vocabulary_size), which computes the same function."""

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.rnn, self.notice = build_recurrent_stack(config)
        self.readout = keras.layers.Dense(len(config.vocab))

    @property
    def vocab_size(self):
        return len(self.config.vocab)

    def call(self, tokens, initial_state=None, training=False):
        """Returns (logits [B, T, V], list of L final states [B, H]); initial_state: None (zeros) or L states."""
        takes_tokens = getattr(self.rnn, "vocabulary_size", None) is not None
        x = tokens if takes_tokens else tf.one_hot(tokens, self.vocab_size)
        outputs, *states = self.rnn(x, initial_state=initial_state, training=training)
        # Keras' RNN over stacked cells returns each cell's state as a one-element list when no state was passed.
        states = [s[0] if isinstance(s, (list, tuple)) else s for s in states]
        return self.readout(outputs), states


def build_model(config: ModelConfig, seed: int = 0) -> CharLanguageModel:
    """A model with its weights created and initialised the book's way."""
    model = CharLanguageModel(config)
    model(tf.zeros([1, 1], tf.int32))  # creates the weights
    book_initialize(model, seed)
    return model


def token_losses(targets, logits):
    """Cross-entropy of every token [B, T]: the log-sum-exp of its logits minus its target's logit. (TensorFlow's
    sparse_softmax_cross_entropy_with_logits also computes the gradient, which evaluation does not need.)"""
    picked = tf.gather(logits, tf.expand_dims(targets, -1), batch_dims=len(targets.shape))[..., 0]
    return tf.reduce_logsumexp(logits, -1) - picked


def mean_token_loss(targets, logits):
    """The training loss, as d2l's: the mean cross-entropy over all tokens of the batch."""
    vocab_size = tf.shape(logits)[-1]
    return _mean_cross_entropy(tf.reshape(logits, [-1, vocab_size]), tf.reshape(targets, [-1]))


@tf.custom_gradient
def _mean_cross_entropy(logits, labels):
    """Mean cross-entropy of logits [N, V] against labels [N], with its gradient written out,
    (softmax - one_hot) / N: for a vocabulary this small about a third faster than TensorFlow's op and its
    generic gradient (measured on the book's batch, 32768 x 28 logits, on the 2-core CPU)."""
    shifted = logits - tf.reduce_max(logits, -1, keepdims=True)
    exp = tf.exp(shifted)
    total = tf.reduce_sum(exp, -1, keepdims=True)
    one_hot = tf.one_hot(labels, tf.shape(logits)[-1], dtype=logits.dtype)
    n = tf.cast(tf.shape(logits)[0], logits.dtype)
    loss = (tf.reduce_sum(tf.math.log(total)) - tf.reduce_sum(shifted * one_hot)) / n

    def gradient(upstream):
        return upstream * (exp / total - one_hot) / n, None

    return loss, gradient


# ----------------------------------------------------------------------------------------------------------------
# Training and evaluation.

@dataclass
class TrainConfig:
    batch_size: int = 1024
    lr: float = 2.0
    clip: float = 1.0  # global-norm gradient clipping; 0 turns it off
    epochs: int = 100
    seed: int = 0


@dataclass
class History:
    train_ppl: List[float] = field(default_factory=list)
    val_ppl: List[float] = field(default_factory=list)
    epoch_seconds: List[float] = field(default_factory=list)

    @property
    def seconds(self):
        return float(sum(self.epoch_seconds))


def _inputs_targets(windows):
    windows = np.asarray(windows, np.int32)
    return np.ascontiguousarray(windows[:, :-1]), np.ascontiguousarray(windows[:, 1:])


def make_eval_step(model, num_steps=None):
    """A compiled step returning the summed token cross-entropy of a batch; num_steps fixes the traced shape."""
    signature = None if num_steps is None else [tf.TensorSpec([None, num_steps], tf.int32)] * 2

    @tf.function(input_signature=signature, reduce_retracing=True)
    def eval_step(x, y):
        logits, _ = model(x, training=False)
        return tf.reduce_sum(token_losses(y, logits))
    return eval_step


def perplexity(mean_loss: float) -> float:
    """exp(mean_loss), and infinity (rather than OverflowError) where that is too large for a float."""
    try:
        return math.exp(mean_loss)
    except OverflowError:
        return math.inf


def _check_loss(loss: float, what: str, epoch: int):
    """The one-line divergence error once a loss is not finite or beyond DIVERGED_LOSS."""
    if not math.isfinite(loss):
        raise FloatingPointError(f"the {what} loss became {loss} in epoch {epoch}; try a smaller --lr")
    if loss > DIVERGED_LOSS:
        raise FloatingPointError(f"the {what} loss became {loss:.4g} in epoch {epoch}, beyond {DIVERGED_LOSS:g} "
                                 "(diverged); try a smaller --lr")


def mean_loss(model, windows, batch_size=1024, eval_step=None) -> float:
    """The mean cross-entropy of the model over all N * T tokens of windows [N, T + 1]."""
    x, y = _inputs_targets(windows)
    eval_step = eval_step or make_eval_step(model)
    total = 0.0
    for i in range(0, len(x), batch_size):
        total += float(eval_step(x[i:i + batch_size], y[i:i + batch_size]))
    return total / y.size


def evaluate(model, windows, batch_size=1024, eval_step=None) -> float:
    """Perplexity of the model on windows [N, T + 1]: exp of the mean cross-entropy over all N * T tokens."""
    return perplexity(mean_loss(model, windows, batch_size, eval_step))


def train(model: CharLanguageModel, data: LanguageModelData, config: TrainConfig,
          on_epoch: Optional[Callable[[int, float, float, float], None]] = None,
          on_batch: Optional[Callable[[float], None]] = None) -> History:
    """d2l's Trainer.fit: per epoch, the training windows reshuffled and cut into batches, one SGD step on each
    (loss = mean cross-entropy over the batch's tokens, gradients clipped to global norm config.clip), then the
    validation perplexity. The training perplexity is the exponential of the token-weighted mean loss of the
    epoch's steps, as the book's plot shows it. on_epoch(epoch, train_ppl, val_ppl, seconds) and
    on_batch(loss) report progress."""
    keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    x_train, y_train = _inputs_targets(data.train)
    optimizer = keras.optimizers.SGD(learning_rate=config.lr,
                                     global_clipnorm=config.clip if config.clip > 0 else None)
    variables = model.trainable_variables
    optimizer.build(variables)
    spec = tf.TensorSpec([None, data.num_steps], tf.int32)

    @tf.function(input_signature=[spec, spec])
    def train_step(x, y):
        with tf.GradientTape() as tape:
            logits, _ = model(x, training=True)
            loss = mean_token_loss(y, logits)
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))
        return loss

    eval_step = make_eval_step(model, data.num_steps)
    history = History()
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        order = rng.permutation(len(x_train))
        loss_sum = 0.0
        for i in range(0, len(order), config.batch_size):
            batch = order[i:i + config.batch_size]
            loss = float(train_step(x_train[batch], y_train[batch]))
            _check_loss(loss, "training", epoch)
            loss_sum += loss * len(batch)
            if on_batch is not None:
                on_batch(loss)
        train_ppl = perplexity(loss_sum / len(order))
        val_loss = mean_loss(model, data.val, config.batch_size, eval_step)
        _check_loss(val_loss, "validation", epoch)
        val_ppl = perplexity(val_loss)
        seconds = time.perf_counter() - start
        history.train_ppl.append(train_ppl)
        history.val_ppl.append(val_ppl)
        history.epoch_seconds.append(seconds)
        if on_epoch is not None:
            on_epoch(epoch, train_ppl, val_ppl, seconds)
    return history


# ----------------------------------------------------------------------------------------------------------------
# Generation.

def generate(model: CharLanguageModel, prefix: str, num: int) -> str:
    """The prefix followed by num greedily predicted tokens (d2l's RNNLM.predict): the prefix warms up the state,
    then each step feeds back the most likely next token."""
    vocab = Vocab(model.config.vocab)
    prefix = check_prefix(vocab, prefix)
    if not isinstance(num, int) or num < 0:
        raise ValueError(f"the number of tokens to generate must be a non-negative integer; got {num!r}")
    logits, states = model(vocab.encode(prefix)[None, :], training=False)
    predicted = []
    while True:
        predicted.append(int(tf.argmax(logits[0, -1])))
        if len(predicted) >= num:
            return prefix + vocab.decode(predicted[:num])
        logits, states = model(tf.constant([predicted[-1:]], tf.int32), initial_state=states, training=False)


# ----------------------------------------------------------------------------------------------------------------
# The model directory (see deeprnn_fast.language_model.model_dir).

def save_model(model: CharLanguageModel, directory, extra: Optional[dict] = None):
    description = {**asdict(model.config), "recurrent_layer": type(model.rnn).__name__,
                   "weights": [{"name": v.path, "shape": list(v.shape)} for v in model.weights], **(extra or {})}
    model_dir.write(directory, description, model.get_weights())


def config_fields(description) -> dict:
    """The ModelConfig fields of a model.json. One written before `between_layer_dropout` existed stored in
    `dropout` what its stack did: Keras' cell dropout for --implementation keras, dropout between layers for the
    fused and reference stacks; it loads as that."""
    fields = {k: description[k] for k in model_dir.REQUIRED}
    if "between_layer_dropout" in description:
        fields["between_layer_dropout"] = description["between_layer_dropout"]
    elif fields["implementation"] != "keras":
        fields["between_layer_dropout"], fields["dropout"] = fields["dropout"], 0.0
    return fields


def load_model(directory) -> CharLanguageModel:
    """Rebuilds the model saved in directory; a one-line model_dir.ModelDirError when it holds none. Both files are
    checked (model_dir.read) before anything is built."""
    description, weights = model_dir.read(directory)
    try:
        config = ModelConfig(**config_fields(description))
    except ValueError as e:
        raise model_dir.ModelDirError(f"{Path(directory) / model_dir.MODEL_FILE} is damaged: {e}") from None
    model = build_model(config)
    expected = [tuple(v.shape) for v in model.weights]
    if [w.shape for w in weights] != expected:
        raise model_dir.ModelDirError(f"{Path(directory) / model_dir.WEIGHTS_FILE} holds weights of shapes "
                                      f"{[w.shape for w in weights]}, but the model needs {expected}")
    model.set_weights(weights)
    return model


# ----------------------------------------------------------------------------------------------------------------
# The plot.

def plot_perplexity(history: History, path, title: str = ""):
    """Train and validation perplexity per epoch, as the book's plots, written as a PNG."""
    import matplotlib
    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history.train_ppl) + 1)
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    ax.plot(epochs, history.train_ppl, label="train ppl")
    ax.plot(epochs, history.val_ppl, "--", label="val ppl")
    ax.set_xlabel("epoch")
    ax.set_ylabel("perplexity")
    ax.set_xlim(1, max(len(epochs), 2))
    ax.grid(True, alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
