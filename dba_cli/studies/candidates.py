"""The candidate/selection model every tuning study shares: a grid of settings per family, scored on tuning seeds.

A *candidate* is one point of a family's grid (a recipe method: role and run
settings) with a folder-safe label; a recipe's search (`recipes/sections.py`
Search) declares the grids, every family with the declared budget of settings
on the declared shared axes. Its runs train on the declaration's tuning seeds,
disjoint from the reported seeds, and are read back as result documents; a
study's *rank* turns a candidate's documents into a sort key (smaller is
better), and the first candidate of each family by that key, ties broken by
grid order, is the family's choice; the first `top` are also run on the
reported seeds. `extended` applies the declaration's edge rule: where a
family's best value of a numeric line is at its end, one step beyond is tried
too. `dba tune` ranks by mean minus k sd of final validation accuracy,
`dba converge` by median steps to a validation target.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..recipes.planned import PlannedRun, check_grid_size
from ..recipes.protocol import declaration
from ..recipes.recipe import Recipe, make_method
from ..recipes.sections import Search
from ..results.reading import stored_results
from ..settings.evaluation import EvaluationSchedule
from ..settings.methods import declared

Rank = Callable[[list[dict]], tuple]  # a candidate's tuning documents -> sort key (smaller is better)


@dataclass(frozen=True)
class Candidate:
    """One point of a family's grid."""

    family: str  # e.g. sgd, adam, dba; each becomes a `<family>-tuned` method
    label: str  # folder name: its settings, readable
    method: object  # a recipe Method (role and run settings)
    settings: dict = field(default_factory=dict, compare=False)  # its run settings, as the grid combined them
    varying: dict = field(default_factory=dict, compare=False)  # the settings that vary in its family (the label's)

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
        elif isinstance(value, dict):  # a peer's own settings (settings/methods.py): 'keep-smallest-fraction-0.8'
            parts.append("-".join(f"{k.replace('_', '-')}-{value_text(v)}" for k, v in value.items()) or key)
        elif isinstance(value, bool):
            parts += [key] if value else []
        elif key in ("method", "base"):
            parts.append(str(value))
        else:
            parts.append(f"{SHORT.get(key, key.replace('_', '-'))}-{value_text(value)}")
    return "-".join(parts) or "default"


def candidate(family: str, settings: dict[str, Any], varying: dict[str, Any], label: str, **method) -> Candidate:
    """A family's setting as a candidate, in its method's tuned role: tuned (DBA), tuned-peer or tuned-baseline."""
    method_name = settings.get("method", method.get("method", "sgd"))
    role = declared(method_name).tuned_role if isinstance(method_name, str) else "tuned-baseline"
    return Candidate(family, label, make_method(role, **method, **settings), dict(settings), dict(varying))


def search_grid(search: Search, **method) -> list[Candidate]:
    """Every family's grid as candidates, in the recipe's order (the order breaks ties); `method`: settings every one gets."""
    grid = []
    for family in search.families:
        seen: dict[str, int] = {}
        for settings, varying in search.settings(family):
            label = setting_label(varying)[:100]
            seen[label] = seen.get(label, 0) + 1
            if seen[label] > 1:  # two settings that read alike: numbered, never merged
                label = f"{label}-{seen[label]}"
            grid.append(candidate(family, settings, varying, label, **method))
    return grid


def candidate_runs(
    recipe: Recipe, grid: list[Candidate], seeds: range, group: str, evaluation: EvaluationSchedule,
    smoke: bool = False, per_seed: Callable[[int], dict] | None = None, **overrides,
) -> list[PlannedRun]:
    """Every candidate on every tuning seed, filed under `group` as `<family>/<label>`.

    `per_seed(j)` gives the j-th tuning seed's own overrides (its validation fold).
    """
    check_grid_size(len(grid) * len(seeds), f"{group} of recipe {recipe.name} ({len(grid)} settings x {len(seeds)} seeds)")
    return [
        PlannedRun(
            recipe.name, candidate.name, "tuning",
            recipe.config_for(candidate.method, seed, smoke, label=f"{group} {candidate.name}",
                              **overrides, **(per_seed(index) if per_seed else {})),
            group, evaluation=evaluation,
        )
        for candidate in grid
        for index, seed in enumerate(seeds)
    ]


def makes_a_run(recipe: Recipe, **method) -> Callable[[dict], bool]:
    """Whether a setting (with `method`, the settings every candidate gets) is a valid run of `recipe`: the edge
    rule's step beyond may not be (a momentum of 1, a learning rate past its bound)."""

    def valid(settings: dict) -> bool:
        try:
            recipe.config_for(make_method(**settings, **method), 0)
        except Exception:  # a ConfigError or a pydantic ValidationError: the step beyond is not a run
            return False
        return True

    return valid


@dataclass(frozen=True)
class Extended:
    """A family's grid after the edge rule: the extra candidates, and why each was tried (for the report)."""

    family: str
    text: str
    label: str


def extended(
    search: Search, grid: list[Candidate], scored_of: Callable[[list[Candidate]], list[Scored]], runs_each: int,
    valid: Callable[[dict], bool], limit: int, **method,
) -> tuple[list[Candidate], list[Extended], list[Scored]]:
    """The grid with the edge rule applied, as far as finished tuning runs decide it.

    Round by round: when every candidate of a family has its `runs_each`
    tuning runs and the family's best value on a numeric line of its grid is
    at the line's end (studies/edges.py), the setting one step beyond is
    added (if it makes a valid run), at most `limit` extensions per family in
    all. A family with unfinished runs is not extended yet: the caller trains
    the new candidates and asks again, so the grid is a function of the
    result files alone, and a report recomputes it exactly. Returns the grid,
    the extensions and the grid's candidates scored.
    """
    from .edges import edge_extensions, extend_axes

    axes = {family: search.axes(family) for family in search.families}
    used = dict.fromkeys(search.families, 0)
    log: list[Extended] = []
    while True:
        scored = scored_of(grid)
        added = []
        for family, entries in ranked(scored).items():
            members = [entry for entry in scored if entry.candidate.family == family]
            if used[family] >= limit or any(len(entry.documents) < runs_each for entry in members):
                continue
            best = entries[0].candidate
            tried = [entry.candidate.settings for entry in members]
            for extension in edge_extensions(axes[family], best.settings, tried):
                if used[family] >= limit:
                    break
                if extension.axis in declaration().shared_axes or not valid(extension.settings):  # shared: alike for all
                    continue
                axes[family] = extend_axes(axes[family], extension)
                varying = {**best.varying, extension.key: extension.value}
                label = setting_label(varying)[:100] + "-edge"
                added.append(candidate(family, extension.settings, varying, label, **method))
                log.append(Extended(family, extension.text, label))
                used[family] += 1
        if not added:
            return grid, log, scored
        grid = grid + added


def score(grid: list[Candidate], runs: list[PlannedRun], results_dir: Path, rank: Rank, cache: dict | None = None) -> list[Scored]:
    """Each candidate with its finished tuning documents and rank key (candidates without any rank last).

    Only documents made under the declaration in force count: one made under
    another (or before one) is stale, never part of a choice. `cache` (key ->
    document) keeps files read once, for the edge rule's rounds.
    """
    cache = {} if cache is None else cache
    missing = [planned.key for planned in runs if planned.key not in cache]
    cache.update(stored_results(results_dir, missing))
    stored = cache
    by_name: dict[str, list[dict]] = {}
    for planned in runs:
        if planned.key in stored and declaration().governs(stored[planned.key]):
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
