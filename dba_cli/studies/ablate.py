"""`dba ablate` as a plan: which reading of DBA works? A full grid of its selection settings.

Every combination of the recipe's `ablation:` lists (metric, direction,
min_size, reduction, base optimizer) trains on the declaration's design seeds
(never a reported one: a grid designed from the ablation stays independent of
what is reported) with a validation split, evaluated at the last epoch. reports/ablation_report.py
ranks the variants by validation accuracy (the test column is reported, never
used to rank).
"""

from __future__ import annotations

import itertools

from ..dba.config import DBAConfig
from ..errors import ConfigError
from ..recipes.planned import PlannedRun, check_grid_size
from ..recipes.protocol import declaration
from ..recipes.recipe import Recipe, make_method
from ..settings.evaluation import FINAL_ONLY
from .candidates import dba_label

GROUP = "ablation"


def ablation_spec(recipe: Recipe):
    return recipe.section("ablation", "listing the metrics, directions, min_sizes, reductions and bases to combine")


def variants(recipe: Recipe) -> dict[str, object]:
    """Every combination of the ablation lists, as recipe methods by label, in grid order."""
    grid = ablation_spec(recipe)
    found = {}
    for base, metric, direction, min_size, reduction in itertools.product(
        grid.base, grid.metric, grid.direction, grid.min_size, grid.reduction
    ):
        settings = DBAConfig(metric=metric, direction=direction, min_size=min_size, reduction=reduction)
        found[dba_label(settings, base)] = make_method(
            method="dba", base=base, lr=grid.lr[base], dba=settings, validation_size=grid.validation_size
        )
    return found


def ablation_runs(recipe: Recipe, smoke: bool = False, seeds: int | None = None) -> list[PlannedRun]:
    grid = ablation_spec(recipe)
    design = declaration().seeds.design.seeds
    count = seeds if seeds is not None else (recipe.smoke.seeds if smoke else len(design))
    if count > len(design):
        raise ConfigError(f"--seeds: {count} is more than the declaration's {len(design)} design seeds "
                          f"({declaration().seeds.design.text()}); the ablation never trains on other seeds.")
    size = len(grid.base) * len(grid.metric) * len(grid.direction) * len(grid.min_size) * len(grid.reduction)
    check_grid_size(size * count, f"the ablation of recipe {recipe.name} ({size} variants x {count} seeds)")
    return [
        PlannedRun(recipe.name, label, "ablation", recipe.config_for(method, seed, smoke, label=f"ablation {label}"),
                   GROUP, evaluation=FINAL_ONLY)
        for label, method in variants(recipe).items()
        for seed in design[:count]
    ]
