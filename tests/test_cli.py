"""The command line (deeprnn_fast.language_model.cli): `train` writes a complete run directory, `generate` continues a prefix, and
every input a user can get wrong ends in one line on stderr, exit code 2, and an --out left as it was."""
import json
import os
import re
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from deeprnn_fast.language_model import cli, data

REPO = Path(__file__).resolve().parent.parent
TINY = ["--epochs", "3", "--batch-size", "32", "--hidden", "16", "--num-steps", "8", "--num-train", "480",
        "--num-val", "120", "--quiet"]


@pytest.fixture(autouse=True)
def _no_data_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    lexicon = ["the", "time", "traveller", "machine", "said", "filby", "and", "psychologist", "we", "sat"]
    path = tmp_path_factory.mktemp("text") / "story.txt"
    path.write_text(" ".join(lexicon[i] for i in rng.integers(len(lexicon), size=700)).title() + ".\n")
    return path


@pytest.fixture(scope="module")
def trained_run(text_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tanh"
    assert cli.main(["train", "--data", str(text_file), "--out", str(out), "--implementation", "reference",
                     *TINY]) == 0
    return out


def _one_error_line(capsys):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def _snapshot(directory):
    return {p.relative_to(directory): p.read_bytes() for p in sorted(Path(directory).rglob("*")) if p.is_file()}


# ---- train --------------------------------------------------------------------------------------------------------

def test_train_writes_model_metrics_and_plot(trained_run):
    assert sorted(p.name for p in trained_run.iterdir()) == ["metrics.json", "model.json", "model.weights.npz",
                                                             "perplexity.png"]
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["epochs"] == 3
    assert len(metrics["train_ppl_history"]) == len(metrics["val_ppl_history"]) == 3
    assert metrics["train_ppl"] == metrics["train_ppl_history"][-1]
    assert metrics["val_ppl"] == metrics["val_ppl_history"][-1]
    assert metrics["train_ppl_history"][-1] < metrics["train_ppl_history"][0]
    assert 1.0 < metrics["val_ppl"] < metrics["vocab_size"]
    assert metrics["seconds"] > 0 and len(metrics["epoch_seconds"]) == 3
    assert metrics["implementation"] == "reference" and metrics["cell"] == "tanh"
    assert (metrics["train_windows"], metrics["val_windows"]) == (480, 120)
    assert (trained_run / "perplexity.png").read_bytes()[:4] == b"\x89PNG"
    # Nothing but the run directory is left beside it.
    assert [p.name for p in trained_run.parent.iterdir()] == ["tanh"]


def test_train_prints_progress_per_epoch(text_file, tmp_path, capsys):
    args = [a for a in TINY if a != "--quiet"]
    assert cli.main(["train", "--data", str(text_file), "--out", str(tmp_path / "run"), *args,
                     "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"epoch 1/2\s+train ppl\s+[\d.]+\s+val ppl\s+[\d.]+", out)
    assert re.search(r"epoch 2/2\s+train ppl", out)
    assert out.splitlines()[-1].startswith(f"wrote {tmp_path / 'run'}")


def test_training_again_replaces_an_earlier_run(text_file, tmp_path):
    out = tmp_path / "run"
    assert cli.main(["train", "--data", str(text_file), "--out", str(out), *TINY, "--epochs", "1"]) == 0
    first = json.loads((out / "metrics.json").read_text())
    assert cli.main(["train", "--data", str(text_file), "--out", str(out), *TINY, "--epochs", "2"]) == 0
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2 and first["epochs"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_the_data_comes_from_the_environment_when_not_given(text_file, tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_ENV, str(text_file))
    assert cli.main(["train", "--out", str(tmp_path / "run"), *TINY, "--epochs", "1"]) == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["data"] == str(text_file)


# ---- generate -----------------------------------------------------------------------------------------------------

def test_generate_continues_the_prefix_deterministically(trained_run, capsys):
    assert cli.main(["generate", "--model", str(trained_run), "--prefix", "The time", "--num", "25"]) == 0
    first = capsys.readouterr().out.rstrip("\n")
    assert first.startswith("the time") and len(first) == len("the time") + 25
    vocab = json.loads((trained_run / "model.json").read_text())["vocab"]
    assert set(first) <= set(vocab)
    assert cli.main(["generate", "--model", str(trained_run), "--prefix", "The time", "--num", "25"]) == 0
    assert capsys.readouterr().out.rstrip("\n") == first


@pytest.mark.parametrize("prefix, message", [("time 1895!", r"outside the model's vocabulary: '1' '8' '9' '5' '!'"),
                                             ("", "the prefix is empty")])
def test_generate_rejects_a_prefix_outside_the_vocabulary(trained_run, capsys, prefix, message):
    assert cli.main(["generate", "--model", str(trained_run), "--prefix", prefix]) == 2
    assert re.search(message, _one_error_line(capsys))


def test_generate_rejects_a_directory_without_a_model(tmp_path, capsys):
    assert cli.main(["generate", "--model", str(tmp_path)]) == 2
    assert "holds no model.json" in _one_error_line(capsys)


# ---- bad input: one line, exit code 2, --out untouched ------------------------------------------------------------

def _bad_data(kind, tmp_path):
    if kind == "missing":
        return str(tmp_path / "missing.txt")
    path = tmp_path / "empty.txt"
    path.write_text("" if kind == "empty" else "12345 ... !!!\n")
    return str(path)


@pytest.mark.parametrize("kind, message", [("missing", "does not exist"), ("empty", "is empty"),
                                           ("no letters", "contains no letters")])
def test_train_rejects_bad_data(kind, message, trained_run, tmp_path, capsys):
    before = _snapshot(trained_run)
    assert cli.main(["train", "--data", _bad_data(kind, tmp_path), "--out", str(trained_run), *TINY]) == 2
    line = _one_error_line(capsys)
    assert line.startswith("deeprnn-fast train: error:") and message in line
    assert _snapshot(trained_run) == before
    assert [p.name for p in trained_run.parent.iterdir()] == ["tanh"]


@pytest.mark.parametrize("args, message", [
    (["--cell", "lstm"], "argument --cell: invalid choice: 'lstm'"),
    (["--layers", "0"], "argument --layers: expected a positive integer, got '0'"),
    (["--hidden", "-3"], "argument --hidden: expected a positive integer"),
    (["--batch-size", "0"], "argument --batch-size: expected a positive integer"),
    (["--num-steps", "0"], "argument --num-steps: expected a positive integer"),
    (["--epochs", "zero"], "argument --epochs: expected a positive integer, got 'zero'"),
    (["--lr", "0"], "argument --lr: expected a positive number"),
    (["--clip", "-1"], "argument --clip: expected a number >= 0"),
    (["--dropout", "1"], "argument --dropout: expected a fraction in [0, 1)"),
    (["--implementation", "cudnn"], "argument --implementation: invalid choice"),
])
def test_train_rejects_bad_arguments(args, message, text_file, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--data", str(text_file), "--out", str(out), *args])
    assert exit_.value.code == 2
    assert message in _one_error_line(capsys)
    assert not out.exists()


def test_train_refuses_to_replace_a_directory_that_is_not_a_run(text_file, tmp_path, capsys):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert cli.main(["train", "--data", str(text_file), "--out", str(out), *TINY]) == 2
    assert "holds no earlier run" in _one_error_line(capsys)
    assert _snapshot(out) == {Path("notes.txt"): b"keep me"}


def test_offline_without_a_file_says_how_to_supply_one(tmp_path, monkeypatch, capsys):
    def offline(url, timeout):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    out = tmp_path / "run"
    assert cli.main(["train", "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert data.BOOK_URL in line and "--data PATH" in line and data.DATA_ENV in line
    assert not out.exists()


def test_a_failure_during_training_leaves_nothing_behind(text_file, tmp_path, monkeypatch):
    from deeprnn_fast.language_model import model as language_model

    def broken(*args, **kwargs):
        raise FloatingPointError("the training loss became nan in epoch 1; try a smaller --lr")

    monkeypatch.setattr(language_model, "train", broken)
    assert cli.main(["train", "--data", str(text_file), "--out", str(tmp_path / "run"), *TINY]) == 1
    assert list(tmp_path.iterdir()) == []


def test_the_module_runs_as_a_program_and_errors_without_a_traceback(tmp_path):
    env = {**os.environ, data.CACHE_ENV: str(tmp_path / "cache")}
    env.pop(data.DATA_ENV, None)
    result = subprocess.run([sys.executable, "-m", "deeprnn_fast", "train", "--data", str(tmp_path / "missing.txt")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    # TensorFlow's own start-up log lines (C++, printed at import) are not ours; ours is exactly one line.
    ours = [line for line in result.stderr.splitlines() if line.startswith("deeprnn-fast")]
    assert ours == [f"deeprnn-fast train: error: the --data file {tmp_path / 'missing.txt'} does not exist"]
    assert result.stdout == ""
