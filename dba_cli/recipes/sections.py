"""A recipe's study sections: what `dba tune`, `dba converge`, `dba ablate` and `dba protocol` search or vary.

They are settings like any other part of a recipe, validated when it loads;
the studies (studies/) turn them into plans of runs.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from ..dba.config import DIRECTIONS, METRICS, REDUCTIONS, DBAConfig
from ..settings.names import SafeName
from ..settings.run import DEFAULT_LR, OPTIMIZERS, RunConfig
from ..settings.validation import Float, Int, Strict
from .planned import MAX_SEEDS

Optimizer = Literal[OPTIMIZERS]
Seeds = Annotated[Int, Field(ge=1, le=MAX_SEEDS)]
MAX_BUDGET = 1000  # settings per family in a search
MAX_TOP = 10
Axis = Annotated[list[Any], Field(min_length=1, max_length=100)]
SETTING_NAMES = frozenset(name for name in RunConfig.model_fields if name != "seed")  # an axis that lists one setting
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


class Search(Strict):
    """A tuning study's search: every family gets the same budget of settings, tried on the same tuning seeds.

    A family (its name becomes the method `<name>-tuned`) is a grid: each axis is
    a list, and every combination of one value per axis is one setting. An axis
    named after a run setting (`lr`, `weight_decay`, `batch_size`, `dba`, ...)
    lists that setting's values; an axis with any other name lists mappings of
    several settings at once (`step: [{momentum: 0}, {momentum: 0.9, nesterov: true}]`).
    Every family's grid must hold exactly `budget` settings: the comparison a
    sceptical reviewer accepts gives every method the same number of tries.
    Candidates train on the tuning seeds `first_seed`, `first_seed + 1`, ...,
    disjoint from the reported seeds 0..N-1; the `top` best of each family also
    run on the reported seeds, so that a report can show how much the verdict
    depends on which of near-tied settings was chosen.
    """

    validation_size: Int = Field(5000, ge=1)
    seeds: Int = Field(3, ge=1, le=MAX_SEEDS)  # tuning seeds
    first_seed: Int = Field(100, ge=0, le=2**31 - 1 - MAX_SEEDS)
    budget: Int = Field(ge=1, le=MAX_BUDGET)  # settings per family
    top: Int = Field(3, ge=1, le=MAX_TOP)  # per family, the best this many also run on the reported seeds
    families: dict[SafeName, dict[Annotated[str, Field(min_length=1, max_length=64)], Axis]] = Field(min_length=1, max_length=8)

    @model_validator(mode="after")
    def every_family_has_the_budget(self) -> Search:
        sizes = {name: grid_size(axes) for name, axes in self.families.items()}
        if any(size != self.budget for size in sizes.values()):
            listed = ", ".join(f"{name} {size}" for name, size in sizes.items())
            raise ValueError(
                f"budget: the families' grids differ from the budget of {self.budget} settings each ({listed}); "
                "every family must get the same number of settings. Fix: change the lists so that each family's "
                f"product of list lengths is {self.budget}"
            )
        for name, axes in self.families.items():
            for axis, values in axes.items():
                if axis not in SETTING_NAMES and not all(isinstance(value, dict) for value in values):
                    raise ValueError(
                        f"families: {name}.{axis} is not a run setting, so its values must be mappings of settings "
                        "(e.g. {momentum: 0.9, nesterov: true})"
                    )
        return self

    def settings(self, family: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Every combination of one value per axis of `family`: (its run settings, the settings that vary in the family)."""
        axes = self.families[family]
        expanded = [[(axis, value) for value in values] for axis, values in axes.items()]
        found = []
        for combination in itertools.product(*expanded):
            settings: dict[str, Any] = {}
            varying: dict[str, Any] = {}
            for axis, value in combination:
                values = {axis: value} if axis in SETTING_NAMES else dict(value)
                settings.update(values)
                if len(axes[axis]) > 1:
                    varying.update(values)
            found.append((settings, varying))
        return found

    def budget_text(self) -> str:
        """"36 / 36 / 36 settings per family (sgd, adam, dba); tuning seeds 100–102"."""
        sizes = " / ".join(str(grid_size(axes)) for axes in self.families.values())
        seeds = f"{self.first_seed}–{self.first_seed + self.seeds - 1}" if self.seeds > 1 else str(self.first_seed)
        return f"{sizes} settings per family ({', '.join(self.families)}); tuning seeds {seeds}"


def grid_size(axes: dict[str, list]) -> int:
    size = 1
    for values in axes.values():
        size *= len(values)
    return size


class TuneSpec(Search):
    """`dba tune`: the search (`Search`) that chooses each family's setting by final validation accuracy.

    Candidates are ranked by their mean final-epoch accuracy on the validation
    split (training images outside the subset) over the tuning seeds; ties by
    the higher worst seed, then by grid order. The test set plays no part in the choice.
    """

    seeds: Int = Field(3, ge=3, le=MAX_SEEDS)  # at least 3 tuning seeds: the mean over them decides


class ConvergenceSpec(Search):
    """`dba converge`: steps and seconds to a validation accuracy, every method tuned for that (AlgoPerf style).

    A validation split is held out of the training set; every run has the same
    budget of `epochs`. Candidates (`Search`) are ranked by the median steps to
    the last (hardest) target over the tuning seeds (a run that never reaches it:
    slower than any that does), and the chosen ones run on the reported seeds.
    """

    targets: list[Percent] = Field(min_length=1, max_length=16)  # validation accuracies, %; the last ranks the candidates
    epochs: Int = Field(ge=1, le=100_000)
    reported_seeds: Int = Field(10, ge=2, le=MAX_SEEDS)  # seeds 0..N-1 of the reported runs (paired by seed)
    seeds: Int = Field(3, ge=1, le=MAX_SEEDS)  # tuning seeds


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
