"""Per-epoch checkpoints, so that `kill -9` or a power cut loses at most about one epoch.

A checkpoint holds everything the rest of a run depends on: the model's
weights, the optimizer's state (and DBA's, and the learning-rate schedule's
position: the Stepper's state), the mini-batch generator's state, the global
RNG state and the history so far. Resuming from it trains the
same numbers as an uninterrupted run (bit-identical on CPU; tested). It is
written atomically next to the run's result file and deleted once the result
is written. A checkpoint that cannot be read, or was made with another config,
or by other training code (see code_version), is ignored with a warning (the
run starts over): it can never change a result.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from ..errors import UnreadableFile
from ..files import finished_runs_kept, read_bounded, write_atomic
from .code_version import source_hash

FORMAT = 1
MAX_CHECKPOINT_BYTES = 256 * 2**20  # the CNN's and the MLP's checkpoints are a few MB (weights, optimizer state, history)


def checkpoint_path(result_path: Path) -> Path:
    """`.../seed-0.json` -> `.../seed-0.ckpt`."""
    return result_path.with_suffix(".ckpt")


def save_checkpoint(path: Path, config: dict, epoch: int, model, stepper, generator: torch.Generator, history) -> None:
    state = {
        "format": FORMAT,
        "code": source_hash(),
        "config": config,
        "epoch": epoch,
        "model": model.state_dict(),
        "stepper": stepper.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": [asdict(record) for record in history],
    }
    with finished_runs_kept(path):
        write_atomic(path, lambda handle: torch.save(state, handle))


def load_checkpoint(path: Path, config: dict) -> dict | None:
    """The checkpoint's state if it exists, is readable and belongs to `config`; otherwise None."""
    try:
        data = read_bounded(path, MAX_CHECKPOINT_BYTES)  # a FIFO or a device in its place must not hang the run
    except FileNotFoundError:
        return None
    except UnreadableFile as exc:
        warnings.warn(f"ignored checkpoint {path}: {exc.reason}; the run starts over", stacklevel=2)
        return None
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # any damage: truncated, foreign or unreadable file
        warnings.warn(f"ignored checkpoint {path}: cannot be read ({type(exc).__name__}); the run starts over", stacklevel=2)
        return None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        warnings.warn(f"ignored checkpoint {path}: not a dba checkpoint; the run starts over", stacklevel=2)
        return None
    if state.get("config") != config:
        warnings.warn(f"ignored checkpoint {path}: made with another config; the run starts over", stacklevel=2)
        return None
    if state.get("code") != source_hash():  # a run must not mix two versions of the training code
        warnings.warn(f"ignored checkpoint {path}: made by other code; the run starts over", stacklevel=2)
        return None
    return state
