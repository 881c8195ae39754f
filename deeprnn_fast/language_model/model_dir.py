"""The directory a trained language model lives in: model.json (what it takes to rebuild the model: the cell, the
sizes, the vocabulary) and model.weights.npz (its weights in the order of model.get_weights(), as NumPy's .npz: an
uncompressed zip of one .npy file per array, w000.npy, w001.npy, ...).

A model directory may come from anywhere, so both files are read as untrusted: model.json is checked field by field
(types, bool not taken for int, bounded sizes, the vocabulary) and the weights file against the shapes the
description implies, header by header and byte by byte (the zip's CRC-32s), before any model is built or any array
larger than the description allows is allocated. Every problem is one ModelDirError line.

Free of TensorFlow, so that the command line can check a model directory and a prefix before it builds a model.
"""
import json
import math
import re
import stat
import struct
import zipfile
from pathlib import Path
from typing import List, Tuple

import numpy as np

from deeprnn_fast.language_model.data import UNK

MODEL_FILE = "model.json"
WEIGHTS_FILE = "model.weights.npz"
FORMAT = "deeprnn_fast.char_language_model/1"
CELLS = ("tanh", "relu", "gru")
IMPLEMENTATIONS = ("fused", "reference", "keras")
REQUIRED = ("vocab", "cell", "hidden", "layers", "dropout", "implementation")  # the fields of ModelConfig

# Generous for a character model (the book's has 2 layers of 32 units, 28 tokens, 3.5 thousand weights), small
# enough that no description can make loading exhaust memory or run for hours.
MAX_LAYERS = 128
MAX_HIDDEN = 8192
MAX_VOCAB = 4096
MAX_PARAMETERS = 100_000_000  # 400 MB of float32
MAX_DESCRIPTION_BYTES = 1 << 20  # ours is a few kilobytes
WEIGHTS_DTYPE = np.dtype(np.float32)

# What a damaged or hostile zip or .npy can raise while being parsed (zipfile's and NumPy's readers do not wrap
# their errors): each means "this file is not a readable weights file".
_PARSE_ERRORS = (OSError, EOFError, ValueError, KeyError, RuntimeError, SyntaxError, struct.error, zipfile.BadZipFile,
                 zipfile.LargeZipFile)


class ModelDirError(ValueError):
    """A directory that holds no readable model; its message is one line for the user."""


def write(directory, description: dict, weights):
    directory = Path(directory)
    (directory / MODEL_FILE).write_text(json.dumps({"format": FORMAT, **description}, indent=2) + "\n")
    np.savez(directory / WEIGHTS_FILE, **{f"w{i:03d}": np.asarray(w) for i, w in enumerate(weights)})


