"""How long a grid of runs has left, from the time its runs have actually taken.

Epochs cost very different amounts: a tuning candidate's epoch without
evaluation trains for milliseconds, an evaluated epoch also runs 10,000 test
images (and a validation split) through the model and costs ten or more times
as much; within one run, the recipe's schedule evaluates some epochs and not
others (settings/evaluation.py). A single "epochs per second" rate over the whole grid
is therefore off by several times. This estimate keeps one measured rate per
*epoch kind* (what makes an epoch cost what it costs: data, method, batch,
width, validation split, and whether the epoch is evaluated) and prices each
remaining epoch at its own kind's rate; a kind not yet seen is priced at the
mean rate of the kinds seen. Which remaining epochs are evaluated comes from
each run's schedule (`PlannedRun.evaluated_epochs`), and which epoch a report
is about from counting the reports of that run.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for annotations only: the progress display needs no recipe machinery
    from ..recipes.planned import PlannedRun


def run_kind(planned: PlannedRun) -> Hashable:
    """What determines the cost of one epoch of a run, apart from whether it is evaluated."""
    config = planned.config
    return (
        config.data, config.method, config.batch_size, config.architecture, tuple(config.hidden), tuple(config.channels),
        config.resample,
        config.validation_size > 0,
    )


class GridEta:
    """Seconds left for a list of runs, from measured seconds per epoch of each epoch kind.

    An epoch kind is (run kind, evaluated or not). Epochs left are also kept
    summed per kind, so the estimate (asked after every epoch, over grids of
    hundreds of runs) costs one step per kind.
    """

    def __init__(self, todo: Iterable[PlannedRun]) -> None:
        todo = list(todo)
        self.kinds = {planned.key: run_kind(planned) for planned in todo}
        self.epochs_of = {planned.key: planned.config.epochs for planned in todo}
        self.evaluated = {planned.key: frozenset(planned.evaluated_epochs) for planned in todo}
        self.done = {planned.key: 0 for planned in todo}  # epochs reported so far (the next is done + 1)
        self.pending: dict[Hashable, int] = {}  # epochs left per epoch kind
        for key in self.kinds:
            self.add_pending(key, +1)
        self.seconds: dict[Hashable, float] = {}
        self.epochs: dict[Hashable, int] = {}

    def add_pending(self, key: str, sign: int) -> None:
        """Add (+1) or remove (-1) the epochs run `key` has left to `pending`, by kind."""
        kind, done, epochs = self.kinds[key], self.done[key], self.epochs_of[key]
        evaluated = sum(1 for epoch in self.evaluated[key] if epoch > done)
        for flag, count in ((True, evaluated), (False, epochs - done - evaluated)):
            self.pending[(kind, flag)] = self.pending.get((kind, flag), 0) + sign * count

    def epoch_done(self, planned: PlannedRun, seconds: float) -> None:
        """The next epoch of `planned` took `seconds` (training and evaluation)."""
        key = planned.key
        if key in self.kinds and self.done[key] < self.epochs_of[key]:
            self.done[key] += 1
            kind = (self.kinds[key], self.done[key] in self.evaluated[key])
            self.pending[kind] -= 1
        else:  # not in the plan, or past its planned epochs: measured, nothing left to count down
            kind = (run_kind(planned), True)
        self.seconds[kind] = self.seconds.get(kind, 0.0) + seconds
        self.epochs[kind] = self.epochs.get(kind, 0) + 1

    def run_ended(self, planned: PlannedRun) -> None:
        """Finished, diverged early, skipped or left to another process: nothing left of it."""
        key = planned.key
        if key in self.kinds and self.done[key] < self.epochs_of[key]:
            self.add_pending(key, -1)
            self.done[key] = self.epochs_of[key]

    def remaining_seconds(self) -> float | None:
        """The estimate, or None until a first epoch has been measured.

        Each kind's epochs left are priced at its measured seconds per epoch; a
        kind not yet seen at the mean rate of the kinds seen.
        """
        rates = {kind: self.seconds[kind] / count for kind, count in self.epochs.items() if count}
        if not rates:
            return None if any(self.pending.values()) else 0.0
        unseen = sum(rates.values()) / len(rates)
        return sum(epochs * rates.get(kind, unseen) for kind, epochs in self.pending.items() if epochs)
