"""Paired differences between two methods run on the same seeds, with 95% confidence intervals.

The same seed means the same training subset and the same initial weights, so
the seed-to-seed spread (on 10 images per class, several points) is shared by
both methods and cancels in the per-seed difference. The headline comparison is
therefore the mean of the per-seed differences d_k = a_k − b_k, with

- a paired t interval, mean(d) ± t_{n−1, 0.975} · sd(d) / √n, and its
  two-sided p-value: `scipy.stats.ttest_rel`, and
- a percentile bootstrap interval as a check that does not assume normal
  differences: `scipy.stats.bootstrap` of the mean of the n differences
  (fixed RNG seed). With few pairs it is known to be too narrow; the t
  interval is the one we report.

scipy.stats takes about a second to import, so it is imported inside the
function: modules that import this one stay fast to load.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class PairedDifference:
    """Mean of a − b over n pairs (points), its t interval and its bootstrap interval (NaN below 2 pairs)."""

    n: int
    mean: float
    t_low: float
    t_high: float
    boot_low: float
    boot_high: float
    differences: tuple[float, ...] = ()
    level: float = LEVEL
    p_value: float = math.nan  # two-sided, of the paired t test (NaN below 2 pairs or without spread)


def paired_difference(
    a: Sequence[float], b: Sequence[float], level: float = LEVEL, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> PairedDifference:
    """Paired t and percentile-bootstrap intervals for mean(a − b), and the t test's p; a[k] and b[k] share a seed."""
    if len(a) != len(b):
        raise ValueError(f"paired samples need equal lengths, got {len(a)} and {len(b)}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(differences)
    if n == 0:
        return PairedDifference(0, math.nan, math.nan, math.nan, math.nan, math.nan, (), level)
    mean = float(differences.mean())
    if n == 1:
        return PairedDifference(1, mean, math.nan, math.nan, math.nan, math.nan, (float(differences[0]),), level)
    if np.all(differences == differences[0]):  # no spread: every interval is the point itself, and no test applies
        return PairedDifference(n, mean, mean, mean, mean, mean, tuple(map(float, differences)), level)
    from scipy import stats

    test = stats.ttest_rel(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    t_interval = test.confidence_interval(level)
    boot = stats.bootstrap(
        (differences,), np.mean, confidence_level=level, n_resamples=resamples, method="percentile",
        rng=np.random.default_rng(seed),
    ).confidence_interval
    return PairedDifference(
        n, mean, float(t_interval.low), float(t_interval.high), float(boot.low), float(boot.high),
        tuple(map(float, differences)), level, float(test.pvalue),
    )


def pair_by_seed(a: Mapping[int, float], b: Mapping[int, float]) -> tuple[list[int], list[float], list[float]]:
    """The seeds both methods have, in order, with each method's value on them (the pairs)."""
    seeds = sorted(set(a) & set(b))
    return seeds, [a[seed] for seed in seeds], [b[seed] for seed in seeds]


def ruled_out(difference: PairedDifference, digits: int = 2) -> str:
    """One sentence: what size of improvement (a over b, in points) the t interval rules out."""
    if difference.n < 2:
        return f"With {difference.n} pair(s) there is no interval; run more seeds."
    level = f"{100 * difference.level:g}%"
    low, high = difference.t_low, difference.t_high
    if high <= 0:
        return (
            f"The whole interval lies at or below zero: any improvement is ruled out at {level} "
            f"(a loss of {-high:.{digits}f} to {-low:.{digits}f} points)."
        )
    if low > 0:
        return (
            f"The interval lies above zero: an improvement of {low:.{digits}f} to {high:.{digits}f} points; "
            f"an improvement larger than {high:.{digits}f} points is ruled out at {level}."
        )
    return (
        f"The interval contains zero (no difference detected): an improvement larger than {high:.{digits}f} points, "
        f"or a loss larger than {-low:.{digits}f}, is ruled out at {level}."
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (NaN stays NaN and is not counted).

    The k-th smallest of m p-values is multiplied by (m - k + 1), the running
    maximum taken so that adjusted values keep the order, and capped at 1.
    Rejecting where the adjusted p is below 0.05 keeps the family-wise error
    (any false "DBA better" or "DBA worse" among all of them) at 5%.
    """
    indexed = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    m = len(indexed)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for k, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - k) * p))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class RankTest:
    """A paired Wilcoxon signed-rank test of a − b: its p-value (two-sided) and the median of the differences."""

    n: int
    median: float
    p_value: float


def signed_rank(a: Sequence[float], b: Sequence[float]) -> RankTest:
    """Wilcoxon's signed-rank test of paired values (scipy.stats.wilcoxon; zero differences dropped, Pratt would keep them).

    Used where values are censored (a run that never reached a target counts
    as the budget plus one epoch): ranks need only the order, which censoring
    keeps, where a t interval would need the values themselves.
    """
    differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(differences)
    if n == 0:
        return RankTest(0, math.nan, math.nan)
    median = float(np.median(differences))
    if n < 2 or np.all(differences == 0):
        return RankTest(n, median, math.nan if n < 2 else 1.0)
    from scipy import stats

    return RankTest(n, median, float(stats.wilcoxon(differences).pvalue))
