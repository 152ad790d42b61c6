"""`dba converge` as a plan: the paper's convergence claim as time to a target, with every method tuned for it.

In the manner of MLCommons AlgoPerf: a validation split is held out of the
training set, the recipe states target validation accuracies and a budget of
epochs, and each run is measured by the steps, epochs and training seconds
(evaluation excluded) until its validation accuracy first reaches a target
(results/quantities.py). A run that never reaches it within the budget is
reported as such, never dropped. Accuracy is evaluated after every epoch, so
a time to target is the first epoch's end at or above it: its resolution is
one epoch.

Fairness: every family gets the declared budget of settings on the declared
shared axes (the recipe's `convergence:` section, a Search like `dba tune`'s,
extended by the same edge rule). Candidates train on the declaration's tuning
seeds, with its held-out validation split, and are ranked by the median steps
to the last (hardest) target, a run that never reaches it counted as slower
than any that does; the chosen setting of each family runs on the
declaration's reported seeds, and so do the runners-up up to `top`. The
fastest baseline is the one fastest on the tuning seeds. reports/converge_report.py compares them, keeping every
run that never reached a target (censored, not dropped). The test set is
reported (final accuracy), never used to choose.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..recipes.planned import PlannedRun
from ..recipes.protocol import declaration
from ..recipes.recipe import Recipe
from ..results.quantities import final_validation, median_steps
from ..settings.evaluation import every_epoch
from . import candidates
from .candidates import Candidate, Extended, Scored, ranked

GROUP = "convergence"
TUNING_GROUP = "convergence/tuning"


def convergence_spec(recipe: Recipe):
    return recipe.section("convergence", "stating the targets, the epoch budget and every family's grid")


def method_extras() -> dict:
    """Every candidate holds out the declaration's validation split: time to target is measured on it."""
    return {"validation_size": declaration().validation.holdout_size}


def base_grid(recipe: Recipe) -> list[Candidate]:
    """Every family's declared grid (before the edge rule), in the recipe's order (the order breaks ties)."""
    return candidates.search_grid(convergence_spec(recipe), **method_extras())


def extended_grid(
    recipe: Recipe, results_dir: Path, smoke: bool = False
) -> tuple[list[Candidate], list[Extended], list[Scored]]:
    """The grid after the edge rule, as far as the finished tuning runs decide it (see candidates.extended)."""
    targets = convergence_spec(recipe).targets
    cache: dict = {}

    def scored_of(found: list[Candidate]) -> list[Scored]:
        return candidates.score(found, runs_of(recipe, found, smoke), results_dir, rank_for(targets), cache)

    return candidates.extended(convergence_spec(recipe), base_grid(recipe), scored_of, len(tuning_seeds(recipe, smoke)),
                               candidates.makes_a_run(recipe, **method_extras()), declaration().edge.max_extensions,
                               **method_extras())


def grid(recipe: Recipe, results_dir: Path | None = None, smoke: bool = False) -> list[Candidate]:
    """The declared grid, extended by the edge rule where `results_dir` holds finished tuning runs."""
    return base_grid(recipe) if results_dir is None else extended_grid(recipe, results_dir, smoke)[0]


def families(recipe: Recipe) -> list[str]:
    return list(convergence_spec(recipe).families)


def baselines(recipe: Recipe) -> list[str]:
    """The families that do not train with DBA."""
    found = []
    for candidate in base_grid(recipe):
        if candidate.method.role != "tuned" and candidate.family not in found:
            found.append(candidate.family)
    return found


def dba_families(recipe: Recipe) -> list[str]:
    plain = baselines(recipe)  # builds the grid once, not once per family
    return [family for family in families(recipe) if family not in plain]


def budget(recipe: Recipe, smoke: bool) -> int:
    return recipe.smoke.epochs if smoke else convergence_spec(recipe).epochs


def tuning_seeds(recipe: Recipe, smoke: bool = False) -> range:
    seeds = declaration().seeds.tuning
    return range(seeds.first, seeds.first + (recipe.smoke.seeds if smoke else seeds.count))


def reported_seeds(recipe: Recipe, smoke: bool = False) -> range:
    return declaration().seeds.reported.seeds[: recipe.smoke.seeds if smoke else None]


def runs_of(recipe: Recipe, found: list[Candidate], smoke: bool = False) -> list[PlannedRun]:
    """These candidates on every tuning seed, evaluated after every epoch."""
    epochs = budget(recipe, smoke)
    return candidates.candidate_runs(
        recipe, found, tuning_seeds(recipe, smoke), TUNING_GROUP, every_epoch(epochs), smoke, epochs=epochs
    )


def tuning_runs(recipe: Recipe, smoke: bool = False, results_dir: Path | None = None) -> list[PlannedRun]:
    """Every candidate of the (extended) grid on every tuning seed."""
    return runs_of(recipe, grid(recipe, results_dir, smoke), smoke)


def rank_for(targets: list[float]):
    """Fewest median steps to the last target, then to the earlier ones (last first), then best final validation."""

    def rank(documents: list[dict]) -> tuple:
        validation = final_validation(documents)
        return (*(median_steps(documents, target) for target in reversed(targets)),
                -validation if validation is not None else math.inf)

    return rank


def score(recipe: Recipe, results_dir: Path, smoke: bool = False) -> list[Scored]:
    return extended_grid(recipe, results_dir, smoke)[2]


def fastest_baseline(recipe: Recipe, chosen: dict[str, Scored]) -> str | None:
    """The baseline family whose chosen setting ranks first on the tuning seeds (the same key that chose it)."""
    found = [(chosen[family].key, index, family) for index, family in enumerate(baselines(recipe)) if family in chosen]
    return min(found)[2] if found else None


def reported_runs(recipe: Recipe, scored: list[Scored], smoke: bool = False) -> list[PlannedRun]:
    """Each family's best `top` settings on the reported seeds 0..N-1: `<family>-tuned`, `<family>-top2`, ..."""
    spec = convergence_spec(recipe)
    epochs = budget(recipe, smoke)
    runs = []
    for family, entries in ranked(scored).items():
        for rank_number, entry in enumerate(entries[: 1 if smoke else spec.top], start=1):
            name = f"{family}-tuned" if rank_number == 1 else f"{family}-top{rank_number}"
            method = entry.candidate.method
            for seed in reported_seeds(recipe, smoke):
                config = recipe.config_for(method, seed, smoke, label=f"converge {name}", epochs=epochs)
                runs.append(PlannedRun(recipe.name, name, method.role, config, GROUP, evaluation=every_epoch(epochs)))
    return runs
