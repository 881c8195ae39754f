"""The command line (deeprnn_fast.language_model.cli): `train` writes a complete run directory, `generate` continues a prefix, and
every input a user can get wrong ends in one line on stderr, exit code 2, and an --out left as it was."""
import errno
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest

from deeprnn_fast.language_model import cli, data, model_dir, run_dir

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
    assert sorted(p.name for p in trained_run.iterdir()) == ["deeprnn_fast_run.json", "metrics.json", "model.json",
                                                             "model.weights.npz", "perplexity.png"]
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
    if kind == "fifo":
        os.mkfifo(tmp_path / "pipe")
        return str(tmp_path / "pipe")
    path = tmp_path / "empty.txt"
    path.write_text("" if kind == "empty" else "12345 ... !!!\n")
    return str(path)


@pytest.mark.parametrize("kind, message", [("missing", "does not exist"), ("empty", "is empty"),
                                           ("no letters", "contains no letters"), ("fifo", "is not a regular file")])
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
    (["--between-layer-dropout", "-0.1"], "argument --between-layer-dropout: expected a fraction in [0, 1)"),
    (["--implementation", "cudnn"], "argument --implementation: invalid choice"),
])
def test_train_rejects_bad_arguments(args, message, text_file, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--data", str(text_file), "--out", str(out), *args])
    assert exit_.value.code == 2
    assert message in _one_error_line(capsys)
    assert not out.exists()


def test_keras_cells_refuse_dropout_between_layers_and_the_help_says_which_dropout_is_which(text_file, tmp_path,
                                                                                           capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--data", str(text_file), "--out", str(out), "--implementation", "keras",
                     "--between-layer-dropout", "0.2", *TINY]) == 2
    assert "use --dropout (Keras' cell dropout) with --implementation keras" in _one_error_line(capsys)
    assert not out.exists()
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--dropout DROPOUT Keras' cell dropout" in help_text
    assert "--between-layer-dropout BETWEEN_LAYER_DROPOUT PyTorch's dropout" in help_text


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


# ---- --out: only what an earlier run wrote is replaced ------------------------------------------------------------

