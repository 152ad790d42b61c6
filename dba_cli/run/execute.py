"""Executing a plan: every planned run not already finished, one atomically written JSON per run.

A *runner* (runners.py) trains: in this process, in a pool of local workers,
or on a Ray cluster; this module locks each run, hands it to the runner and
writes what comes back, so the files are the same whichever trained them.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import torch

from ..errors import ResultsNotWritable
from ..files import finished_runs_kept, resolve_inside, write_text_atomic
from ..recipes.planned import PlannedRun
from ..results.format import encode_result
from ..settings.packing import PACKED_METHODS, default_methods, default_pack, pack_groups
from ..results.reading import read_result
from ..training.checkpoint import checkpoint_path
from ..training.train import EpochRecord
from .locks import check_lock_folder, release_lock, remove_lock, take_lock
from .plan import Currency, Plan, check_writable, differences, make_plan
from .runners import InProcessRunner, Runner, RunFailed


class Reporter:
    """Progress callbacks; the CLI shows them with Rich, Python users may ignore them."""

    def plan(self, todo: list[PlannedRun], skipped: list[PlannedRun], damaged: dict[Path, str]) -> None: ...

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

    def note(self, text: str) -> None:
        """Something the user should know about how the runs are trained (not an error)."""


@dataclass
class Executor:
    """Turns planned runs into result files under `results_dir`, with one runner for every grid of a command.

    `runner` trains the runs (runners.py): in this process one at a time (the
    default), in a pool of local workers, or on a Ray cluster; results are
    written here either way, atomically, so that the files are the same.
    """

    results_dir: Path
    runner: Runner = field(default_factory=lambda: InProcessRunner(torch.device("cpu")))
    reporter: Reporter = field(default_factory=Reporter)
    overwrite: bool = False  # replace results made with another config
    keep_stale: bool = False  # keep finished runs made by other code instead of rerunning them
    data_dir: str | None = None  # where every data set is read from (None: its default copy)
    pack: int | None = None  # runs per pack (training/packed.py); None: settings/packing.default_pack for the plan; 1: none
    device_type: str = "cpu"  # where the runs train: what packs by default (settings/packing.default_methods)

    def execute(self, runs: list[PlannedRun], wait_for_busy: bool = False) -> Plan:
        """Run every planned run not already finished; each result is written as soon as it ends.

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
        currency = Currency(self.data_dir)
        plan = make_plan(runs, self.results_dir, self.overwrite, self.keep_stale, currency)
        check_writable(self.results_dir, len(plan.todo))
        if plan.todo:
            check_lock_folder(self.results_dir)
        remove_finished_checkpoints(plan.skipped, self.results_dir, self.reporter)
        configs = [planned.config for planned in plan.todo]
        methods = PACKED_METHODS if self.pack is not None else default_methods(self.device_type)
        pack = self.pack if self.pack is not None else default_pack(configs, self.runner.slots, self.device_type)
        units = pack_units(plan.todo, self.results_dir, self.runner, pack, methods)
        note = self.runner.cap(len(units))
        if note:
            self.reporter.note(note)
        if len(units) < len(plan.todo) and self.pack is not None:  # packing by default goes unannounced (--pack's help)
            self.reporter.note(
                f"packing: {len(plan.todo)} runs train as {len(units)} task(s), up to {pack} runs of one shape per pack (--pack)"
            )
        self.reporter.plan(plan.todo, plan.skipped, plan.damaged)
        if plan.stale:
            self.reporter.stale(plan.stale, self.keep_stale)
        execute(units, plan, self.results_dir, self.reporter, currency, self.runner, wait=False)
        if wait_for_busy:
            busy, plan.busy = plan.busy, []
            busy_units = pack_units(busy, self.results_dir, self.runner, pack, methods)
            execute(busy_units, plan, self.results_dir, self.reporter, currency, self.runner, wait=True)
        if plan.failed:
            raise RunsFailed(plan.failed)
        return plan


