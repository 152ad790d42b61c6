"""Numba's `njit` when numba is installed, else a no-op decorator.

The subset search is a loop of O(B) rounds, each O(B) cheap arithmetic: in
compiled code it takes microseconds, in Python (or numpy with its per-call
overhead) milliseconds, which would dominate a training step. Without numba the
same functions run as plain Python: correct, only slower.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import warnings
from pathlib import Path

try:
    import numba
    from numba import njit as _numba_njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only where numba is missing
    HAVE_NUMBA = False


def cache_root() -> Path | None:
    """dba's cache folder: `DBA_CACHE_DIR`, else `$XDG_CACHE_HOME/dba`, else `~/.cache/dba`; None at the filesystem root.

    The same rule as data/loading.py's `default_cache_dir`, stated again here
    because the engine imports nothing from the rest of the package.
    """
    if os.environ.get("DBA_CACHE_DIR"):
        return Path(os.environ["DBA_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute() and Path(xdg).resolve() != Path("/"):
        return Path(xdg) / "dba"
    try:
        home = Path.home()
    except (RuntimeError, KeyError):
        return None
    return None if not home.is_absolute() or home.resolve() == Path("/") else home / ".cache" / "dba"


def _use_source_keyed_cache() -> bool:
    """Point numba's on-disk cache at a folder named after a hash of this package's sources.

    Numba decides whether a cached function is stale from the timestamp of the
    file it is defined in only, not of the files it calls into: after an edit
    of metrics.py, a cached search._greedy kept running the old metric code
    (seen here, as a ZeroDivisionError that the edit had fixed). A folder per
    source hash can never serve stale code. A NUMBA_CACHE_DIR set by the user
    is respected. Returns whether caching is possible.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return _usable(Path(os.environ["NUMBA_CACHE_DIR"]))
    sources = sorted(Path(__file__).parent.glob("*.py"))
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in sources)).hexdigest()[:16]
    root = cache_root()
    if root is None:  # no home folder: compile in every process rather than cache at the filesystem root
        return False
    folder = root / "numba" / digest
    if not _usable(folder):
        return False  # an unwritable cache: compile in every process instead
    numba.config.CACHE_DIR = str(folder)
    return True


def _usable(folder: Path) -> bool:
    """Whether `folder` exists or can be made, and a file can be created in it.

    Numba, given a cache folder it cannot write to, does not give up: it writes
    its cache beside the sources instead (seen here: a read-only cache folder
    left `dba_cli/dba/__pycache__/*.nbc` in the package). So it gets a folder
    only when one can be written.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


CACHE = HAVE_NUMBA and _use_source_keyed_cache()


if HAVE_NUMBA:
    from numba.core.caching import FunctionCache

    class TolerantCache(FunctionCache):
        """Numba's on-disk cache of one function, where a damaged entry is a miss, never a crash.

        Numba raises on a truncated or foreign index or data file (an
        UnpicklingError, seen here: the run died with a traceback). Here
        reading or writing the entry fails quietly: the function is compiled,
        and its index is removed so that this compilation is cached afresh.
        """

        @contextlib.contextmanager
        def _guard_against_spurious_io_errors(self):
            try:
                yield
            except Exception:  # noqa: BLE001 - any damage: compile instead (load_overload then returns None)
                with contextlib.suppress(OSError, AttributeError, TypeError):
                    os.unlink(self._cache_file._index_path)


def njit(function):
    """Compile `function` with numba (cached on disk, keyed by source hash) when available."""
    if HAVE_NUMBA:
        dispatcher = _numba_njit(cache=CACHE, nogil=True)(function)
        if CACHE:
            dispatcher._cache = TolerantCache(function)
        return dispatcher
    return function


def warn_if_slow() -> None:
    """Say once why DBA is slow when numba is missing."""
    if not HAVE_NUMBA:
        warnings.warn(
            "numba is not installed: DBA's subset search runs as plain Python and is much slower (pip install numba)",
            RuntimeWarning,
            stacklevel=3,
        )
