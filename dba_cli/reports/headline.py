"""The headline comparison every report makes the same way: tuned DBA against the comparator, and how it moves.

The comparator is fixed before any reported seed exists: the tuned baseline
family whose chosen setting ranks best on the *tuning* runs, by the same
statistic that chose it (the declaration's mean minus k sd of validation
accuracy; never a reported seed, never the test set). The difference is paired
by seed (same seed, same subset and initial weights), over the reported runs
made under the declaration in force (`current`: any other is stale). The sensitivity: each family's runners-up from `dba tune` (its 2nd
and 3rd best settings on the tuning seeds) also ran on the reported seeds, and
a comparison is recomputed for every pair of DBA's and that baseline's top
settings: the range shows whether the verdict hangs on one near tie.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..recipes.protocol import declaration
from ..recipes.recipe import Recipe
from ..results.reading import finished_results
from ..studies import tune
from ..studies.candidates import ranked
from ..studies.tune import GROUP as TUNE_GROUP
from .stats import PairedDifference, pair_by_seed, paired_difference


def current(documents: list[dict]) -> tuple[list[dict], int]:
    """The documents made under the declaration in force, and how many others were left out (stale)."""
    kept = [d for d in documents if declaration().governs(d)]
    return kept, len(documents) - len(kept)


def by_seed(documents: list[dict]) -> dict[int, float]:
    """Final test accuracy per seed."""
    return {int(d["seed"]): float(d["final_test_accuracy"]) for d in documents}


@dataclass(frozen=True)
class Comparator:
    """The comparator fixed on the tuning runs: a `<family>-tuned` name, or None and why not."""

    name: str | None
    why: str


def tuning_comparator(recipe: Recipe | None, results_dir: Path, variant: str | None = None) -> Comparator:
    """The tuned baseline family whose chosen setting ranks best on the tuning runs (first in the grid on a tie).

    It reads tuning runs only: the reported runs (whatever they hold) never
    move it. None until every candidate of every baseline family has all its
    tuning runs under the declaration in force.
    """
    if recipe is None or recipe.tune is None:
        return Comparator(None, "the recipe has no `tune:` section")
    found = fixed_on_tuning(recipe, results_dir, False, variant)
    if found.name is None:  # a --smoke folder: its tuning ran on the smoke seeds
        smoke = fixed_on_tuning(recipe, results_dir, True, variant)
        return smoke if smoke.name is not None else found
    return found


def fixed_on_tuning(recipe: Recipe, results_dir: Path, smoke: bool, variant: str | None) -> Comparator:
    baselines = [family for family, role in tune.family_roles(recipe).items() if role == "tuned-baseline"]
    scored = tune.score(tune.with_families(recipe, baselines), results_dir, smoke, variant)  # DBA and its peers never are
    runs_each = len(tune.tuning_seeds(recipe, smoke))
    families = ranked(scored)
    missing = [family for family in baselines
               if any(len(s.documents) < runs_each for s in scored if s.candidate.family == family) or family not in families]
    if missing:
        return Comparator(None, f"tuning of {', '.join(missing)} is not complete under this declaration (`dba tune {recipe.name}`)")
    best = min((families[family][0].key, index, family) for index, family in enumerate(baselines))
    return Comparator(f"{best[2]}-tuned", "ranks best on the tuning runs")


def paired(dba: list[dict], baseline: list[dict]) -> tuple[list[int], PairedDifference]:
    seeds, a, b = pair_by_seed(by_seed(dba), by_seed(baseline))
    return seeds, paired_difference(a, b)


@dataclass(frozen=True)
class Sensitivity:
    """Mean paired difference (DBA's k-th best minus the baseline's j-th best) for every pair that ran; their range."""

    cells: dict[tuple[int, int], float]  # (DBA's rank, the baseline's rank) -> mean difference, points

    @property
    def low(self) -> float:
        return min(self.cells.values())

    @property
    def high(self) -> float:
        return max(self.cells.values())

    @property
    def ranks(self) -> int:
        return max(max(k) for k in self.cells) if self.cells else 0


def ranked_runs(results_dir: Path, recipe: str, family: str, tuned: list[dict], group: str = TUNE_GROUP) -> dict[int, list[dict]]:
    """A family's best settings on the reported seeds: rank 1 the tuned method's runs, ranks 2.. `dba tune`'s runners-up.

    `group` is the tuning's folder (tune/, or tune-holdout/ for the holdout variant): each variant ranks its own runners-up.
    """
    found = {1: tuned} if tuned else {}
    folder = Path(results_dir) / group / recipe / "top"
    for path, document in finished_results(folder, f"{recipe}/{family}-top*/seed-*.json"):
        rank = path.parent.name.removeprefix(f"{family}-top")
        if rank.isdigit() and declaration().governs(document):
            found.setdefault(int(rank), []).append(document)
    return found


def sensitivity(
    results_dir: Path, recipe: str, dba: tuple[str, list[dict]], base: tuple[str, list[dict]], group: str = TUNE_GROUP
) -> Sensitivity | None:
    """DBA minus a baseline for every pair of their top settings (families named by their `-tuned` runs)."""
    dba_runs = ranked_runs(results_dir, recipe, dba[0].removesuffix("-tuned"), dba[1], group)
    base_runs = ranked_runs(results_dir, recipe, base[0].removesuffix("-tuned"), base[1], group)
    cells = {}
    for i, a in dba_runs.items():
        for j, b in base_runs.items():
            _, difference = paired(a, b)
            if difference.n:
                cells[i, j] = difference.mean
    return Sensitivity(cells) if len(cells) > 1 else None
