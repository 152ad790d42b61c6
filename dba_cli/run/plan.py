"""Planning a grid before anything trains: which runs are done, which to train, which are stale or in conflict.

A finished run is never redone: a rerun of the same command skips it, so an
interrupted grid continues where it stopped and loses at most the runs in
progress. A result file made with a *different* config is never silently
overwritten; a damaged one is reported by name and redone; one made by other
training code (or whose subset no longer reproduces from its seed) is stale.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ConfigError, ResultsNotWritable
from ..files import resolve_inside, write_problem
from ..recipes.planned import PlannedRun
from ..recipes.protocol import declaration
from ..results.format import code_label
from ..results.reading import read_result
from ..training.code_version import source_hash
from ..training.train import subset_hashes


@dataclass
class Plan:
    todo: list[PlannedRun]
    skipped: list[PlannedRun]
    damaged: dict[Path, str]  # damaged or unreadable result files that will be redone: path -> why
    busy: list[PlannedRun] = field(default_factory=list)  # being trained by another process right now
    done: list[PlannedRun] = field(default_factory=list)  # trained and written by this call
    stale: dict[Path, str] = field(default_factory=dict)  # finished but not current: path -> why (rerun, or kept)
    failed: list[tuple[PlannedRun, Path]] = field(default_factory=list)  # crashed runs and their saved tracebacks
    overwrite: bool = False  # train every run again, even one another process finished meanwhile


class Currency:
    """Whether a stored result is what training `planned` now would write (config and threads aside).

    It is not when other training code made it (another source hash, or a
    hand-edited file), when it was made under another protocol declaration
    (or before there was one: recipes/protocol.py), or when its subset no longer reproduces from its seed: schema-2 files keep
    only the subset's hash, checked here against a fresh draw (cached per
    subset setting, as tuning grids share their draws).
    """

    def __init__(self, data_dir: str | None = None, check_subsets: bool = True) -> None:
        self.data_dir = data_dir
        self.check_subsets = check_subsets
        self.current = source_hash()
        self.protocol = declaration().digest
        self.hashes: dict[tuple, tuple[str, str | None]] = {}

    def why_stale(self, stored: dict, planned: PlannedRun) -> str | None:
        label = code_label(stored)
        if label != self.current:
            return {"edited": "edited by hand (its digest does not match)"}.get(label, f"made by code {label}")
        if stored.get("protocol") != self.protocol:
            made = stored.get("protocol")
            return f"made under protocol declaration {made}" if made else "made before the protocol declaration"
        if not self.check_subsets:
            return None
        config = planned.config
        key = (config.dataset, config.data, config.seed, config.subset_draw, config.validation_size,
               getattr(config, "folds", 0), getattr(config, "fold", 0))
        if key not in self.hashes:
            from .runners import loaded_dataset

            self.hashes[key] = subset_hashes(loaded_dataset(config.dataset, self.data_dir), config)
        if (stored.get("subset_hash"), stored.get("validation_hash")) != self.hashes[key]:
            return "its training subset or validation split no longer reproduces from its seed"
        return None


def make_plan(
    runs: list[PlannedRun], results_dir: Path, overwrite: bool = False, keep_stale: bool = False,
    currency: Currency | None = None,
) -> Plan:
    """Decide, before anything trains, which runs are done, to do, or in conflict.

    A stored run counts as this run when its config and its thread count (where
    recorded) are the same: only then would training it again give the same
    file. It is reused when it is also current (see `Currency`); a stale one is
    rerun, or kept with `keep_stale`. With `overwrite`, every run is trained
    again and its file replaced, whatever it holds.
    """
    currency = currency or Currency(check_subsets=False)
    plan = Plan([], [], {}, overwrite=overwrite)
    conflicts = []
    for planned in runs:
        path = resolve_inside(results_dir, planned.key)
        try:
            stored = read_result(path, inside=results_dir)
        except ValueError as exc:
            plan.damaged[path] = str(exc).removeprefix(f"{path}: ")
            plan.todo.append(planned)
            continue
        changed = differences(stored, planned) if stored is not None else []
        if stored is None or overwrite:
            plan.todo.append(planned)  # not there yet, or to be trained again (--overwrite)
        elif changed:
            conflicts.append(f"{path} (differs in: {', '.join(changed)})")
        elif (why := currency.why_stale(stored, planned)) is None:
            plan.skipped.append(planned)
        else:
            plan.stale[path] = why
            (plan.skipped if keep_stale else plan.todo).append(planned)
    if conflicts:
        raise ConfigError(
            "these result files were made with a different config or thread count and would be overwritten: "
            + "; ".join(conflicts[:5]) + (f"; and {len(conflicts) - 5} more" if len(conflicts) > 5 else "")
            + ". Fix: use another --results folder, the same --threads, or --overwrite to replace them."
        )
    return plan


def differences(stored: dict, planned: PlannedRun) -> list[str]:
    """The config fields (and `threads`) in which a stored result differs from what `planned` would make."""
    wanted = planned.config.to_dict()
    changed = sorted(key for key in set(stored["config"]) | set(wanted) if stored["config"].get(key) != wanted.get(key))
    threads = stored.get("threads")
    if threads is not None and threads != torch.get_num_threads():
        changed.append(f"threads ({threads}, now {torch.get_num_threads()})")
    return changed


# A generous bound per result (schema-2 files are tens of KB; `dba run --output` files with full MNIST's
# subset indices about 0.5 MB); a checkpoint is a few MB.
BYTES_PER_RESULT = 512 * 1024
CHECKPOINT_BYTES = 64 * 1024 * 1024


def check_writable(results_dir: Path, todo: int) -> None:
    """Before anything trains: the results folder can be created and written, and has room for the results."""
    if todo == 0:
        return
    if results_dir.exists() and not results_dir.is_dir():
        raise ResultsNotWritable(
            f"results folder {results_dir} is a file, not a folder. Fix: choose another folder with --results."
        )
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        problem = write_problem(results_dir)
    except OSError as exc:
        problem = exc.strerror or str(exc)
    if problem is not None:
        raise ResultsNotWritable(
            f"results folder {results_dir} is not writable ({problem}). "
            "Fix: choose another folder with --results, or fix its permissions."
        )
    free = shutil.disk_usage(results_dir).free
    needed = todo * BYTES_PER_RESULT + CHECKPOINT_BYTES
    if free < needed:
        raise ResultsNotWritable(
            f"results folder {results_dir} has {free / 2**20:.0f} MB free; {todo} run(s) need about "
            f"{needed / 2**20:.0f} MB (results and checkpoints). Fix: free some space or use --results elsewhere."
        )


