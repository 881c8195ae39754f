"""The Time Machine as the book prepares it: letters only, lower case, one token per character, windows of 32 + 1.

This mirrors d2l's `TimeMachine` data module exactly (`_preprocess`, `_tokenize`, `Vocab`, the sliding windows and
the first-10,000 / next-5,000 split), so that the perplexities this project reports compare with the book's plots.
The text comes from, in order: an explicit path, the environment variable DEEPRNN_FAST_DATA, the cache directory,
or a download from the book's address, checked against its SHA-1. Any other text works too and gets its own
vocabulary. Nothing here needs TensorFlow: windows are NumPy arrays.
"""
import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import numpy as np

BOOK_URL = "http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt"
BOOK_SHA1 = "090b5e7e70c295757f55df93cb0a180b9691891a"
BOOK_FILENAME = "timemachine.txt"
DATA_ENV = "DEEPRNN_FAST_DATA"    # path of the text, when --data is not given
CACHE_ENV = "DEEPRNN_FAST_CACHE"  # cache directory, overriding ~/.cache/deeprnn_fast
UNK = "<unk>"
NUM_TRAIN = 10_000  # the book's split: the first 10,000 windows train ...
NUM_VAL = 5_000     # ... and the next 5,000 validate


class DataError(Exception):
    """A problem with the text that the user can fix; its message is one line meant for them."""


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "deeprnn_fast"


