"""The book's data pipeline (deeprnn_fast.language_model.data): preprocessing, vocabulary, windows, split, and where the text comes
from (an explicit file, the environment, the cache, a download checked against its SHA-1)."""
import functools
import http.server
import os
import re
import threading
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from deeprnn_fast.language_model import data

REPO = Path(__file__).resolve().parent.parent


def _book_path():
    """The real book, from $DEEPRNN_FAST_DATA or ../shared/data/timemachine.txt beside the repository; else None."""
    for candidate in (os.environ.get(data.DATA_ENV), REPO.parent / "shared" / "data" / data.BOOK_FILENAME):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


BOOK = _book_path()  # looked up once, before the fixture below clears the environment


def _random_text(rng, n_words):
    """Words of random letters in mixed case, separated by runs of punctuation, digits and white space."""
    letters = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    separators = [" ", ", ", ".\n\n", " -- ", " 1895 ", "'", "!\t"]
    words = ["".join(rng.choice(letters, rng.integers(1, 9))) for _ in range(n_words)]
    return "".join(w + separators[rng.integers(len(separators))] for w in words)


@pytest.fixture(autouse=True)
def _no_data_environment(monkeypatch, tmp_path):
    # Every test states where its text comes from: no stray $DEEPRNN_FAST_DATA, and a private, empty cache.
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "cache"))


# ---- preprocessing and vocabulary -------------------------------------------------------------------------------

def test_preprocess_keeps_letters_lower_cased_and_one_space_per_run():
    text = "The Time-Machine, by H. G. Wells [1898]\n\n\n I\n\nThe Time Traveller (for so"
    assert data.preprocess(text) == "the time machine by h g wells i the time traveller for so"


def test_preprocess_matches_a_character_by_character_definition():
    rng = np.random.default_rng(0)
    text = _random_text(rng, 300)
    expected, in_gap = [], False
    for c in text:
        if ("a" <= c <= "z") or ("A" <= c <= "Z"):
            expected.append(c.lower())
            in_gap = False
        elif not in_gap:
            expected.append(" ")
            in_gap = True
    assert data.preprocess(text) == "".join(expected)


def test_vocab_is_sorted_with_unk_and_round_trips():
    vocab = data.Vocab("hello world")
    assert vocab.idx_to_token == [" ", "<unk>", "d", "e", "h", "l", "o", "r", "w"]
    assert len(vocab) == 9 and vocab.unk == 1
    ids = vocab.encode("world hello")
    assert ids.dtype == np.int32
    assert ids.tolist() == [8, 6, 7, 5, 2, 0, 4, 3, 5, 5, 6]
    assert vocab.decode(ids) == "world hello"
    # As the book's Vocab: characters it lacks map to <unk>.
    assert vocab.encode("hz").tolist() == [4, 1]
    assert vocab.unknown_characters("hzz!l") == ["z", "!"]


def test_check_prefix_lower_cases_and_names_unknown_characters():
    vocab = data.Vocab("the time traveller")
    assert data.check_prefix(vocab, "The Time") == "the time"
    with pytest.raises(data.DataError, match=r"outside the model's vocabulary: '1' '!'"):
        data.check_prefix(vocab, "time 1!")
    with pytest.raises(data.DataError, match="empty"):
        data.check_prefix(vocab, "")


# ---- windows and the split ------------------------------------------------------------------------------------------

def test_sliding_windows_are_every_start_position():
    rng = np.random.default_rng(1)
    corpus = rng.integers(0, 28, 500).astype(np.int32)
    windows = data.sliding_windows(corpus, 32)
    assert windows.shape == (500 - 32, 33)
    for i in (0, 1, 17, 466, 467):
        np.testing.assert_array_equal(windows[i], corpus[i:i + 33])
    assert data.sliding_windows(corpus[:32], 32).shape == (0, 33)


def test_prepare_splits_the_book_way_when_the_text_is_long_enough():
    rng = np.random.default_rng(2)
    text = _random_text(rng, 4000)  # about 20,000 tokens
    prepared = data.prepare(text, num_steps=32)
    tokens = data.preprocess(text)
    assert len(prepared.corpus) == len(tokens) > 15_032
    assert prepared.vocab.decode(prepared.corpus) == tokens
    assert prepared.num_windows == len(tokens) - 32
    assert prepared.train.shape == (10_000, 33) and prepared.val.shape == (5_000, 33)
    np.testing.assert_array_equal(prepared.train[123], prepared.corpus[123:156])
    np.testing.assert_array_equal(prepared.val[0], prepared.corpus[10_000:10_033])
    np.testing.assert_array_equal(prepared.val[-1], prepared.corpus[14_999:15_032])
    assert prepared.note is None
    assert len(prepared.vocab) == 28  # the 26 letters, space and <unk>


def test_prepare_splits_a_short_text_in_the_same_proportion():
    rng = np.random.default_rng(3)
    text = _random_text(rng, 100)
    prepared = data.prepare(text, num_steps=8, num_train=10_000, num_val=5_000)
    n = len(prepared.corpus) - 8
    assert len(prepared.train) + len(prepared.val) == n
    assert len(prepared.train) == round(n * 2 / 3)
    np.testing.assert_array_equal(prepared.val[0], prepared.corpus[len(prepared.train):len(prepared.train) + 9])
    assert "windows" in prepared.note


