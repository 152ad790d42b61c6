"""`dba tune` as a plan: which runs choose every method's setting, validated inside the rules of the declaration.

The comparison a sceptical reviewer accepts gives every method family the same
budget K of settings on the same shared axes (batch size, learning-rate
schedule: the protocol declaration, dba_cli/protocol.yaml, recipes/sections.py
Search): SGD over learning rate, momentum and weight decay; Adam and AdamW
over learning rate and weight decay; DBA over its base optimizer's own
settings and its selection rule. Candidates train on the declaration's tuning
seeds, disjoint from the design and reported seeds, and are validated without
the test set: for a data-scarce recipe, on a fold of its own subset (k-fold
cross-validation inside the training subset, tuning seed j holding out fold
j mod k), so a method never sees a labelled image beyond the subset; for a
full recipe, and as the declared sensitivity variant of a scarce one
(`--validation holdout`), on images held out of the training set. Candidates
are ranked by the declaration's statistic, the mean minus k standard
deviations of their final validation accuracies (a run without one scores 0):
a setting that fails on one tuning seed loses to a steady one. The edge rule
extends a family's numeric lines where its best sits at an end. The test set
is read only for the report (reports/tune_report.py). The best `top` settings
of each family then run on the reported seeds.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path

import yaml

from ..recipes.planned import PlannedRun
from ..recipes.protocol import declaration
from ..recipes.recipe import Recipe, method_settings
from ..settings.evaluation import FINAL_ONLY
from . import candidates
from .candidates import Candidate, Extended, Scored, ranked

GROUP = "tune"
VARIANTS = ("folds", "holdout")


def tune_spec(recipe: Recipe):
    return recipe.section("tune", "stating every family's grid of settings")


def scarce(recipe: Recipe) -> bool:
    """Whether the recipe trains on fewer images than the declaration's `validation.scarce_below` (not `full`)."""
    size = recipe.defaults.subset_size
    return size is not None and size < declaration().validation.scarce_below


def validation_of(recipe: Recipe, variant: str | None = None) -> str:
    """How this recipe's candidates are validated: the declaration's primary (folds) for a scarce recipe, else holdout.

    `variant` "holdout" on a scarce recipe is the declared sensitivity variant.
    """
    if not scarce(recipe):
        return "holdout"
    return variant or declaration().validation.primary


def group(recipe: Recipe, variant: str | None = None) -> str:
    """Where the tuning study files its runs: tune/, or tune-holdout/ for a scarce recipe's sensitivity variant."""
    return GROUP if validation_of(recipe, variant) == validation_of(recipe) else f"{GROUP}-{validation_of(recipe, variant)}"


def method_extras(recipe: Recipe) -> dict:
    """What every candidate method of a recipe carries: a full recipe keeps its held-out split in the reruns too."""
    return {} if scarce(recipe) else {"validation_size": declaration().validation.holdout_size}


def per_seed(recipe: Recipe, variant: str | None = None):
    """The j-th tuning run's validation: fold j mod k of its subset, or the held-out split."""
    if validation_of(recipe, variant) == "folds":
        folds = declaration().validation.folds
        return lambda index: {"folds": folds, "fold": index % folds}
    size = declaration().validation.holdout_size
    return lambda index: {"validation_size": size}


def base_grid(recipe: Recipe) -> list[Candidate]:
    """Every family's declared grid (before the edge rule), in the recipe's order (the order breaks ties)."""
    return candidates.search_grid(tune_spec(recipe), **method_extras(recipe))


def families(recipe: Recipe) -> list[str]:
    return list(tune_spec(recipe).families)


def with_families(recipe: Recipe, names) -> Recipe:
    """The recipe with only these tuning families: the same candidates and choices for them (each family's edge
    rule and ranking are its own), found without planning or reading the others."""
    own = {name: axes for name, axes in tune_spec(recipe).families.items() if name in names}
    return recipe.model_copy(update={"tune": tune_spec(recipe).model_copy(update={"families": own})})


def family_roles(recipe: Recipe) -> dict[str, str]:
    """Each tuning family's role when chosen (tuned, tuned-baseline, tuned-peer), from its declared grid."""
    return {candidate.family: candidate.method.role for candidate in base_grid(recipe)}


def tuning_seeds(recipe: Recipe, smoke: bool = False) -> range:
    seeds = declaration().seeds.tuning
    return range(seeds.first, seeds.first + (recipe.smoke.seeds if smoke else seeds.count))


def runs_of(recipe: Recipe, grid: list[Candidate], smoke: bool = False, variant: str | None = None) -> list[PlannedRun]:
    """The tuning runs of these candidates: each on every tuning seed, evaluated at the end only."""
    return candidates.candidate_runs(recipe, grid, tuning_seeds(recipe, smoke), group(recipe, variant), FINAL_ONLY, smoke,
                                     per_seed=per_seed(recipe, variant))


def validation_scores(documents: list[dict]) -> list[float]:
    """Each tuning run's final validation accuracy; a run without one (it diverged before any) scores 0."""
    return [float(d["final_val_accuracy"]) if d.get("final_val_accuracy") is not None else 0.0 for d in documents]


