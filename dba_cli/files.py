"""Writing files so that a crash or Ctrl-C never leaves a half-written one, and reading them back with bounds.

Every file is written to a temporary file beside its final name, fsync'd, then
renamed over it. `mkstemp` creates temporaries readable by their owner only
(mode 0600); the final file gets the mode any other program's file would get
(0666 less the umask), so results shared with a group or served by a web
server stay readable.

Every file dba reads back (a result, a report, a checkpoint, a recipe) is an
input: `read_bounded` reads regular files only (a FIFO would hang the reader,
/dev/zero never ends), never follows a link out of the folder it belongs to,
and refuses more than a stated size before reading it; `load_json` also bounds
the nesting. Each refusal is one `UnreadableFile` error naming the file and why.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from .errors import ConfigError, ResultsNotWritable, UnreadableFile

MAX_JSON_DEPTH = 32  # a result file nests 4 levels deep
MAX_JSON_INT_DIGITS = 30  # a result file's largest integers are seeds (10 digits)
KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
         stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}


def current_umask() -> int:
    """The process's umask (POSIX has no way to read it without setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(
    path: str | Path, write: Callable[[BinaryIO], object], create_parents: bool = True, replace_special: bool = False
) -> None:
    """Let `write` fill a temporary file beside `path`, fsync, then rename over it.

    `create_parents=False` for a path the user named file by file (`--output`):
    a typo in its folder is an error, never a new folder tree. A device, FIFO
    or socket at `path` is refused (`refuse_special`), unless `replace_special`:
    a run's result file inside its results folder, where such a file is a
    damaged result that the rerun replaces (docs/reliability.md).
    """
    path = Path(path)
    if not replace_special:
        refuse_special(path)
    if create_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fchmod(handle.fileno(), 0o666 & ~current_umask())
            os.fsync(handle.fileno())
        if not replace_special:
            refuse_special(path)  # again: a device or FIFO may have been put there while the file was written
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def refuse_special(path: Path) -> None:
    """ResultsNotWritable if `path` is a device, FIFO, socket or folder: a rename would replace it (as root, /dev/null).

    A regular file, a link (replaced by the rename, never written through) or
    a new name are fine. Checked before a write and right before its rename.
    """
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise ResultsNotWritable(f"cannot write {path}: {exc.strerror or exc}.") from None
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise ResultsNotWritable(
            f"{path} is {KINDS.get(stat.S_IFMT(mode), 'not a regular file')}, not a regular file; dba writes regular "
            "files only and never replaces anything else. Fix: name a new or regular file (to discard a result, "
            "write it to a scratch folder and delete that)."
        )


def write_text_atomic(path: str | Path, text: str, create_parents: bool = True, replace_special: bool = False) -> None:
    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")), create_parents, replace_special)


def json_text(data: dict) -> str:
    return json.dumps(data, indent=2) + "\n"


def write_json_atomic(path: str | Path, data: dict, create_parents: bool = True) -> None:
    write_text_atomic(path, json_text(data), create_parents)


def path_problem(path: str | Path) -> str | None:
    """Why the system could not use `path` at all (a name or the whole path too long, a NUL), or None when it can.

    Checked where a user names a path, so that "File name too long" is one line
    naming the option, never an error deep inside a run.
    """
    text = os.fsencode(str(path))
    if b"\0" in text:
        return "it holds a NUL character"
    limit = 255
    try:
        existing = next((folder for folder in (Path(path).absolute(), *Path(path).absolute().parents) if folder.is_dir()), Path("/"))
        limit = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        pass
    longest = max((len(os.fsencode(part)) for part in Path(path).parts), default=0)
    if longest > limit:
        return f"a name in it is {longest} bytes long; this filesystem allows {limit}"
    if len(os.fsencode(str(Path(path).absolute()))) >= 4096:
        return "the path is longer than this system allows (4096 bytes)"
    return None


