"""Result files: writing them compactly, reading and checking them, without the training stack.

Tables, figures, tuning reports and the planner all read results through
here, so a damaged or hand-edited file is recognised the same way everywhere
and `dba table` never needs to import torch.

Schema 2 (written since the code version became part of a run's identity) is
compact JSON: the per-epoch history stored as columns, evaluations (which a run
may make only at some epochs) as their own columns with the epochs they belong
to, no empty fields, no subset indices (the seed reproduces them; the stored
`subset_hash` is checked by the planner before a run is reused), and a
`digest` over everything else, so a hand edit is recognised as one. Schema 1
files (pretty-printed, history as a list of records) are still read; both are
returned in the same in-memory shape: `history` a list of per-epoch dicts.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Iterator
from pathlib import Path

from .recipes import PlannedRun, result_path

SCHEMA_VERSION = 2
# Per-epoch values of every epoch, and of the evaluated epochs only.
TRAIN_COLUMNS = ("train_loss", "train_seconds")
EVAL_COLUMNS = ("test_loss", "test_accuracy", "val_loss", "val_accuracy", "eval_seconds")
SIGNIFICANT = {"train_loss": 8, "test_loss": 8, "val_loss": 8, "train_seconds": 5, "eval_seconds": 5}
EDITED = "edited"  # the code label of a schema-2 file whose digest does not match: never current
NO_CODE_VERSION = "schema-1"  # the code label of files written before code versions were recorded


def rounded(value, digits: int | None):
    """`digits` significant digits (losses are float32 sums: 8 keep them; seconds: 5 are plenty)."""
    if digits is None or not isinstance(value, float) or not math.isfinite(value):
        return value
    return float(f"{value:.{digits}g}")


def history_columns(records: list[dict]) -> dict:
    """Per-epoch records (epochs 1..N in order) -> columns; evaluated epochs and DBA's kept sizes grouped apart."""
    columns: dict = {name: [rounded(r[name], SIGNIFICANT.get(name)) for r in records] for name in TRAIN_COLUMNS}
    evaluated = [r for r in records if r.get("test_accuracy") is not None or r.get("val_accuracy") is not None]
    if evaluated:
        group: dict = {"epoch": [r["epoch"] for r in evaluated]}
        for name in EVAL_COLUMNS:
            values = [rounded(r.get(name), SIGNIFICANT.get(name)) for r in evaluated]
            if any(value is not None for value in values):
                group[name] = values
        columns["evaluated"] = group
    layers = list(dict.fromkeys(layer for r in records for layer in (r.get("kept") or {})))
    if layers:
        columns["kept"] = {
            layer: {
                stat: [rounded((r.get("kept") or {}).get(layer, {}).get(stat), 6) for r in records]
                for stat in ("mean", "min", "max")
            }
            for layer in layers
        }
    return columns


def history_records(columns: dict) -> list[dict]:
    """Columns -> per-epoch records, the in-memory shape every reader uses. ValueError if malformed."""
    try:
        count = len(columns["train_loss"])
        if count == 0 or any(len(columns[name]) != count for name in TRAIN_COLUMNS):
            raise ValueError("per-epoch columns differ in length")
        records = [
            {"epoch": i + 1, "train_loss": columns["train_loss"][i], "test_loss": None, "test_accuracy": None,
             "train_seconds": columns["train_seconds"][i], "eval_seconds": 0.0, "kept": None,
             "val_loss": None, "val_accuracy": None}
            for i in range(count)
        ]
        group = columns.get("evaluated", {})
        epochs = group.get("epoch", [])
        for name, values in group.items():
            if len(values) != len(epochs):
                raise ValueError("evaluation columns differ in length")
        for index, epoch in enumerate(epochs):
            if not isinstance(epoch, int) or not 1 <= epoch <= count:
                raise ValueError("an evaluated epoch is out of range")
            for name in EVAL_COLUMNS:
                if name in group:
                    records[epoch - 1][name] = group[name][index]
        for layer, stats in columns.get("kept", {}).items():
            for i, record in enumerate(records):
                values = {stat: stats[stat][i] for stat in ("mean", "min", "max")}
                if values["mean"] is not None:
                    record["kept"] = {**(record["kept"] or {}), layer: values}
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ValueError(f"history columns are malformed ({type(exc).__name__})") from None
    return records


def digest(document: dict) -> str:
    """SHA-256 (16 hex digits) of the document's canonical JSON, its own digest left out."""
    body = {key: value for key, value in document.items() if key != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def encode_result(document: dict) -> str:
    """An in-memory result document (history as records) -> the schema-2 file text."""
    compact = {
        key: value for key, value in document.items()
        if value is not None and key not in ("subset_indices", "digest") and not key.startswith("_")
    }
    compact["schema_version"] = SCHEMA_VERSION
    compact["history"] = history_columns(document["history"])
    compact["digest"] = digest(compact)
    return json.dumps(compact, separators=(",", ":")) + "\n"


def read_result(path: Path) -> dict | None:
    """The finished result stored at `path`, in memory shape; None if there is none; ValueError if it is damaged.

    A schema-2 file whose digest does not match (edited by hand) is returned
    with `_edited` set: `code_label` calls it stale, never current.
    """
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
    if document.get("schema_version", 1) >= 2:
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


def code_label(document: dict) -> str:
    """The code version a result was made with: its source hash, EDITED, or NO_CODE_VERSION (schema 1)."""
    if document.get("_edited"):
        return EDITED
    code = document.get("code")
    if isinstance(code, dict) and isinstance(code.get("hash"), str):
        return code["hash"]
    return NO_CODE_VERSION


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
