"""The command line: `deeprnn-fast train` (the book's experiment) and `deeprnn-fast generate`.

Errors the user can fix (a missing file, a bad size, a prefix the model cannot read, a damaged model directory) end
the program with one line on stderr and exit code 2, never a traceback. `train` writes its results into a staging
directory next to --out and publishes them only at the end (see run_dir for what it may replace), so an interrupted
or failed run leaves --out as it was; SIGTERM and SIGHUP clean up as Ctrl-C does. Arguments, --out and the data are
checked before training starts, so these errors come quickly.
"""
import argparse
import contextlib
import json
import math
import re
import signal
import statistics
import sys
import textwrap
import time
from pathlib import Path

from deeprnn_fast.language_model import data as data_module
from deeprnn_fast.language_model import model_dir, run_dir

PROG = "deeprnn-fast"
CELLS = model_dir.CELLS
IMPLEMENTATIONS = model_dir.IMPLEMENTATIONS
METRICS_FILE = "metrics.json"
PLOT_FILE = "perplexity.png"
RUN_FILES = (model_dir.MODEL_FILE, model_dir.WEIGHTS_FILE, METRICS_FILE, PLOT_FILE, run_dir.MANIFEST_FILE)
SAMPLE_PREFIX = "time traveller"
EXIT_DIVERGED, EXIT_USAGE, EXIT_NOT_PUBLISHED = 1, 2, 3

TRAIN_EPILOG = f"""\
--out DIR: the run is written beside DIR and moved into it only once it is complete, so an interrupted or failed run
leaves DIR as it was. DIR may be new, empty, or the directory of an earlier run, which is recognised by the
{run_dir.MANIFEST_FILE} every run writes: the new run's files then replace that run's files one by one, and every
other file in DIR stays. A DIR that holds other files but no such manifest (a directory written by hand, or by a
version of this program before the manifest), or in which a file with a run file's name was not written by the
earlier run or was edited since, is refused before training starts, and nothing in it is touched.

Exit codes: 0 done; {EXIT_DIVERGED} the training diverged; {EXIT_USAGE} bad arguments, data or --out; \
{EXIT_NOT_PUBLISHED} trained, but the run could not be put into DIR (the message says where it was kept instead); \
128 + N stopped by signal N (130 Ctrl-C, 129 SIGHUP, 143 SIGTERM).
"""


class UsageError(Exception):
    """A bad argument; its message is one line for the user."""


