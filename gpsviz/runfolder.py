"""Run folders: one writer at a time, never someone else's folder, files consistent after a kill.

A run folder (``--out``) holds ``checkpoint.pt``, ``config.json``, ``history.csv``, ``results.json`` and two
hidden files: ``.gpsviz-run`` (marks the folder as a gpsviz run) and ``.gpsviz.lock`` (the lock, holding the
writer's PID). The training loop and ``evaluate_run`` use these small functions:

    >>> with run_folder(out_dir, resume=False):      # validate, mark, lock, clean stale temp files
    ...     ...                                       # train; on resume: repair_history(out_dir, ck["history"])
    >>> merge_results(run_dir, {"knn_label": 0.8})    # results.json, merged per target/probe under the lock

The lock is an ``fcntl.flock`` on ``.gpsviz.lock``: the kernel drops it when its process dies (even by SIGKILL),
so a stale lock file left by a killed run never blocks a resume; a live holder gives a clear
"in use by process N" error. Where ``fcntl`` is missing (Windows) the lock falls back to an exclusive-create file
whose PID is checked for liveness.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from gpsviz.config import TrainConfig
from gpsviz.errors import GpsvizError
from gpsviz.utils import atomic_write_bytes, atomic_write_json, read_json

LOCK_NAME = ".gpsviz.lock"
MARKER_NAME = ".gpsviz-run"
RUN_FILES = ("checkpoint.pt", "config.json", "history.csv", "results.json", "provenance.json", LOCK_NAME,
             MARKER_NAME)
#: Files measured on a run's model (probes, analyses, recorded view weights): a fresh training in the folder
#: removes them, since they describe the model it replaces.
DERIVED_FILES = ("results.json", "conditions.json", "cassle_analysis.json", "view_weights.pt")
RESULT_META = ("run", "recipe", "aug", "seed", "data")

try:  # pragma: no cover - platform dependent
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


class RunFolderError(GpsvizError, RuntimeError):
    """A run folder cannot be used: it is a file, unwritable, someone else's folder, or in use by another run."""


# ------------------------------------------------------------------------------------------------ validation
def is_gpsviz_run(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder gpsviz made: it has the marker, a checkpoint, or a config.json that is a
    gpsviz TrainConfig (a run killed before its first checkpoint by an older version)."""
    p = Path(path)
    if (p / MARKER_NAME).is_file() or (p / "checkpoint.pt").is_file():
        return True
    cfg = p / "config.json"
    if cfg.is_file():
        try:
            TrainConfig.from_dict(json.loads(cfg.read_text()))
            return True
        except Exception:  # noqa: BLE001 - anything that is not our config means "not ours"
            return False
    return False


def check_out_dir(path: str | os.PathLike) -> Path:
    """Validate a run folder before anything is written: not a file, writable, empty or a gpsviz run.

    Creates the folder (and its parents) when missing. Returns it as a ``Path``; ``RunFolderError`` otherwise.
    """
    p = Path(path).expanduser()
    if str(p).strip() == "":
        raise RunFolderError("the run folder (--out) is empty; pass a folder name, e.g. --out runs/my-run")
    too_long = [part for part in p.parts if len(os.fsencode(part)) > 255]
    if too_long:
        raise RunFolderError(f"--out {str(p)[:80]}…: the name {too_long[0][:40]}… is {len(os.fsencode(too_long[0]))} "
                             f"bytes, more than file systems allow (255); choose a shorter folder name")
    if p.exists() and not p.is_dir():
        raise RunFolderError(f"--out {p} is a file, not a folder; choose a folder (a new name is created)")
    resolved = p.resolve()
    if any(resolved == Path(s) or Path(s) in resolved.parents for s in ("/proc", "/sys", "/dev")):
        raise RunFolderError(f"--out {p} lies in a system folder ({resolved}); choose a folder of your own")
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=p, prefix=".gpsviz-write-test.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise RunFolderError(f"cannot write in the run folder {p} ({e.strerror or type(e).__name__}); choose a "
                             f"folder you can write to with --out") from None
    entries = [e for e in p.iterdir() if e.name not in (LOCK_NAME, MARKER_NAME)
               and not (e.name.startswith(".") and e.name.endswith(".tmp"))]
    if entries and not is_gpsviz_run(p):
        shown = ", ".join(sorted(e.name for e in entries)[:5]) + (" …" if len(entries) > 5 else "")
        raise RunFolderError(f"--out {p} is not empty ({shown}) and is not a gpsviz run folder; refusing to write "
                             f"into it. Choose a new or empty folder.")
    return p


def run_dir_of(path: str | os.PathLike) -> Path:
    """A run folder, or a checkpoint file inside one → the run folder."""
    p = Path(path).expanduser()
    return p.parent if p.is_file() else p


def clean_stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Remove ``.*.tmp`` files left in a run folder by writes interrupted by a kill. Call only while holding the
    folder's lock (no other writer can own them then). Returns the removed paths."""
    removed = []
    for f in Path(path).glob(".*.tmp"):
        try:
            if f.is_file():
                f.unlink()
                removed.append(f)
        except OSError:
            pass
    return removed


# --------------------------------------------------------------------------------------------------- locking
_held: dict[str, list[Any]] = {}     # resolved lock path → [fd or None, depth]; re-entrant within a process
_held_guard = threading.Lock()


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _read_owner(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text() or "{}")
        return f"process {info.get('pid', '?')} on {info.get('host', '?')} (since {info.get('since', '?')})"
    except (OSError, ValueError):
        return "another process"


def _owner_record() -> bytes:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                       "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode()


def _acquire(lock: Path) -> int | None:
    """Take the lock file; returns the fd holding it (flock) or None (fallback)."""
    if fcntl is not None:
        for _ in range(20):
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise RunFolderError(f"run folder {lock.parent} is in use by {_read_owner(lock)}; wait for it to "
                                     f"finish or choose another --out") from None
            try:  # the file we locked must still be the one at the path (a releaser may have unlinked it)
                same = os.fstat(fd).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, _owner_record())
            return fd
        raise RunFolderError(f"could not take the lock {lock}; try again")
    for _ in range(20):  # pragma: no cover - fallback without fcntl
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                pid = int(json.loads(lock.read_text() or "{}").get("pid", 0))
            except (OSError, ValueError):
                pid = 0
            if _pid_alive(pid) and pid != os.getpid():
                raise RunFolderError(f"run folder {lock.parent} is in use by {_read_owner(lock)}; wait for it to "
                                     f"finish or choose another --out") from None
            with contextlib.suppress(OSError):
                lock.unlink()          # stale: its process is gone
            continue
        os.write(fd, _owner_record())
        os.close(fd)
        return None
    raise RunFolderError(f"could not take the lock {lock}; try again")  # pragma: no cover


