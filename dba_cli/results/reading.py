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
from .format import SCHEMA_VERSION, digest, history_records

# A result file is about 10 KB (a 300-epoch run with evaluations, 30 KB); `dba run --output` adds the subset's
# indices (full MNIST: about 0.5 MB). Anything larger is not a result file.
MAX_RESULT_BYTES = 4 * 2**20

def read_result(path: Path, inside: Path | None = None) -> dict | None:
    """The finished result stored at `path`, in memory shape; None if there is none; ValueError if it is damaged.

    The file is read with bounds (files.load_json): a FIFO, a device, a link out
    of `inside` (the results folder), a file over MAX_RESULT_BYTES or nested
    too deep is "unreadable", a ValueError like any damage: skipped by tables,
    redone by the planner. A file whose digest does not match (edited by hand)
    is returned with `_edited` set: `format.code_label` calls it stale, never current.
    """
    try:
        document = load_json(path, MAX_RESULT_BYTES, inside)
    except FileNotFoundError:
        return None
    required = ("status", "config", "history", "final_test_accuracy", "recipe", "method_name")
    if not isinstance(document, dict) or any(key not in document for key in required):
        raise ValueError(f"{path}: not a dba result file (missing keys)")
    if document["status"] != "finished":
        raise ValueError(f"{path}: status {document['status']!r}, not finished")
    if document.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema {document.get('schema_version')!r}, not {SCHEMA_VERSION}; made by an old dba?")
    document["_edited"] = document.get("digest") != digest(document)
    if not isinstance(document["history"], dict):
        raise ValueError(f"{path}: not a valid result file (history is not a set of columns); edited by hand?")
    try:
        document["history"] = history_records(document["history"])
    except ValueError as exc:
        raise ValueError(f"{path}: not a valid result file ({exc}); edited by hand?") from None
    problem = shape_problem(document)
    if problem:
        raise ValueError(f"{path}: not a valid result file ({problem}); edited by hand?")
    return document


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def shape_problem(document: dict) -> str | None:
    """What is wrong with a result document's values, or None: tables must never crash on a hand-edited file."""
    if not isinstance(document["config"], dict):
        return "config is not a mapping"
    for key in ("recipe", "method_name"):
        if not isinstance(document[key], str) or not document[key]:
            return f"{key} is not a name"
    if not is_number(document["final_test_accuracy"]) or not 0 <= document["final_test_accuracy"] <= 100:
        return "final_test_accuracy is not a percentage"
    if not isinstance(document.get("seed"), int) or isinstance(document.get("seed"), bool):
        return "seed is not an integer"
    history = document["history"]
    if not isinstance(history, list) or not history:
        return "history is not a non-empty list"
    for record in history:
        if not isinstance(record, dict):
            return "a history entry is not a mapping"
        if not is_number(record.get("train_seconds")) or not isinstance(record.get("epoch"), int):
            return "a history entry lacks epoch or train_seconds"
        accuracy = record.get("test_accuracy")
        if accuracy is not None and not is_number(accuracy):
            return "a history entry has a non-numeric test_accuracy"
    return None


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
