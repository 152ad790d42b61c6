"""Which code made a result: a hash of the sources that affect training, plus the git commit.

A finished run is only as trustworthy as the code that trained it. Every result
records `code = {hash, commit, dirty}`; the planner treats a run made by code
with another hash as stale (see `results.code_label`). The hash covers exactly
the files whose change can change a trained number: the DBA engine, the
training loop, data loading and subsets, the model, seeding and checkpoints.
Editing a table or the CLI does not make results stale; editing `train.py`,
even its comments, does (we cannot tell a harmless edit from a harmful one).
Torch-free, so `dba table` can name code versions without the training stack.
"""

from __future__ import annotations

import hashlib
import subprocess
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
TRAINING_SOURCES = ("dba", "data", "train.py", "models.py", "seeding.py", "checkpoint.py")


def training_source_files() -> list[Path]:
    """The .py files behind TRAINING_SOURCES, in a fixed order."""
    files: list[Path] = []
    for name in TRAINING_SOURCES:
        path = PACKAGE / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


@cache
def source_hash() -> str:
    """16 hex digits of SHA-256 over the training sources' relative paths and bytes."""
    digest = hashlib.sha256()
    for path in training_source_files():
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def git_commit() -> dict[str, str | bool] | None:
    """The project's commit and whether the package's sources had uncommitted changes; None outside a git checkout.

    `dirty` looks at `dba_cli/` and pyproject.toml only: regenerating the
    committed results rewrites files under `results/` while it runs, which
    does not make the code that trains them any less committed.
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
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "dba_cli", "pyproject.toml"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def code_version() -> dict:
    """What a result records: {"hash": ..., "commit": ... or None, "dirty": ... or None}."""
    git = git_commit() or {}
    return {"hash": source_hash(), "commit": git.get("commit"), "dirty": git.get("dirty")}