def execute_runs(
    runs: list[PlannedRun], results_dir: Path, device: str = "cpu", wait_for_busy: bool = False, **options
) -> Plan:
    """For Python users: train `runs` in this process on `device` and write their results (see `Executor`)."""
    runner = InProcessRunner(torch.device(device), options.get("data_dir"))
    return Executor(Path(results_dir), runner, **options).execute(runs, wait_for_busy)


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
    units: list[list[PlannedRun]], plan: Plan, results_dir: Path, reporter: Reporter, currency: Currency, runner: Runner,
    wait: bool,
) -> None:
    """Keep up to `runner.slots` units in flight: lock each unit's runs, hand them to the runner, write what comes back.

    A unit is one run, or a pack of runs of one shape (`pack_units`), one task
    of the runner. The lock is held here, in the process that writes the result,
    for as long as the run trains; a worker that dies leaves no lock behind
    (the kernel drops it with this process, or `finish` releases it). A worker
    that dies outright breaks a process pool and fails every run in flight
    with it: those runs are rerun one at a time (unpacked), so that only the
    run that kills its worker again is reported as failed. Ctrl-C, SIGTERM or
    a user error stops the runner's workers at once (runs in flight keep their
    last checkpoint; a pack's runs start over) and is raised again.
    """
    by_key = {planned.key: planned for unit in units for planned in unit}
    runner.open(lambda key, record: reporter.epoch_done(by_key[key], record) if key in by_key else None)
    pending = list(reversed(units))
    in_flight: dict[Future, tuple[list[PlannedRun], list[BinaryIO]]] = {}
    suspects: list[PlannedRun] = []  # in flight when a worker died: each is rerun alone to find the one that kills it
    alone: str | None = None  # the suspect now running by itself
    interrupted = True

    def launch(unit: list[PlannedRun]) -> bool:
        """Start the unit's runs that are neither busy nor already finished; whether any is now in flight."""
        started = start_unit(unit, plan, results_dir, reporter, currency, runner, wait)
        if started is not None:
            in_flight[started[0]] = started[1], started[2]
        return started is not None

    try:
        while pending or in_flight or suspects:
            if suspects and not in_flight:
                planned = suspects.pop(0)
                if launch([planned]):
                    alone = planned.key
            while pending and not suspects and alone is None and len(in_flight) < runner.slots:
                launch(pending.pop())
            if not in_flight:
                continue
            done, _ = wait_futures(in_flight, timeout=0.2, return_when=FIRST_COMPLETED)
            runner.poll()
            for future in done:
                runs, locks = in_flight.pop(future)
                was_alone = len(runs) == 1 and alone == runs[0].key
                if was_alone:
                    alone = None
                try:
                    documents = future.result()
                except BrokenProcessPool:  # a worker died outright and took the pool (and its runs) down
                    for lock in locks:
                        release_lock(lock)
                    if not was_alone:
                        suspects.extend(runs)
                        continue
                    fail_run(runs[0], plan, results_dir, reporter, RunFailed(
                        "the worker process training it died (killed, or crashed outside Python), also when run alone"
                    ))
                except RunFailed as failure:
                    for planned, lock in zip(runs, locks):
                        release_lock(lock)
                        fail_run(planned, plan, results_dir, reporter, failure)
                else:
                    documents = documents if isinstance(documents, list) else [documents]
                    for planned, document, lock in zip(runs, documents, locks):
                        finish_run(planned, plan, results_dir, reporter, document, lock)
        interrupted = False
    finally:
        if interrupted:
            runner.stop()
        for _, locks in in_flight.values():
            for lock in locks:
                release_lock(lock)


def pack_units(
    todo: list[PlannedRun], results_dir: Path, runner: Runner, pack: int, methods: tuple[str, ...] = PACKED_METHODS,
) -> list[list[PlannedRun]]:
    """The runs to train as units of work: packs of one shape (settings/packing.py), and runs alone.

    A run with a checkpoint beside its result trains alone, so that it resumes
    from it (a pack keeps none).
    """
    if pack <= 1:
        return [[planned] for planned in todo]
    resumed = [runner.shares_files and checkpoint_path(resolve_inside(results_dir, planned.key)).exists() for planned in todo]
    packable = [planned for planned, resume in zip(todo, resumed) if not resume]
    units = [[planned] for planned, resume in zip(todo, resumed) if resume]
    return units + [[packable[i] for i in group] for group in pack_groups([p.config for p in packable], pack, methods)]


def start_unit(
    unit: list[PlannedRun], plan: Plan, results_dir: Path, reporter: Reporter, currency: Currency, runner: Runner,
    wait: bool,
) -> tuple[Future, list[PlannedRun], list[BinaryIO]] | None:
    """Claim the unit's runs (`claim_run`) and hand those claimed to the runner: alone, or as one pack."""
    claimed: list[tuple[PlannedRun, BinaryIO]] = []
    try:
        for planned in unit:
            lock = claim_run(planned, plan, results_dir, reporter, currency, wait)
            if lock is not None:
                claimed.append((planned, lock))
        if not claimed:
            return None
        runs = [planned for planned, _ in claimed]
        for planned in runs:
            reporter.run_started(planned)
        if len(runs) > 1:
            future = runner.submit_pack(runs)
        else:
            checkpoint = checkpoint_path(resolve_inside(results_dir, runs[0].key)) if runner.shares_files else None
            future = runner.submit(runs[0], checkpoint)
        return future, runs, [lock for _, lock in claimed]
    except BaseException:
        for _, lock in claimed:
            release_lock(lock)
        raise


