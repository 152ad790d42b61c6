"""One method of one recipe, summarised over its seeds: what every table row and headline is built from."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd


@dataclass
class MethodSummary:
    """Aggregates over the seeds of one method of one recipe."""

    recipe: str
    method_name: str
    role: str
    method: str
    n: int
    mean: float
    std: float  # sample std (n-1); NaN for one seed
    seeds: list[float]  # final accuracy per seed, in seed order
    train_seconds: float
    diverged: int = 0  # seeds whose loss became NaN/inf (their accuracy is the one at divergence)
    seed_numbers: list[int] = field(default_factory=list)  # which seed each accuracy is from
    documents: list[dict] = field(default_factory=list)  # the result documents, in seed order

    @property
    def error(self) -> float:
        return 100.0 - self.mean

    @property
    def by_seed(self) -> dict[int, float]:
        return dict(zip(self.seed_numbers, self.seeds))


def summarise(frame: pd.DataFrame) -> list[MethodSummary]:
    summaries = []
    for (recipe, name), group in frame.groupby(["recipe", "method_name"], sort=False):
        ordered = group.sort_values("seed")
        accuracies = ordered["final_accuracy"].tolist()
        summaries.append(
            MethodSummary(
                recipe=recipe,
                method_name=name,
                role=group["role"].iloc[0],
                method=group["method"].iloc[0],
                n=len(accuracies),
                mean=float(pd.Series(accuracies).mean()),
                std=float(pd.Series(accuracies).std(ddof=1)) if len(accuracies) > 1 else math.nan,
                seeds=accuracies,
                train_seconds=float(group["train_seconds"].mean()),
                diverged=int(group["diverged_at_epoch"].notna().sum()),
                seed_numbers=[int(seed) for seed in ordered["seed"]],
                documents=list(ordered["document"]),
            )
        )
    return summaries


def error_reduction(baseline: MethodSummary | None, dba: MethodSummary) -> float | None:
    """(err_baseline - err_dba) / err_baseline, in %, from mean errors."""
    if baseline is None or baseline.error <= 0:
        return None
    return 100.0 * (baseline.error - dba.error) / baseline.error
