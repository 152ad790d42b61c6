"""One lock per run, so that two dba processes on one results folder never train the same run.

An OS lock (flock) on results/.locks/<key>.lock: released by the kernel when
the process dies, even by kill -9, so a crash never leaves a run locked forever.
"""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import BinaryIO

from ..errors import ResultsNotWritable


def check_lock_folder(results_dir: Path) -> None:
    """Before anything trains: results/.locks is a folder, or can be made one. Raises ResultsNotWritable naming it."""
    folder = Path(results_dir) / ".locks"
    if (folder.exists() or folder.is_symlink()) and not folder.is_dir():
        raise ResultsNotWritable(
            f"{folder} is not a folder: dba keeps one lock file per run in it, so that two dba processes never train "
            f"the same run. Fix: remove {folder} (nothing else is kept there) and rerun."
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsNotWritable(
            f"cannot create the lock folder {folder} ({exc.strerror or exc}). Fix: make {results_dir} writable, or remove "
            f"what is in the way, and rerun."
        ) from None


def take_lock(results_dir: Path, key: str, wait: bool = False) -> BinaryIO | None:
    """An exclusive lock for one run: its open lock file, or None if another process holds it (never, with `wait`).

    An OS lock (flock) on results/.locks/<key>.lock: released by the kernel
    when the process dies, even by kill -9, so a crash never leaves a run
    locked forever. Release it with `release_lock`.
    """
    path = lock_path(results_dir, key)
    check_lock_folder(results_dir)
    try:
        handle = open(path, "a+b")
    except OSError as exc:
        raise ResultsNotWritable(
            f"cannot open the lock file {path} ({exc.strerror or exc}). Fix: remove it, or make {path.parent} writable, "
            "and rerun."
        ) from None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        handle.close()
        return None
    except BaseException:
        handle.close()
        raise
    return handle


def release_lock(handle: BinaryIO) -> None:
    if not handle.closed:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


def remove_lock(results_dir: Path, key: str) -> None:
    """Delete a finished run's lock file (while still holding it), so that `.locks/` does not grow.

    Safe: whoever opened the old file and locks it afterwards re-checks the
    result first and finds the run finished.
    """
    lock_path(results_dir, key).unlink(missing_ok=True)


def lock_path(results_dir: Path, key: str) -> Path:
    """results/.locks/<key with / as __>.lock: outside the result folders, one flat folder."""
    return results_dir / ".locks" / (key.replace("/", "__") + ".lock")
