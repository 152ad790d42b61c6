"""Running grids from the command line: one executor per command, with its device, threads, runner and progress.

Every grid command (reproduce, tune, ablate, protocol, converge) plans with a
study, then executes inside `executing(...)`: the device and thread count are
set, the data sets the runs need are loaded and verified (a missing one is
one line before anything trains), the runner is this process (--jobs 1), a
local worker pool, or a Ray cluster (--ray), and the progress display shows
every grid of the command. Ctrl-C or SIGTERM stops every worker at once and
says what was kept (exit 130).

A worker pool starts first, before torch is imported here: its workers import
torch and warm up while this process does the same, verifies the data and
plans (docs/scaling.md#start-up).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import typer

from .display import RichReporter, err, make_progress
from .options import GridOptions


def local_jobs(options: GridOptions) -> int:
    """--jobs, or the cores / --threads; says so when jobs x threads oversubscribe the cores. 0 with --ray (its own)."""
    from ..run.runners import default_jobs, oversubscription_note

    if options.ray:
        return 0
    jobs = options.jobs or default_jobs(options.threads)
    note = oversubscription_note(jobs, options.threads)
    if note:
        err.print(f"[cyan]note:[/] {note}", highlight=False)
    return jobs


def start_pool(options: GridOptions, jobs: int, datasets: Iterable[str], runs: Sequence):
    """The local worker pool for --jobs 2 and more (not --ray), its first grid's workers spawned now; else None.

    `runs` are the command's first grid: they say how many workers to start
    early (runners.PoolRunner.start) and whether they warm up DBA's search.
    """
    from ..run.runners import PoolRunner

    if jobs <= 1:
        return None
    data_dir = None if options.data_dir is None else str(options.data_dir)
    engine = any(planned.config.dba is not None for planned in runs)
    pool = PoolRunner(jobs, options.threads, options.device, data_dir, datasets, engine)
    pool.start(options.results_dir, runs, options.overwrite)
    return pool


def make_runner(options: GridOptions, device):
    """--ray: a Ray cluster; else this process, for one job (a pool is started by `start_pool`)."""
    from ..run.runners import InProcessRunner

    if options.ray:
        from ..run.ray_runner import RayRunner

        return RayRunner(options.ray, options.threads, device, options.jobs)
    return InProcessRunner(device, None if options.data_dir is None else str(options.data_dir))


@contextmanager
def executing(options: GridOptions, datasets: Iterable[str], label: str = "", runs: Sequence = ()) -> Iterator:
    """An Executor (run/execute.py) for this command's grids; `runs`, its first grid, lets a pool start early."""
    from ..run.runners import loaded_dataset
    from ..training.devices import resolve_device, set_threads

    datasets = sorted(set(datasets))
    jobs = local_jobs(options)
    runner = start_pool(options, jobs, datasets, runs)  # before torch is imported here: the workers warm up meanwhile
    try:
        device = resolve_device(options.device)
        set_threads(options.threads)
        data_dir = None if options.data_dir is None else str(options.data_dir)
        for name in datasets:
            loaded_dataset(name, data_dir)  # verified here, before anything trains
        if runner is None:
            runner = make_runner(options, device)
        from ..run.execute import Executor
    except BaseException:
        if runner is not None:
            runner.stop()
        raise
    try:
        try:
            with make_progress() as progress:
                yield Executor(options.results_dir, runner, RichReporter(progress, runner.slots), options.overwrite,
                               options.keep_stale, data_dir, options.pack, device.type)
        except BaseException:
            runner.stop()  # at once: no worker outlives an interrupted or failed command
            raise
        runner.shutdown()
    except KeyboardInterrupt:
        err.print(
            f"[yellow]Interrupted.[/] Finished {label + ' ' if label else ''}runs are kept in {options.results_dir}; "
            "runs in progress left no result file. Rerun the same command to continue (they resume from their last checkpoints)."
        )
        raise typer.Exit(code=130) from None