def sha1_of(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def _how_to_supply(cache_dir: Path) -> str:
    return (f"supply The Time Machine with --data PATH or the environment variable {DATA_ENV}, "
            f"or put {BOOK_FILENAME} in {cache_dir}")


def download_book(cache_dir: Path, url: Optional[str] = None, sha1: Optional[str] = None,
                  timeout: float = 30.0) -> Path:
    """Downloads the book (from BOOK_URL unless url is given) into cache_dir, checks its SHA-1 (BOOK_SHA1 unless
    sha1 is given), and only then moves it into place, atomically."""
    url = url or BOOK_URL
    sha1 = sha1 or BOOK_SHA1
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise DataError(f"could not download {url} ({reason}); {_how_to_supply(cache_dir)}") from None
    got = sha1_of(data)
    if got != sha1:
        raise DataError(f"the file downloaded from {url} has SHA-1 {got}, expected {sha1}; "
                        f"{_how_to_supply(cache_dir)}")
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        # Write next to the target and rename, so a reader never sees a half-written file.
        fd, tmp = tempfile.mkstemp(prefix=f".{BOOK_FILENAME}.", dir=cache_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            target = cache_dir / BOOK_FILENAME
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        raise DataError(f"could not write the downloaded book to {cache_dir}: {e.strerror or e}") from None
    return target


def locate_text(path: Optional[str] = None, cache_dir: Optional[Path] = None, url: Optional[str] = None,
                download: bool = True) -> Path:
    """The file to read: `path`, else $DEEPRNN_FAST_DATA, else the cached book, else a fresh download.

    An explicitly named file that is missing is an error (never silently replaced by the book); a cached book whose
    SHA-1 does not match is ignored and downloaded again.
    """
    if path is None and os.environ.get(DATA_ENV):
        path, origin = os.environ[DATA_ENV], f"the file named by {DATA_ENV}"
    else:
        origin = "the --data file"
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():  # stat only: opening a FIFO would wait for a writer
            if p.is_dir():
                what = "is a directory, not a file"
            elif p.exists():
                what = "is not a regular file (a FIFO, a device or a socket); give a text file"
            else:
                what = "does not exist"
            raise DataError(f"{origin} {p} {what}")
        return p
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    cached = cache_dir / BOOK_FILENAME
    if cached.is_file() and sha1_of(cached.read_bytes()) == BOOK_SHA1:
        return cached
    if not download:
        raise DataError(f"no text found; {_how_to_supply(cache_dir)}")
    return download_book(cache_dir, url=url)


def read_bytes(path: Path) -> bytes:
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    if not raw.strip():
        raise DataError(f"{path} is empty")
    return raw


def decode(raw: bytes) -> str:
    # Only ASCII letters survive preprocessing, so undecodable bytes can be replaced without changing the corpus.
    return raw.decode("utf-8", errors="replace")


def preprocess(text: str) -> str:
    """The book's `_preprocess`: every run of non-letters becomes one space, then lower case."""
    return re.sub("[^A-Za-z]+", " ", text).lower()


class Vocab:
    """The book's character vocabulary: the sorted set of tokens plus <unk> (for The Time Machine: ' ', '<unk>',
    'a'..'z', 28 tokens). Ids follow the sorted order, so a saved vocabulary reproduces the same ids."""

    def __init__(self, tokens):
        self.idx_to_token: List[str] = sorted(set(tokens) | {UNK})
        self.token_to_idx = {t: i for i, t in enumerate(self.idx_to_token)}
        self.unk = self.token_to_idx[UNK]

    def __len__(self):
        return len(self.idx_to_token)

    def encode(self, text: str) -> np.ndarray:
        """Ids of the characters of `text`; characters outside the vocabulary map to <unk> (as in the book)."""
        return np.fromiter((self.token_to_idx.get(c, self.unk) for c in text), dtype=np.int32, count=len(text))

    def decode(self, ids) -> str:
        return "".join(self.idx_to_token[int(i)] for i in ids)

    def unknown_characters(self, text: str) -> List[str]:
        """The distinct characters of `text` that are not tokens of this vocabulary, in order of appearance."""
        return list(dict.fromkeys(c for c in text if c not in self.token_to_idx))


def check_prefix(vocab: Vocab, prefix: str) -> str:
    """A prefix to continue, lower-cased as the training text was; an error naming any character the vocabulary
    lacks (rather than the book's silent <unk>, which would hide a typing mistake)."""
    if not prefix:
        raise DataError("the prefix is empty; give at least one character")
    text = prefix.lower()
    unknown = vocab.unknown_characters(text)
    if unknown:
        known = "".join(t for t in vocab.idx_to_token if len(t) == 1)
        raise DataError(f"the prefix {prefix!r} has characters outside the model's vocabulary: "
                        f"{' '.join(repr(c) for c in unknown)} (it knows {known!r})")
    return text


def sliding_windows(corpus: np.ndarray, num_steps: int) -> np.ndarray:
    """All windows of num_steps + 1 consecutive tokens, one per start position, as the book's
    `[corpus[i:i+num_steps+1] for i in range(len(corpus)-num_steps)]`: [len(corpus) - num_steps, num_steps + 1].
    A read-only view, no copy."""
    if len(corpus) < num_steps + 1:
        return np.zeros((0, num_steps + 1), corpus.dtype)
    return np.lib.stride_tricks.sliding_window_view(corpus, num_steps + 1)


@dataclass
class LanguageModelData:
    """A corpus split the book's way. train/val are [N, num_steps + 1] windows: inputs [:, :-1], targets [:, 1:]."""
    vocab: Vocab
    corpus: np.ndarray  # token ids of the whole preprocessed text
    train: np.ndarray
    val: np.ndarray
    num_steps: int
    path: Optional[Path] = None
    sha1: Optional[str] = None
    note: Optional[str] = None  # one line for the user when the split had to differ from the book's

    @property
    def num_windows(self) -> int:
        return len(self.corpus) - self.num_steps


def split_windows(windows: np.ndarray, num_train: int, num_val: int):
    """The book's split: the first num_train windows, then the next num_val. A text too short for that is split in
    the same proportion instead, so any text trains; returns (train, val, note-or-None)."""
    n = len(windows)
    if n >= num_train + num_val:
        return windows[:num_train], windows[num_train:num_train + num_val], None
    n_train = int(round(n * num_train / (num_train + num_val)))
    n_train = min(max(n_train, 1), n - 1)
    note = (f"the text gives only {n} windows (the book uses {num_train} + {num_val}): "
            f"training on the first {n_train}, validating on the other {n - n_train}")
    return windows[:n_train], windows[n_train:], note


def prepare(text: str, num_steps: int = 32, num_train: int = NUM_TRAIN, num_val: int = NUM_VAL,
            path: Optional[Path] = None, sha1: Optional[str] = None) -> LanguageModelData:
    for name, value in (("num_steps", num_steps), ("num_train", num_train), ("num_val", num_val)):
        if not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    tokens = preprocess(text)
    where = f"{path}" if path is not None else "the text"
    if not tokens.strip():
        raise DataError(f"{where} contains no letters (only letters a-z and A-Z are kept)")
    vocab = Vocab(tokens)
    corpus = vocab.encode(tokens)
    windows = sliding_windows(corpus, num_steps)
    if len(windows) < 2:
        raise DataError(f"{where} is too short: {len(corpus)} tokens after keeping letters only, but "
                        f"windows of {num_steps} + 1 tokens need at least {num_steps + 2} (one to train, one to "
                        f"validate)")
    train, val, note = split_windows(windows, num_train, num_val)
    return LanguageModelData(vocab, corpus, train, val, num_steps, path, sha1, note)


def load(path: Optional[str] = None, num_steps: int = 32, num_train: int = NUM_TRAIN, num_val: int = NUM_VAL,
         cache_dir: Optional[Path] = None, url: Optional[str] = None) -> LanguageModelData:
    """Locates (or downloads) the text and prepares it; see `locate_text` for where it looks."""
    p = locate_text(path, cache_dir=cache_dir, url=url)
    raw = read_bytes(p)
    return prepare(decode(raw), num_steps, num_train, num_val, path=p, sha1=sha1_of(raw))
