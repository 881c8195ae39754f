"""The command line: `deeprnn-fast train` (the book's experiment) and `deeprnn-fast generate`.

Errors the user can fix (a missing file, a bad size, a prefix the model cannot read) end the program with one line
on stderr and exit code 2, never a traceback; `train` writes its results into a temporary directory next to --out
and renames it into place only at the end, so an interrupted or failed run leaves --out as it was. Arguments and the
data are checked before TensorFlow is imported, so these errors come quickly.
"""
import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from deeprnn_fast.language_model import data as data_module
from deeprnn_fast.language_model import model_dir

PROG = "deeprnn-fast"
CELLS = ("tanh", "relu", "gru")  # as language_model.CELLS, repeated here so that --help needs no TensorFlow
IMPLEMENTATIONS = ("fused", "reference", "keras")
METRICS_FILE = "metrics.json"
PLOT_FILE = "perplexity.png"
SAMPLE_PREFIX = "time traveller"


class UsageError(Exception):
    """A bad argument; its message is one line for the user."""


class _Parser(argparse.ArgumentParser):
    """argparse's parser, but an error is one line (argparse prints the usage first) and exits with code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the empty ones (None, False) that the help text already explains."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def build_parser():
    parser = _Parser(prog=PROG, description="The book's character-level language model of H. G. Wells' The Time "
                                            "Machine, on a fused stacked RNN.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,generate}",
                                     parser_class=_Parser)

    train = commands.add_parser(
        "train", help="train the language model (the book's experiment)",
        description="Train a stacked-RNN character language model with the book's settings (d2l, 'Deep Recurrent "
                    "Neural Networks'): letters only, windows of 32 + 1 characters, the first 10,000 windows to "
                    "train and the next 5,000 to validate, SGD with global-norm gradient clipping.",
        formatter_class=_Formatter)
    train.add_argument("--data", metavar="PATH",
                       help=f"the text to train on (default: ${data_module.DATA_ENV}, else The Time Machine from the "
                            f"cache {data_module.default_cache_dir()}, else downloaded from {data_module.BOOK_URL})")
    train.add_argument("--cell", choices=CELLS, default="tanh", help="recurrent cell")
    train.add_argument("--layers", type=_positive_int, default=2, help="stacked layers")
    train.add_argument("--hidden", type=_positive_int, default=32, help="hidden units per layer")
    train.add_argument("--batch-size", type=_positive_int, default=1024, help="windows per SGD step")
    train.add_argument("--num-steps", type=_positive_int, default=32, help="time steps per window")
    train.add_argument("--lr", type=_positive_float, default=2.0, help="SGD learning rate")
    train.add_argument("--clip", type=_non_negative_float, default=1.0,
                       help="clip gradients to this global norm (0: no clipping)")
    train.add_argument("--epochs", type=_positive_int, default=100, help="passes over the training windows")
    train.add_argument("--dropout", type=_fraction, default=0.0,
                       help="dropout rate in training: between layers for the fused and reference stacks (as "
                            "torch.nn.RNN), on every cell's input for Keras' cells")
    train.add_argument("--seed", type=_non_negative_int, default=0,
                       help="seed of the initial weights, the shuffling and dropout")
    train.add_argument("--implementation", choices=IMPLEMENTATIONS, default="fused",
                       help="the recurrent stack: the fused layer, the plain-TensorFlow reference, or Keras' own "
                            "cells (for side-by-side comparison)")
    train.add_argument("--num-train", type=_positive_int, default=data_module.NUM_TRAIN,
                       help="training windows (the first ones)")
    train.add_argument("--num-val", type=_positive_int, default=data_module.NUM_VAL,
                       help="validation windows (the ones after)")
    train.add_argument("--out", metavar="DIR", help="where to write the model, metrics.json and the plot "
                                                     "(default: runs/CELL-IMPLEMENTATION)")
    train.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    train.set_defaults(run=run_train)

    generate = commands.add_parser(
        "generate", help="continue a prefix with a trained model",
        description="Continue a prefix greedily (the most likely next character each step), as the book's predict.",
        formatter_class=_Formatter)
    generate.add_argument("--model", metavar="DIR", required=True, help="a directory written by deeprnn-fast train")
    generate.add_argument("--prefix", default="time traveller",
                          help="the text to continue (lower-cased, as the training text was)")
    generate.add_argument("--num", type=_positive_int, default=50, help="characters to generate")
    generate.set_defaults(run=run_generate)
    return parser


# ----------------------------------------------------------------------------------------------------------------
# The output directory: written in full next to --out, then renamed into place.

def _prepare_out(out: Path) -> Path:
    """Checks that --out can be (re)placed and returns an empty temporary directory beside it."""
    if out.exists():
        if not out.is_dir():
            raise UsageError(f"--out {out} exists and is not a directory")
        if any(out.iterdir()) and not (out / model_dir.MODEL_FILE).is_file():
            raise UsageError(f"--out {out} is a non-empty directory that holds no earlier run (no model.json); "
                             "choose another directory")
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=parent))
    except OSError as e:
        raise UsageError(f"cannot write --out {out}: {e.strerror or e}") from None
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the published directory gets the usual permissions
    return tmp


def _publish(tmp: Path, out: Path):
    """Puts the finished directory at --out; an earlier run there is replaced only once the new one is complete."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.absolute().parent))
        os.replace(out, old / out.name)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------------
