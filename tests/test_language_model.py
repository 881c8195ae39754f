"""The character language model (deeprnn_fast.language_model.model): the three recurrent stacks compute the same model,
the book's initialisation, training lowers perplexity, greedy generation, and the model directory."""
import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeprnn_fast.language_model import data, model_dir
from deeprnn_fast.language_model import model as lm

TANH_IMPLEMENTATIONS = ["fused", "reference", "keras"]


def _markov_text(seed, length):
    """A learnable text: words drawn from a small lexicon, so that next-character perplexity can fall well below
    the vocabulary size within a few epochs."""
    rng = np.random.default_rng(seed)
    lexicon = ["the", "time", "traveller", "machine", "said", "filby", "and", "psychologist", "we", "sat"]
    words = []
    while sum(len(w) + 1 for w in words) < length:
        words.append(lexicon[rng.integers(len(lexicon))])
    return " ".join(words)


@pytest.fixture(scope="module")
def corpus():
    return data.prepare(_markov_text(0, length=4000), num_steps=8, num_train=960, num_val=240)


def _config(corpus, implementation, cell="tanh", **kwargs):
    return lm.ModelConfig(corpus.vocab.idx_to_token, cell=cell, hidden=kwargs.pop("hidden", 16),
                          layers=kwargs.pop("layers", 2), implementation=implementation, **kwargs)


def _random_weights(model, seed, scale=0.4):
    rng = np.random.default_rng(seed)
    return [rng.normal(0.0, scale, w.shape).astype(np.float32) for w in model.get_weights()]


# ---- the model ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["tanh", "relu"])
def test_the_three_stacks_compute_the_same_model(corpus, cell):
    models = {impl: lm.build_model(_config(corpus, impl, cell, layers=3)) for impl in TANH_IMPLEMENTATIONS}
    weights = _random_weights(models["keras"], seed=1, scale=0.4 if cell == "tanh" else 0.2)
    tokens = np.random.default_rng(2).integers(0, len(corpus.vocab), (5, 7)).astype(np.int32)
    states = [np.random.default_rng(3 + l).normal(0, 0.5, (5, 16)).astype(np.float32) for l in range(3)]
    results = {}
    for impl, model in models.items():
        assert [w.shape for w in model.get_weights()] == [w.shape for w in weights]
        model.set_weights(weights)
        results[impl] = model(tokens, initial_state=[tf.constant(s) for s in states])
    logits, final = results["keras"]
    assert logits.shape == (5, 7, len(corpus.vocab)) and len(final) == 3
    assert float(tf.math.reduce_std(logits)) > 0.1  # far from trivial, so a wrong index would show
    for impl in ("fused", "reference"):
        np.testing.assert_allclose(results[impl][0], logits, rtol=1e-4, atol=1e-4, err_msg=impl)
        for l in range(3):
            np.testing.assert_allclose(results[impl][1][l], final[l], rtol=1e-4, atol=1e-4, err_msg=f"{impl} {l}")


def test_the_book_initialisation_for_tanh(corpus):
    model = lm.build_model(_config(corpus, "fused", hidden=32), seed=5)
    for variable in model.weights:
        value = variable.numpy()
        if variable.name.startswith("bias"):
            assert not value.any(), variable.path
        else:
            assert abs(value.std() - 0.01) < 0.002 and abs(value.mean()) < 0.002, variable.path
    # Weights of the same shape are drawn independently (a shared Keras initializer would repeat them).
    square = [v.numpy() for v in model.weights if tuple(v.shape) == (32, 32)]
    assert len(square) == 3
    assert all(not np.array_equal(a, b) for i, a in enumerate(square) for b in square[i + 1:])
    # The same seed gives the same model; another seed another one.
    again = lm.build_model(_config(corpus, "fused", hidden=32), seed=5)
    other = lm.build_model(_config(corpus, "fused", hidden=32), seed=6)
    np.testing.assert_array_equal(model.get_weights()[0], again.get_weights()[0])
    assert not np.array_equal(model.get_weights()[0], other.get_weights()[0])


def test_the_book_initialisation_for_gru(corpus):
    model = lm.build_model(_config(corpus, "keras", "gru", hidden=25))
    bound = 1 / math.sqrt(25)
    everything = np.concatenate([w.ravel() for w in model.get_weights()])
    assert np.abs(everything).max() <= bound
    assert abs(everything.std() - bound / math.sqrt(3)) < 0.01 * bound * 5