def write_problem(folder: str | Path) -> str | None:
    """Why a file cannot be created in the existing `folder` (read-only, a read-only mount, no space), or None.

    Probed with a real temporary file, created and removed: permissions alone
    do not say it (root writes through them; a read-only mount refuses everyone).
    """
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


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
    try:
        refuse_special(path)
    except ResultsNotWritable as exc:
        raise ResultsNotWritable(f"--output {exc}") from None
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ResultsNotWritable(f"--output {path}: folder {folder} {what}; dba creates no folders for --output. {fix}")
    problem = write_problem(folder)
    if problem is not None:
        raise ResultsNotWritable(f"--output {path}: cannot write in {folder} ({problem}). {fix}")
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
    """`root / relative`, after checking that its folder resolves (links followed) to `root` or a folder inside it.

    Every path built from data (a recipe or method name, a name read from a
    result file) goes through here before anything is read or written there.
    The file itself is not followed: a link in its place is read with bounds
    (`read_bounded` refuses one that leads out) and replaced, never written
    through, by an atomic write.
    """
    path = Path(root) / relative
    try:
        resolved_root = Path(root).resolve()
        folder = path.parent.resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # e.g. a NUL character, a link loop
        raise ConfigError(f"path {short(relative)} under {what} {root} cannot be used ({exc}).") from None
    if path.name in ("", ".", "..") or not folder.is_relative_to(resolved_root):
        raise ConfigError(
            f"path {short(relative)} would lie outside {what} {root} "
            f"(it resolves to {short(str(folder / path.name), 200)}); refusing to use it."
        )
    return path


def short(text: str, limit: int = 80) -> str:
    """`text` quoted and cut to about `limit` characters, for messages."""
    quoted = repr(text)
    return quoted if len(quoted) <= limit else quoted[: limit - 1] + "…"


def read_bounded(path: str | Path, max_bytes: int, inside: str | Path | None = None) -> bytes:
    """The bytes of the regular file at `path`, at most `max_bytes` of them; UnreadableFile otherwise.

    `inside`: the folder the file belongs to; a path that resolves (links
    followed) outside it is refused. FileNotFoundError passes through: a
    missing file is the caller's business (a run not trained yet).
    """
    path = Path(path)
    if inside is not None:
        try:
            if not path.resolve().is_relative_to(Path(inside).resolve()):
                raise UnreadableFile(path, f"a link to {short(str(path.resolve()), 120)}, outside {inside}")
        except (OSError, RuntimeError) as exc:  # a link loop
            raise UnreadableFile(path, f"cannot be resolved ({exc})") from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))  # a FIFO opens without waiting
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise UnreadableFile(path, exc.strerror or str(exc)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(path, f"not a regular file ({KINDS.get(stat.S_IFMT(info.st_mode), 'not a file')})")
        if info.st_size > max_bytes:
            raise UnreadableFile(path, f"{info.st_size:,} bytes, more than the {max_bytes:,} such a file can hold", too_large=True)
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            raise UnreadableFile(path, f"grew past the {max_bytes:,} bytes such a file can hold while being read", too_large=True)
        return b"".join(chunks)
    except OSError as exc:
        raise UnreadableFile(path, exc.strerror or str(exc)) from None
    finally:
        os.close(fd)


def load_json(path: str | Path, max_bytes: int, inside: str | Path | None = None, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """A JSON document read with `read_bounded`, nested at most `max_depth` levels; UnreadableFile otherwise."""
    data = read_bounded(path, max_bytes, inside)
    try:
        document = json.loads(data.decode("utf-8"), parse_int=bounded_int)
    except RecursionError:
        raise UnreadableFile(path, f"nested more than {max_depth} levels deep") from None
    except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError, bounded_int's
        raise UnreadableFile(path, f"not valid JSON ({exc})") from None
    if depth(document, max_depth) > max_depth:
        raise UnreadableFile(path, f"nested more than {max_depth} levels deep")
    return document


def bounded_int(text: str) -> int:
    """JSON's integers, at most MAX_JSON_INT_DIGITS digits: Python's own limit (4,300) would be an anonymous ValueError."""
    if len(text) > MAX_JSON_INT_DIGITS + 1:
        raise ValueError(f"a whole number of {len(text.lstrip('-')):,} digits is too large for any field")
    return int(text)


def depth(value: Any, limit: int) -> int:
    """How deeply `value` nests lists and mappings (counting stops just past `limit`)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        current, level = stack.pop()
        if isinstance(current, (list, dict)):
            deepest = max(deepest, level)
            if level > limit:
                return level
            items = current.values() if isinstance(current, dict) else current
            stack.extend((item, level + 1) for item in items if isinstance(item, (list, dict)))  # scalars nest nothing
    return deepest
