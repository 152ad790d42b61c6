"""Running a recipe: every method x seed, one atomically written JSON per run.

A finished run is never redone: a rerun of the same command skips it, so an
interrupted `dba reproduce` continues where it stopped and loses at most the
run in progress. A result file made with a *different* config is never
silently overwritten; a damaged one is reported by name and redone.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from .data.mnist import MNIST
from .errors import ConfigError
from .io import write_json_atomic
from .provenance import device_description, git_commit
from .recipes import PlannedRun
from .train import EpochRecord, train

SCHEMA_VERSION = 1


class Reporter:
    """Progress callbacks; the CLI shows them with Rich, Python users may ignore them."""

    def plan(self, todo: list[PlannedRun], skipped: list[PlannedRun], damaged: list[Path]) -> None: ...

    def run_started(self, planned: PlannedRun) -> None: ...

    def epoch_done(self, planned: PlannedRun, record: EpochRecord) -> None: ...

    def run_finished(self, planned: PlannedRun, document: dict) -> None: ...


@dataclass
class Plan:
    todo: list[PlannedRun]
    skipped: list[PlannedRun]
    damaged: list[Path]  # unreadable result files that will be redone


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
    return document


def finished_results(results_dir: Path) -> Iterator[tuple[Path, dict]]:
    """Every finished result under `results_dir`, sorted by path; damaged files are skipped with a warning naming them."""
    for path in sorted(results_dir.glob("*/*/seed-*.json")):
        try:
            document = read_result(path)
        except ValueError as exc:
            warnings.warn(f"skipped: {exc}", stacklevel=3)
            continue
        yield path, document


def make_plan(runs: list[PlannedRun], results_dir: Path, overwrite: bool = False) -> Plan:
    """Decide, before anything trains, which runs are done, to do, or in conflict."""
    plan = Plan([], [], [])
    conflicts = []
    for planned in runs:
        path = results_dir / planned.key
        try:
            stored = read_result(path)
        except ValueError:
            plan.damaged.append(path)
            plan.todo.append(planned)
            continue
        if stored is None:
            plan.todo.append(planned)
        elif stored["config"] == planned.config.to_dict():
            plan.skipped.append(planned)
        elif overwrite:
            plan.todo.append(planned)
        else:
            changed = sorted(
                key for key in set(stored["config"]) | set(planned.config.to_dict())
                if stored["config"].get(key) != planned.config.to_dict().get(key)
            )
            conflicts.append(f"{path} (differs in: {', '.join(changed)})")
    if conflicts:
        raise ConfigError(
            "these result files were made with a different config and would be overwritten: "
            + "; ".join(conflicts[:5]) + (f"; and {len(conflicts) - 5} more" if len(conflicts) > 5 else "")
            + ". Fix: use another --results folder, or --overwrite to replace them."
        )
    return plan


def run_document(planned: PlannedRun, mnist: MNIST, device: torch.device, reporter: Reporter) -> dict:
    """Train one planned run and build its result document."""
    result = train(
        planned.config, mnist, device,
        on_epoch=lambda record: reporter.epoch_done(planned, record),
        eval_every_epoch=planned.eval_every_epoch,
    )
    return {
        "schema_version": SCHEMA_VERSION,
        "recipe": planned.recipe,
        "method_name": planned.method_name,
        "role": planned.role,
        "seed": planned.config.seed,
        "status": "finished",
        **result.to_dict(),
        "device_name": device_description(device),
        "git": git_commit(),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def reproduce(
    runs: list[PlannedRun],
    mnist: MNIST,
    device: torch.device,
    results_dir: Path,
    overwrite: bool = False,
    reporter: Reporter | None = None,
) -> Plan:
    """Run every planned run not already finished; each result is written as soon as it ends."""
    reporter = reporter or Reporter()
    plan = make_plan(runs, results_dir, overwrite)
    reporter.plan(plan.todo, plan.skipped, plan.damaged)
    for planned in plan.todo:
        reporter.run_started(planned)
        document = run_document(planned, mnist, device, reporter)
        write_json_atomic(results_dir / planned.key, document)
        reporter.run_finished(planned, document)
    return plan
