"""One lock per run, so that two dba processes on one results folder never train the same run.

An OS lock (flock) on results/.locks/<key>.lock: released by the kernel when
the process dies, even by kill -9, so a crash never leaves a run locked forever.
"""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import BinaryIO


def take_lock(results_dir: Path, key: str, wait: bool = False) -> BinaryIO | None:
    """An exclusive lock for one run: its open lock file, or None if another process holds it (never, with `wait`).

    An OS lock (flock) on results/.locks/<key>.lock: released by the kernel
    when the process dies, even by kill -9, so a crash never leaves a run
    locked forever. Release it with `release_lock`.
    """
    path = lock_path(results_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+b")
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
