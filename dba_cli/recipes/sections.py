"""A recipe's study sections: what `dba tune`, `dba converge`, `dba ablate` and `dba protocol` search or vary.

They are settings like any other part of a recipe, validated when it loads;
the studies (studies/) turn them into plans of runs.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, model_validator

from ..dba.config import DIRECTIONS, METRICS, REDUCTIONS, DBAConfig
from ..settings.names import SafeName
from ..settings.run import DEFAULT_LR, OPTIMIZERS, RunConfig
from ..settings.validation import Float, Int, Strict
from .planned import MAX_SEEDS
from .protocol import declaration

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


RETIRED = {  # settings the protocol declaration (dba_cli/protocol.yaml) now fixes for every recipe
    "seeds": "seeds.tuning", "first_seed": "seeds.tuning", "reported_seeds": "seeds.reported",
    "validation_size": "validation", "budget": "budget",
}


def refuse_retired(values: Any, section: str) -> Any:
    """A recipe key that the protocol declaration now decides: one line naming it and where it moved."""
    if isinstance(values, dict):
        for key, moved in RETIRED.items():
            if key in values:
                raise ValueError(
                    f"{key}: is no longer a recipe setting of `{section}:`; the protocol declaration decides it for "
                    f"every recipe (dba_cli/protocol.yaml `{moved}`). Fix: drop `{key}` from the recipe"
                )
    return values


class Search(Strict):
    """A tuning study's search: every family gets the same budget of settings, tried on the same tuning seeds.

    A family (its name becomes the method `<name>-tuned`) is a grid: each axis is
    a list, and every combination of one value per axis is one setting. An axis
    named after a run setting (`lr`, `weight_decay`, `dba`, ...) lists that
    setting's values; an axis with any other name lists mappings of several
    settings at once (`step: [{momentum: 0}, {momentum: 0.9, nesterov: true}]`).
    The protocol declaration (dba_cli/protocol.yaml) adds its shared axes
    (batch size, learning-rate schedule) to every family, and every family's
    grid, shared axes included, must hold exactly its `budget` K settings: the
    comparison a sceptical reviewer accepts gives every method the same number
    of tries on the same axes. The declaration also fixes the tuning seeds, the
    validation and the reported seeds; the `top` best of each family also run on
    the reported seeds, so that a report can show how much the verdict depends on
    which of near-tied settings was chosen.
    """

    top: Int = Field(3, ge=1, le=MAX_TOP)  # per family, the best this many also run on the reported seeds
    families: dict[SafeName, dict[Annotated[str, Field(min_length=1, max_length=64)], Axis]] = Field(min_length=1, max_length=12)

    @model_validator(mode="before")
    @classmethod
    def no_retired_keys(cls, values: Any) -> Any:
        return refuse_retired(values, "tune` or `convergence")

    _recipe: str = PrivateAttr(default="")  # the recipe holding this search: its budget is the declaration's for it

    @model_validator(mode="after")
    def families_leave_the_shared_axes_alone(self) -> Search:
        shared = declaration().shared_axes
        for name, axes in self.families.items():
            clash = [axis for axis, values in axes.items() if axis in shared or axis_sets(values, shared)]
            if clash:
                raise ValueError(
                    f"families: {name}.{clash[0]} sets a shared axis ({', '.join(shared)}), which the protocol declaration "
                    "gives every family alike. Fix: drop it from the family"
                )
        for name, axes in self.families.items():
            for axis, values in axes.items():
                if axis not in SETTING_NAMES and not all(isinstance(value, dict) for value in values):
                    raise ValueError(
                        f"families: {name}.{axis} is not a run setting, so its values must be mappings of settings "
                        "(e.g. {momentum: 0.9, nesterov: true})"
                    )
        return self

    def check_budget(self, recipe: str, section: str) -> None:
        """Bind the search to `recipe` and check that every family holds the declaration's budget for it (ValueError).

        Called by the recipe, which knows its name: the declaration gives the
        recipes of its primary hypotheses one budget and every other recipe
        `secondary_budget` (a smaller K for secondary comparisons, for CPU time).
        """
        self._recipe = recipe
        budget = self.budget
        sizes = {name: grid_size(self.axes(name)) for name in self.families}
        if any(size != budget for size in sizes.values()):
            listed = ", ".join(f"{name} {size}" for name, size in sizes.items())
            raise ValueError(
                f"{section}.families: the families' grids differ from the declared budget of {budget} settings each "
                f"({listed}, the shared axes' {declaration().shared_size()} combinations included), the declaration's K "
                f"for recipe {recipe}; every family must get the same number of settings. Fix: change the lists so that each "
                f"family's product of list lengths is {budget // max(1, declaration().shared_size())}"
            )

    @property
    def budget(self) -> int:
        """K: the declaration's settings per family for this search's recipe."""
        return declaration().budget_for(self._recipe)

    def axes(self, family: str) -> dict[str, list]:
        """A family's axes as the recipe wrote them, then the declaration's shared axes."""
        return {**self.families[family], **declaration().shared_axes}

    def settings(self, family: str, axes: dict[str, list] | None = None) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Every combination of one value per axis of `family`: (its run settings, the settings that vary in the family).

        `axes` replaces the family's axes (the edge rule's extended ones).
        """
        axes = axes or self.axes(family)
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
        """E.g. "48 / 48 / 48 settings per family (sgd, adam, dba); tuning seeds 100–104": each family's grid size, shared axes included."""
        sizes = " / ".join(str(grid_size(self.axes(name))) for name in self.families)
        seeds = declaration().seeds.tuning.text()
        return f"{sizes} settings per family ({', '.join(self.families)}); tuning seeds {seeds}"