def test_a_gru_without_a_fused_layer_says_what_stands_in(corpus):
    model = lm.build_model(_config(corpus, "fused", "gru"))
    if model.notice is not None:
        assert "Keras" in model.notice and "\n" not in model.notice
    logits, states = model(corpus.train[:3, :-1])
    assert logits.shape == (3, 8, len(corpus.vocab)) and len(states) == 2


def test_model_config_rejects_bad_values(corpus):
    vocab = corpus.vocab.idx_to_token
    for kwargs, message in [({"cell": "lstm"}, "cell must be one of"), ({"hidden": 0}, "hidden must be a positive"),
                            ({"layers": -1}, "layers must be a positive"), ({"dropout": 1.0}, "dropout must be in"),
                            ({"implementation": "cudnn"}, "implementation must be one of")]:
        with pytest.raises(ValueError, match=message):
            lm.ModelConfig(vocab, **kwargs)


# ---- training -------------------------------------------------------------------------------------------------

def test_training_lowers_perplexity_the_same_way_with_every_stack(corpus):
    train_config = lm.TrainConfig(batch_size=32, lr=2.0, clip=1.0, epochs=6, seed=7)
    histories = {}
    for impl in TANH_IMPLEMENTATIONS:
        model = lm.build_model(_config(corpus, impl), seed=7)
        histories[impl] = lm.train(model, corpus, train_config)
    history = histories["keras"]
    assert len(history.train_ppl) == len(history.val_ppl) == len(history.epoch_seconds) == 6
    # From about the vocabulary size (uniform guesses) down to well below it: the model has learnt words.
    assert history.train_ppl[0] < len(corpus.vocab)
    assert history.train_ppl[-1] < history.train_ppl[0]
    assert history.val_ppl[-1] < 0.5 * len(corpus.vocab)
    # Same initial weights, same shuffling: the fused and the reference stacks follow Keras' run step by step.
    for impl in ("fused", "reference"):
        np.testing.assert_allclose(histories[impl].train_ppl, history.train_ppl, rtol=1e-3, err_msg=impl)
        np.testing.assert_allclose(histories[impl].val_ppl, history.val_ppl, rtol=1e-3, err_msg=impl)


def test_evaluate_is_the_exponential_of_the_mean_token_loss(corpus):
    model = lm.build_model(_config(corpus, "reference"))
    model.set_weights(_random_weights(model, seed=8, scale=0.3))
    windows = corpus.val[:37]
    logits, _ = model(windows[:, :-1])
    probabilities = tf.nn.softmax(logits).numpy()
    picked = np.take_along_axis(probabilities, windows[:, 1:, None].astype(np.int64), axis=-1)
    expected = math.exp(-np.log(picked).mean())
    assert lm.evaluate(model, windows, batch_size=10) == pytest.approx(expected, rel=1e-5)


