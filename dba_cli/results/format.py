"""The result file format (schema 2): one compact JSON per run, with a digest over its content.

The per-epoch history is stored as columns, evaluations (which a run may make
only at some epochs) as their own columns with the epochs they belong to, no
empty fields, no subset indices (the seed reproduces them; the stored
`subset_hash` is checked by the planner before a run is reused), and a
`digest` over everything else, so a hand edit is recognised as one. In memory
(`reading.read_result`), `history` is a list of per-epoch dicts.
"""

from __future__ import annotations

import hashlib
import json
import math

SCHEMA_VERSION = 2
# Per-epoch values of every epoch, and of the evaluated epochs only.
TRAIN_COLUMNS = ("train_loss", "train_seconds")
EVAL_COLUMNS = ("test_loss", "test_accuracy", "val_loss", "val_accuracy", "eval_seconds")
SIGNIFICANT = {"train_loss": 8, "test_loss": 8, "val_loss": 8, "train_seconds": 5, "eval_seconds": 5}
EDITED = "edited"  # the code label of a schema-2 file whose digest does not match: never current
SUMMARY = "summary"  # history key of a summary-only history (`summary_only`): no per-epoch seconds or kept sizes


def summary_only(document: dict) -> bool:
    """Whether a run's file keeps only what a report reads of it: a `dba tune` candidate (role tuning, evaluated at its last epoch only).

    Such a file stores its per-epoch training losses (the failure rule reads
    them), its final evaluation and its total seconds, but not the seconds of
    each epoch or DBA's kept sizes per epoch: no report reads them for a
    candidate, and a tuning grid is most of a regeneration's files (issue 31:
    results/ under 100 MB). Read back, each epoch's seconds are the total's
    even share and `kept` is None. A convergence candidate (evaluated every
    epoch: its seconds to a target are read) and every other run keep all.
    """
    history = document.get("history") or []
    evaluated = [r["epoch"] for r in history if r.get("test_accuracy") is not None or r.get("val_accuracy") is not None]
    return document.get("role") == "tuning" and bool(history) and evaluated == [history[-1]["epoch"]]


def rounded(value, digits: int | None):
    """`digits` significant digits (losses are float32 sums: 8 keep them; seconds: 5 are plenty)."""
    if digits is None or not isinstance(value, float) or not math.isfinite(value):
        return value
    return float(f"{value:.{digits}g}")


def history_columns(records: list[dict], summary: bool = False) -> dict:
    """Per-epoch records (epochs 1..N in order) -> columns; evaluated epochs and DBA's kept sizes grouped apart.

    `summary`: a summary-only history (see `summary_only`): losses and evaluations, no seconds or kept sizes per epoch.
    """
    names = ("train_loss",) if summary else TRAIN_COLUMNS
    columns: dict = {name: [rounded(r[name], SIGNIFICANT.get(name)) for r in records] for name in names}
    if summary:
        columns[SUMMARY] = True
    evaluated = [r for r in records if r.get("test_accuracy") is not None or r.get("val_accuracy") is not None]
    if evaluated:
        group: dict = {"epoch": [r["epoch"] for r in evaluated]}
        for name in EVAL_COLUMNS:
            values = [rounded(r.get(name), SIGNIFICANT.get(name)) for r in evaluated]
            if any(value is not None for value in values):
                group[name] = values
        columns["evaluated"] = group
    layers = [] if summary else list(dict.fromkeys(layer for r in records for layer in (r.get("kept") or {})))
    if layers:
        columns["kept"] = {
            layer: {
                stat: [rounded((r.get("kept") or {}).get(layer, {}).get(stat), 6) for r in records]
                for stat in ("mean", "min", "max")
            }
            for layer in layers
        }
    return columns


def history_records(columns: dict, train_seconds: float = 0.0) -> list[dict]:
    """Columns -> per-epoch records, the in-memory shape every reader uses. ValueError if malformed.

    `train_seconds`: the run's total, spread evenly over the epochs of a summary-only history (`summary_only`).
    """
    try:
        count = len(columns["train_loss"])
        summary = columns.get(SUMMARY) is True
        names = ("train_loss",) if summary else TRAIN_COLUMNS
        if count == 0 or any(len(columns[name]) != count for name in names):
            raise ValueError("per-epoch columns differ in length")
        seconds = [train_seconds / count] * count if summary else columns["train_seconds"]
        records = [
            {"epoch": i + 1, "train_loss": columns["train_loss"][i], "test_loss": None, "test_accuracy": None,
             "train_seconds": seconds[i], "eval_seconds": 0.0, "kept": None,
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


def encode_result(document: dict, keep_indices: bool = False) -> str:
    """An in-memory result document (history as records) -> the schema-2 file text.

    `keep_indices` keeps the subset indices (`dba run --output`, for whoever wants them without dba).
    """
    dropped = ("digest",) if keep_indices else ("subset_indices", "digest")
    compact = {
        key: value for key, value in document.items()
        if value is not None and key not in dropped and not key.startswith("_")
    }
    compact["schema_version"] = SCHEMA_VERSION
    compact["history"] = history_columns(document["history"], summary=summary_only(document))
    compact["digest"] = digest(compact)
    return json.dumps(compact, separators=(",", ":")) + "\n"


def code_label(document: dict) -> str:
    """The code version a result was made with: its source hash, or EDITED for a file changed by hand."""
    if document.get("_edited"):
        return EDITED
    code = document.get("code")
    if isinstance(code, dict) and isinstance(code.get("hash"), str):
        return code["hash"]
    return EDITED


