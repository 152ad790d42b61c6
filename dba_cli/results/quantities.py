"""What a finished run's history says beyond its final accuracy: steps per epoch and time to a target.

Studies rank candidates by it (`dba converge`) and reports tabulate it, both
through these functions, so a time to target means the same thing everywhere.
Only evaluated epochs have an accuracy (the run's evaluation schedule), so a
time to target is the first *evaluated* epoch at or above it: with a sparse
schedule, an upper bound by at most the gap between evaluations.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Reach:
    """When a run first reached a target: at the end of `epoch`, after `steps` steps and `seconds` of training."""

    epoch: int
    steps: int
    seconds: float


def steps_per_epoch(document: dict) -> int:
    """Optimizer steps in one epoch of the run: its training set in batches, the last one possibly short."""
    return math.ceil(document["subset_size"] / document["config"]["batch_size"])


def reach(document: dict, target: float, key: str = "val_accuracy") -> Reach | None:
    """The first evaluated epoch whose accuracy (`key`) is at least `target`, with steps and training seconds to it."""
    seconds = 0.0
    for record in document["history"]:
        seconds += record["train_seconds"]
        accuracy = record.get(key)
        if accuracy is not None and accuracy >= target:
            return Reach(record["epoch"], record["epoch"] * steps_per_epoch(document), seconds)
    return None


def steps_to(document: dict, target: float, key: str = "val_accuracy") -> float:
    """Steps to `target`; infinity for a run that never reaches it (slower than any run that does)."""
    found = reach(document, target, key)
    return math.inf if found is None else found.steps


def median_steps(documents: list[dict], target: float) -> float:
    """Median steps to `target` over runs, a run that never reaches it counted as infinitely slow."""
    if not documents:
        return math.inf
    return statistics.median(steps_to(d, target) for d in documents)


def final_validation(documents: list[dict]) -> float | None:
    """Mean final validation accuracy over runs that have one; None when none has."""
    values = [d["final_val_accuracy"] for d in documents if d.get("final_val_accuracy") is not None]
    return statistics.fmean(values) if values else None


def failed(document: dict, chance: float, margin: float, chance_loss: float) -> bool:
    """Whether a run failed by the protocol's rule: it diverged, ended at chance, or never learnt.

    At chance: its final accuracy (validation where it has a split, else test)
    is below chance + `margin` points. Never learnt: its training loss never
    fell below `chance_loss` (ln of the number of classes, the loss of a
    uniform prediction). Such a run is counted (a failure rate beside each
    method) and keeps its accuracy in every mean: it is never dropped.
    """
    if document.get("diverged_at_epoch") is not None:
        return True
    accuracy = document.get("final_val_accuracy")
    if accuracy is None:
        accuracy = document.get("final_test_accuracy")
    if accuracy is None or accuracy < chance + margin:
        return True
    losses = [record["train_loss"] for record in document["history"] if math.isfinite(record["train_loss"])]
    return not losses or min(losses) >= chance_loss
