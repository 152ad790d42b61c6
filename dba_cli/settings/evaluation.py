"""When a run evaluates the test set (and its validation split): the recipe's `evaluation:` schedule.

Evaluation never changes training (no randomness, no state), so the schedule
decides only what a run's history shows and what the run costs. It costs a
lot where the training set is small: on mnist-10-per-class (two batches an
epoch), evaluating the 10,000 test images after each of 300 epochs took 25
times as long as the training (33 s against 1.3 s a run, results/ as committed).
Curves need a few dozen points, not 300: the schedule evaluates every epoch
early (where accuracy moves fast), then evenly spread epochs, and always the
last (the reported number). A run that diverges is also evaluated at the
epoch it stops (training/train.py adds it; no schedule can know it in advance).

Nothing here imports torch: recipes read this module.
"""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from .validation import Int, Strict


class EvaluationSchedule(Strict):
    """A recipe's `evaluation:` section. Omitted, it is this default: every epoch up to 10, about 40 in all.

    Every epoch up to `every_epoch_until`, then every k-th epoch (multiples of k,
    k the whole number that brings the run nearest `points` evaluated epochs),
    and always the last. A run of at most `points` epochs is evaluated every epoch.
    """

    every_epoch_until: Int = Field(10, ge=0)
    points: Int = Field(40, ge=1)

    @field_validator("points")
    @classmethod
    def more_points_than_the_dense_start(cls, points: int, info: ValidationInfo) -> int:
        until = info.data.get("every_epoch_until")
        if until is not None and points <= until:
            raise ValueError(
                f"must be larger than every_epoch_until ({until}), which alone evaluates {until} epochs; "
                "Fix: raise points (a run of at most `points` epochs is evaluated every epoch) "
                "or lower every_epoch_until"
            )
        return points


# The default of a recipe without an `evaluation:` section (see EvaluationSchedule).
DEFAULT_SCHEDULE = EvaluationSchedule()
# The last epoch only: tuning, ablation and protocol runs, which need only final accuracies.
FINAL_ONLY = EvaluationSchedule(every_epoch_until=0, points=1)


def every_epoch(epochs: int) -> EvaluationSchedule:
    """Every epoch of a run of `epochs` epochs: a time to target needs each epoch's accuracy."""
    return EvaluationSchedule(every_epoch_until=0, points=max(1, epochs))


def evaluated_epochs(schedule: EvaluationSchedule, epochs: int) -> tuple[int, ...]:
    """The epochs (1-based, ascending) at which a run of `epochs` epochs is evaluated under `schedule`.

    Why not every epoch: evaluation is pure cost to a run (training never reads
    it) and on a small subset it costs far more than training, while a curve or
    a time-to-target needs a few dozen points. Why these: every epoch at first,
    where accuracy changes fastest; then multiples of one stride, so evaluated
    epochs are round numbers (20, 30, ...) and the same in every run of a
    recipe (seeds line up in figures), leaving out one that falls less than half
    a stride before the end; the last epoch always, because it is the reported
    result. With the default (10, 40): 15 epochs -> all 15; 150 -> 38;
    300 -> 39 (1..10, 20, 30, ..., 300).
    """
    if epochs <= schedule.points:
        return tuple(range(1, epochs + 1))
    dense = min(schedule.every_epoch_until, epochs)
    spread = schedule.points - dense  # >= 1: the recipe loader checks points > every_epoch_until
    stride = max(1, round((epochs - dense) / spread))
    spread_out = range(stride * (dense // stride + 1), epochs + 1, stride)
    # The last epoch is always evaluated; a multiple of the stride less than half a stride before it adds nothing.
    chosen = {*range(1, dense + 1), *(epoch for epoch in spread_out if epochs - epoch >= stride / 2), epochs}
    return tuple(sorted(chosen))