# Subcommands.

def _say(args, text):
    if not args.quiet:
        print(text, flush=True)


def run_train(args):
    out = Path(args.out or f"runs/{args.cell}-{args.implementation}")
    corpus = data_module.load(args.data, num_steps=args.num_steps, num_train=args.num_train, num_val=args.num_val)
    tmp = _prepare_out(out)
    try:
        _train_into(args, corpus, tmp)
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"wrote {out}/ ({model_dir.MODEL_FILE}, {model_dir.WEIGHTS_FILE}, {METRICS_FILE}, {PLOT_FILE})")
    return 0


def _train_into(args, corpus, directory: Path):
    # TensorFlow loads only now, after the arguments and the data have been checked.
    import keras
    from tqdm import tqdm

    from deeprnn_fast.language_model import model as lm

    if corpus.note:
        print(f"note: {corpus.note}", file=sys.stderr)
    keras.utils.set_random_seed(args.seed)
    config = lm.ModelConfig(corpus.vocab.idx_to_token, cell=args.cell, hidden=args.hidden, layers=args.layers,
                            dropout=args.dropout, implementation=args.implementation)
    model = lm.build_model(config, seed=args.seed)
    if model.notice:
        print(f"note: {model.notice}", file=sys.stderr)
    op_library = _op_library_status()
    if args.implementation == "fused" and op_library is not None and not op_library["loadable"]:
        print(f"note: {op_library['error']}; the fused layer runs its plain-TensorFlow fallback", file=sys.stderr)
    train_config = lm.TrainConfig(batch_size=args.batch_size, lr=args.lr, clip=args.clip, epochs=args.epochs,
                                  seed=args.seed)
    _say(args, f"{corpus.path}: {len(corpus.corpus)} tokens, vocabulary of {len(corpus.vocab)}, "
               f"{len(corpus.train)} training and {len(corpus.val)} validation windows of {args.num_steps} + 1")
    _say(args, f"{args.layers}-layer {args.cell} RNN, {args.hidden} hidden units, implementation "
               f"{args.implementation} ({type(model.rnn).__name__})")

    steps_per_epoch = math.ceil(len(corpus.train) / args.batch_size)
    bar = tqdm(total=args.epochs * steps_per_epoch, unit="step", disable=args.quiet, leave=False,
               dynamic_ncols=True)

    def on_batch(loss):
        bar.update(1)

    def on_epoch(epoch, train_ppl, val_ppl, seconds):
        bar.set_postfix_str(f"train ppl {train_ppl:.2f}, val ppl {val_ppl:.2f}")
        if not args.quiet:
            bar.write(f"epoch {epoch:>{len(str(args.epochs))}}/{args.epochs}  train ppl {train_ppl:7.3f}  "
                      f"val ppl {val_ppl:7.3f}  ({seconds:.2f} s)")

    try:
        history = lm.train(model, corpus, train_config, on_epoch=on_epoch, on_batch=on_batch)
    finally:
        bar.close()

    # The book's own check of a language model: how it continues "time traveller".
    sample = None if corpus.vocab.unknown_characters(SAMPLE_PREFIX) else lm.generate(model, SAMPLE_PREFIX, 50)
    metrics = _metrics(args, corpus, model, history, op_library, sample)
    lm.save_model(model, directory, extra={"num_steps": args.num_steps})
    (directory / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    lm.plot_perplexity(history, directory / PLOT_FILE,
                       title=f"{args.layers}-layer {args.cell}, {args.implementation}: final val ppl "
                             f"{metrics['val_ppl']:.2f}")
    print(f"train ppl {metrics['train_ppl']:.3f}, val ppl {metrics['val_ppl']:.3f} "
          f"(best {metrics['best_val_ppl']:.3f}), {metrics['epochs']} epochs in {metrics['seconds']:.1f} s")
    if sample is not None:
        print(f"sample: {sample}")


def _metrics(args, corpus, model, history, op_library, sample):
    epoch_seconds = history.epoch_seconds
    return {
        "train_ppl": history.train_ppl[-1],
        "val_ppl": history.val_ppl[-1],
        "best_val_ppl": min(history.val_ppl),
        "epochs": len(history.train_ppl),
        "seconds": history.seconds,
        # The first epoch includes tracing the graphs; the median of the others is the steady speed.
        "seconds_per_epoch_median": statistics.median(epoch_seconds[1:] or epoch_seconds),
        "train_ppl_history": history.train_ppl,
        "val_ppl_history": history.val_ppl,
        "epoch_seconds": epoch_seconds,
        "cell": args.cell, "layers": args.layers, "hidden": args.hidden, "implementation": args.implementation,
        "recurrent_layer": type(model.rnn).__name__,
        "op_library_loaded": None if op_library is None else op_library["loadable"],
        "batch_size": args.batch_size, "num_steps": args.num_steps, "lr": args.lr, "clip": args.clip,
        "dropout": args.dropout, "seed": args.seed,
        "data": str(corpus.path), "data_sha1": corpus.sha1, "tokens": int(len(corpus.corpus)),
        "vocab_size": len(corpus.vocab), "train_windows": int(len(corpus.train)), "val_windows": int(len(corpus.val)),
        "sample": sample,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _op_library_status():
    """deeprnn_fast.build_info() (whether the compiled op library loads, and why not), or None where unknown."""
    import deeprnn_fast

    build_info = getattr(deeprnn_fast, "build_info", None)
    return build_info() if callable(build_info) else None


def run_generate(args):
    # The model directory and the prefix are checked before TensorFlow loads.
    description = model_dir.read_description(args.model)
    data_module.check_prefix(data_module.Vocab(description["vocab"]), args.prefix)
    from deeprnn_fast.language_model import model as lm

    model = lm.load_model(args.model)
    print(lm.generate(model, args.prefix, args.num))
    return 0


def main(argv=None):
    """The console script `deeprnn-fast`; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # only the errors a user can fix become one line; anything else is a bug: traceback
        if not _is_user_error(e):
            raise
        print(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
        return 1 if isinstance(e, FloatingPointError) else 2


def _is_user_error(e):
    return isinstance(e, (UsageError, data_module.DataError, model_dir.ModelDirError, FloatingPointError))


if __name__ == "__main__":
    sys.exit(main())
