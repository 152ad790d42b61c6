"""`dba converge` as a plan: the paper's convergence claim as time to a target, with every method tuned for it.

In the manner of MLCommons AlgoPerf: a validation split is held out of the
training set, the recipe states target validation accuracies and a budget of
epochs, and each run is measured by the steps, epochs and training seconds
(evaluation excluded) until its validation accuracy first reaches a target
(results/quantities.py). A run that never reaches it within the budget is
reported as such, never dropped. Accuracy is evaluated after every epoch, so
a time to target is the first epoch's end at or above it: its resolution is
one epoch.

Fairness: every family gets the same budget of settings (the recipe's
`convergence:` section, a Search like `dba tune`'s). Candidates train on tuning
seeds disjoint from the reported seeds and are ranked by the median steps to
the last (hardest) target, a run that never reaches it counted as slower than
any that does; the chosen setting of each family runs on the reported seeds,
and so do the runners-up up to `top`. The fastest baseline is the one fastest
on the tuning seeds. reports/converge_report.py compares them, keeping every
run that never reached a target (censored, not dropped). The test set is
reported (final accuracy), never used to choose.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..recipes.planned import PlannedRun
from ..recipes.recipe import Recipe
from ..results.quantities import final_validation, median_steps
from ..settings.evaluation import every_epoch
from . import candidates
from .candidates import Candidate, Scored, ranked

GROUP = "convergence"
TUNING_GROUP = "convergence/tuning"


def convergence_spec(recipe: Recipe):
    return recipe.section("convergence", "stating the targets, the epoch budget and every family's grid")


def grid(recipe: Recipe) -> list[Candidate]:
    """Every family's grid, in the recipe's order (the order breaks ties)."""
    return candidates.search_grid(convergence_spec(recipe))


def families(recipe: Recipe) -> list[str]:
    return list(convergence_spec(recipe).families)


def baselines(recipe: Recipe) -> list[str]:
    """The families that do not train with DBA."""
    found = []
    for candidate in grid(recipe):
        if candidate.method.role != "tuned" and candidate.family not in found:
            found.append(candidate.family)
    return found


def dba_families(recipe: Recipe) -> list[str]:
    plain = baselines(recipe)  # builds the grid once, not once per family
    return [family for family in families(recipe) if family not in plain]


def budget(recipe: Recipe, smoke: bool) -> int:
    return recipe.smoke.epochs if smoke else convergence_spec(recipe).epochs


def tuning_seeds(recipe: Recipe, smoke: bool = False) -> range:
    spec = convergence_spec(recipe)
    return range(spec.first_seed, spec.first_seed + (recipe.smoke.seeds if smoke else spec.seeds))


def reported_seeds(recipe: Recipe, smoke: bool = False) -> range:
    return range(recipe.smoke.seeds if smoke else convergence_spec(recipe).reported_seeds)


def tuning_runs(recipe: Recipe, smoke: bool = False) -> list[PlannedRun]:
    """Every candidate on every tuning seed, evaluated after every epoch."""
    epochs = budget(recipe, smoke)
    return candidates.candidate_runs(
        recipe, grid(recipe), tuning_seeds(recipe, smoke), TUNING_GROUP, every_epoch(epochs), smoke, epochs=epochs
    )


def rank_for(targets: list[float]):
    """Fewest median steps to the last target, then to the earlier ones (last first), then best final validation."""

    def rank(documents: list[dict]) -> tuple:
        validation = final_validation(documents)
        return (*(median_steps(documents, target) for target in reversed(targets)),
                -validation if validation is not None else math.inf)

    return rank


def score(recipe: Recipe, results_dir: Path, smoke: bool = False) -> list[Scored]:
    return candidates.score(grid(recipe), tuning_runs(recipe, smoke), results_dir, rank_for(convergence_spec(recipe).targets))


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
