"""Running a recipe: every method x seed, one atomically written JSON per run.

A finished run is never redone: a rerun of the same command skips it, so an
interrupted `dba reproduce` continues where it stopped and loses at most the
run in progress. A result file made with a *different* config is never
silently overwritten; a damaged one is reported by name and redone.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from .data.mnist import MNIST
from .checkpoint import checkpoint_path
from .errors import ConfigError, ResultsNotWritable
from .code_version import code_version, source_hash
from .io import finished_runs_kept, write_text_atomic
from .provenance import device_description
from .recipes import PlannedRun, result_path
from .results import SCHEMA_VERSION, code_label, encode_result, read_result
from .train import EpochRecord, subset_hashes, train


class Reporter:
    """Progress callbacks; the CLI shows them with Rich, Python users may ignore them."""

    def plan(self, todo: list[PlannedRun], skipped: list[PlannedRun], damaged: list[Path]) -> None: ...

    def stale(self, stale: dict[Path, str], kept: bool) -> None:
        """Finished runs that are not current (other code, edited, subset no longer reproduced): rerun, or kept."""

    def run_started(self, planned: PlannedRun) -> None: ...

    def epoch_done(self, planned: PlannedRun, record: EpochRecord) -> None: ...

    def run_finished(self, planned: PlannedRun, document: dict) -> None: ...

    def run_busy(self, planned: PlannedRun) -> None: ...

    def run_resuming(self, planned: PlannedRun) -> None: ...

    def run_skipped(self, planned: PlannedRun) -> None: ...


@dataclass
class Plan:
    todo: list[PlannedRun]
    skipped: list[PlannedRun]
    damaged: list[Path]  # unreadable result files that will be redone
    busy: list[PlannedRun] = field(default_factory=list)  # being trained by another process right now
    done: list[PlannedRun] = field(default_factory=list)  # trained and written by this call
    stale: dict[Path, str] = field(default_factory=dict)  # finished but not current: path -> why (rerun, or kept)


class Currency:
    """Whether a stored result is what training `planned` now would write (config and threads aside).

    It is not when other training code made it (another source hash, a
    hand-edited file, or a schema-1 file that records no code version), or
    when its subset no longer reproduces from its seed: schema-2 files keep
    only the subset's hash, checked here against a fresh draw (cached per
    subset setting, as tuning grids share their draws).
    """

    def __init__(self, mnist: MNIST | None) -> None:
        self.mnist = mnist
        self.current = source_hash()
        self.hashes: dict[tuple, tuple[str, str | None]] = {}

    def why_stale(self, stored: dict, planned: PlannedRun) -> str | None:
        label = code_label(stored)
        if label != self.current:
            return {"edited": "edited by hand (its digest does not match)",
                    "schema-1": "made before code versions were recorded"}.get(label, f"made by code {label}")
        if self.mnist is None:
            return None
        config = planned.config
        key = (config.data, config.seed, config.subset_draw, config.validation_size)
        if key not in self.hashes:
            self.hashes[key] = subset_hashes(self.mnist, config)
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
    rerun, or kept with `keep_stale`.
    """
    currency = currency or Currency(None)
    plan = Plan([], [], [])
    conflicts = []
    for planned in runs:
        path = result_path(results_dir, planned.key)
        try:
            stored = read_result(path)
        except ValueError:
            plan.damaged.append(path)
            plan.todo.append(planned)
            continue
        changed = differences(stored, planned) if stored is not None else []
        if stored is None:
            plan.todo.append(planned)
        elif changed:
            if overwrite:
                plan.todo.append(planned)
            else:
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


