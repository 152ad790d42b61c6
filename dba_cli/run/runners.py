"""Where runs train: in this process, in a local pool of worker processes, or (ray_runner.py) on a Ray cluster.

execute.py plans a grid, takes each run's lock and writes each result; a
*runner* only trains: `submit(planned, checkpoint)` returns a
`concurrent.futures.Future` of the run's result document. The same scheduling
loop (`execute.execute`) therefore drives one run at a time, N local workers,
or a cluster, and a run's file is the same whichever trained it (at the same
threads per run): the worker builds the document with the same
`document.run_document` a serial run uses. Every process loads each data set
it trains on once, verified (`loaded_dataset`).

The local pool is `concurrent.futures.ProcessPoolExecutor` with the *spawn*
start method (a fresh interpreter per worker: no forked torch or CUDA state).
Workers ignore SIGINT (Ctrl-C reaches the whole process group; the parent
decides), die with the parent even on `kill -9` (Linux `PR_SET_PDEATHSIG`),
report each finished epoch to the parent's display through one queue, and
write checkpoints beside the results as a serial run does, so an interrupted
grid resumes every run in flight.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import queue
import signal
import traceback
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Callable, Protocol

import torch

from ..data.datasets import Dataset
from ..data.loading import load_dataset
from ..errors import ConfigError, DBAError, DeviceError
from ..training.devices import out_of_memory_message, set_threads
from .document import run_document

if TYPE_CHECKING:
    from pathlib import Path

    from ..recipes.planned import PlannedRun
    from ..training.train import EpochRecord

OnEpoch = Callable[[str, "EpochRecord"], None]  # run key, its epoch record


class RunFailed(Exception):
    """A run crashed in its worker (a bug or a dead worker, not a user error); `details` is the traceback."""

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self.details = details

    @property
    def summary(self) -> str:
        """The traceback's last line: the exception itself."""
        lines = [line for line in self.details.strip().splitlines() if line.strip()]
        return lines[-1].strip() if lines else "unknown failure"