class NotPublished(Exception):
    """Training finished but its run could not be put into --out; the message (one line) says where it was kept."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised wherever the program is, so that it cleans up exactly as after Ctrl-C."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


class _Parser(argparse.ArgumentParser):
    """argparse's parser, but an error is one line (argparse prints the usage first) and exits with code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the empty ones (None, False) that the help text already explains, and keeps the
    paragraphs of a description or epilog apart (argparse would run them into one)."""

    def _fill_text(self, text, width, indent):
        return "\n\n".join(textwrap.fill(" ".join(paragraph.split()), width, initial_indent=indent,
                                          subsequent_indent=indent) for paragraph in re.split(r"\n\s*\n", text))

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


def _path(text):
    # Path("") is the current directory: an empty argument (an unset shell variable, say) must not mean that.
    if not text:
        raise argparse.ArgumentTypeError("expected a directory path, got ''")
    return text


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
        epilog=TRAIN_EPILOG, formatter_class=_Formatter)
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
    train.add_argument("--out", metavar="DIR", type=_path,
                       help="where to write the model, metrics.json and the plot (default: runs/CELL-IMPLEMENTATION; "
                            "see below for what it may replace)")
    train.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    train.set_defaults(run=run_train)

    generate = commands.add_parser(
        "generate", help="continue a prefix with a trained model",
        description="Continue a prefix greedily (the most likely next character each step), as the book's predict.",
        formatter_class=_Formatter)
    generate.add_argument("--model", metavar="DIR", required=True, type=_path,
                          help="a directory written by deeprnn-fast train")
    generate.add_argument("--prefix", default="time traveller",
                          help="the text to continue (lower-cased, as the training text was)")
    generate.add_argument("--num", type=_positive_int, default=50, help="characters to generate")
    generate.set_defaults(run=run_generate)
    return parser


# ----------------------------------------------------------------------------------------------------------------
# Subcommands.

def _say(args, text):
    if not args.quiet:
        print(text, flush=True)


class _SaveFailed(Exception):
    """Writing the finished run into its staging directory failed (a full disk, say); the message is the reason."""


def _check_command_line_extra():
    """The progress bar and the plot come from the `cli` extra (tqdm, matplotlib), not from the library's own
    requirements; without them `train` says how to get them instead of failing after training."""
    import importlib.util
    missing = [name for name in ("tqdm", "matplotlib") if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f"train needs {' and '.join(missing)} (the command line's extra): "
                         "pip install 'deeprnn_fast[cli]'")


def run_train(args):
    _check_command_line_extra()
    out = Path(args.out if args.out is not None else f"runs/{args.cell}-{args.implementation}")
    corpus = data_module.load(args.data, num_steps=args.num_steps, num_train=args.num_train, num_val=args.num_val)
    try:
        staging = run_dir.prepare(out, RUN_FILES)
    except run_dir.RunDirError as e:
        raise UsageError(str(e)) from None
    try:
        _train_into(args, corpus, staging.path)
    except _SaveFailed as e:
        raise NotPublished(f"the run could not be written completely ({e}); what was written was kept in "
                           f"{run_dir.keep(staging)}") from None
    except BaseException:  # a failure or an interruption before the run is complete: nothing is left behind
        run_dir.discard(staging)
        raise
    try:
        published = run_dir.publish(staging)
    except run_dir.PublishError as e:
        raise NotPublished(f"the trained model was kept in {run_dir.keep(staging)}: {e}") from None
    except BaseException:
        run_dir.discard(staging)
        raise
    print(published.summary(out))
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
    try:
        lm.save_model(model, directory, extra={"num_steps": args.num_steps})
        (directory / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
        lm.plot_perplexity(history, directory / PLOT_FILE,
                           title=f"{args.layers}-layer {args.cell}, {args.implementation}: final val ppl "
                                 f"{metrics['val_ppl']:.2f}")
    except OSError as e:
        raise _SaveFailed(e.strerror or str(e)) from None
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


def _raise_terminated(signum, frame):
    raise Terminated(signum)


@contextlib.contextmanager
def _termination_as_interrupt():
    """SIGTERM and SIGHUP raise Terminated (a KeyboardInterrupt) while the command runs; the handlers that were
    there come back afterwards. Only the main thread can install handlers; elsewhere the signals keep theirs."""
    previous = {}
    try:
        for name in ("SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                signum = getattr(signal, name)
                previous[signum] = signal.signal(signum, _raise_terminated)
    except ValueError:
        pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv=None):
    """The console script `deeprnn-fast`; returns the exit code."""
    args = build_parser().parse_args(argv)
    with _termination_as_interrupt():
        try:
            return args.run(args)
        except KeyboardInterrupt as e:
            signum = getattr(e, "signum", signal.SIGINT)
            print(f"{PROG}: interrupted" if signum == signal.SIGINT else
                  f"{PROG}: stopped by {signal.Signals(signum).name}", file=sys.stderr)
            return 128 + signum
        except Exception as e:  # only the errors a user can fix become one line; anything else is a bug: traceback
            code = _exit_code(e)
            if code is None:
                raise
            print(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
            return code


def _exit_code(e):
    """The exit code of an error the user can act on, None for any other (a bug, which should show its traceback)."""
    if isinstance(e, FloatingPointError):
        return EXIT_DIVERGED
    if isinstance(e, NotPublished):
        return EXIT_NOT_PUBLISHED
    if isinstance(e, (UsageError, data_module.DataError, model_dir.ModelDirError)):
        return EXIT_USAGE
    return None


if __name__ == "__main__":
    sys.exit(main())
