"""The directory `deeprnn-fast train --out DIR` writes: staged beside DIR, published into it only when the run is
complete, and recognised later by a manifest so that a new run replaces only the files an earlier one wrote.

The rules, which `deeprnn-fast train --help` and README.md repeat for the user:
- DIR does not exist or is empty: the run goes there.
- DIR holds a manifest (MANIFEST_FILE) written by an earlier run: the new run's files replace that run's files one by
  one (each replacement atomic), every other file in DIR stays. A file of ours that was edited since, or a file of
  that name that the manifest does not list, is not ours: the run is refused before it starts.
- DIR is anything else (a non-empty directory without our manifest, a file): refused before training, and nothing
  in it is touched.
Publishing never deletes or overwrites a file the program did not write, and when it fails the finished run is kept
and its place named. Free of TensorFlow, so that --out is checked before TensorFlow loads.
"""
import hashlib
import json
import os
import shutil
import signal
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

MANIFEST_FILE = "deeprnn_fast_run.json"
MANIFEST_FORMAT = "deeprnn_fast.train_run/1"
_MAX_MANIFEST_BYTES = 1 << 20  # ours is a few hundred bytes; a bigger one is not ours
_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class RunDirError(Exception):
    """--out cannot take a run; its message is one line for the user. Raised before training starts."""


class PublishError(Exception):
    """The finished run could not be put into --out; its message (one line) says why. The staging directory is
    complete and untouched."""


@dataclass
class Staging:
    """A run being written: `path` is an empty directory beside `out`, with the usual permissions."""
    out: Path
    path: Path


@dataclass
class Published:
    """What publishing did: the files written into --out, which of them replaced an earlier run's, and the other
    entries of --out that were kept."""
    written: List[str]
    replaced: List[str] = field(default_factory=list)
    kept: List[str] = field(default_factory=list)

    def summary(self, out) -> str:
        text = f"wrote {out}/ ({', '.join(self.written)})"
        if self.replaced:
            text += f"; replaced the earlier run's {', '.join(self.replaced)}"
        if self.kept:
            shown = ", ".join(self.kept[:5]) + (f" and {len(self.kept) - 5} more" if len(self.kept) > 5 else "")
            text += f"; kept {len(self.kept)} other {'entry' if len(self.kept) == 1 else 'entries'}: {shown}"
        return text


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_manifest(out: Path) -> Optional[Dict[str, dict]]:
    """The files our manifest in `out` lists ({name: {"size", "sha256"}}), or None where `out` holds no manifest of
    ours (missing, not a regular file, unreadable, or not in our format)."""
    path = out / MANIFEST_FILE
    try:
        if not stat.S_ISREG(path.lstat().st_mode) or path.lstat().st_size > _MAX_MANIFEST_BYTES:
            return None
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        return None
    files = manifest.get("files")
    if not isinstance(files, dict):
        return None
    return {name: entry for name, entry in files.items() if isinstance(entry, dict)}


def _is_ours(path: Path, entry: Optional[dict]) -> bool:
    """Whether `path` is a regular file (not a link) whose size and SHA-256 are what our manifest recorded."""
    if entry is None:
        return False
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_size != entry.get("size"):
            return False
        return _sha256(path) == entry.get("sha256")
    except OSError:
        return False


def _entries(out: Path) -> List[str]:
    try:
        return sorted(os.listdir(out))
    except OSError as e:
        raise RunDirError(f"cannot read --out {out}: {e.strerror or e}") from None


def _check_replaceable(out: Path, names) -> None:
    """Raises RunDirError unless a run writing `names` (and the manifest) may go into `out`."""
    if not os.path.lexists(out):
        return
    if not out.is_dir():
        raise RunDirError(f"--out {out} exists and is not a directory; choose a new or empty directory")
    entries = _entries(out)
    if not entries:
        return
    manifest = _read_manifest(out)
    if manifest is None:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise RunDirError(f"--out {out} is a non-empty directory ({shown}) that holds no earlier run of deeprnn-fast "
                          f"train (no {MANIFEST_FILE}), and nothing in it is replaced; choose a new or empty "
                          "directory")
    # The manifest itself is ours by its format; every other file must be as it recorded.
    foreign = [name for name in names if name != MANIFEST_FILE and os.path.lexists(out / name)
               and not _is_ours(out / name, manifest.get(name))]
    if foreign:
        one = len(foreign) == 1
        raise RunDirError(f"--out {out}: {', '.join(foreign)} {'was' if one else 'were'} not written by the earlier "
                          f"run or changed since (not as {MANIFEST_FILE} records), and would be replaced; move "
                          f"{'it' if one else 'them'} away or choose another directory")


