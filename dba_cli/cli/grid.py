"""Running grids from the command line: one executor per command, with its device, threads, runner and progress.

Every grid command (reproduce, tune, ablate, protocol, converge) plans with a
study, then executes inside `executing(...)`: the device and thread count are
set, the data sets the runs need are loaded and verified (a missing one is
one line before anything trains), the runner is this process (--jobs 1), a
local worker pool, or a Ray cluster (--ray), and the progress display shows
every grid of the command. Ctrl-C or SIGTERM stops every worker at once and
says what was kept (exit 130).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import typer

from .display import RichReporter, err, make_progress
from .options import GridOptions


def make_runner(options: GridOptions, device):
    """--ray: a Ray cluster; else --jobs local workers (default: cores / threads), or this process for one job."""
    from ..run.runners import InProcessRunner, PoolRunner, default_jobs, oversubscription_note

    data_dir = None if options.data_dir is None else str(options.data_dir)
    if options.ray:
        from ..run.ray_runner import RayRunner

        return RayRunner(options.ray, options.threads, device, options.jobs)
    jobs = options.jobs or default_jobs(options.threads)
    note = oversubscription_note(jobs, options.threads)
    if note:
        err.print(f"[cyan]note:[/] {note}", highlight=False)
    if jobs == 1:
        return InProcessRunner(device, data_dir)
    return PoolRunner(jobs, options.threads, device, data_dir)


@contextmanager
def executing(options: GridOptions, datasets: Iterable[str], label: str = "") -> Iterator:
    """An Executor (run/execute.py) for this command's grids; see the module docstring."""
    from ..run.execute import Executor
    from ..run.runners import loaded_dataset
    from ..training.devices import resolve_device, set_threads

    device = resolve_device(options.device)
    set_threads(options.threads)
    data_dir = None if options.data_dir is None else str(options.data_dir)
    for name in sorted(set(datasets)):
        loaded_dataset(name, data_dir)  # verified here, before anything trains
    runner = make_runner(options, device)
    try:
        try:
            with make_progress() as progress:
                yield Executor(options.results_dir, runner, RichReporter(progress, runner.slots), options.overwrite,
                               options.keep_stale, data_dir)
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
