"""The directory a trained language model lives in: model.json (what it takes to rebuild the model: the cell, the
sizes, the vocabulary) and model.weights.npz (its weights in the order of model.get_weights()).

Free of TensorFlow, so that the command line can check a model directory and a prefix before it loads TensorFlow.
"""
import json
from pathlib import Path

import numpy as np

MODEL_FILE = "model.json"
WEIGHTS_FILE = "model.weights.npz"
FORMAT = "deeprnn_fast.char_language_model/1"
REQUIRED = {"vocab": list, "cell": str, "hidden": int, "layers": int, "dropout": (int, float), "implementation": str}


class ModelDirError(ValueError):
    """A directory that holds no readable model; its message is one line for the user."""


def write(directory, description: dict, weights):
    directory = Path(directory)
    (directory / MODEL_FILE).write_text(json.dumps({"format": FORMAT, **description}, indent=2) + "\n")
    np.savez(directory / WEIGHTS_FILE, **{f"w{i:03d}": np.asarray(w) for i, w in enumerate(weights)})


def read_description(directory) -> dict:
    """model.json of directory, checked for the fields a model needs."""
    directory = Path(directory)
    what = "expected a directory written by deeprnn-fast train"
    if not directory.is_dir():
        raise ModelDirError(f"{directory} is not a directory ({what})")
    path = directory / MODEL_FILE
    try:
        description = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelDirError(f"{directory} holds no {MODEL_FILE} ({what})") from None
    except (OSError, ValueError) as e:
        raise ModelDirError(f"cannot read {path}: {e}") from None
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise ModelDirError(f"{path} is not a deeprnn-fast language model (format {FORMAT})")
    for key, kind in REQUIRED.items():
        if not isinstance(description.get(key), kind):
            raise ModelDirError(f"{path} is damaged: {key!r} is missing or not a {getattr(kind, '__name__', 'number')}")
    return description


def read_weights(directory):
    """The weight arrays of directory, in order."""
    path = Path(directory) / WEIGHTS_FILE
    try:
        with np.load(path) as archive:
            return [archive[f"w{i:03d}"] for i in range(len(archive.files))]
    except (OSError, ValueError, KeyError) as e:
        raise ModelDirError(f"cannot read {path}: {e}") from None
