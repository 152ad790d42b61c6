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

Start-up (docs/scaling.md#start-up): a worker costs about 2 s of CPU before
its first epoch (torch, torch._dynamo, which the first optimizer step imports,
the data, numba's cached search), and 0.7 to 1.4 s more to tear its interpreter
down at the end. So `PoolRunner.start` spawns the workers a grid will need
*before* this process imports torch and plans, and each worker does all of
that warm-up in its initializer (`start_worker`); a worker leaves with
`os._exit` once the pool has shut it down, skipping the teardown. This module
imports torch only inside the functions that train, so that the pool can start
first.
"""

from __future__ import annotations

import atexit
import ctypes
import multiprocessing
import os
import queue
import signal
import sys
import traceback
import warnings
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Callable, Protocol

from ..errors import ConfigError, DBAError, DeviceError, printable
from ..files import resolve_inside
from ..training.devices import out_of_memory_message, resolve_device, set_threads

if TYPE_CHECKING:
    from pathlib import Path

    import torch

    from ..data.datasets import Dataset
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

    def submit_pack(self, runs: list[PlannedRun]) -> Future:
        """Train runs of one shape as one pack (training/packed.py): a Future of their documents, in order."""

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


def train_pack_run(runs: list[PlannedRun], data_dir: str | None, device: torch.device, send: OnEpoch) -> list[dict]:
    """`train_run` for a pack: its runs train together and one failure fails them all (they rerun)."""
    try:
        dataset = loaded_dataset(runs[0].config.dataset, data_dir)
        from .document import pack_documents

        return pack_documents(runs, dataset, device, EpochForwarder(send))
    except Exception as exc:  # noqa: BLE001 - the pack's failure, for the caller to report
        raise failure_from(exc) from None


def run_document(planned: PlannedRun, dataset: Dataset, device: torch.device, reporter, checkpoint: Path | None) -> dict:
    """`document.run_document`, imported at the first run: it imports torch and the training code."""
    from .document import run_document as train_and_document

    return train_and_document(planned, dataset, device, reporter, checkpoint)


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
        return self._done(lambda: train_run(planned, self.data_dir, self.device, self.on_epoch, checkpoint))

    def submit_pack(self, runs: list[PlannedRun]) -> Future:
        return self._done(lambda: train_pack_run(runs, self.data_dir, self.device, self.on_epoch))

    @staticmethod
    def _done(train) -> Future:
        future: Future = Future()
        try:
            future.set_result(train())
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

    `device` is a --device value, which each worker resolves as this process
    does. `datasets` and `engine` (whether any run is DBA) say what a worker
    warms up before its first run. A worker that dies outright (killed,
    segfault) breaks the pool: its runs' futures fail with BrokenProcessPool
    and the next `submit` starts a new pool.
    """

    shares_files = True

    def __init__(
        self, jobs: int, threads: int, device: str, data_dir: str | None, datasets: Iterable[str] = (), engine: bool = False,
    ) -> None:
        if jobs < 1:
            raise ConfigError(f"--jobs: {jobs} must be at least 1.")
        self.slots = jobs
        self.threads = threads
        self.device = str(device)
        self.data_dir = data_dir
        self.datasets = tuple(sorted(set(datasets)))
        self.engine = engine
        self.context = multiprocessing.get_context("spawn")
        self.events = self.context.Queue()
        self.executor: ProcessPoolExecutor | None = None
        self.warming: list[Future] = []  # the early start's placeholder tasks not yet matched by a run
        self.submitted = False  # a run has been handed to a worker
        self.on_epoch: OnEpoch = lambda key, record: None

    def open(self, on_epoch: OnEpoch) -> None:
        self.on_epoch = on_epoch

    def start(self, results_dir: Path, runs: Iterable[PlannedRun], overwrite: bool = False) -> int:
        """Spawn now the workers the command's first grid needs; how many.

        One per run without a result file (every run with `overwrite`), at
        most `jobs`: those runs will train, so these workers are never too many
        (a run with a file may be finished, or stale and train: the workers it
        needs start on demand, as without an early start). They warm up while
        this process imports torch, verifies the data and plans; each is held
        by a placeholder task until a run takes its place (`submit`).
        """
        if self.executor is not None:
            return 0
        try:
            todo = sum(1 for planned in runs if overwrite or not resolve_inside(results_dir, planned.key).exists())
        except (DBAError, OSError):  # a results folder the plan will report on: start nothing early
            return 0
        count = min(self.slots, todo)
        if count:
            executor = self._executor()
            self.warming = [executor.submit(warmed) for _ in range(count)]
        return count

    def cap(self, runs: int) -> str | None:
        """No more workers than runs to train: `--jobs 1000` on an 8-run grid starts 8 (before any has started)."""
        if self.submitted or not 0 < runs < self.slots:
            return None
        asked, self.slots = self.slots, runs
        return f"--jobs {asked}: {runs} run(s) to train, so {runs} worker process(es) start"

    def _executor(self) -> ProcessPoolExecutor:
        if self.executor is None:
            self.executor = ProcessPoolExecutor(
                max_workers=self.slots, mp_context=self.context, initializer=start_worker,
                initargs=(os.getpid(), self.events, self.threads, self.device, self.data_dir, self.datasets, self.engine),
            )
        return self.executor

    def _take_warm_worker(self) -> None:
        """Wait for an early-started worker to be ready, so that this run goes to it.

        The pool spawns a new worker for a task whenever none is idle; while
        the placeholders still hold the early workers, that would start one
        too many per run.
        """
        if not self.warming:
            return
        done, _ = wait_futures(self.warming, return_when=FIRST_COMPLETED)
        self.warming.remove(next(iter(done)))

    def submit(self, planned: PlannedRun, checkpoint: Path | None) -> Future:
        return self._submit(train_in_worker, planned, checkpoint)

    def submit_pack(self, runs: list[PlannedRun]) -> Future:
        return self._submit(train_pack_in_worker, runs)

    def _submit(self, task, *args) -> Future:
        self.submitted = True
        self._take_warm_worker()
        try:
            return self._executor().submit(task, *args)
        except BrokenProcessPool:  # a worker died earlier: start a fresh pool for the runs still to do
            self.stop()
            return self._executor().submit(task, *args)

    def poll(self) -> None:
        while True:
            try:
                key, record = self.events.get_nowait()
            except queue.Empty:
                return
            self.on_epoch(key, record)

    def shutdown(self) -> None:
        if not self.submitted:  # nothing to train (every run finished): the early workers go at once, warm or not
            self.stop()
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
        self.warming = []
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


def start_worker(
    parent_pid: int, events, threads: int, device: str, data_dir: str | None, datasets: tuple[str, ...] = (),
    engine: bool = False,
) -> None:
    """A worker's setup (its signals, its thread count, where its data comes from), then its warm-up."""
    atexit.register(leave_without_teardown)  # first: exit handlers run last-registered first, so it runs last
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    warnings.formatwarning = one_line_warning  # as the parent shows its own (console.warnings_shown); one per worker
    die_with_parent(parent_pid)
    set_threads(threads)
    WORKER.update(events=events, device=device, data_dir=data_dir)
    warm_up(datasets, engine)


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A warning raised in a worker (a bypassed data cache) as the parent prints one: a line, control characters escaped."""
    return f"warning: {printable(str(message))}\n"


def warm_up(datasets: tuple[str, ...], engine: bool) -> None:
    """Pay now what this worker's first run would: the training code, torch._dynamo, the data, the compiled search.

    torch.optim imports torch._dynamo at an optimizer's first use (about 0.8 s);
    numba loads the cached search at its first call (0.3 s; compiling it,
    without a cache, takes 3 s). Nothing here changes what a run computes.
    A failure is left to the run that needs the part, which reports it.
    """
    try:
        worker_device()
        from . import document  # noqa: F401 - the training code, torch with it

        import torch._dynamo  # noqa: F401 - what an optimizer's first use imports

        for name in datasets:
            loaded_dataset(name, WORKER["data_dir"])
        if engine:
            warm_search()
    except Exception:  # noqa: BLE001 - only an early start; the run reports any error itself
        pass


def warm_search() -> None:
    """Load (or compile, and cache) DBA's search for float32 Gram matrices, the type a float32 model's search reads:
    one matrix at a time (a run alone) and a pack's at once (training/packed_dba.py)."""
    import numpy as np

    from ..dba.config import DBAConfig
    from ..dba.search import greedy_search, greedy_search_many, noise_rtol

    eps = float(np.finfo(np.float32).eps)
    config = DBAConfig(metric="variance", direction="minimize", min_size=1)
    greedy_search(np.eye(2, dtype=np.float32), config, noise_rtol(eps))
    greedy_search_many(np.eye(2, dtype=np.float32)[None], [config], noise_rtol(eps))


def worker_device() -> torch.device:
    """This worker's device: the --device value resolved once, as the parent resolved it."""
    if "resolved" not in WORKER:
        WORKER["resolved"] = resolve_device(WORKER["device"])
    return WORKER["resolved"]


def leave_without_teardown() -> None:
    """A worker's last exit handler: end the process now, without tearing its interpreter down.

    Tearing down a process that has imported torch and torch._dynamo takes
    0.7 to 1.4 s here (freeing every module), and the parent's shutdown waits
    for it. The pool has already shut this worker down, every other exit
    handler has run, and the queues were flushed, so nothing is lost.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(0)


def warmed() -> None:
    """The placeholder task of an early-started worker (see `PoolRunner.start`): its initializer did the work."""


def loaded_dataset(name: str, data_dir: str | None) -> Dataset:
    """This process's verified copy of data set `name` from `data_dir` (None: the default copy), loaded at its first use."""
    from ..data.loading import load_dataset

    key = (name, None if data_dir is None else str(data_dir))
    if key not in LOADED:
        LOADED[key] = load_dataset(data_dir, dataset=name)
    return LOADED[key]


def train_in_worker(planned: PlannedRun, checkpoint: Path | None) -> dict:
    """One run in a worker: its epochs go to the parent's queue, its document is returned."""
    events = WORKER["events"]
    return train_run(planned, WORKER["data_dir"], worker_device(), lambda key, record: events.put((key, record)), checkpoint)


def train_pack_in_worker(runs: list[PlannedRun]) -> list[dict]:
    """One pack in a worker (`train_in_worker` for a pack)."""
    events = WORKER["events"]
    return train_pack_run(runs, WORKER["data_dir"], worker_device(), lambda key, record: events.put((key, record)))