class Runner(Protocol):
    """Trains planned runs; see the module docstring."""

    slots: int  # runs in flight at once
    shares_files: bool  # workers see the results folder (checkpoints are written and resumed there)

    def open(self, on_epoch: OnEpoch) -> None: ...

    def submit(self, planned: PlannedRun, checkpoint: Path | None) -> Future: ...

    def cap(self, runs: int) -> str | None:
        """Run at most `runs` at once (a grid's runs to train); a note when that is fewer than asked for."""

    def poll(self) -> None:
        """Deliver the epoch records that arrived since the last call to `on_epoch`."""

    def stop(self) -> None:
        """At once: Ctrl-C, SIGTERM or a user error; runs in flight are abandoned (their checkpoints stay)."""

    def shutdown(self) -> None:
        """After the last grid: release the workers (a runner serves several grids, e.g. tuning's two)."""


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, which containers and `taskset` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_jobs(threads: int) -> int:
    """As many runs at once as fit the available cores at `threads` torch threads each (at least one)."""
    return max(1, available_cores() // threads)


def oversubscription_note(jobs: int, threads: int) -> str | None:
    cores = available_cores()
    if jobs * threads <= cores:
        return None
    return (
        f"--jobs {jobs} x --threads {threads} = {jobs * threads} threads on {cores} available core(s): "
        "runs will slow each other down (results are unchanged)."
    )


def failure_from(exc: BaseException) -> BaseException:
    """What a crashed run raises to the parent: user errors as they are, the rest as RunFailed with the traceback."""
    if isinstance(exc, DBAError):
        return exc
    message = out_of_memory_message(exc)
    if message is not None:
        return DeviceError(message)
    return RunFailed("".join(traceback.format_exception(exc)))


def train_run(planned: PlannedRun, data_dir: str | None, device: torch.device, send: OnEpoch, checkpoint: Path | None) -> dict:
    """Train one run wherever this is called (this process, a pool worker, a Ray task) and return its document.

    Its data set comes from this process's verified copies (`loaded_dataset`);
    epoch records go to `send`; any error comes out as `failure_from` makes it,
    so every runner reports a crash the same way.
    """
    try:
        dataset = loaded_dataset(planned.config.dataset, data_dir)
        return run_document(planned, dataset, device, EpochForwarder(send), checkpoint)
    except Exception as exc:  # noqa: BLE001 - this run's failure, for the caller to report
        raise failure_from(exc) from None


class InProcessRunner:
    """One run at a time, in this process: epochs reach the display as they end."""

    slots = 1
    shares_files = True

    def __init__(self, device: torch.device, data_dir: str | None = None) -> None:
        self.device = device
        self.data_dir = data_dir
        self.on_epoch: OnEpoch = lambda key, record: None

    def open(self, on_epoch: OnEpoch) -> None:
        self.on_epoch = on_epoch

    def cap(self, runs: int) -> str | None:
        return None

    def submit(self, planned: PlannedRun, checkpoint: Path | None) -> Future:
        future: Future = Future()
        try:
            future.set_result(train_run(planned, self.data_dir, self.device, self.on_epoch, checkpoint))
        except (DBAError, RunFailed) as exc:  # this run's failure, as a worker's would arrive; KeyboardInterrupt passes
            future.set_exception(exc)
        return future

    def poll(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def shutdown(self) -> None:
        pass


class EpochForwarder:
    """The `Reporter` a run trains with outside the display's reach: it only forwards epoch records."""

    def __init__(self, send: OnEpoch) -> None:
        self.send = send

    def epoch_done(self, planned: PlannedRun, record: EpochRecord) -> None:
        self.send(planned.key, record)


class PoolRunner:
    """`jobs` worker processes on this machine (spawned), each training one run at a time.

    A worker that dies outright (killed, segfault) breaks the pool: its runs'
    futures fail with BrokenProcessPool and the next `submit` starts a new pool.
    """

    shares_files = True

    def __init__(self, jobs: int, threads: int, device: torch.device, data_dir: str | None) -> None:
        if jobs < 1:
            raise ConfigError(f"--jobs: {jobs} must be at least 1.")
        self.slots = jobs
        self.threads = threads
        self.device = device
        self.data_dir = data_dir
        self.context = multiprocessing.get_context("spawn")
        self.events = self.context.Queue()
        self.executor: ProcessPoolExecutor | None = None
        self.on_epoch: OnEpoch = lambda key, record: None

    def open(self, on_epoch: OnEpoch) -> None:
        self.on_epoch = on_epoch

    def cap(self, runs: int) -> str | None:
        """No more workers than runs to train: `--jobs 1000` on an 8-run grid starts 8 (before any has started)."""
        if self.executor is not None or not 0 < runs < self.slots:
            return None
        asked, self.slots = self.slots, runs
        return f"--jobs {asked}: {runs} run(s) to train, so {runs} worker process(es) start"

    def _executor(self) -> ProcessPoolExecutor:
        if self.executor is None:
            self.executor = ProcessPoolExecutor(
                max_workers=self.slots, mp_context=self.context, initializer=start_worker,
                initargs=(os.getpid(), self.events, self.threads, str(self.device), self.data_dir),
            )
        return self.executor

    def submit(self, planned: PlannedRun, checkpoint: Path | None) -> Future:
        try:
            return self._executor().submit(train_in_worker, planned, checkpoint)
        except BrokenProcessPool:  # a worker died earlier: start a fresh pool for the runs still to do
            self.stop()
            return self._executor().submit(train_in_worker, planned, checkpoint)

    def poll(self) -> None:
        while True:
            try:
                key, record = self.events.get_nowait()
            except queue.Empty:
                return
            self.on_epoch(key, record)

    def shutdown(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True)
            self.executor = None
        self.poll()

    def __enter__(self) -> PoolRunner:
        return self

    def __exit__(self, *exc_info) -> None:
        if exc_info[0] is None:
            self.shutdown()
        else:
            self.stop()

    def stop(self) -> None:
        """Terminate this pool's workers by their process ids (SIGTERM, then SIGKILL after 5 s); no waiting on runs."""
        if self.executor is None:
            return
        workers = multiprocessing.active_children()  # this process's children: the pool's workers
        self.executor.shutdown(wait=False, cancel_futures=True)
        for process in workers:
            if process.is_alive():
                process.terminate()
        for process in workers:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        self.executor = None


# --- inside a worker process ---

PR_SET_PDEATHSIG = 1
WORKER: dict = {}  # this worker process's data folder, device and event queue (set once by start_worker)
LOADED: dict = {}  # this process's verified data sets, by (name, folder): a pool worker's or a Ray worker's


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies (even by kill -9), so no worker outlives it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the pool's own shutdown is all there is
        return
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


def start_worker(parent_pid: int, events, threads: int, device: str, data_dir: str | None) -> None:
    """A worker's setup: its signals, its thread count, and where its own verified copies of the data come from."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    die_with_parent(parent_pid)
    set_threads(threads)
    WORKER.update(events=events, device=torch.device(device), data_dir=data_dir)


def loaded_dataset(name: str, data_dir: str | None) -> Dataset:
    """This process's verified copy of data set `name` from `data_dir` (None: the default copy), loaded at its first use."""
    key = (name, None if data_dir is None else str(data_dir))
    if key not in LOADED:
        LOADED[key] = load_dataset(data_dir, dataset=name)
    return LOADED[key]


def train_in_worker(planned: PlannedRun, checkpoint: Path | None) -> dict:
    """One run in a worker: its epochs go to the parent's queue, its document is returned."""
    events = WORKER["events"]
    return train_run(planned, WORKER["data_dir"], WORKER["device"], lambda key, record: events.put((key, record)), checkpoint)