def test_the_training_loss_and_its_gradient_are_the_mean_cross_entropy():
    rng = np.random.default_rng(12)
    logits = tf.constant(rng.normal(0, 3, (6, 5, 11)).astype(np.float32))
    targets = tf.constant(rng.integers(0, 11, (6, 5)).astype(np.int32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(logits)
        ours = lm.mean_token_loss(targets, logits)
        theirs = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    np.testing.assert_allclose(lm.token_losses(targets, logits),
                               tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tape.gradient(ours, logits), tape.gradient(theirs, logits), rtol=1e-5, atol=1e-7)


def test_gradient_clipping_and_learning_rate_reach_the_optimizer(corpus):
    """One step with clip c moves the weights by exactly lr * c along the gradient direction when |g| > c."""
    model = lm.build_model(_config(corpus, "reference"), seed=9)
    before = [w.copy() for w in model.get_weights()]
    windows = corpus.train[:32]
    with tf.GradientTape() as tape:
        logits, _ = model(windows[:, :-1], training=True)
        # TensorFlow's own loss and autodiff, to check the training loss's hand-written gradient as well.
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(windows[:, 1:], logits))
    gradients = [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]
    norm = math.sqrt(sum(float((g ** 2).sum()) for g in gradients))
    clip = norm / 4  # the gradient is certainly clipped
    single = data.LanguageModelData(corpus.vocab, corpus.corpus, windows, corpus.val[:4], corpus.num_steps)
    lm.train(model, single, lm.TrainConfig(batch_size=32, lr=0.5, clip=clip, epochs=1, seed=0))
    for old, new, g in zip(before, model.get_weights(), gradients):
        np.testing.assert_allclose(new, old - 0.5 * g * clip / norm, rtol=1e-4, atol=1e-6)


def test_dropout_acts_in_training_only(corpus):
    keras.utils.set_random_seed(0)
    model = lm.build_model(_config(corpus, "reference", dropout=0.5))
    model.set_weights(_random_weights(model, seed=10, scale=0.3))
    tokens = corpus.train[:4, :-1]
    a, _ = model(tokens, training=False)
    b, _ = model(tokens, training=False)
    c, _ = model(tokens, training=True)
    np.testing.assert_array_equal(a, b)
    assert np.abs(np.asarray(a) - np.asarray(c)).max() > 1e-3


# ---- generation ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(corpus):
    model = lm.build_model(_config(corpus, "fused"), seed=11)
    lm.train(model, corpus, lm.TrainConfig(batch_size=32, epochs=4, seed=11))
    return model


def test_generation_is_greedy_deterministic_and_stays_in_the_vocabulary(trained, corpus):
    text = lm.generate(trained, "The time", 30)
    assert text.startswith("the time") and len(text) == len("the time") + 30
    assert set(text) <= set(corpus.vocab.idx_to_token)
    assert lm.generate(trained, "the time", 30) == text
    # Feeding the state forward step by step equals running the whole text at once: every generated character is
    # the arg-max of the model's prediction after the characters before it.
    logits, _ = trained(corpus.vocab.encode(text)[None, :])
    predicted = np.argmax(logits[0].numpy(), axis=-1)
    assert corpus.vocab.decode(predicted[len("the time") - 1:-1]) == text[len("the time"):]


def test_generation_rejects_characters_outside_the_vocabulary(trained):
    with pytest.raises(data.DataError, match="'x' '9'"):
        lm.generate(trained, "the x9", 5)


# ---- the model directory ------------------------------------------------------------------------------------------

def test_a_saved_model_loads_with_the_same_predictions(trained, corpus, tmp_path):
    lm.save_model(trained, tmp_path, extra={"num_steps": 8})
    loaded = lm.load_model(tmp_path)
    assert loaded.config == trained.config
    tokens = corpus.val[:3, :-1]
    np.testing.assert_array_equal(loaded(tokens)[0], trained(tokens)[0])
    assert lm.generate(loaded, "the", 20) == lm.generate(trained, "the", 20)


@pytest.mark.parametrize("implementation, dropout, between", [("fused", 0.0, 0.3), ("reference", 0.0, 0.3),
                                                               ("keras", 0.3, 0.0)])
def test_a_model_json_from_before_between_layer_dropout_loads_its_dropout_as_it_ran(
        trained, tmp_path, implementation, dropout, between):
    # Such runs stored one `dropout`: between layers for the fused and reference stacks, Keras' for Keras' cells.
    lm.save_model(trained, tmp_path)
    path = tmp_path / model_dir.MODEL_FILE
    description = json.loads(path.read_text())
    del description["between_layer_dropout"]
    description.update(dropout=0.3, implementation=implementation)
    path.write_text(json.dumps(description))
    loaded = lm.load_model(tmp_path)
    assert (loaded.config.dropout, loaded.config.between_layer_dropout) == (dropout, between)
    (tmp_path / "again").mkdir()
    lm.save_model(loaded, tmp_path / "again")
    assert lm.load_model(tmp_path / "again").config == loaded.config


def test_keras_cell_dropout_and_between_layer_dropout_both_act_in_training_only(corpus):
    for options in (dict(dropout=0.5), dict(between_layer_dropout=0.5)):
        for implementation in ("fused", "reference"):
            keras.utils.set_random_seed(0)
            model = lm.build_model(_config(corpus, implementation, **options))
            model.set_weights(_random_weights(model, seed=10, scale=0.3))
            tokens = corpus.train[:4, :-1]
            a, _ = model(tokens, training=False)
            c, _ = model(tokens, training=True)
            assert np.abs(np.asarray(a) - np.asarray(c)).max() > 1e-3, (options, implementation)
    with pytest.raises(ValueError, match="implementation 'keras' has no dropout between layers"):
        lm.build_model(_config(corpus, "keras", between_layer_dropout=0.2))


def test_loading_something_that_is_not_a_model_says_so(trained, tmp_path):
    with pytest.raises(model_dir.ModelDirError, match="not a directory"):
        lm.load_model(tmp_path / "missing")
    with pytest.raises(model_dir.ModelDirError, match="holds no model.json"):
        lm.load_model(tmp_path)
    (tmp_path / "model.json").write_text('{"format": "something else"}')
    with pytest.raises(model_dir.ModelDirError, match="is not a deeprnn-fast language model"):
        lm.load_model(tmp_path)
    lm.save_model(trained, tmp_path)
    np.savez(tmp_path / model_dir.WEIGHTS_FILE, w000=np.zeros(3))
    with pytest.raises(model_dir.ModelDirError, match="holds weights of shapes"):
        lm.load_model(tmp_path)


@pytest.mark.parametrize("cell", lm.CELLS)
def test_the_expected_weight_shapes_are_those_of_every_built_model(corpus, cell):
    # What model_dir checks a weights file against before building anything must be what building gives.
    for implementation in lm.IMPLEMENTATIONS:
        model = lm.build_model(_config(corpus, implementation, cell, hidden=5, layers=3))
        description = {"vocab": corpus.vocab.idx_to_token, "cell": cell, "hidden": 5, "layers": 3}
        assert model_dir.expected_weight_shapes(description) == [w.shape for w in model.get_weights()], implementation


def test_a_flipped_bit_anywhere_in_the_weights_is_an_error_or_harmless(trained, tmp_path):
    """Each of many single-bit flips either makes reading fail with a ModelDirError or (in a zip field nothing
    reads, such as a timestamp) leaves every array exactly as saved: never other weights, never another error."""
    lm.save_model(trained, tmp_path)
    description = model_dir.read_description(tmp_path)
    shapes = model_dir.expected_weight_shapes(description)
    saved = model_dir.read_weights(tmp_path, shapes)
    for expected, actual in zip(trained.get_weights(), saved):
        np.testing.assert_array_equal(actual, expected)
    path = tmp_path / model_dir.WEIGHTS_FILE
    raw = path.read_bytes()
    rng = np.random.default_rng(13)
    failures = 0
    for position in rng.choice(len(raw), size=60, replace=False):
        flipped = bytearray(raw)
        flipped[position] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(flipped))
        try:
            weights = model_dir.read_weights(tmp_path, shapes)
        except model_dir.ModelDirError as e:
            assert "\n" not in str(e)
            failures += 1
            continue
        for expected, actual in zip(saved, weights):
            np.testing.assert_array_equal(actual, expected, err_msg=f"bit flipped at byte {position}")
    assert failures > 40  # most bytes are array data, guarded by the CRC-32


