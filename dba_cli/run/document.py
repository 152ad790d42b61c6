"""Training one planned run (or a pack of them) and building each result document (what run/execute.py writes to its file)."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import torch

from ..data.datasets import Dataset
from ..errors import ConfigError
from ..recipes.planned import PlannedRun
from ..recipes.protocol import declaration
from ..results.format import SCHEMA_VERSION
from ..settings.environment import CHECKPOINT_SECONDS as CHECKPOINT_SECONDS_ENV
from ..training.code_version import code_version
from ..training.provenance import device_description
from ..training.train import RunResult, train


def checkpoint_interval() -> float:
    """Seconds between checkpoints: `DBA_CHECKPOINT_SECONDS`, default 1 (0: after every epoch)."""
    text = os.environ.get(CHECKPOINT_SECONDS_ENV, "1")
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ConfigError(f"{CHECKPOINT_SECONDS_ENV}={text!r}: must be a number of seconds >= 0 (0: every epoch).")
    return value


def run_document(
    planned: PlannedRun, dataset: Dataset, device: torch.device, reporter, checkpoint: Path | None = None
) -> dict:
    """Train one planned run (resuming from `checkpoint` if there is one) and build its result document."""
    result = train(
        planned.config, dataset, device,
        on_epoch=lambda record: reporter.epoch_done(planned, record),
        evaluate_at=planned.evaluated_epochs,
        checkpoint=checkpoint,
        checkpoint_interval=checkpoint_interval(),
    )
    return document_of(planned, result, device)


def pack_documents(runs: list[PlannedRun], dataset: Dataset, device: torch.device, reporter) -> list[dict]:
    """Train planned runs of one shape as one pack (training/packed.py) and build each one's result document."""
    from ..training.packed import train_pack

    results = train_pack(
        [planned.config for planned in runs], dataset, device,
        on_epoch=lambda p, record: reporter.epoch_done(runs[p], record),
        evaluate_at=[planned.evaluated_epochs for planned in runs],
    )
    return [document_of(planned, result, device) for planned, result in zip(runs, results)]


def document_of(planned: PlannedRun, result: RunResult, device: torch.device) -> dict:
    """A finished run's result document: what it is in its study, what it trained, and with which code."""
    return {
        "schema_version": SCHEMA_VERSION,
        "recipe": planned.recipe,
        "method_name": planned.method_name,
        "role": planned.role,
        "seed": planned.config.seed,
        "status": "finished",
        **result.to_dict(),
        "device_name": device_description(device),
        "code": code_version(),
        "protocol": declaration().digest,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