CHECKPOINT_SECONDS_ENV = "DBA_CHECKPOINT_SECONDS"


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
    planned: PlannedRun, mnist: MNIST, device: torch.device, reporter: Reporter, checkpoint: Path | None = None
) -> dict:
    """Train one planned run (resuming from `checkpoint` if there is one) and build its result document."""
    result = train(
        planned.config, mnist, device,
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
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def reproduce(
    runs: list[PlannedRun],
    mnist: MNIST,
    device: torch.device,
    results_dir: Path,
    overwrite: bool = False,
    reporter: Reporter | None = None,
    wait_for_busy: bool = False,
    keep_stale: bool = False,
) -> Plan:
    """Run every planned run not already finished; each result is written as soon as it ends.

    Safe to run twice at once on the same folder: each run is taken under its
    own lock, so a run another process is training is left to it (reported as
    busy), and a run it finished meanwhile is not redone. With
    `wait_for_busy`, busy runs are awaited at the end (and trained here if the
    other process died first): callers that read every result afterwards,
    like `dba tune`, need them all. A killed run resumes from its last checkpoint.

    A finished run made by other training code is stale: it is rerun (the
    reporter says how many and why), or kept with `keep_stale`.
    """
    reporter = reporter or Reporter()
    currency = Currency(mnist)
    plan = make_plan(runs, results_dir, overwrite, keep_stale, currency)
    check_writable(results_dir, len(plan.todo))
    reporter.plan(plan.todo, plan.skipped, plan.damaged)
    if plan.stale:
        reporter.stale(plan.stale, keep_stale)
    for planned in plan.todo:
        run_one(planned, plan, mnist, device, results_dir, reporter, currency, wait=False)
    if wait_for_busy:
        for planned in list(plan.busy):
            plan.busy.remove(planned)
            run_one(planned, plan, mnist, device, results_dir, reporter, currency, wait=True)
    return plan


def run_one(
    planned: PlannedRun, plan: Plan, mnist: MNIST, device: torch.device, results_dir: Path, reporter: Reporter,
    currency: Currency, wait: bool,
) -> None:
    """Take the run's lock (or wait for it), then skip, resume or train it."""
    path = result_path(results_dir, planned.key)
    with run_lock(results_dir, planned.key, wait) as held:
        if not held:
            plan.busy.append(planned)
            reporter.run_busy(planned)
            return
        if finished_with(path, planned, currency):  # another process finished it while we waited our turn
            remove_lock(results_dir, planned.key)
            plan.skipped.append(planned)
            reporter.run_skipped(planned)
            return
        remove_stale_temporaries(path)
        if checkpoint_path(path).exists():
            reporter.run_resuming(planned)
        reporter.run_started(planned)
        document = run_document(planned, mnist, device, reporter, checkpoint_path(path))
        with finished_runs_kept(path):
            write_text_atomic(path, encode_result(document))
        checkpoint_path(path).unlink(missing_ok=True)
        remove_lock(results_dir, planned.key)
        plan.done.append(planned)
        reporter.run_finished(planned, document)


def finished_with(path: Path, planned: PlannedRun, currency: Currency) -> bool:
    """A current result of exactly this run is stored at `path`."""
    try:
        stored = read_result(path)
    except ValueError:
        return False
    return stored is not None and not differences(stored, planned) and currency.why_stale(stored, planned) is None


def remove_stale_temporaries(path: Path) -> None:
    """Temporary files a killed writer left beside this run's result or checkpoint (we hold the run's lock)."""
    for name in (path.name, checkpoint_path(path).name):
        for stale in path.parent.glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)


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
        probe = results_dir / f".write-test-{os.getpid()}"
        write_text_atomic(probe, "ok")
        probe.unlink()
    except OSError as exc:
        raise ResultsNotWritable(
            f"results folder {results_dir} is not writable ({exc.strerror or exc}). "
            "Fix: choose another folder with --results, or fix its permissions."
        ) from None
    free = shutil.disk_usage(results_dir).free
    needed = todo * BYTES_PER_RESULT + CHECKPOINT_BYTES
    if free < needed:
        raise ResultsNotWritable(
            f"results folder {results_dir} has {free / 2**20:.0f} MB free; {todo} run(s) need about "
            f"{needed / 2**20:.0f} MB (results and checkpoints). Fix: free some space or use --results elsewhere."
        )


@contextmanager
def run_lock(results_dir: Path, key: str, wait: bool = False) -> Iterator[bool]:
    """An exclusive lock for one run; yields whether we hold it (always, with `wait`).

    An OS lock (flock) on results/.locks/<key>.lock: released by the kernel
    when the process dies, even by kill -9, so a crash never leaves a run
    locked forever.
    """
    path = lock_path(results_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def remove_lock(results_dir: Path, key: str) -> None:
    """Delete a finished run's lock file (while still holding it), so that `.locks/` does not grow.

    Safe: whoever opened the old file and locks it afterwards re-checks the
    result first and finds the run finished.
    """
    lock_path(results_dir, key).unlink(missing_ok=True)


def lock_path(results_dir: Path, key: str) -> Path:
    """results/.locks/<key with / as __>.lock: outside the result folders, one flat folder."""
    return results_dir / ".locks" / (key.replace("/", "__") + ".lock")