def _earlier_run(trained_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    return out


def _hashes(directory):
    return {name: hashlib.sha256(content).hexdigest() for name, content in _snapshot(directory).items()}


def test_a_run_lists_what_it_wrote_in_its_manifest(trained_run):
    manifest = json.loads((trained_run / run_dir.MANIFEST_FILE).read_text())
    assert manifest["format"] == run_dir.MANIFEST_FORMAT
    assert sorted(manifest["files"]) == ["metrics.json", "model.json", "model.weights.npz", "perplexity.png"]
    for name, entry in manifest["files"].items():
        content = (trained_run / name).read_bytes()
        assert entry == {"size": len(content), "sha256": hashlib.sha256(content).hexdigest()}, name


def test_training_again_keeps_every_file_the_earlier_run_did_not_write(trained_run, text_file, tmp_path, capsys):
    out = _earlier_run(trained_run, tmp_path)
    (out / "notes.txt").write_text("keep me")
    (out / "figures").mkdir()
    (out / "figures" / "mine.png").write_bytes(b"\x89PNG mine")
    earlier = _hashes(out)
    assert cli.main(["train", "--data", str(text_file), "--out", str(out), *TINY, "--epochs", "2",
                     "--seed", "5"]) == 0
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2
    now = _hashes(out)
    for name in ("model.weights.npz", "metrics.json", "perplexity.png", run_dir.MANIFEST_FILE):
        assert now[Path(name)] != earlier[Path(name)], name
    assert (out / "notes.txt").read_text() == "keep me"
    assert (out / "figures" / "mine.png").read_bytes() == b"\x89PNG mine"
    assert set(now) == set(earlier)
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith(f"wrote {out}/")
    assert ("replaced the earlier run's metrics.json, model.json, model.weights.npz, perplexity.png; "
            "kept 2 other entries: figures, notes.txt") in line
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    # The new manifest records the new files (so that the next run may replace them in turn).
    manifest = json.loads((out / run_dir.MANIFEST_FILE).read_text())["files"]
    assert {name: entry["sha256"] for name, entry in manifest.items()} == {
        str(name): digest for name, digest in now.items() if str(name) in manifest}
    assert sorted(manifest) == ["metrics.json", "model.json", "model.weights.npz", "perplexity.png"]


@pytest.mark.parametrize("contents", [
    {"model.json": json.dumps({"format": model_dir.FORMAT, "vocab": [" ", "<unk>", "a"]})},
    {"model.json": "{}", "thesis.tex": "years of work"},
    {"deeprnn_fast_run.json": '{"format": "something else", "files": {}}', "model.json": "{}"},
], ids=["a lone model.json", "model.json and other files", "a foreign manifest"])
def test_a_directory_that_is_not_a_run_is_left_alone(contents, text_file, tmp_path, capsys):
    out = tmp_path / "precious"
    out.mkdir()
    for name, text in contents.items():
        (out / name).write_text(text)
    before = _snapshot(out)
    assert cli.main(["train", "--data", str(text_file), "--out", str(out), *TINY]) == 2
    line = _one_error_line(capsys)
    assert "holds no earlier run" in line and run_dir.MANIFEST_FILE in line and "choose a new or empty" in line
    assert _snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["precious"]


def _edit(out):
    with open(out / "metrics.json", "a") as f:
        f.write("\n// my notes\n")


def _unlist(out):
    manifest = json.loads((out / run_dir.MANIFEST_FILE).read_text())
    del manifest["files"]["metrics.json"]
    (out / run_dir.MANIFEST_FILE).write_text(json.dumps(manifest))


def _link(out):
    (out.parent / "mine.json").write_text("mine")
    (out / "metrics.json").unlink()
    (out / "metrics.json").symlink_to(out.parent / "mine.json")


@pytest.mark.parametrize("change", [_edit, _unlist, _link], ids=["edited since", "not listed", "a link"])
def test_a_file_the_earlier_run_did_not_write_is_not_replaced(change, trained_run, text_file, tmp_path, capsys):
    out = _earlier_run(trained_run, tmp_path)
    change(out)
    before = _snapshot(out)
    assert cli.main(["train", "--data", str(text_file), "--out", str(out), *TINY]) == 2
    line = _one_error_line(capsys)
    assert re.search(r"--out .*run: metrics\.json was not written by the earlier run or changed since", line), line
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["run"] + (["mine.json"] if change is _link else []))


def test_an_empty_directory_and_the_current_one_are_used(text_file, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["train", "--data", str(text_file), "--out", str(empty), *TINY, "--epochs", "1"]) == 0
    assert (empty / "model.json").is_file() and (empty / run_dir.MANIFEST_FILE).is_file()
    # --out . is the directory the program runs in: a run there once it holds one, as any other.
    monkeypatch.chdir(empty)
    assert cli.main(["train", "--data", str(text_file), "--out", ".", *TINY, "--epochs", "2"]) == 0
    assert json.loads((empty / "metrics.json").read_text())["epochs"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["empty"]


def test_out_that_is_a_file_is_refused(text_file, tmp_path, capsys):
    out = tmp_path / "out.txt"
    out.write_text("mine")
    assert cli.main(["train", "--data", str(text_file), "--out", str(out), *TINY]) == 2
    assert "exists and is not a directory" in _one_error_line(capsys)
    assert out.read_text() == "mine" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


@pytest.mark.parametrize("argv, option", [(["train", "--out", ""], "--out"), (["generate", "--model", ""], "--model")])
def test_an_empty_directory_argument_is_refused(argv, option, text_file, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # an empty path would mean this directory
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv + ["--data", str(text_file), *TINY] if argv[0] == "train" else argv)
    assert exit_.value.code == 2
    assert f"argument {option}: expected a directory path, got ''" in _one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["new --out", "earlier run"])
