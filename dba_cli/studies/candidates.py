"""The candidate/selection model every tuning study shares: a grid of settings per family, scored on tuning seeds.

A *candidate* is one point of a family's grid (a recipe method: role and run
settings) with a folder-safe label. Its runs train on tuning seeds, disjoint
from the reported seeds, and are read back as result documents; a study's
*rank* turns a candidate's documents into a sort key (smaller is better), and
the first candidate of each family by that key, ties broken by grid order, is
the family's choice. `dba tune` ranks by mean final validation accuracy,
`dba converge` by median steps to a validation target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..recipes.planned import PlannedRun, check_grid_size
from ..recipes.recipe import Recipe
from ..results.reading import stored_results
from ..settings.evaluation import EvaluationSchedule

Rank = Callable[[list[dict]], tuple]  # a candidate's tuning documents -> sort key (smaller is better)


@dataclass(frozen=True)
class Candidate:
    """One point of a family's grid."""

    family: str  # e.g. sgd, adam, dba; each becomes a `<family>-tuned` method
    label: str  # folder name: its settings, readable
    method: object  # a recipe Method (role and run settings)

    @property
    def name(self) -> str:
        """The method name of its runs: `<family>/<label>`."""
        return f"{self.family}/{self.label}"


@dataclass
class Scored:
    """A candidate with its finished tuning runs and its rank key."""

    candidate: Candidate
    documents: list[dict] = field(default_factory=list)
    key: tuple = ()
    order: int = 0  # position in the grid: breaks ties


def candidate_runs(
    recipe: Recipe, grid: list[Candidate], seeds: range, group: str, evaluation: EvaluationSchedule,
    smoke: bool = False, **overrides,
) -> list[PlannedRun]:
    """Every candidate on every tuning seed, filed under `group` as `<family>/<label>`."""
    check_grid_size(len(grid) * len(seeds), f"{group} of recipe {recipe.name} ({len(grid)} settings x {len(seeds)} seeds)")
    return [
        PlannedRun(
            recipe.name, candidate.name, "tuning",
            recipe.config_for(candidate.method, seed, smoke, label=f"{group} {candidate.name}", **overrides),
            group, evaluation=evaluation,
        )
        for candidate in grid
        for seed in seeds
    ]


def score(grid: list[Candidate], runs: list[PlannedRun], results_dir: Path, rank: Rank) -> list[Scored]:
    """Each candidate with its finished tuning documents and rank key (candidates without any rank last)."""
    stored = stored_results(results_dir, [planned.key for planned in runs])
    by_name: dict[str, list[dict]] = {}
    for planned in runs:
        if planned.key in stored:
            by_name.setdefault(planned.method_name, []).append(stored[planned.key])
    scored = []
    for order, candidate in enumerate(grid):
        documents = by_name.get(candidate.name, [])
        scored.append(Scored(candidate, documents, rank(documents) if documents else (), order))
    return scored


def ranked(scored: list[Scored]) -> dict[str, list[Scored]]:
    """Per family, its candidates with documents, best first (rank key, then grid order)."""
    families: dict[str, list[Scored]] = {}
    for entry in sorted((s for s in scored if s.documents), key=lambda s: (s.key, s.order)):
        families.setdefault(entry.candidate.family, []).append(entry)
    return families


def choose(scored: list[Scored]) -> dict[str, Scored]:
    """Per family, the best candidate (see `ranked`)."""
    return {family: entries[0] for family, entries in ranked(scored).items()}