def test_the_weights_are_checked_before_a_model_is_built(trained, tmp_path, monkeypatch):
    lm.save_model(trained, tmp_path)
    raw = (tmp_path / model_dir.WEIGHTS_FILE).read_bytes()
    (tmp_path / model_dir.WEIGHTS_FILE).write_bytes(raw[:-100])
    monkeypatch.setattr(lm, "build_model", lambda *a, **k: pytest.fail("built a model from damaged weights"))
    with pytest.raises(model_dir.ModelDirError, match="is damaged"):
        lm.load_model(tmp_path)


def test_perplexity_of_a_huge_loss_is_infinite_not_an_overflow():
    assert lm.perplexity(2.5) == pytest.approx(math.exp(2.5))
    assert lm.perplexity(1000.0) == math.inf


def test_a_huge_finite_loss_stops_training_as_divergence(corpus):
    model = lm.build_model(_config(corpus, "reference"), seed=14)
    model.set_weights(_random_weights(model, seed=14, scale=200.0))  # logits of thousands: finite, absurd
    loss = float(lm.mean_token_loss(corpus.train[:32, 1:], model(corpus.train[:32, :-1])[0]))
    assert lm.DIVERGED_LOSS < loss < math.inf
    assert lm.evaluate(model, corpus.val[:32]) == math.inf
    with pytest.raises(FloatingPointError, match=r"the training loss became [\d.e+]+ in epoch 1, beyond 100 "
                                                 r"\(diverged\); try a smaller --lr"):
        lm.train(model, corpus, lm.TrainConfig(batch_size=32, lr=1e-9, epochs=1))


def test_the_plot_is_a_png(tmp_path):
    history = lm.History([20.0, 12.0, 9.5], [19.0, 13.0, 11.0], [0.5, 0.4, 0.4])
    lm.plot_perplexity(history, tmp_path / "ppl.png", title="test")
    assert (tmp_path / "ppl.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
