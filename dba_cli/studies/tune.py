"""`dba tune` as a plan: which runs choose every method's setting on a validation split, and how.

The comparison a sceptical reviewer accepts gives every method family the same
budget of settings (the recipe's `tune:` section, recipes/sections.py Search:
SGD over learning rate, momentum, weight decay and batch size; Adam and AdamW
over learning rate, weight decay and batch size; DBA over learning rate, base
optimizer and selection rule). Candidates train on at least three tuning
seeds, disjoint from the reported seeds, so the reported runs use subsets the
choice never saw, and are ranked by their mean final-epoch validation
accuracy (training images outside the subset); ties go to the higher worst
seed, then to grid order. The test set is read only for the report
(reports/tune_report.py). The best `top` settings of each family also run on
the reported seeds: the report shows how much the headline moves between them.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path

import yaml

from ..recipes.planned import PlannedRun
from ..recipes.recipe import Recipe, method_settings
from ..settings.evaluation import FINAL_ONLY
from . import candidates
from .candidates import Candidate, Scored, ranked

GROUP = "tune"


def tune_spec(recipe: Recipe):
    return recipe.section("tune", "stating every family's grid of settings and their common budget")


def grid(recipe: Recipe) -> list[Candidate]:
    """Every family's grid, in the recipe's order (the order breaks ties)."""
    return candidates.search_grid(tune_spec(recipe))


def families(recipe: Recipe) -> list[str]:
    return list(tune_spec(recipe).families)


def tuning_seeds(recipe: Recipe, smoke: bool = False) -> range:
    tune = tune_spec(recipe)
    return range(tune.first_seed, tune.first_seed + (recipe.smoke.seeds if smoke else tune.seeds))


def candidate_runs(recipe: Recipe, smoke: bool = False) -> list[PlannedRun]:
    """The tuning runs: every candidate on every tuning seed, evaluated at the end only."""
    return candidates.candidate_runs(recipe, grid(recipe), tuning_seeds(recipe, smoke), GROUP, FINAL_ONLY, smoke)


def val_accuracies(entry: Scored) -> list[float]:
    return [d["final_val_accuracy"] for d in entry.documents if d.get("final_val_accuracy") is not None]


def rank(documents: list[dict]) -> tuple:
    """Highest mean final validation accuracy first; on a tie, the higher worst seed."""
    values = [d["final_val_accuracy"] for d in documents if d.get("final_val_accuracy") is not None]
    if not values:
        return (math.inf, math.inf)
    return (-round(statistics.fmean(values), 6), -min(values))


def score(recipe: Recipe, results_dir: Path, smoke: bool = False) -> list[Scored]:
    """Every candidate with its finished tuning runs, ranked by `rank`."""
    return candidates.score(grid(recipe), candidate_runs(recipe, smoke), results_dir, rank)


def tuned_methods(chosen: dict[str, Scored]) -> dict[str, object]:
    """The chosen settings as recipe methods named `<family>-tuned`."""
    return {f"{family}-tuned": entry.candidate.method for family, entry in chosen.items()}


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


def runner_up_runs(recipe: Recipe, scored: list[Scored], smoke: bool = False) -> list[PlannedRun]:
    """Each family's 2nd to `top`-th best settings on the reported seeds, final accuracy only (the sensitivity).

    The best is the tuned method itself (`tuned_runs`); together they show how
    the headline moves when a near-tied setting had won instead.
    """
    top = tune_spec(recipe).top
    runs = []
    for family, entries in ranked(scored).items():
        for rank_number, entry in enumerate(entries[1:top], start=2):
            name = f"{family}-top{rank_number}"
            method = entry.candidate.method
            for seed in range(recipe.seed_count(f"{family}-tuned", smoke)):
                config = recipe.config_for(method, seed, smoke, label=f"tune {name}")
                runs.append(PlannedRun(recipe.name, name, method.role, config, f"{GROUP}/{recipe.name}/top", evaluation=FINAL_ONLY))
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
        if "dba" in values and not isinstance(values["dba"], dict):
            values["dba"] = dataclasses.asdict(values["dba"])
        body[name] = values
    seeds = tuning_seeds(recipe, smoke)
    header = (
        f"# Chosen by `{command}` on a validation split (mean final-epoch validation accuracy over\n"
        f"# tuning seeds {seeds[0]}..{seeds[-1]}; {tune_spec(recipe).budget_text()}); paste under the recipe's `methods:`\n"
        "# (keep any `seeds:` the recipe gives a method: how many seeds it runs is not part of its setting).\n"
    )
    return header + yaml.safe_dump(body, sort_keys=False)
