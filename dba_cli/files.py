"""Writing files so that a crash or Ctrl-C never leaves a half-written one.

Every file is written to a temporary file beside its final name, fsync'd, then
renamed over it. `mkstemp` creates temporaries readable by their owner only
(mode 0600); the final file gets the mode any other program's file would get
(0666 less the umask), so results shared with a group or served by a web
server stay readable.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import ConfigError, ResultsNotWritable


def current_umask() -> int:
    """The process's umask (POSIX has no way to read it without setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, write: Callable[[BinaryIO], object], create_parents: bool = True) -> None:
    """Let `write` fill a temporary file beside `path`, fsync, then rename over it.

    `create_parents=False` for a path the user named file by file (`--output`):
    a typo in its folder is an error, never a new folder tree.
    """
    path = Path(path)
    if create_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fchmod(handle.fileno(), 0o666 & ~current_umask())
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str, create_parents: bool = True) -> None:
    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")), create_parents)


def json_text(data: dict) -> str:
    return json.dumps(data, indent=2) + "\n"


def write_json_atomic(path: str | Path, data: dict, create_parents: bool = True) -> None:
    write_text_atomic(path, json_text(data), create_parents)


def check_output_file(path: str | Path) -> Path:
    """Before training: `path` can receive a file, without creating any folder. Raises ResultsNotWritable.

    Catches what would otherwise lose a finished run at its last step: a folder
    that does not exist, a path that is a folder, a name over the OS limit, a
    read-only filesystem or folder.
    """
    path = Path(path).expanduser()
    folder = path.parent
    fix = "Fix: give --output a file in an existing, writable folder."
    try:
        limit = os.pathconf(folder if folder.is_dir() else ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    # The temporary file's name is longer than the final one by a prefix and a suffix.
    if any(len(os.fsencode(part)) > limit for part in path.parts) or len(os.fsencode(path.name)) + 16 > limit:
        raise ResultsNotWritable(f"--output {path}: a name in it is longer than this filesystem allows ({limit} bytes). {fix}")
    if len(os.fsencode(str(path.absolute()))) >= os.pathconf("/", "PC_PATH_MAX"):
        raise ResultsNotWritable(f"--output: the path is longer than this system allows. {fix}")
    if path.is_dir():
        raise ResultsNotWritable(f"--output {path} is a folder, not a file. {fix}")
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ResultsNotWritable(f"--output {path}: folder {folder} {what}; dba creates no folders for --output. {fix}")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ResultsNotWritable(f"--output {path}: cannot write in {folder} ({exc.strerror or exc}). {fix}") from None
    return path


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


def resolve_inside(root: str | Path, relative: str, what: str = "the results folder") -> Path:
    """`root / relative`, after checking that it resolves (symlinks followed) to a path inside `root`.

    Every path built from data (a recipe or method name, a name read from a
    result file) goes through here before anything is read or written there.
    """
    path = Path(root) / relative
    try:
        resolved_root = Path(root).resolve()
        resolved = path.resolve()
    except (OSError, ValueError) as exc:  # e.g. a NUL character, a link loop
        raise ConfigError(f"path {short(relative)} under {what} {root} cannot be used ({exc}).") from None
    if resolved == resolved_root or not resolved.is_relative_to(resolved_root):
        raise ConfigError(
            f"path {short(relative)} would lie outside {what} {root} "
            f"(it resolves to {short(str(resolved), 200)}); refusing to use it."
        )
    return path


def short(text: str, limit: int = 80) -> str:
    """`text` quoted and cut to about `limit` characters, for messages."""
    quoted = repr(text)
    return quoted if len(quoted) <= limit else quoted[: limit - 1] + "…"
