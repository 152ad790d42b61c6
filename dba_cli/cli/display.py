"""What the user sees while runs train: Rich progress bars and one line per event, on stderr.

stdout stays clean for `--json` and tables. The console never wraps a line
(`soft_wrap`): messages name files, and a path broken across two lines is a
broken path for whoever copies it.
"""

from __future__ import annotations

import time
from collections import Counter

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
from rich.table import Column
from rich.text import Text

from ..errors import printable
from .eta import GridEta


class SafeConsole(Console):
    """A console that never passes a control character of its text on to the terminal (errors.printable).

    Every message goes through here, and many quote input (paths, keys, names read
    from files); Rich's own drawing (progress bars, colours) is not text and is untouched.
    """

    def print(self, *objects, **options) -> None:
        super().print(*(printable(item) if isinstance(item, str) else item for item in objects), **options)


err = SafeConsole(stderr=True, soft_wrap=True)


def clock(seconds: float | None) -> str:
    """A duration as people read it: 45s, 12m05s, 3h02m; '?' when unknown."""
    if seconds is None:
        return "?"
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class TimeColumn(ProgressColumn):
    """Elapsed, and time left: the task's own `left` field where the caller estimates it, else Rich's rate-based one."""

    max_refresh = 0.5

    def render(self, task: Task) -> Text:
        elapsed = clock(task.finished_time if task.finished else task.elapsed)
        if task.finished:
            return Text(elapsed, style="progress.elapsed")
        left = task.fields["left"] if "left" in task.fields else task.time_remaining
        return Text(f"{elapsed}, ~{clock(left)} left", style="progress.remaining")


def make_progress() -> Progress:
    """Bars on stderr, one line each however narrow the terminal (80 columns and up).

    The description takes what room is left and is cut with '…' when needed;
    the bar, the counts, the status and the times keep their widths.
    """
    return Progress(
        TextColumn("{task.description}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis", min_width=8)),
        BarColumn(bar_width=10),
        TextColumn("{task.completed:.0f}/{task.total:.0f} {task.fields[unit]}", table_column=Column(no_wrap=True)),
        TextColumn("{task.fields[status]}", table_column=Column(no_wrap=True)),
        TimeColumn(table_column=Column(no_wrap=True)),
        console=err,
        transient=False,
        expand=True,
    )


def run_label(planned) -> str:
    return f"{planned.recipe} {planned.method_name} seed {planned.config.seed}"


def bar_label(planned) -> str:
    """A run's bar: the seed first, so that cutting a long method name for a narrow terminal keeps it."""
    return f"seed {planned.config.seed} {planned.method_name} ({planned.recipe})"


