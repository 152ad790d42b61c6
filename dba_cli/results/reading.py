"""Reading result files back and checking them, without the training stack.

Tables, figures, studies and the planner all read results through here, so a
damaged or hand-edited file is recognised the same way everywhere and `dba
table` never needs to import torch. The format is format.py.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..files import load_json, resolve_inside
from ..settings.validation import excerpt
from .format import SCHEMA_VERSION, digest, history_records
from .schema import check_document

# A result file is about 10 KB (a 300-epoch run with evaluations, 30 KB); `dba run --output` adds the subset's
# indices (full MNIST: about 0.5 MB). Anything larger is not a result file.
MAX_RESULT_BYTES = 4 * 2**20
REQUIRED = ("status", "config", "history", "final_test_accuracy", "recipe", "method_name")


def read_result(path: Path, inside: Path | None = None) -> dict | None:
    """The finished result stored at `path`, in memory shape; None if there is none; ValueError if it is damaged.

    The file is read with bounds (files.load_json): a FIFO, a device, a link out
    of `inside` (the results folder), a file over MAX_RESULT_BYTES or nested
    too deep is "unreadable", a ValueError like any damage: skipped by tables,
    redone by the planner. Its content is then checked against the schema
    (schema.py: every field's type and range, the config as a run setting,
    the folders it lies in), so no report ever meets a value dba could not
    have written. A file whose digest does not match (edited by hand, but
    valid) is returned with `_edited` set: `format.code_label` calls it
    stale, never current, and tables name it.
    """
    try:
        document = load_json(path, MAX_RESULT_BYTES, inside)
    except FileNotFoundError:
        return None
    if not isinstance(document, dict) or any(key not in document for key in REQUIRED):
        raise ValueError(f"{path}: not a dba result file (missing keys)")
    if document["status"] != "finished":
        raise ValueError(f"{path}: status {excerpt(document['status'])}, not finished")
    if document.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema {excerpt(document.get('schema_version'))}, not {SCHEMA_VERSION}; made by an old dba?")
    try:
        check_document(document, path, inside)
        edited = document.get("digest") != digest(document)
        document["history"] = history_records(document["history"], document.get("train_seconds") or 0.0)
    except ValueError as exc:
        raise ValueError(f"{path}: not a valid result file ({exc}); edited by hand?") from None
    document["_edited"] = edited
    return document


def is_number(value) -> bool:
    """A finite int or float, never a bool: what a report may do arithmetic with."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def finished_results(results_dir: Path, pattern: str = "*/*/seed-*.json") -> Iterator[tuple[Path, dict]]:
    """Every finished result under `results_dir` (default: the paper-table runs), sorted by path.

    Damaged files are skipped with a warning naming them.
    """
    for path in sorted(results_dir.glob(pattern)):
        try:
            document = read_result(path, inside=results_dir)
        except ValueError as exc:
            warnings.warn(f"skipped: {exc}", stacklevel=3)
            continue
        yield path, document


def stored_results(results_dir: Path, keys: Iterable[str]) -> dict[str, dict]:
    """The finished result stored under each key (a planned run's `key`) that has one.

    Damaged files are skipped with a warning naming them.
    """
    found = {}
    for key in keys:
        try:
            document = read_result(resolve_inside(results_dir, key), inside=results_dir)
        except ValueError as exc:
            warnings.warn(f"skipped: {exc}", stacklevel=3)
            continue
        if document is not None:
            found[key] = document
    return found
