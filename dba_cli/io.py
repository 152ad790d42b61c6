"""Writing files so that a crash or Ctrl-C never leaves a half-written one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import ResultsNotWritable


def write_atomic(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Let `write` fill a temporary file beside `path`, fsync, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


def write_json_atomic(path: str | Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


@contextmanager
def finished_runs_kept(path: str | Path) -> Iterator[None]:
    """Around writing a run's result or checkpoint: a failed write (disk full, permissions) becomes a clear DBAError."""
    try:
        yield
    except OSError as exc:
        raise ResultsNotWritable(
            f"could not write {path}: {exc.strerror or exc}. Runs finished before this one are kept; "
            "free some space (or fix the folder's permissions) and rerun the same command to continue."
        ) from None