def seconds_text(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds >= 1 else f"{seconds:.2f} s"


def is_diverged(document: dict) -> bool:
    return document.get("diverged_at_epoch") is not None


def outcome_text(document: dict, wall_seconds: float | None) -> str:
    """'88.34% in 10.2 s (1.3 s training)', or the divergence, said first.

    A run resumed from a checkpoint trained part of its epochs in an earlier
    sitting: its training time can exceed this sitting's wall time, and the
    text says so rather than show a wall time shorter than the training.
    """
    accuracy = document["final_test_accuracy"]
    training = document["train_seconds"]
    timing = f"{seconds_text(training)} training"
    if wall_seconds is not None and wall_seconds >= training:
        timing = f"in {seconds_text(wall_seconds)} ({timing})"
    elif wall_seconds is not None:
        timing = f"in {seconds_text(wall_seconds)} this sitting ({timing} in all: resumed from a checkpoint)"
    diverged = document.get("diverged_at_epoch")
    if diverged is not None:
        return (
            f"DIVERGED at epoch {diverged} (training loss not finite; try a smaller learning rate); "
            f"test accuracy then {accuracy:.2f}%, {timing}"
        )
    return f"{accuracy:.2f}% {timing}"


class RichReporter:
    """Shows a grid of runs: one bar over all epochs of all runs, one per active run.

    The overall bar's time left comes from `GridEta` (measured seconds per epoch
    of each run kind), not from an average over epochs of different cost.
    """

    def __init__(self, progress: Progress, slots: int = 1) -> None:
        self.progress = progress
        self.slots = slots  # runs trained at once: the time left is the work left shared among them
        self.overall = None
        self.current: dict[str, object] = {}
        self.started: dict[str, float] = {}
        self.eta = GridEta([])
        self.runs_left = 0

    def plan(self, todo, skipped, damaged) -> None:
        for path, why in damaged.items():
            err.print(f"[yellow]warning:[/] {escape(str(path))} is damaged or incomplete ({escape(why)}); that run will be redone.",
                      highlight=False)
        if skipped:
            err.print(f"{len(skipped)} run(s) already finished, skipped.")
        self.eta = GridEta(todo)
        self.runs_left = len(todo)
        if not todo:  # nothing to train: no bar (an empty one would read "1/1 ep")
            return
        total = sum(planned.config.epochs for planned in todo)
        self.overall = self.progress.add_task(f"all: {len(todo)} run(s)", total=total, status="", unit="ep", left=None)

    def note(self, text: str) -> None:
        err.print(f"[cyan]note:[/] {escape(text)}", highlight=False)

    def stale(self, stale: dict, kept: bool) -> None:
        """How many finished runs are not current, grouped by why; rerun, or kept (--keep-stale)."""
        listed = "; ".join(f"{count} {why}" for why, count in Counter(stale.values()).items())
        action = "kept as they are (--keep-stale)" if kept else "rerunning them (--keep-stale keeps them)"
        err.print(f"[yellow]stale:[/] {len(stale)} finished run(s) are not current ({escape(listed)}); {action}.", highlight=False)

    def run_started(self, planned) -> None:
        retried = self.remove_bar(planned)  # a rerun after its worker died: its bar starts again
        if retried:
            self.progress.update(self.overall, advance=-retried)
        self.started[planned.key] = time.perf_counter()
        self.current[planned.key] = self.progress.add_task(
            bar_label(planned), total=planned.config.epochs, status="", unit="ep"
        )

    def epoch_done(self, planned, record) -> None:
        if planned.key not in self.current:  # a worker's last epoch arriving after its run was written
            return
        status = f"loss {record.train_loss:.3g}" if record.test_accuracy is None else f"acc {record.test_accuracy:.2f}%"
        self.eta.epoch_done(planned, record.train_seconds + record.eval_seconds)
        self.progress.update(self.current[planned.key], advance=1, status=status)
        self.progress.update(self.overall, advance=1, left=self.left())

    def left(self) -> float | None:
        """Seconds left: the work left, shared among the runs that train at once (as many as there are slots and runs)."""
        remaining = self.eta.remaining_seconds()
        return None if remaining is None else remaining / max(1, min(self.slots, self.runs_left))

    def remove_bar(self, planned) -> float:
        """Remove the run's own bar, if it has one; the epochs it had counted."""
        task = self.current.pop(planned.key, None)
        if task is None:
            return 0
        done = self.progress.tasks[self.progress.task_ids.index(task)].completed
        self.progress.remove_task(task)
        return done

    def end(self, planned) -> None:
        """A run leaves the grid: its bar goes, the overall bar counts all its epochs as done."""
        done = self.remove_bar(planned)
        self.eta.run_ended(planned)
        self.runs_left = max(0, self.runs_left - 1)
        self.progress.update(self.overall, advance=planned.config.epochs - done, left=self.left())

    def run_busy(self, planned) -> None:
        """Not counted as done: a grid that waits for busy runs comes back to it."""
        err.print(f"busy: {run_label(planned)} is being trained by another dba process; left to it.")

    def run_resuming(self, planned) -> None:
        err.print(f"resuming: {run_label(planned)} from its last checkpoint.")

    def run_skipped(self, planned) -> None:
        self.end(planned)
        err.print(f"skipped: {run_label(planned)} was finished by another dba process.")

    def run_failed(self, planned, summary: str, traceback_path) -> None:
        self.started.pop(planned.key, None)
        self.end(planned)
        err.print(
            f"[bold red]failed:[/] {run_label(planned)}: {escape(summary)} (traceback: {escape(str(traceback_path))}); "
            "the other runs go on.", highlight=False,
        )

    def run_finished(self, planned, document) -> None:
        wall = time.perf_counter() - self.started.pop(planned.key, time.perf_counter())
        self.end(planned)  # a diverged run stops early: its other epochs are done too
        style = "[bold red]" if is_diverged(document) else ""
        err.print(f"{style}done:{'[/]' if style else ''} {run_label(planned)}: {outcome_text(document, wall)}", highlight=False)
