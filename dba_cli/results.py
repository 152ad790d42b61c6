"""Result files: reading and checking them, without the training stack.

Tables, figures, tuning reports and the planner all read results through
here, so a damaged or hand-edited file is recognised the same way everywhere
and `dba table` never needs to import torch.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator
from pathlib import Path

from .recipes import PlannedRun, result_path

SCHEMA_VERSION = 1


def read_result(path: Path) -> dict | None:
    """The finished result stored at `path`; None if there is none; ValueError if it is damaged."""
    if not path.exists():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable result file ({exc})") from None
    required = ("status", "config", "history", "final_test_accuracy", "recipe", "method_name")
    if not isinstance(document, dict) or any(key not in document for key in required):
        raise ValueError(f"{path}: not a dba result file (missing keys)")
    if document["status"] != "finished":
        raise ValueError(f"{path}: status {document['status']!r}, not finished")
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
            document = read_result(path)
        except ValueError as exc:
            warnings.warn(f"skipped: {exc}", stacklevel=3)
            continue
        yield path, document


def stored_results(results_dir: Path, runs: list[PlannedRun]) -> Iterator[tuple[PlannedRun, dict]]:
    """The finished result of each planned run that has one; damaged files are skipped with a warning naming them."""
    for planned in runs:
        try:
            document = read_result(result_path(results_dir, planned.key))
        except ValueError as exc:
            warnings.warn(f"skipped: {exc}", stacklevel=3)
            continue
        if document is not None:
            yield planned, document