def prepare(out: Path, names) -> Staging:
    """Checks that a run writing the files `names` may go into `out`, then makes its staging directory beside `out`
    (on the same file system, so that a new `out` is one rename away)."""
    out = Path(out)
    _check_replaceable(out, names)
    parent = Path(os.path.abspath(out)).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f".{Path(os.path.abspath(out)).name or 'run'}.partial-", dir=parent))
    except OSError as e:
        raise RunDirError(f"cannot write --out {out}: {e.strerror or e}") from None
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o777 & ~umask)  # mkdtemp makes it private; the published directory gets the usual permissions
    return Staging(out, path)


def discard(staging: Staging) -> None:
    """Removes a run that will not be published (it failed or was interrupted)."""
    with _SignalsDeferred():
        shutil.rmtree(staging.path, ignore_errors=True)


def _write_manifest(directory: Path) -> List[str]:
    """Records every file in `directory` (name, size, SHA-256) in its manifest; returns the files' names."""
    names = sorted(p.name for p in directory.iterdir() if p.is_file() and p.name != MANIFEST_FILE)
    files = {name: {"size": (directory / name).stat().st_size, "sha256": _sha256(directory / name)} for name in names}
    manifest = {"format": MANIFEST_FORMAT, "written_by": "deeprnn-fast train",
                "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": files}
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return names


class _SignalsDeferred:
    """Holds SIGINT, SIGTERM and SIGHUP back for a few renames or a clean-up, so that an interruption cannot leave
    --out half old and half new, or a staging directory half removed; a signal that came meanwhile goes to the
    handler it was meant for right after. (Blocking the signals with pthread_sigmask would not do: TensorFlow's
    threads would take them.) Only the main thread can change handlers; elsewhere nothing is held back."""

    def __enter__(self):
        self._pending, self._old = [], {}
        try:
            for signum in _SIGNALS:
                self._old[signum] = signal.signal(signum, lambda signum, frame: self._pending.append(signum))
        except ValueError:  # not the main thread
            self._restore()
        return self

    def _restore(self):
        for signum, handler in self._old.items():
            signal.signal(signum, handler)
        self._old = {}

    def __exit__(self, *exc):
        handlers = dict(self._old)
        self._restore()
        if self._pending:
            signum = self._pending[0]
            handler = handlers[signum]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), signum)


def publish(staging: Staging) -> Published:
    """Puts the finished run into --out; raises PublishError (the staging directory left complete) when it cannot.

    A new --out is the staging directory renamed, in one step. Into an existing one each file is first copied beside
    its place under a temporary name (copying also works across file systems, and a full disk fails here, before
    anything in --out changed), then renamed over it."""
    out = staging.out
    written = _write_manifest(staging.path) + [MANIFEST_FILE]
    if not os.path.lexists(out):
        try:
            os.rename(staging.path, out)
            return Published(written)
        except OSError as e:
            if not os.path.lexists(out):  # else someone made --out meanwhile: publish into it as into any other
                raise PublishError(f"cannot rename it to {out}: {e.strerror or e}") from None
    try:
        _check_replaceable(out, written)  # again: --out may have changed while the model trained
    except RunDirError as e:
        raise PublishError(str(e)) from None
    replaced = [name for name in written if os.path.lexists(out / name)]
    temporaries = []
    try:
        for name in written:
            fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".partial", dir=out)
            os.close(fd)
            temporaries.append((temporary, name))
            shutil.copyfile(staging.path / name, temporary)
            os.chmod(temporary, stat.S_IMODE((staging.path / name).stat().st_mode))
        with _SignalsDeferred():
            for temporary, name in temporaries:
                os.replace(temporary, out / name)
    except OSError as e:
        raise PublishError(f"cannot write into {out}: {e.strerror or e}") from None
    finally:
        for temporary, _ in temporaries:
            if os.path.lexists(temporary):
                os.unlink(temporary)
    shutil.rmtree(staging.path, ignore_errors=True)
    try:
        kept = [name for name in sorted(os.listdir(out)) if name not in written]
    except OSError:  # only the report would miss them
        kept = []
    return Published(written, [name for name in replaced if name != MANIFEST_FILE], kept)


def keep(staging: Staging) -> Path:
    """After a failed publish: renames the finished run to a name that says what it is, beside --out, and returns
    where it now is (its staging path where even that rename fails)."""
    base = Path(os.path.abspath(staging.out))
    target = base.parent / f"{base.name or 'run'}.unpublished-{time.strftime('%Y%m%d-%H%M%S')}"
    if os.path.lexists(target):
        return staging.path
    try:
        os.rename(staging.path, target)
    except OSError:
        return staging.path
    return target
