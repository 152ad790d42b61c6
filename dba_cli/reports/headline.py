"""The headline comparison every report makes the same way: tuned DBA against the comparator, and how it moves.

The comparator is the tuned baseline with the higher mean final *validation*
accuracy on the reported seeds (each seed's validation split; never the test
set). The difference is paired by seed (same seed, same subset and initial
weights). The sensitivity: each family's runners-up from `dba tune` (its 2nd
and 3rd best settings on the tuning seeds) also ran on the reported seeds, and
a comparison is recomputed for every pair of DBA's and that baseline's top
settings: the range shows whether the verdict hangs on one near tie.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from ..results.reading import finished_results
from ..studies.tune import GROUP as TUNE_GROUP
from .stats import PairedDifference, pair_by_seed, paired_difference


def by_seed(documents: list[dict]) -> dict[int, float]:
    """Final test accuracy per seed."""
    return {int(d["seed"]): float(d["final_test_accuracy"]) for d in documents}


def mean_validation(documents: list[dict]) -> float | None:
    values = [d["final_val_accuracy"] for d in documents if d.get("final_val_accuracy") is not None]
    return statistics.fmean(values) if values else None


def comparator(baselines: dict[str, list[dict]]) -> str | None:
    """The baseline with the higher mean final validation accuracy on its runs (first in order on a tie).

    A single baseline is the comparator without a choice; among several, None if none has a validation accuracy.
    """
    if len(baselines) == 1:
        return next(iter(baselines))
    scored = [(mean_validation(documents), -index, name) for index, (name, documents) in enumerate(baselines.items())]
    scored = [entry for entry in scored if entry[0] is not None]
    return max(scored)[2] if scored else None


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


def ranked_runs(results_dir: Path, recipe: str, family: str, tuned: list[dict]) -> dict[int, list[dict]]:
    """A family's best settings on the reported seeds: rank 1 the tuned method's runs, ranks 2.. `dba tune`'s runners-up."""
    found = {1: tuned} if tuned else {}
    folder = Path(results_dir) / TUNE_GROUP / recipe / "top"
    for path, document in finished_results(folder, f"{recipe}/{family}-top*/seed-*.json"):
        rank = path.parent.name.removeprefix(f"{family}-top")
        if rank.isdigit():
            found.setdefault(int(rank), []).append(document)
    return found


def sensitivity(results_dir: Path, recipe: str, dba: tuple[str, list[dict]], base: tuple[str, list[dict]]) -> Sensitivity | None:
    """DBA minus a baseline for every pair of their top settings (families named by their `-tuned` runs)."""
    dba_runs = ranked_runs(results_dir, recipe, dba[0].removesuffix("-tuned"), dba[1])
    base_runs = ranked_runs(results_dir, recipe, base[0].removesuffix("-tuned"), base[1])
    cells = {}
    for i, a in dba_runs.items():
        for j, b in base_runs.items():
            _, difference = paired(a, b)
            if difference.n:
                cells[i, j] = difference.mean
    return Sensitivity(cells) if len(cells) > 1 else None
