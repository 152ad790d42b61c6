"""`dba tune` as a plan: which runs choose every method's setting on a validation split, and how.

The comparison a sceptical reviewer accepts gives every method the same
learning-rate grid (the recipe's `tune:` section states its size and ranges);
DBA additionally searches its selection settings, which can only favour DBA.
Candidates train on tuning seeds disjoint from the reported seeds, so the
reported runs use subsets the choice never saw, and are ranked by final-epoch
validation accuracy (training images outside the subset). The test set is
read only for the final report (reports/tune_report.py).
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

import yaml

from ..recipes.planned import PlannedRun
from ..recipes.recipe import Recipe, make_method, method_settings
from ..settings.evaluation import FINAL_ONLY
from . import candidates
from .candidates import Candidate, Scored

GROUP = "tune"
FAMILIES = ("sgd", "adam", "dba")  # each becomes a `<family>-tuned` method


def tune_spec(recipe: Recipe):
    return recipe.section("tune", "stating the learning-rate ranges and DBA's selection settings to search")


def dba_label(settings, base: str) -> str:
    """A short, readable, unique name for a DBA variant (also its folder name)."""
    label = f"{base}-{settings.metric}-{settings.direction}-min{settings.min_size}-{settings.reduction}"
    if settings.max_removals is not None:
        label += f"-maxrm{settings.max_removals}"
    return label + ("-unbiased" if settings.unbiased else "")


def grid(recipe: Recipe) -> list[Candidate]:
    """Every method's grid, in a fixed order (the order breaks ties)."""
    tune = tune_spec(recipe)
    found = []
    for optimizer in ("sgd", "adam"):
        for lr in tune.lr_grid(optimizer):
            method = make_method("tuned-baseline", method=optimizer, lr=lr, validation_size=tune.validation_size)
            found.append(Candidate(optimizer, f"lr-{lr:g}", method))
    for base in tune.dba_bases:
        for settings in tune.dba_variants:
            for lr in tune.lr_grid(base):
                method = make_method(
                    "tuned", method="dba", base=base, lr=lr, dba=settings, validation_size=tune.validation_size
                )
                found.append(Candidate("dba", f"{dba_label(settings, base)}-lr-{lr:g}", method))
    return found


def tuning_seeds(recipe: Recipe, smoke: bool = False) -> range:
    tune = tune_spec(recipe)
    return range(tune.first_seed, tune.first_seed + (recipe.smoke.seeds if smoke else tune.seeds))


def candidate_runs(recipe: Recipe, smoke: bool = False) -> list[PlannedRun]:
    """The tuning runs: every candidate on every tuning seed, evaluated at the end only."""
    return candidates.candidate_runs(recipe, grid(recipe), tuning_seeds(recipe, smoke), GROUP, FINAL_ONLY, smoke)


def rank(documents: list[dict]) -> tuple:
    """Highest mean final validation accuracy first."""
    values = [d["final_val_accuracy"] for d in documents if d.get("final_val_accuracy") is not None]
    return (-statistics.fmean(values),) if values else (float("inf"),)


def val_accuracies(entry: Scored) -> list[float]:
    return [d["final_val_accuracy"] for d in entry.documents if d.get("final_val_accuracy") is not None]


def score(recipe: Recipe, results_dir: Path, smoke: bool = False) -> list[Scored]:
    """Every candidate with its finished tuning runs, ranked by `rank`."""
    return candidates.score(grid(recipe), candidate_runs(recipe, smoke), results_dir, rank)


def tuned_methods(chosen: dict[str, Scored]) -> dict[str, object]:
    """The chosen settings as recipe methods named `<family>-tuned`."""
    return {f"{family}-tuned": chosen[family].candidate.method for family in FAMILIES if family in chosen}


def tuned_runs(recipe: Recipe, methods: dict[str, object], seeds: int | None = None, smoke: bool = False) -> list[PlannedRun]:
    """The chosen settings on the recipe's reported seeds, evaluated on the recipe's schedule like every paper-table run.

    Where the recipe already holds the same setting under the same name, the
    reruns are the recipe's own runs (`results/RECIPE/NAME/`, shared with
    `dba reproduce`, never trained twice). Where it does not (a new choice,
    e.g. on another machine), they go to `results/tune/RECIPE/reruns/` so
    that tuning never collides with the recipe's results; paste chosen.yaml
    into the recipe to make the choice the recipe's. Each runs as many seeds as the
    recipe plans for that name (`Recipe.seed_count`), unless `seeds` is given.
    """
    runs = []
    for name, method in methods.items():
        group = "" if recipe.same_setting(name, method) else f"{GROUP}/{recipe.name}/reruns"
        for seed in range(seeds if seeds is not None else recipe.seed_count(name, smoke)):
            config = recipe.config_for(method, seed, smoke, label=f"method {name}")
            runs.append(PlannedRun(recipe.name, name, method.role, config, group, evaluation=recipe.evaluation))
    return runs


def recipe_differences(recipe: Recipe, methods: dict[str, object]) -> list[str]:
    """Where the recipe's `<family>-tuned` methods disagree with what tuning chose (missing or different)."""
    missing = [name for name in methods if name not in recipe.methods]
    different = [name for name, method in methods.items() if name in recipe.methods and not recipe.same_setting(name, method)]
    notes = []
    if missing:
        notes.append(f"recipe {recipe.name} has no method {', '.join(missing)} yet")
    if different:
        notes.append(f"recipe {recipe.name}'s {', '.join(different)} differ from the settings tuning chose")
    return notes


def chosen_yaml(recipe: Recipe, methods: dict[str, object], command: str, smoke: bool = False) -> str:
    """A `methods:` snippet to paste into the recipe, saying where its values came from."""
    body = {}
    for name, method in methods.items():
        values = {"role": method.role, **method_settings(method)}
        if "dba" in values:
            values["dba"] = dataclasses.asdict(values["dba"])
        body[name] = values
    seeds = tuning_seeds(recipe, smoke)
    header = (
        f"# Chosen by `{command}` on a validation split (final-epoch validation accuracy,\n"
        f"# tuning seeds {seeds[0]}..{seeds[-1]}); paste under the recipe's `methods:`\n"
        "# (keep any `seeds:` the recipe gives a method: how many seeds it runs is not part of its setting).\n"
    )
    return header + yaml.safe_dump(body, sort_keys=False)
