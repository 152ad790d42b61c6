"""`dba converge` as a plan: the paper's convergence claim as time to a target, with every method tuned for it.

In the manner of MLCommons AlgoPerf: a validation split is held out of the
training set, the recipe states target validation accuracies and a budget of
epochs, and each run is measured by the steps, epochs and training seconds
(evaluation excluded) until its validation accuracy first reaches a target
(results/quantities.py). A run that never reaches it within the budget is
reported as such, never dropped. Accuracy is evaluated after every epoch, so
a time to target is the first epoch's end at or above it: its resolution is
one epoch.

Fairness: every family (SGD, SGD with momentum, Adam, and DBA over each base
optimizer with each selection setting) gets the same number of learning rates
from its range (`convergence.lr_points`); DBA additionally searches its
selection settings, which can only favour DBA. Candidates train on tuning
seeds disjoint from the reported seeds and are ranked by the median steps to
the last (hardest) target; the chosen setting of each family is rerun on the
reported seeds (reports/converge_report.py compares them). The test set is
reported (final accuracy), never used to choose.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..recipes.planned import PlannedRun
from ..recipes.recipe import Recipe, make_method
from ..results.quantities import final_validation, median_steps
from ..settings.evaluation import every_epoch
from . import candidates
from .candidates import Candidate, Scored
from .tune import dba_label

GROUP = "convergence"
TUNING_GROUP = "convergence/tuning"
FAMILIES = ("sgd", "sgd-momentum", "adam", "dba")
BASELINES = ("sgd", "sgd-momentum", "adam")


def convergence_spec(recipe: Recipe):
    return recipe.section("convergence", "stating the targets, the epoch budget and the grids to tune")


def grid(recipe: Recipe) -> list[Candidate]:
    """Every family's grid, in a fixed order (the order breaks ties)."""
    spec = convergence_spec(recipe)
    found = []
    for family, optimizer, momentum in (("sgd", "sgd", 0.0), ("sgd-momentum", "sgd", spec.momentum), ("adam", "adam", 0.0)):
        for lr in spec.lr_grid(family):
            method = make_method("tuned-baseline", method=optimizer, lr=lr, momentum=momentum,
                                 validation_size=spec.validation_size)
            found.append(Candidate(family, f"lr-{lr:g}" + (f"-momentum-{momentum:g}" if momentum else ""), method))
    for base in spec.dba_bases:
        for settings in spec.dba_variants:
            for lr in spec.lr_grid(base):
                method = make_method("tuned", method="dba", base=base, lr=lr, dba=settings,
                                     validation_size=spec.validation_size)
                found.append(Candidate("dba", f"{dba_label(settings, base)}-lr-{lr:g}", method))
    return found


def budget(recipe: Recipe, smoke: bool) -> int:
    return recipe.smoke.epochs if smoke else convergence_spec(recipe).epochs


def tuning_seeds(recipe: Recipe, smoke: bool = False) -> range:
    spec = convergence_spec(recipe)
    return range(spec.first_seed, spec.first_seed + (recipe.smoke.seeds if smoke else spec.tuning_seeds))


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


def reported_runs(recipe: Recipe, chosen: dict[str, Scored], smoke: bool = False) -> list[PlannedRun]:
    """Each family's chosen setting on the reported seeds 0..N-1, as `<family>-tuned`."""
    spec = convergence_spec(recipe)
    epochs = budget(recipe, smoke)
    runs = []
    for family in FAMILIES:
        if family not in chosen:
            continue
        method = chosen[family].candidate.method
        for seed in range(recipe.smoke.seeds if smoke else spec.seeds):
            config = recipe.config_for(method, seed, smoke, label=f"converge {family}-tuned", epochs=epochs)
            runs.append(PlannedRun(recipe.name, f"{family}-tuned", method.role, config, GROUP, evaluation=every_epoch(epochs)))
    return runs
