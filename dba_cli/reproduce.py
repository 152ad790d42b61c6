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
from concurrent.futures import FIRST_COMPLETED, Future
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

import torch

from .data.mnist import MNIST
from .checkpoint import checkpoint_path
from .errors import ConfigError, ResultsNotWritable
from .code_version import code_version, source_hash
from .io import finished_runs_kept, write_text_atomic
from .parallel import InProcessRunner, Runner, RunFailed
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

    def run_failed(self, planned: PlannedRun, summary: str, traceback_path: Path) -> None:
        """The run crashed (not a user error); its traceback is at `traceback_path`, the grid goes on."""


@dataclass
class Plan:
    todo: list[PlannedRun]
    skipped: list[PlannedRun]
    damaged: list[Path]  # unreadable result files that will be redone
    busy: list[PlannedRun] = field(default_factory=list)  # being trained by another process right now
    done: list[PlannedRun] = field(default_factory=list)  # trained and written by this call
    stale: dict[Path, str] = field(default_factory=dict)  # finished but not current: path -> why (rerun, or kept)
    failed: list[tuple[PlannedRun, Path]] = field(default_factory=list)  # crashed runs and their saved tracebacks


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
    runner: Runner | None = None,
) -> Plan:
    """Run every planned run not already finished; each result is written as soon as it ends.

    `runner` trains the runs (`parallel.py`): in this process one at a time
    (the default), in a pool of local workers, or on a Ray cluster; results
    are written here either way, atomically, so that the files are the same.

    Safe to run twice at once on the same folder: each run is taken under its
    own lock, so a run another process is training is left to it (reported as
    busy), and a run it finished meanwhile is not redone. With
    `wait_for_busy`, busy runs are awaited at the end (and trained here if the
    other process died first): callers that read every result afterwards,
    like `dba tune`, need them all. A killed run resumes from its last checkpoint.

    A finished run made by other training code is stale: it is rerun (the
    reporter says how many and why), or kept with `keep_stale`. A run that
    crashes (not a user error) is reported as failed with its traceback saved
    beside its result; the others go on, and `RunsFailed` is raised at the end.
    """
    reporter = reporter or Reporter()
    runner = runner or InProcessRunner(mnist, device)
    currency = Currency(mnist)
    plan = make_plan(runs, results_dir, overwrite, keep_stale, currency)
    check_writable(results_dir, len(plan.todo))
    reporter.plan(plan.todo, plan.skipped, plan.damaged)
    if plan.stale:
        reporter.stale(plan.stale, keep_stale)
    execute(plan.todo, plan, results_dir, reporter, currency, runner, wait=False)
    if wait_for_busy:
        busy, plan.busy = plan.busy, []
        execute(busy, plan, results_dir, reporter, currency, runner, wait=True)
    if plan.failed:
        raise RunsFailed(plan.failed)
    return plan


class RunsFailed(Exception):
    """Some runs crashed (their tracebacks are saved beside their results); every other run finished."""

    def __init__(self, failed: list[tuple[PlannedRun, Path]]) -> None:
        self.failed = failed
        listed = "; ".join(f"{planned.key} (traceback: {path})" for planned, path in failed[:5])
        more = f"; and {len(failed) - 5} more" if len(failed) > 5 else ""
        super().__init__(
            f"{len(failed)} run(s) failed: {listed}{more}. The other runs finished and are kept; "
            "rerunning the same command retries the failed ones."
        )


def execute(
    todo: list[PlannedRun], plan: Plan, results_dir: Path, reporter: Reporter, currency: Currency, runner: Runner,
    wait: bool,
) -> None:
    """Keep up to `runner.slots` runs in flight: lock each, hand it to the runner, write what comes back.

    The lock is held here, in the process that writes the result, for as long
    as the run trains; a worker that dies leaves no lock behind (the kernel
    drops it with this process, or `finish` releases it). A worker that dies
    outright breaks a process pool and fails every run in flight with it: those
    runs are rerun one at a time, so that only the run that kills its worker
    again is reported as failed. Ctrl-C, SIGTERM or a user error stops the
    runner's workers at once (runs in flight keep their last checkpoint) and
    is raised again.
    """
    by_key = {planned.key: planned for planned in todo}
    runner.open(lambda key, record: reporter.epoch_done(by_key[key], record) if key in by_key else None)
    pending = list(reversed(todo))
    in_flight: dict[Future, tuple[PlannedRun, BinaryIO]] = {}
    suspects: list[PlannedRun] = []  # in flight when a worker died: each is rerun alone to find the one that kills it
    alone: str | None = None  # the suspect now running by itself
    interrupted = True

    def launch(planned: PlannedRun) -> bool:
        """Start `planned` unless it is busy or already finished; whether it is now in flight."""
        started = start_run(planned, plan, results_dir, reporter, currency, runner, wait)
        if started is not None:
            in_flight[started[0]] = (planned, started[1])
        return started is not None

    try:
        while pending or in_flight or suspects:
            if suspects and not in_flight:
                planned = suspects.pop(0)
                if launch(planned):
                    alone = planned.key
            while pending and not suspects and alone is None and len(in_flight) < runner.slots:
                launch(pending.pop())
            if not in_flight:
                continue
            done, _ = wait_futures(in_flight, timeout=0.2, return_when=FIRST_COMPLETED)
            runner.poll()
            for future in done:
                planned, lock = in_flight.pop(future)
                was_alone = alone == planned.key
                if was_alone:
                    alone = None
                try:
                    document = future.result()
                except BrokenProcessPool:  # a worker died outright and took the pool (and its runs) down
                    release_lock(lock)
                    if not was_alone:
                        suspects.append(planned)
                        continue
                    fail_run(planned, plan, results_dir, reporter, RunFailed(
                        "the worker process training it died (killed, or crashed outside Python), also when run alone"
                    ))
                except RunFailed as failure:
                    release_lock(lock)
                    fail_run(planned, plan, results_dir, reporter, failure)
                else:
                    finish_run(planned, plan, results_dir, reporter, document, lock)
        interrupted = False
    finally:
        if interrupted:
            runner.stop()
        for _, lock in in_flight.values():
            release_lock(lock)