def axis_sets(values: list, shared: dict) -> bool:
    """Whether a mapping axis sets a shared axis' setting in any of its mappings."""
    return any(isinstance(value, dict) and set(value) & set(shared) for value in values)


def grid_size(axes: dict[str, list]) -> int:
    size = 1
    for values in axes.values():
        size *= len(values)
    return size


class TuneSpec(Search):
    """`dba tune`: the search (`Search`) that chooses each family's setting by final validation accuracy.

    Candidates are ranked by the declaration's statistic (mean minus k standard
    deviations of the final validation accuracy over the tuning runs), validated
    on folds of the subset (data-scarce recipes) or a held-out split; ties by
    the higher worst run, then by grid order. The test set plays no part in the choice.
    """


class ConvergenceSpec(Search):
    """`dba converge`: steps and seconds to a validation accuracy, every method tuned for that (AlgoPerf style).

    A validation split is held out of the training set; every run has the same
    budget of `epochs`. Candidates (`Search`) are ranked by the median steps to
    the last (hardest) target over the tuning seeds (a run that never reaches it:
    slower than any that does), and the chosen ones run on the reported seeds.
    """

    targets: list[Percent] = Field(min_length=1, max_length=16)  # validation accuracies, %; the last ranks the candidates
    epochs: Int = Field(ge=1, le=100_000)


class AblationSpec(Strict):
    """`dba ablate`: the full grid of these DBA settings, each at its base optimizer's learning rate.

    It trains on the declaration's design seeds, never a reported one.
    """

    validation_size: Int = Field(5000, ge=0)
    lr: dict[Optimizer, Float] = Field(default_factory=lambda: dict(DEFAULT_LR))
    metric: list[Literal[METRICS]] = Field(default_factory=lambda: list(METRICS), min_length=1, max_length=len(METRICS))
    direction: list[Literal[DIRECTIONS]] = Field(default_factory=lambda: list(DIRECTIONS), min_length=1, max_length=2)
    min_size: list[Annotated[Int, Field(ge=1, le=1_000_000)]] = Field(default_factory=lambda: [1], min_length=1, max_length=32)
    reduction: list[Literal[REDUCTIONS]] = Field(default_factory=lambda: list(REDUCTIONS), min_length=1, max_length=2)
    base: list[Optimizer] = Field(default_factory=lambda: ["sgd", "adam"], min_length=1, max_length=len(OPTIMIZERS))


class ProtocolSpec(Strict):
    """`dba protocol`: diagnostics of how protocol choices move the tuned methods' accuracy (on the design seeds)."""

    methods: list[SafeName] = Field(default_factory=lambda: ["sgd-tuned", "adam-tuned", "dba-tuned"], min_length=1, max_length=64)
    widths: list[Annotated[Int, Field(ge=1, le=65536)]] = Field(default_factory=lambda: [128, 1024], max_length=16)
