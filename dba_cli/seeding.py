"""Independent, reproducible random streams derived from one user seed.

The subset, the weight initialisation and the batch order each get their own
stream, so that (for example) changing the method never changes the subset.
Derivation goes through SHA-256, never Python's salted `hash()`.
"""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for `stream`, stable across runs, platforms and devices."""
    digest = hashlib.sha256(f"{seed}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
