"""What DBA optimises, and how the chosen subset becomes a gradient.

Only "gradient variance" is named by the paper's abstract; everything else here
is our configurable reading of it (see docs/dba-method.md). The config is frozen
and validated on construction so that a bad value fails where it is written,
not deep inside a training step.
"""

from __future__ import annotations

from dataclasses import dataclass

# The subset statistics the search can optimise, all computable from the Gram
# matrix K of the per-sample gradients (formulas in `metrics`).
METRICS = ("variance", "mean_variance", "snr", "mean_norm", "cosine")

# The direction in which each metric means "better gradient". For reference
# only: the search always follows `DBAConfig.direction`, so ablations can flip it.
DEFAULT_DIRECTION = {
    "variance": "minimize",  # per-sample spread: small means the samples agree
    "mean_variance": "minimize",  # noise of the mean gradient as an estimator
    "snr": "maximize",  # signal (squared mean) over noise (variance of the mean)
    "mean_norm": "maximize",  # a long mean gradient: the samples add up
    "cosine": "maximize",  # each sample points along the subset's mean
}

DIRECTIONS = ("minimize", "maximize")
REDUCTIONS = ("mean", "sum_over_batch")

# Metrics built on the variance, where Bessel's correction (m - 1) means something.
VARIANCE_METRICS = ("variance", "mean_variance", "snr")


@dataclass(frozen=True)
class DBAConfig:
    """One DBA variant.

    metric: the subset statistic to optimise, one of METRICS.
    direction: "minimize" or "maximize" the metric.
    min_size: the search never shrinks a layer's subset below this many samples
        (minimising plain variance with no floor collapses to one sample).
    max_removals: at most this many samples removed per layer per step (None: no cap).
    reduction: "mean": the layer gradient is the mean of the kept per-sample
        gradients; "sum_over_batch": their sum divided by the full batch size B,
        so that a smaller subset also takes a smaller step.
    unbiased: Bessel's correction, dividing sums of squared deviations by m - 1
        instead of m, for "variance", "mean_variance" and "snr". A subset of one
        sample then has an undefined variance and is never chosen.
    """

    metric: str = "variance"
    direction: str = "minimize"
    min_size: int = 1
    max_removals: int | None = None
    reduction: str = "mean"
    unbiased: bool = False

    def __post_init__(self) -> None:
        _check_choice("metric", self.metric, METRICS)
        _check_choice("direction", self.direction, DIRECTIONS)
        _check_choice("reduction", self.reduction, REDUCTIONS)
        if not _is_int(self.min_size) or self.min_size < 1:
            raise ValueError(f"min_size must be an integer >= 1, got {self.min_size!r}")
        if self.max_removals is not None and (not _is_int(self.max_removals) or self.max_removals < 0):
            raise ValueError(f"max_removals must be None or an integer >= 0, got {self.max_removals!r}")
        if not isinstance(self.unbiased, bool):
            raise ValueError(f"unbiased must be True or False, got {self.unbiased!r}")
        if self.unbiased and self.metric not in VARIANCE_METRICS:
            raise ValueError(
                f"unbiased=True only applies to metrics {', '.join(VARIANCE_METRICS)}; "
                f"metric {self.metric!r} has no variance to correct"
            )


def _check_choice(field: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{field} must be one of {', '.join(allowed)}; got {value!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
