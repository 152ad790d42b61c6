"""Which code made a result: a hash of the sources that affect training, plus the git commit.

A finished run is only as trustworthy as the code that trained it. Every result
records `code = {hash, commit, dirty}`; the planner treats a run made by code
with another hash as stale (see `results.format.code_label`). The hash covers exactly
the files whose change can change a trained number, TRAINING_SOURCES: every
module of the DBA engine (dba/) and of training/ (the loop, its optimizers,
DBA's peers, evaluation, checkpoints), except the few there that cannot change
a number (NOT_NUMERIC), so a new method's module is hashed the moment it
exists; and, named one by one, the decoding and standardisation of the data,
subsets, the models and seeding. Anything else (tables, the CLI, the runners,
where data files are found, benchmarks) can be moved or edited and results
stay current. Editing a listed file, even its comments, makes them stale (we
cannot tell a harmless edit from a harmful one). tests/test_architecture.py
checks that every module `training.train` imports is either listed or known
not to change a number. Torch-free.
"""

from __future__ import annotations

import hashlib
import subprocess
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent  # dba_cli/
HASHED_FOLDERS = ("dba", "training")  # every module in them, except:
NOT_NUMERIC = (
    "dba/__init__.py", "dba/_jit.py",  # re-exports; whether numba compiles the search (same float64 arithmetic, tested)
    "training/__init__.py", "training/code_version.py", "training/devices.py", "training/provenance.py",  # records only
)
NAMED_SOURCES = ("data/datasets.py", "data/subsets.py", "models.py", "seeding.py")
TRAINING_SOURCES = tuple(sorted(
    {path.relative_to(PACKAGE).as_posix() for folder in HASHED_FOLDERS for path in (PACKAGE / folder).glob("*.py")}
    - set(NOT_NUMERIC)
)) + NAMED_SOURCES


def training_source_files() -> list[Path]:
    """The files of TRAINING_SOURCES, in that order."""
    return [PACKAGE / name for name in TRAINING_SOURCES]


@cache
def source_hash() -> str:
    """16 hex digits of SHA-256 over the training sources' relative paths and bytes."""
    digest = hashlib.sha256()
    for path in training_source_files():
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def git_commit() -> dict[str, str | bool] | None:
    """The project's commit and whether the training sources had uncommitted changes; None outside a git checkout.

    `dirty` looks at TRAINING_SOURCES only: regenerating the committed results
    rewrites files under `results/` while it runs, and documentation or recipes
    may be committed meanwhile; neither makes the code that trains them any
    less committed.
    """
    root = PACKAGE.parent
    try:
        top = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        if Path(top).resolve() != root:  # an installed copy inside some other repository (a venv in a checkout)
            return None
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--",
             *(str(path.relative_to(root)) for path in training_source_files())],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def code_version() -> dict:
    """What a result records: {"hash": ..., "commit": ... or None, "dirty": ... or None}."""
    git = git_commit() or {}
    return {"hash": source_hash(), "commit": git.get("commit"), "dirty": git.get("dirty")}