def test_a_run_that_cannot_be_published_is_kept_and_named(where, trained_run, text_file, tmp_path, monkeypatch,
                                                          capsys):
    if where == "new --out":
        out = tmp_path / "run"
        monkeypatch.setattr(run_dir.os, "rename", _no_space)  # both the publishing and the tidy rename fail
    else:
        out = _earlier_run(trained_run, tmp_path)
        monkeypatch.setattr(run_dir.shutil, "copyfile", _no_space)
    before = _snapshot(out) if out.exists() else None
    assert cli.main(["train", "--data", str(text_file), "--out", str(out), *TINY, "--epochs", "1"]) == 3
    line = _one_error_line(capsys)
    match = re.fullmatch(r"deeprnn-fast train: error: the trained model was kept in (\S+): (.*)", line)
    assert match, line
    kept, reason = Path(match[1]), match[2]
    assert "No space left on device" in reason
    assert sorted(p.name for p in kept.iterdir()) == ["deeprnn_fast_run.json", "metrics.json", "model.json",
                                                      "model.weights.npz", "perplexity.png"]
    assert json.loads((kept / "metrics.json").read_text())["epochs"] == 1
    assert kept.parent == tmp_path
    if where == "new --out":
        assert not out.exists()
    else:
        assert kept.name.startswith("run.unpublished-")
        assert _snapshot(out) == before  # no temporary file left in it either
    monkeypatch.undo()
    assert cli.main(["generate", "--model", str(kept), "--num", "5"]) == 0


def test_a_run_that_cannot_be_saved_completely_keeps_what_was_written(text_file, tmp_path, monkeypatch, capsys):
    from deeprnn_fast.language_model import model as language_model

    monkeypatch.setattr(language_model, "plot_perplexity", _no_space)
    out = tmp_path / "run"
    assert cli.main(["train", "--data", str(text_file), "--out", str(out), *TINY, "--epochs", "1"]) == 3
    line = _one_error_line(capsys)
    match = re.search(r"the run could not be written completely \(No space left on device\); what was written was "
                      r"kept in (\S+)$", line)
    assert match, line
    kept = Path(match[1])
    assert {"model.json", "model.weights.npz", "metrics.json"} <= {p.name for p in kept.iterdir()}
    assert not out.exists() and [p for p in tmp_path.iterdir()] == [kept]


# ---- a training that diverges -------------------------------------------------------------------------------------

def test_a_huge_finite_loss_ends_with_the_divergence_message(text_file, tmp_path, monkeypatch, capsys):
    from deeprnn_fast.language_model import model as language_model

    original = language_model.book_initialize

    def enormous(model, seed):
        # Logits of size ~1e4: the loss stays finite (float32) but exp(loss) would overflow any float.
        original(model, seed)
        rng = np.random.default_rng(seed)
        for variable in model.weights:
            variable.assign(rng.normal(0.0, 300.0, tuple(variable.shape)).astype(variable.dtype))

    monkeypatch.setattr(language_model, "book_initialize", enormous)
    assert cli.main(["train", "--data", str(text_file), "--out", str(tmp_path / "run"), *TINY, "--lr", "1e-9"]) == 1
    line = _one_error_line(capsys)
    assert re.fullmatch(r"deeprnn-fast train: error: the training loss became [\d.e+]+ in epoch 1, beyond 100 "
                        r"\(diverged\); try a smaller --lr", line), line
    assert list(tmp_path.iterdir()) == []


# ---- signals: SIGTERM and SIGHUP clean up as Ctrl-C does ----------------------------------------------------------

@pytest.fixture
def interactive_sigint():
    """Ctrl-C as an interactive run gets it. A test process started in the background (nohup, `cmd &` in a
    script) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler (rightly: such a program
    must keep ignoring it); the tests of Ctrl-C put Python's handler in place, and the inherited one back after."""
    inherited = signal.getsignal(signal.SIGINT)
    if inherited == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, inherited)


