"""What DBA optimises, and how the chosen subset becomes a gradient.

Only "gradient variance" is named by the paper's abstract; everything else here
is our configurable reading of it (see docs/dba-method.md). The config is frozen
and validated on construction so that a bad value fails where it is written,
not deep inside a training step.

`DBAConfig` is the one declaration of DBA's settings: their choices (METRICS,
DIRECTIONS, REDUCTIONS), defaults and limits. The engine takes it as it is; a
run's config (`dba_cli.settings.run.RunConfig.dba`), the recipes and the `dba run`
options and their help text are all derived from it. It is a pydantic
dataclass: validated like every other config model, and still a dataclass.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator
from pydantic.dataclasses import dataclass

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

# A bound on sizes counted in samples: far above any batch, and within the search's compiled integers.
MAX_SAMPLES = 1_000_000

# Metrics built on the variance, where Bessel's correction (m - 1) means something.
VARIANCE_METRICS = ("variance", "mean_variance", "snr")


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
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

    A bad value raises pydantic's ValidationError (a ValueError) naming the field.
    Integers and booleans are strict: True is not a size, 1 is not True.
    """

    metric: Literal[METRICS] = "variance"
    direction: Literal[DIRECTIONS] = "minimize"
    min_size: int = Field(1, ge=1, le=MAX_SAMPLES, strict=True)
    max_removals: int | None = Field(None, ge=0, le=MAX_SAMPLES, strict=True)
    reduction: Literal[REDUCTIONS] = "mean"
    unbiased: bool = Field(False, strict=True)

    @model_validator(mode="after")
    def unbiased_needs_a_variance(self) -> DBAConfig:
        if self.unbiased and self.metric not in VARIANCE_METRICS:
            raise ValueError(
                f"unbiased=True only applies to metrics {', '.join(VARIANCE_METRICS)}; "
                f"metric {self.metric!r} has no variance to correct"
            )
        return self
