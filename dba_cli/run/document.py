"""Training one planned run and building its result document (what run/execute.py writes to its file)."""

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
from ..training.train import train


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