def _default_sigint():
    """preexec_fn of a child that must see Ctrl-C as an interactive run does (see interactive_sigint)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_during_training_cleans_up_and_leaves_an_earlier_run_as_it_was(signum, trained_run, text_file,
                                                                               tmp_path, monkeypatch, capsys,
                                                                               interactive_sigint):
    from deeprnn_fast.language_model import model as language_model

    out = _earlier_run(trained_run, tmp_path)
    before = _snapshot(out)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    staged = []

    def signalled(model, corpus, config, **kwargs):
        staged.extend(p for p in tmp_path.iterdir() if ".partial-" in p.name)
        (staged[0] / "half-written").write_text("x")
        os.kill(os.getpid(), signum)
        time.sleep(30)  # the handler raises in this thread long before
        raise AssertionError("the signal was not handled")

    monkeypatch.setattr(language_model, "train", signalled)
    assert cli.main(["train", "--data", str(text_file), "--out", str(out), *TINY]) == 128 + signum
    expected = "interrupted" if signum == signal.SIGINT else f"stopped by {signum.name}"
    assert _one_error_line(capsys) == f"deeprnn-fast: {expected}"
    assert len(staged) == 1 and not staged[0].exists()
    assert _snapshot(out) == before and [p.name for p in tmp_path.iterdir()] == ["run"]
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # the command's handlers are gone again


def test_sigterm_stops_a_real_training_process_without_leaving_anything(text_file, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, data.CACHE_ENV: str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
    args = [a for a in TINY if a != "--quiet"] + ["--epochs", "100000"]
    process = subprocess.Popen([sys.executable, "-m", "deeprnn_fast", "train", "--data", str(text_file), "--out",
                                str(out), *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        started = threading.Event()

        def watch():  # the first epoch's line: training is under way in TensorFlow's threads
            for line in process.stdout:
                if line.startswith("epoch "):
                    started.set()
        threading.Thread(target=watch, daemon=True).start()
        assert started.wait(240), "training never started"
        process.send_signal(signal.SIGTERM)
        stderr = process.communicate(timeout=120)[1]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    assert [line for line in stderr.splitlines() if line.startswith("deeprnn-fast")] == [
        "deeprnn-fast: stopped by SIGTERM"]
    assert [p.name for p in tmp_path.iterdir()] == []


def test_ctrl_c_while_tensorflow_is_still_importing_exits_quietly_with_130(text_file, tmp_path):
    # TensorFlow takes seconds to import, before any of the command line's code runs; Ctrl-C then must not print
    # the traceback of TensorFlow's import.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "deeprnn_fast", "train", "--data", str(text_file), "--out",
                                str(tmp_path / "run")], cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    try:
        time.sleep(0.7)  # inside `import tensorflow` (which takes several seconds here)
        assert process.poll() is None, "the process ended before it could be interrupted"
        process.send_signal(signal.SIGINT)
        stderr = process.communicate(timeout=120)[1]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "run").exists()


# ---- generate: a damaged or hostile model directory is one line, exit code 2, before anything is built ------------

def _description_change(**changes):
    def change(run):
        description = json.loads((run / "model.json").read_text())
        description.update(changes)
        (run / "model.json").write_text(json.dumps(description))
    return change


def _vocab_change(edit):
    def change(run):
        description = json.loads((run / "model.json").read_text())
        description["vocab"] = edit(description["vocab"])
        (run / "model.json").write_text(json.dumps(description))
    return change


def _weights_bytes(edit):
    def change(run):
        path = run / model_dir.WEIGHTS_FILE
        path.write_bytes(edit(path.read_bytes()))
    return change


def _flip_in_the_largest_array(raw):
    # The first layer's kernel (vocabulary x hidden floats) is the largest entry; flip one bit in its data.
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 128  # past the local and .npy headers
    position = start + (info.file_size - 128) // 2
    return raw[:position] + bytes([raw[position] ^ 0x10]) + raw[position + 1:]


def _other_weights(make):
    def change(run):
        with np.load(run / model_dir.WEIGHTS_FILE) as archive:
            arrays = [archive[name] for name in sorted(archive.files)]
        np.savez(run / model_dir.WEIGHTS_FILE, **{f"w{i:03d}": a for i, a in enumerate(make(arrays))})
    return change


def _fifo(name):
    def change(run):
        (run / name).unlink()
        os.mkfifo(run / name)
    return change


DAMAGE = [
    ("hidden is a bool", _description_change(hidden=True), r"'hidden' must be an integer from 1 to 8192; got True"),
    ("layers is a bool", _description_change(layers=False), r"'layers' must be an integer from 1 to 128; got False"),
    ("1e8 layers", _description_change(layers=10 ** 8), r"'layers' must be an integer from 1 to 128; got 100000000"),
    ("3 million units", _description_change(hidden=3_000_000), r"'hidden' must be an integer from 1 to 8192"),
    ("too many weights", _description_change(hidden=8000, layers=100),
     r"a 100-layer model of 8000 units and \d+ tokens has \d+ weights, more than the 100000000"),
    ("a float size", _description_change(hidden=16.0), r"'hidden' must be an integer from 1 to 8192; got 16.0"),
    ("an unknown cell", _description_change(cell="lstm"), r"'cell' must be one of tanh, relu, gru; got 'lstm'"),
    ("an unknown implementation", _description_change(implementation=["fused"]),
     r"'implementation' must be one of fused, reference, keras; got \['fused'\]"),
    ("dropout as text", _description_change(dropout="0.1"), r"'dropout' must be a number in \[0, 1\); got '0.1'"),
    ("a duplicate token", _vocab_change(lambda v: sorted(v + [v[-1]])), r"'vocab' lists '\w' twice"),
    ("a multi-character token", _vocab_change(lambda v: v[:-1] + ["zz"]), r"'vocab'\[\d+\] must be one character"),
    ("a token that is no string", _vocab_change(lambda v: v[:-1] + [7]),
     r"'vocab'\[\d+\] must be one character \(or '<unk>'\); got 7"),
    ("vocab out of order", _vocab_change(lambda v: v[::-1]), r"'vocab' must be in sorted order"),
    ("vocab without <unk>", _vocab_change(lambda v: [t for t in v if t != "<unk>"]), r"'vocab' must include '<unk>'"),
    ("a vocab the weights do not fit", _vocab_change(lambda v: v[:-1]),
     r"model\.weights\.npz holds weights of shapes \[\(\d+, 16\), .*but the model in model\.json needs"),
    ("a huge model.json", lambda run: (run / "model.json").write_text(" " * (2 << 20)), r"larger than 1048576 bytes"),
    ("model.json a FIFO", _fifo("model.json"), r"model\.json is not a regular file"),
    ("empty weights", _weights_bytes(lambda raw: b""), r"model\.weights\.npz is empty"),
    ("truncated weights", _weights_bytes(lambda raw: raw[:len(raw) // 2]), r"cannot read .*it is damaged"),
    ("truncated at the end", _weights_bytes(lambda raw: raw[:-30]), r"cannot read .*it is damaged"),
    ("a flipped bit", _weights_bytes(_flip_in_the_largest_array), r"cannot read .*it is damaged \(Bad CRC-32"),
    ("weights of other shapes", _other_weights(lambda arrays: [a[:, :-1] if a.ndim == 2 else a for a in arrays]),
     r"holds weights of shapes \[\(\d+, 15\), \(16, 15\),"),
    ("an array missing", _other_weights(lambda arrays: arrays[:-1]), r"holds weights of shapes .*\(7 arrays\), but"),
    ("float64 weights", _other_weights(lambda arrays: [a.astype(np.float64) for a in arrays]),
     r"w000\.npy holds float64 data, expected float32"),
    ("a NaN weight", _other_weights(lambda arrays: [arrays[0] * np.float32("nan")] + arrays[1:]),
     r"w000\.npy holds values that are not finite"),
    ("weights a FIFO", _fifo(model_dir.WEIGHTS_FILE), r"model\.weights\.npz is not a regular file"),
]


@pytest.mark.parametrize("change, message", [d[1:] for d in DAMAGE], ids=[d[0] for d in DAMAGE])
def test_generate_rejects_a_damaged_model_directory(change, message, trained_run, tmp_path, monkeypatch, capsys):
    from deeprnn_fast.language_model import model as language_model

    def never(*args, **kwargs):
        raise AssertionError("a model was built from a damaged directory")

    monkeypatch.setattr(language_model, "build_model", never)
    run = _earlier_run(trained_run, tmp_path)
    change(run)
    assert cli.main(["generate", "--model", str(run), "--prefix", "the", "--num", "5"]) == 2
    line = _one_error_line(capsys)
    assert line.startswith("deeprnn-fast generate: error: ") and re.search(message, line), line


def test_train_without_the_command_line_extra_says_how_to_get_it(monkeypatch, capsys, text_file, tmp_path):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tqdm" else real(name, *a))
    code = cli.main(["train", "--data", str(text_file), "--out", str(tmp_path / "run")])
    assert code == 2
    assert capsys.readouterr().err.strip() == ("deeprnn-fast train: error: train needs tqdm (the command line's "
                                               "extra): pip install 'deeprnn_fast[cli]'")
    assert not (tmp_path / "run").exists()