def _short(value, limit=60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _one_line(text) -> str:
    return " ".join(str(text).split())


def _regular_file(path: Path, what: str):
    """Raises ModelDirError unless path is a regular file: a FIFO or a device would block or never end."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ModelDirError(f"{path.parent} holds no {path.name} ({what})") from None
    except OSError as e:
        raise ModelDirError(f"cannot read {path}: {e.strerror or e}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ModelDirError(f"{path} is not a regular file ({what})")
    return info


def read_description(directory) -> dict:
    """model.json of directory, with every field a model needs checked."""
    directory = Path(directory)
    what = "expected a directory written by deeprnn-fast train"
    if not directory.is_dir():
        raise ModelDirError(f"{directory} is not a directory ({what})")
    path = directory / MODEL_FILE
    _regular_file(path, what)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_DESCRIPTION_BYTES + 1)
    except OSError as e:
        raise ModelDirError(f"cannot read {path}: {e.strerror or e}") from None
    if len(raw) > MAX_DESCRIPTION_BYTES:
        raise ModelDirError(f"{path} is damaged: it is larger than {MAX_DESCRIPTION_BYTES} bytes")
    try:
        description = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:
        raise ModelDirError(f"cannot read {path}: {_one_line(e)}") from None
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise ModelDirError(f"{path} is not a deeprnn-fast language model (format {FORMAT})")
    problem = _description_problem(description)
    if problem:
        raise ModelDirError(f"{path} is damaged: {problem}")
    return description


def _integer_problem(description, key, low, high):
    value = description.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return f"{key!r} must be an integer from {low} to {high}; got {_short(value)}"
    return None


def _description_problem(description) -> str:
    """What is wrong with a description, or '' when nothing is."""
    for key, allowed in (("cell", CELLS), ("implementation", IMPLEMENTATIONS)):
        if description.get(key) not in allowed or not isinstance(description.get(key), str):
            return f"{key!r} must be one of {', '.join(allowed)}; got {_short(description.get(key))}"
    for key, high in (("hidden", MAX_HIDDEN), ("layers", MAX_LAYERS)):
        problem = _integer_problem(description, key, 1, high)
        if problem:
            return problem
    dropout = description.get("dropout")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        return f"'dropout' must be a number in [0, 1); got {_short(dropout)}"
    problem = _vocab_problem(description.get("vocab"))
    if problem:
        return problem
    parameters = sum(math.prod(shape) for shape in expected_weight_shapes(description))
    if parameters > MAX_PARAMETERS:
        return (f"a {description['layers']}-layer model of {description['hidden']} units and "
                f"{len(description['vocab'])} tokens has {parameters} weights, more than the {MAX_PARAMETERS} this "
                "program loads")
    return ""


def _vocab_problem(vocab) -> str:
    if not isinstance(vocab, list) or not 2 <= len(vocab) <= MAX_VOCAB:
        size = f"{len(vocab)} entries" if isinstance(vocab, list) else _short(vocab)
        return f"'vocab' must be a list of 2 to {MAX_VOCAB} tokens; got {size}"
    seen = set()
    for i, token in enumerate(vocab):
        if not isinstance(token, str) or (len(token) != 1 and token != UNK):
            return f"'vocab'[{i}] must be one character (or {UNK!r}); got {_short(token)}"
        if token in seen:
            return f"'vocab' lists {token!r} twice"
        seen.add(token)
    if UNK not in seen:
        return f"'vocab' must include {UNK!r}"
    if vocab != sorted(vocab):
        # The token ids are the positions in sorted order (data.Vocab): another order would mean other ids.
        return "'vocab' must be in sorted order, as deeprnn-fast train writes it"
    return ""


def expected_weight_shapes(description) -> List[Tuple[int, ...]]:
    """The shapes of model.get_weights() for a (checked) description: per layer its kernel, recurrent kernel and
    bias, as Keras' SimpleRNNCell and GRUCell (reset_after=True) lay them out and the fused layers copy, then the
    readout's kernel and bias. The input of the first layer is the one-hot token."""
    vocab, hidden, layers = len(description["vocab"]), description["hidden"], description["layers"]
    gates = 3 if description["cell"] == "gru" else 1
    bias = (2, 3 * hidden) if gates == 3 else (hidden,)
    shapes = []
    for layer in range(layers):
        shapes += [(vocab if layer == 0 else hidden, gates * hidden), (hidden, gates * hidden), bias]
    return shapes + [(hidden, vocab), (vocab,)]


def _shapes_text(shapes, limit=6) -> str:
    shown = ", ".join(str(tuple(s)) for s in shapes[:limit])
    return f"[{shown}{', ...' if len(shapes) > limit else ''}] ({len(shapes)} arrays)"


def _read_header(member):
    """(shape, fortran_order, dtype) from the .npy header at the start of an open zip member."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(member)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(member)
    raise ValueError(f"unsupported .npy version {version}")


def read_weights(directory, expected_shapes) -> List[np.ndarray]:
    """The weight arrays of directory, in order, checked against expected_shapes (expected_weight_shapes of its
    description): every entry present, each a float32 array of its shape, intact (CRC-32) and finite."""
    path = Path(directory) / WEIGHTS_FILE
    size = _regular_file(path, "expected the weights deeprnn-fast train writes beside model.json").st_size
    if size == 0:
        raise ModelDirError(f"{path} is empty")
    names = [f"w{i:03d}.npy" for i in range(len(expected_shapes))]
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            found = [info.filename for info in infos]
            if len(set(found)) != len(found) or any(not re.fullmatch(r"w\d{3,}\.npy", n) for n in found):
                raise ModelDirError(f"{path} is damaged: it holds entries {_short(sorted(found))}, expected "
                                    f"w000.npy to {names[-1]}")
            headers = {}
            for info in infos:
                with archive.open(info) as member:
                    headers[info.filename] = (*_read_header(member), member.tell())
            shapes = [tuple(headers[n][0]) for n in sorted(found)]
            expected_shapes = [tuple(s) for s in expected_shapes]
            if sorted(found) != names or shapes != expected_shapes:
                first = next((i for i, (a, b) in enumerate(zip(shapes, expected_shapes)) if a != b), None)
                where = "" if first is None else (f"; the first that differs is {names[first]}: {shapes[first]}, "
                                                  f"not {expected_shapes[first]}")
                raise ModelDirError(f"{path} holds weights of shapes {_shapes_text(shapes)}, but the model in "
                                    f"{MODEL_FILE} needs {_shapes_text(expected_shapes)}{where}")
            return [_read_array(archive, path, name, headers[name]) for name in names]
    except _PARSE_ERRORS as e:
        if isinstance(e, ModelDirError):
            raise
        raise ModelDirError(f"cannot read {path}: it is damaged ({_one_line(e) or type(e).__name__})") from None


def _read_array(archive, path, name, header) -> np.ndarray:
    shape, fortran_order, dtype, header_size = header
    if dtype != WEIGHTS_DTYPE and dtype != WEIGHTS_DTYPE.newbyteorder():
        raise ModelDirError(f"{path} is damaged: {name} holds {dtype} data, expected float32")
    nbytes = math.prod(shape) * dtype.itemsize
    info = archive.getinfo(name)
    if info.file_size != header_size + nbytes:  # checked before reading, so a lying entry allocates nothing
        raise ModelDirError(f"{path} is damaged: {name} is {info.file_size} bytes, its shape {tuple(shape)} needs "
                            f"{header_size + nbytes}")
    with archive.open(info) as member:
        member.seek(header_size)
        data = member.read(nbytes)
        # Reading to the end of the entry is what makes zipfile compare its CRC-32 (a flipped bit raises here).
        if len(data) != nbytes or member.read(1) != b"":
            raise ModelDirError(f"{path} is damaged: {name} does not hold the {nbytes} bytes of its shape")
    array = np.frombuffer(data, dtype).reshape(shape, order="F" if fortran_order else "C").astype(np.float32)
    if not np.isfinite(array).all():
        raise ModelDirError(f"{path} is damaged: {name} holds values that are not finite")
    return array


def read(directory):
    """(description, weights) of a model directory, both checked; nothing is built."""
    description = read_description(directory)
    return description, read_weights(directory, expected_weight_shapes(description))