@contextlib.contextmanager
def run_lock(path: str | os.PathLike) -> Iterator[Path]:
    """Hold the run folder's lock (re-entrant within one process). A second process gets ``RunFolderError``
    "in use by process N"; a lock left by a killed process is taken over silently."""
    folder = Path(path)
    lock = folder / LOCK_NAME
    key = str(lock.resolve())
    with _held_guard:
        if key in _held:
            _held[key][1] += 1
        else:
            _held[key] = [_acquire(lock), 1]
    try:
        yield folder
    finally:
        with _held_guard:
            entry = _held[key]
            entry[1] -= 1
            if entry[1] == 0:
                del _held[key]
                with contextlib.suppress(OSError):
                    lock.unlink()
                if entry[0] is not None:
                    os.close(entry[0])        # closing releases the flock


@contextlib.contextmanager
def run_folder(path: str | os.PathLike, resume: bool = False) -> Iterator[Path]:
    """Everything a training run needs around its body: validate the folder (:func:`check_out_dir`), lock it
    (:func:`run_lock`), mark it as a gpsviz run and remove temp files of interrupted writes.

    Without ``resume``, a folder that already holds a checkpoint is refused (``RunFolderError``: a finished run is
    never replaced silently, from the API or the CLI); otherwise the files measured on an earlier model
    (:data:`DERIVED_FILES`, e.g. a ``results.json`` left when its checkpoint was deleted) are removed."""
    folder = check_out_dir(path)
    with run_lock(folder):
        if not resume and (folder / "checkpoint.pt").exists():
            raise RunFolderError(f"{folder} already holds a run (checkpoint.pt); pass resume=True (--resume) to "
                                 f"continue it, or choose another folder (--out). Delete the folder to start over.")
        clean_stale_temp_files(folder)
        if not resume:
            for name in DERIVED_FILES:
                with contextlib.suppress(FileNotFoundError):
                    (folder / name).unlink()
        marker = folder / MARKER_NAME
        if not marker.exists():
            marker.write_text("This folder is a gpsviz run (checkpoint.pt, config.json, history.csv).\n")
        yield folder


# ---------------------------------------------------------------------------------------- history and results
def history_csv(history: Sequence[dict[str, Any]], fields: Sequence[str]) -> bytes:
    """The bytes of ``history.csv`` for a list of per-epoch rows."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore")
    w.writeheader()
    w.writerows(history)
    return buf.getvalue().encode()


def repair_history(path: str | os.PathLike, history: Sequence[dict[str, Any]], fields: Sequence[str]) -> bool:
    """Make ``history.csv`` hold exactly the checkpoint's ``history`` (a kill between the checkpoint and the
    history write leaves it one row short). Returns True when it had to be rewritten."""
    target = Path(path) / "history.csv"
    want = history_csv(history, fields)
    try:
        if target.read_bytes() == want:
            return False
    except OSError:
        pass
    atomic_write_bytes(target, want)
    return True


def merge_results(path: str | os.PathLike, results: dict[str, Any]) -> dict[str, Any]:
    """Merge ``results`` into the run folder's ``results.json`` under the folder's lock and return the merge.

    Keys of earlier evaluations (other targets / probes) are kept only when they were measured on the same
    checkpoint (equal ``checkpoint`` digest, see :func:`gpsviz.checkpoint.checkpoint_digest`) and describe the same
    run (equal ``recipe``, ``aug``, ``seed``, ``data``); otherwise they belong to an earlier model and are dropped.
    New values replace old ones of the same target/probe. An unreadable ``results.json`` is replaced."""
    folder = Path(path)
    with run_lock(folder):
        loaded = read_json(folder / "results.json")           # missing or unreadable: None
        old: dict[str, Any] = loaded if isinstance(loaded, dict) else {}
        if any(k in old and k in results and old[k] != results[k] for k in RESULT_META if k != "run") or \
                old.get("checkpoint") is None or old.get("checkpoint") != results.get("checkpoint"):
            old = {}                         # results of an earlier model in this folder
        merged = {**old, **results}
        atomic_write_json(folder / "results.json", merged)
    return merged
