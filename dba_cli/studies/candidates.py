"""The candidate/selection model every tuning study shares: a grid of settings per family, scored on tuning seeds.

A *candidate* is one point of a family's grid (a recipe method: role and run
settings) with a folder-safe label; a recipe's search (`recipes/sections.py`
Search) declares the grids, every family with the same budget of settings.
Its runs train on tuning seeds, disjoint from the reported seeds, and are read
back as result documents; a study's *rank* turns a candidate's documents into a
sort key (smaller is better), and the first candidate of each family by that
key, ties broken by grid order, is the family's choice; the first `top` are
also run on the reported seeds. `dba tune` ranks by mean final validation
accuracy, `dba converge` by median steps to a validation target.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..recipes.planned import PlannedRun, check_grid_size
from ..recipes.recipe import Recipe, make_method
from ..recipes.sections import Search
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


SHORT = {"lr": "lr", "momentum": "mom", "weight_decay": "wd", "batch_size": "bs", "epochs": "ep"}


def value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def dba_label(settings: Any, base: str | None = None) -> str:
    """DBA's selection setting in a folder name: '[sgd-]snr-maximize-min25-mean' (other settings only when set)."""
    values = settings if isinstance(settings, dict) else dataclasses.asdict(settings)
    label = (f"{values.get('metric', 'variance')}-{values.get('direction', 'minimize')}-min{values.get('min_size', 1)}-"
             f"{values.get('reduction', 'mean')}")
    if values.get("max_removals") is not None:
        label += f"-maxrm{values['max_removals']}"
    label += "-unbiased" if values.get("unbiased") else ""
    return f"{base}-{label}" if base else label


def setting_label(settings: dict[str, Any]) -> str:
    """A readable, folder-safe name for some run settings: 'lr-0.1-mom-0.9-nesterov', 'adamw-wd-0.01', 'sgd-snr-...'."""
    parts = []
    for key, value in settings.items():
        if key == "dba":
            parts.append(dba_label(value))
        elif isinstance(value, bool):
            parts += [key] if value else []
        elif key in ("method", "base"):
            parts.append(str(value))
        else:
            parts.append(f"{SHORT.get(key, key.replace('_', '-'))}-{value_text(value)}")
    return "-".join(parts) or "default"


def search_grid(search: Search) -> list[Candidate]:
    """Every family's grid as candidates, in the recipe's order (the order breaks ties).

    A family whose settings train with DBA is "tuned", any other "tuned-baseline".
    """
    grid = []
    for family in search.families:
        seen: dict[str, int] = {}
        for settings, varying in search.settings(family):
            role = "tuned" if settings.get("method") == "dba" else "tuned-baseline"
            label = setting_label(varying)[:100]
            seen[label] = seen.get(label, 0) + 1
            if seen[label] > 1:  # two settings that read alike: numbered, never merged
                label = f"{label}-{seen[label]}"
            grid.append(Candidate(family, label, make_method(role, validation_size=search.validation_size, **settings)))
    return grid


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