def claim_run(
    planned: PlannedRun, plan: Plan, results_dir: Path, reporter: Reporter, currency: Currency, wait: bool
) -> BinaryIO | None:
    """Take the run's lock (or wait for it); None when it is busy or was finished meanwhile (reported either way)."""
    path = resolve_inside(results_dir, planned.key)
    lock = take_lock(results_dir, planned.key, wait)
    if lock is None:
        plan.busy.append(planned)
        reporter.run_busy(planned)
        return None
    if not plan.overwrite and finished_with(path, planned, currency, results_dir):  # finished by another process meanwhile
        checkpoint_path(path).unlink(missing_ok=True)  # left by one stopped between its result and this unlink
        remove_lock(results_dir, planned.key)
        release_lock(lock)
        plan.skipped.append(planned)
        reporter.run_skipped(planned)
        return None
    remove_stale_temporaries(path)
    if checkpoint_path(path).exists():
        reporter.run_resuming(planned)
    return lock


def finish_run(planned: PlannedRun, plan: Plan, results_dir: Path, reporter: Reporter, document: dict, lock: BinaryIO) -> None:
    """Write the run's result atomically, then drop its checkpoint, failure report and lock."""
    path = resolve_inside(results_dir, planned.key)
    try:
        with finished_runs_kept(path):
            write_text_atomic(path, encode_result(document), replace_special=True)  # a FIFO there was a damaged result
        checkpoint_path(path).unlink(missing_ok=True)
        failure_path(path).unlink(missing_ok=True)
        remove_lock(results_dir, planned.key)
    finally:
        release_lock(lock)
    plan.done.append(planned)
    reporter.run_finished(planned, document)


def remove_finished_checkpoints(skipped: list[PlannedRun], results_dir: Path, reporter: Reporter) -> None:
    """Delete the checkpoint of every finished run that still has one, under that run's lock.

    `finish_run` writes the result, then deletes the checkpoint: Ctrl-C or a
    kill between the two leaves a checkpoint (up to a few MB) that no rerun
    would otherwise touch, since the run is skipped as finished. A run whose
    lock another process holds (training it again with --overwrite) keeps its
    checkpoint; a folder where it cannot be deleted (read-only) is only a note.
    """
    for planned in skipped:
        checkpoint = checkpoint_path(resolve_inside(results_dir, planned.key))
        if not (checkpoint.exists() or checkpoint.is_symlink()):
            continue
        try:
            lock = take_lock(results_dir, planned.key)
            if lock is None:
                continue
            try:
                checkpoint.unlink(missing_ok=True)
                remove_lock(results_dir, planned.key)
            finally:
                release_lock(lock)
        except (OSError, ResultsNotWritable) as exc:
            reporter.note(f"could not remove {checkpoint}, the checkpoint of a finished run: {exc}")


def fail_run(planned: PlannedRun, plan: Plan, results_dir: Path, reporter: Reporter, failure: RunFailed) -> None:
    """Save the crashed run's traceback beside where its result would be, and tell the reporter."""
    path = failure_path(resolve_inside(results_dir, planned.key))
    write_text_atomic(path, failure.details)
    plan.failed.append((planned, path))
    reporter.run_failed(planned, failure.summary, path)


def failure_path(path: Path) -> Path:
    """seed-3.json -> seed-3.failed.txt: the traceback of the last failed attempt (removed when the run finishes)."""
    return path.with_name(path.stem + ".failed.txt")


def finished_with(path: Path, planned: PlannedRun, currency: Currency, results_dir: Path) -> bool:
    """A current result of exactly this run is stored at `path`."""
    try:
        stored = read_result(path, inside=results_dir)
    except ValueError:
        return False
    return stored is not None and not differences(stored, planned) and currency.why_stale(stored, planned) is None


def remove_stale_temporaries(path: Path) -> None:
    """Temporary files a killed writer left beside this run's result or checkpoint (we hold the run's lock)."""
    for name in (path.name, checkpoint_path(path).name):
        for stale in path.parent.glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)


