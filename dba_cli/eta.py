"""How long a grid of runs has left, from the time its runs have actually taken.

Runs in one grid cost very different amounts per epoch: a tuning candidate
evaluated at its last epoch only trains for milliseconds per epoch, a paper-
table run evaluates 10,000 test images (and a validation split) after every
epoch and costs ten times more. A single "epochs per second" rate over the
whole grid is therefore off by several times. This estimate keeps one measured
rate per *run kind* (what makes an epoch cost what it costs: data, method,
batch, width, evaluation schedule) and prices each remaining epoch at its own
kind's rate; a kind not yet seen is priced at the mean rate of the kinds seen.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for annotations only: the progress display needs no recipe machinery
    from .recipes import PlannedRun


def run_kind(planned: PlannedRun) -> Hashable:
    """What determines the cost of one epoch of a run."""
    config = planned.config
    return (
        config.data, config.method, config.batch_size, tuple(config.hidden), config.resample,
        planned.eval_every_epoch, config.validation_size > 0,
    )


class GridEta:
    """Seconds left for a list of runs, from measured seconds per epoch of each run kind.

    Epochs left are also kept summed per kind, so the estimate (asked after
    every epoch, over grids of hundreds of runs) costs one step per kind.
    """

    def __init__(self, todo: Iterable[PlannedRun]) -> None:
        self.kinds = {planned.key: run_kind(planned) for planned in todo}
        self.left = {planned.key: planned.config.epochs for planned in todo}
        self.pending: dict[Hashable, int] = {}  # epochs left per kind: the sum of `left` over its runs
        for key, kind in self.kinds.items():
            self.pending[kind] = self.pending.get(kind, 0) + self.left[key]
        self.seconds: dict[Hashable, float] = {}
        self.epochs: dict[Hashable, int] = {}

    def epoch_done(self, planned: PlannedRun, seconds: float) -> None:
        """One epoch of `planned` took `seconds` (training and evaluation)."""
        kind = self.kinds.get(planned.key, run_kind(planned))
        self.seconds[kind] = self.seconds.get(kind, 0.0) + seconds
        self.epochs[kind] = self.epochs.get(kind, 0) + 1
        if self.left.get(planned.key):
            self.left[planned.key] -= 1
            self.pending[kind] -= 1

    def run_ended(self, planned: PlannedRun) -> None:
        """Finished, diverged early, skipped or left to another process: nothing left of it."""
        if self.left.get(planned.key):
            self.pending[self.kinds[planned.key]] -= self.left[planned.key]
        self.left[planned.key] = 0

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
