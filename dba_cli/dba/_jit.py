"""Numba's `njit` when numba is installed, else a no-op decorator.

The subset search is a loop of O(B) rounds, each O(B) cheap arithmetic: in
compiled code it takes microseconds, in Python (or numpy with its per-call
overhead) milliseconds, which would dominate a training step. Without numba the
same functions run as plain Python: correct, only slower.
"""

from __future__ import annotations

import warnings

try:
    from numba import njit as _numba_njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only where numba is missing
    HAVE_NUMBA = False


def njit(function):
    """Compile `function` with numba (cached on disk) when available."""
    if HAVE_NUMBA:
        return _numba_njit(cache=True, nogil=True)(function)
    return function


def warn_if_slow() -> None:
    """Say once why DBA is slow when numba is missing."""
    if not HAVE_NUMBA:
        warnings.warn(
            "numba is not installed: DBA's subset search runs as plain Python and is much slower (pip install numba)",
            RuntimeWarning,
            stacklevel=3,
        )