def test_prepare_gives_another_text_its_own_vocabulary():
    prepared = data.prepare("abba cab " * 20, num_steps=4)
    assert prepared.vocab.idx_to_token == [" ", "<unk>", "a", "b", "c"]


@pytest.mark.parametrize("text, message", [("1234 !!! ...\n", "contains no letters"),
                                           ("just a few words", "too short")])
def test_prepare_rejects_texts_it_cannot_train_on(text, message):
    with pytest.raises(data.DataError, match=message):
        data.prepare(text, num_steps=32)


def test_prepare_rejects_non_positive_sizes():
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        data.prepare("some text " * 10, num_steps=0)


# ---- where the text comes from --------------------------------------------------------------------------------------

def test_load_reads_the_given_file(tmp_path):
    path = tmp_path / "story.txt"
    path.write_text(_random_text(np.random.default_rng(4), 200))
    prepared = data.load(str(path), num_steps=8)
    assert prepared.path == path
    assert prepared.sha1 == data.sha1_of(path.read_bytes())


def test_load_uses_the_environment_variable(tmp_path, monkeypatch):
    path = tmp_path / "story.txt"
    path.write_text("once upon a time " * 10)
    monkeypatch.setenv(data.DATA_ENV, str(path))
    assert data.load(num_steps=8).path == path


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.txt", "does not exist"),
    (lambda d: d, "is a directory"),
])
def test_locate_rejects_a_named_file_that_is_not_there(tmp_path, make, message):
    with pytest.raises(data.DataError, match=message):
        data.locate_text(str(make(tmp_path)))


def _fifo(directory):
    os.mkfifo(directory / "pipe")
    return directory / "pipe"


@pytest.mark.parametrize("make", [_fifo, lambda d: Path(os.devnull)], ids=["a FIFO", "/dev/null"])
def test_a_named_file_that_is_not_a_regular_file_is_said_to_be_so(tmp_path, make):
    # Opening the FIFO would wait forever for a writer: this must be decided from its type alone.
    path = make(tmp_path)
    with pytest.raises(data.DataError, match=f"the --data file {re.escape(str(path))} is not a regular file"):
        data.load(str(path))


def test_a_missing_file_named_by_the_environment_is_an_error_not_a_download(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path / "missing.txt"))
    with pytest.raises(data.DataError, match=f"named by {data.DATA_ENV}"):
        data.locate_text()


@pytest.mark.parametrize("content", [b"", b"  \n\t\n"])
def test_an_empty_file_is_an_error(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(data.DataError, match="is empty"):
        data.load(str(path))


class _Server:
    """A local HTTP server for the download tests (these machines are offline)."""

    def __init__(self, root):
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
        handler.log_message = lambda *args: None
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_checks_the_sha1_and_caches_the_book(tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    content = _random_text(np.random.default_rng(5), 300).encode()
    (served / "book.txt").write_bytes(content)
    monkeypatch.setattr(data, "BOOK_SHA1", data.sha1_of(content))
    cache = tmp_path / "cache"
    with _Server(served) as server:
        path = data.locate_text(cache_dir=cache, url=server.url("book.txt"))
    assert path == cache / data.BOOK_FILENAME
    assert path.read_bytes() == content
    assert sorted(p.name for p in cache.iterdir()) == [data.BOOK_FILENAME]  # no temporary file left behind
    # The cached copy is used from now on: no server needed.
    assert data.locate_text(cache_dir=cache, url="http://127.0.0.1:9/unreachable") == path


def test_a_download_with_the_wrong_sha1_is_rejected_and_not_cached(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "book.txt").write_bytes(b"not the time machine " * 50)
    cache = tmp_path / "cache"
    with _Server(served) as server:
        with pytest.raises(data.DataError, match=f"expected {data.BOOK_SHA1}"):
            data.locate_text(cache_dir=cache, url=server.url("book.txt"))
    assert not cache.exists() or not any(cache.iterdir())


def test_a_cached_file_with_the_wrong_sha1_is_downloaded_again(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / data.BOOK_FILENAME).write_bytes(b"truncated")
    calls = []

    def offline(url, timeout):
        calls.append(url)
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    with pytest.raises(data.DataError) as error:
        data.locate_text(cache_dir=cache)
    assert calls == [data.BOOK_URL]
    message = str(error.value)
    assert "\n" not in message
    for hint in ("network is unreachable", "--data", data.DATA_ENV, str(cache)):
        assert hint in message


# ---- the real book ----------------------------------------------------------------------------------------------

@pytest.mark.skipif(BOOK is None, reason=f"The Time Machine not found (set {data.DATA_ENV})")
def test_the_real_book_gives_the_books_corpus_and_windows():
    book = data.load(str(BOOK))
    assert book.sha1 == data.BOOK_SHA1
    assert len(book.corpus) == 173_428  # the book prints len(corpus) = 173428 for this file
    assert book.vocab.idx_to_token == [" ", "<unk>"] + list("abcdefghijklmnopqrstuvwxyz")
    assert book.num_windows == 173_428 - 32
    assert book.train.shape == (10_000, 33) and book.val.shape == (5_000, 33)
    assert book.vocab.decode(book.train[0]) == "the time machine by h g wells i t"
    np.testing.assert_array_equal(book.val[0], book.corpus[10_000:10_033])
    assert book.note is None