def start_run(
    planned: PlannedRun, plan: Plan, results_dir: Path, reporter: Reporter, currency: Currency, runner: Runner,
    wait: bool,
) -> tuple[Future, BinaryIO] | None:
    """Take the run's lock (or wait for it), then skip it or hand it to the runner (resuming its checkpoint)."""
    path = result_path(results_dir, planned.key)
    lock = take_lock(results_dir, planned.key, wait)
    if lock is None:
        plan.busy.append(planned)
        reporter.run_busy(planned)
        return None
    if finished_with(path, planned, currency):  # another process finished it while we waited our turn
        remove_lock(results_dir, planned.key)
        release_lock(lock)
        plan.skipped.append(planned)
        reporter.run_skipped(planned)
        return None
    remove_stale_temporaries(path)
    checkpoint = checkpoint_path(path) if runner.shares_files else None
    if checkpoint is not None and checkpoint.exists():
        reporter.run_resuming(planned)
    reporter.run_started(planned)
    try:
        return runner.submit(planned, checkpoint), lock
    except BaseException:
        release_lock(lock)
        raise


def finish_run(planned: PlannedRun, plan: Plan, results_dir: Path, reporter: Reporter, document: dict, lock: BinaryIO) -> None:
    """Write the run's result atomically, then drop its checkpoint, failure report and lock."""
    path = result_path(results_dir, planned.key)
    try:
        with finished_runs_kept(path):
            write_text_atomic(path, encode_result(document))
        checkpoint_path(path).unlink(missing_ok=True)
        failure_path(path).unlink(missing_ok=True)
        remove_lock(results_dir, planned.key)
    finally:
        release_lock(lock)
    plan.done.append(planned)
    reporter.run_finished(planned, document)


def fail_run(planned: PlannedRun, plan: Plan, results_dir: Path, reporter: Reporter, failure: RunFailed) -> None:
    """Save the crashed run's traceback beside where its result would be, and tell the reporter."""
    path = failure_path(result_path(results_dir, planned.key))
    write_text_atomic(path, failure.details)
    plan.failed.append((planned, path))
    reporter.run_failed(planned, failure.summary, path)


def failure_path(path: Path) -> Path:
    """seed-3.json -> seed-3.failed.txt: the traceback of the last failed attempt (removed when the run finishes)."""
    return path.with_name(path.stem + ".failed.txt")


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


def take_lock(results_dir: Path, key: str, wait: bool = False) -> BinaryIO | None:
    """An exclusive lock for one run: its open lock file, or None if another process holds it (never, with `wait`).

    An OS lock (flock) on results/.locks/<key>.lock: released by the kernel
    when the process dies, even by kill -9, so a crash never leaves a run
    locked forever. Release it with `release_lock`.
    """
    path = lock_path(results_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+b")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        handle.close()
        return None
    except BaseException:
        handle.close()
        raise
    return handle


def release_lock(handle: BinaryIO) -> None:
    if not handle.closed:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


def remove_lock(results_dir: Path, key: str) -> None:
    """Delete a finished run's lock file (while still holding it), so that `.locks/` does not grow.

    Safe: whoever opened the old file and locks it afterwards re-checks the
    result first and finds the run finished.
    """
    lock_path(results_dir, key).unlink(missing_ok=True)


def lock_path(results_dir: Path, key: str) -> Path:
    """results/.locks/<key with / as __>.lock: outside the result folders, one flat folder."""
    return results_dir / ".locks" / (key.replace("/", "__") + ".lock")
