"""A recipe's study sections: what `dba tune`, `dba converge`, `dba ablate` and `dba protocol` search or vary.

They are settings like any other part of a recipe, validated when it loads;
the studies (studies/) turn them into plans of runs.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ..dba.config import DIRECTIONS, METRICS, REDUCTIONS, DBAConfig
from ..errors import ConfigError
from ..settings.names import SafeName
from ..settings.run import DEFAULT_LR, OPTIMIZERS
from ..settings.validation import Float, Int, Strict
from .planned import MAX_SEEDS

Optimizer = Literal[OPTIMIZERS]
Seeds = Annotated[Int, Field(ge=1, le=MAX_SEEDS)]
MAX_POINTS = 100  # learning rates in a grid
MAX_VARIANTS = 64  # DBA selection settings in a grid
Range = Annotated[list[Float], Field(min_length=2, max_length=2)]
Percent = Annotated[Float, Field(ge=0, le=100)]


class Claim(Strict):
    """What the paper claims for this setting (numbers in %)."""

    dba_accuracy: Float | None = None
    error_reduction: Float | None = None
    implied_baseline_accuracy: Float | None = None
    convergence: str | None = None


class SmokeSpec(Strict):
    """The `--smoke` shrink: a fast end-to-end check, never a result."""

    epochs: Int = Field(2, ge=1, le=1000)
    seeds: Seeds = 1


def check_ranges(ranges: dict[str, list[float]]) -> None:
    """Every learning-rate range is [low, high] with 0 < low <= high (a pydantic validator's ValueError otherwise)."""
    for name, (low, high) in ranges.items():
        if not 0 < low <= high:
            raise ValueError(f"lr_range.{name}: need 0 < low <= high, got [{low}, {high}]")


def log_grid(ranges: dict[str, list[float]], name: str, points: int, section: str) -> list[float]:
    """`points` log-spaced learning rates from `ranges[name]`, ends included (4 significant digits)."""
    if name not in ranges:
        raise ConfigError(f"{section}.lr_range has no range for {name}; add e.g. `{name}: [0.001, 0.1]`.")
    low, high = ranges[name]
    if points == 1:
        return [low]
    ratio = (high / low) ** (1 / (points - 1))
    return [float(f"{low * ratio**i:.4g}") for i in range(points)]


class TuneSpec(Strict):
    """`dba tune`: every method gets the same log-spaced learning-rate grid size; DBA also searches its selection.

    Candidates train on tuning seeds (`first_seed`, `first_seed + 1`, ...), disjoint
    from the reported seeds 0..N-1, and are compared by final validation accuracy
    averaged over those seeds. The test set plays no part in the choice.
    """

    validation_size: Int = Field(5000, ge=1)
    seeds: Seeds = 2
    first_seed: Int = Field(100, ge=0, le=2**31 - 1 - MAX_SEEDS)
    lr_points: Int = Field(5, ge=1, le=MAX_POINTS)
    lr_range: dict[Optimizer, Range]
    dba_bases: list[Optimizer] = Field(default_factory=lambda: ["sgd"], min_length=1, max_length=len(OPTIMIZERS))
    dba_variants: list[DBAConfig] = Field(default_factory=lambda: [DBAConfig()], min_length=1, max_length=MAX_VARIANTS)

    @model_validator(mode="after")
    def ranges_are_ordered(self) -> TuneSpec:
        check_ranges(self.lr_range)
        return self

    def lr_grid(self, optimizer: str) -> list[float]:
        """`lr_points` log-spaced learning rates from the optimizer's range, ends included."""
        return log_grid(self.lr_range, optimizer, self.lr_points, "tune")


class ConvergenceSpec(Strict):
    """`dba converge`: steps and seconds to a validation accuracy, every method tuned for that (AlgoPerf style).

    A validation split is held out of the training set; every run has the same
    budget of `epochs`. Each family (SGD, SGD with momentum, Adam, DBA over
    each base with each selection setting) gets `lr_points` learning rates from
    its range; candidates train on tuning seeds and are ranked by median steps
    to the last (hardest) target, then are rerun on the reported seeds.
    """

    validation_size: Int = Field(5000, ge=1)
    targets: list[Percent] = Field(min_length=1, max_length=16)  # validation accuracies, %; the last ranks the candidates
    epochs: Int = Field(ge=1, le=100_000)
    seeds: Int = Field(5, ge=2, le=MAX_SEEDS)  # reported seeds 0..N-1: at least 2 for a paired interval
    tuning_seeds: Seeds = 2
    first_seed: Int = Field(100, ge=0, le=2**31 - 1 - MAX_SEEDS)
    lr_points: Int = Field(4, ge=1, le=MAX_POINTS)
    lr_range: dict[Literal["sgd", "sgd-momentum", "adam"], Range]
    momentum: Float = Field(0.9, gt=0, lt=1)
    dba_bases: list[Optimizer] = Field(default_factory=lambda: ["sgd", "adam"], min_length=1, max_length=len(OPTIMIZERS))
    dba_variants: list[DBAConfig] = Field(min_length=1, max_length=MAX_VARIANTS)

    @model_validator(mode="after")
    def ranges_are_ordered(self) -> ConvergenceSpec:
        check_ranges(self.lr_range)
        return self

    def lr_grid(self, name: str) -> list[float]:
        return log_grid(self.lr_range, name, self.lr_points, "convergence")


class AblationSpec(Strict):
    """`dba ablate`: the full grid of these DBA settings, each at its base optimizer's learning rate."""

    seeds: Seeds = 3
    validation_size: Int = Field(5000, ge=0)
    lr: dict[Optimizer, Float] = Field(default_factory=lambda: dict(DEFAULT_LR))
    metric: list[Literal[METRICS]] = Field(default_factory=lambda: list(METRICS), min_length=1, max_length=len(METRICS))
    direction: list[Literal[DIRECTIONS]] = Field(default_factory=lambda: list(DIRECTIONS), min_length=1, max_length=2)
    min_size: list[Annotated[Int, Field(ge=1, le=1_000_000)]] = Field(default_factory=lambda: [1], min_length=1, max_length=32)
    reduction: list[Literal[REDUCTIONS]] = Field(default_factory=lambda: list(REDUCTIONS), min_length=1, max_length=2)
    base: list[Optimizer] = Field(default_factory=lambda: ["sgd", "adam"], min_length=1, max_length=len(OPTIMIZERS))


class ProtocolSpec(Strict):
    """`dba protocol`: diagnostics of how protocol choices move the tuned methods' accuracy."""

    methods: list[SafeName] = Field(default_factory=lambda: ["sgd-tuned", "adam-tuned", "dba-tuned"], min_length=1, max_length=64)
    seeds: Seeds = 3
    widths: list[Annotated[Int, Field(ge=1, le=65536)]] = Field(default_factory=lambda: [128, 1024], max_length=16)