def robust_score(values: list[float]) -> float:
    """The declaration's ranking statistic: mean minus k standard deviations (the sd of one run is 0)."""
    k = declaration().ranking.k
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values) - k * spread


def rank(documents: list[dict]) -> tuple:
    """Highest robust score first; on a tie, the higher worst run."""
    values = validation_scores(documents)
    if not values:
        return (math.inf, math.inf)
    return (-round(robust_score(values), 6), -min(values))


def extended_grid(
    recipe: Recipe, results_dir: Path, smoke: bool = False, variant: str | None = None
) -> tuple[list[Candidate], list[Extended], list[Scored]]:
    """The grid after the edge rule, as far as the finished tuning runs in `results_dir` decide it; its candidates scored."""
    cache: dict = {}

    def scored_of(grid: list[Candidate]) -> list[Scored]:
        return candidates.score(grid, runs_of(recipe, grid, smoke, variant), results_dir, rank, cache)

    return candidates.extended(
        tune_spec(recipe), base_grid(recipe), scored_of, len(tuning_seeds(recipe, smoke)),
        candidates.makes_a_run(recipe, **method_extras(recipe)),
        declaration().edge.max_extensions, **method_extras(recipe),
    )


def grid(recipe: Recipe, results_dir: Path | None = None, smoke: bool = False, variant: str | None = None) -> list[Candidate]:
    """The grid: the declared one, extended by the edge rule where `results_dir` holds finished tuning runs."""
    return base_grid(recipe) if results_dir is None else extended_grid(recipe, results_dir, smoke, variant)[0]


def candidate_runs(recipe: Recipe, smoke: bool = False, results_dir: Path | None = None, variant: str | None = None) -> list[PlannedRun]:
    """The tuning runs of the (extended) grid."""
    return runs_of(recipe, grid(recipe, results_dir, smoke, variant), smoke, variant)


def val_accuracies(entry: Scored) -> list[float]:
    return [d["final_val_accuracy"] for d in entry.documents if d.get("final_val_accuracy") is not None]


def score(recipe: Recipe, results_dir: Path, smoke: bool = False, variant: str | None = None) -> list[Scored]:
    """Every candidate of the extended grid with its finished tuning runs, ranked by `rank`."""
    return extended_grid(recipe, results_dir, smoke, variant)[2]


def reported_seeds(smoke: bool = False) -> range:
    """The declaration's reported seeds (the first only for --smoke)."""
    return declaration().seeds.reported.seeds[: 1 if smoke else None]


def tuned_methods(chosen: dict[str, Scored]) -> dict[str, object]:
    """The chosen settings as recipe methods named `<family>-tuned`."""
    return {f"{family}-tuned": entry.candidate.method for family, entry in chosen.items()}


def tuned_runs(
    recipe: Recipe, methods: dict[str, object], seeds: int | None = None, smoke: bool = False, variant: str | None = None
) -> list[PlannedRun]:
    """The chosen settings on the declaration's reported seeds, evaluated on the recipe's schedule like every paper-table run.

    Where the recipe already holds the same setting under the same name, the
    reruns are the recipe's own runs (`results/RECIPE/NAME/`, shared with
    `dba reproduce`, never trained twice). Where it does not (a new choice,
    e.g. on another machine), they go to `results/tune/RECIPE/reruns/` so
    that tuning never collides with the recipe's results; paste chosen.yaml
    into the recipe to make the choice the recipe's. The sensitivity variant's
    reruns always go to `results/tune-holdout/RECIPE/reruns/`. Each runs on the
    declaration's reported seeds (the first `seeds` of them, if given).
    """
    runs = []
    home = group(recipe, variant)
    for name, method in methods.items():
        same = home == GROUP and recipe.same_setting(name, method)
        folder = "" if same else f"{home}/{recipe.name}/reruns"
        # the recipe's own method runs the seeds the recipe plans for it (its `seeds:` honoured), as dba reproduce does
        for seed in (recipe.seed_range(name, smoke, seeds) if same else reported_seeds(smoke)[:seeds]):
            config = recipe.config_for(method, seed, smoke, label=f"method {name}")
            runs.append(PlannedRun(recipe.name, name, method.role, config, folder, evaluation=recipe.evaluation))
    return runs


def runner_up_runs(recipe: Recipe, scored: list[Scored], smoke: bool = False, variant: str | None = None) -> list[PlannedRun]:
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
            for seed in reported_seeds(smoke):
                config = recipe.config_for(method, seed, smoke, label=f"tune {name}")
                runs.append(PlannedRun(recipe.name, name, method.role, config, f"{group(recipe, variant)}/{recipe.name}/top",
                                       evaluation=FINAL_ONLY))
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
        f"# Chosen by `{command}` under protocol declaration {declaration().digest} ({validation_of(recipe)} validation;\n"
        f"# mean - {declaration().ranking.k:g} sd of final validation accuracy over tuning seeds {seeds[0]}..{seeds[-1]};\n"
        f"# {tune_spec(recipe).budget_text()}); paste under the recipe's `methods:`.\n"
    )
    return header + yaml.safe_dump(body, sort_keys=False)
