"""Paired comparisons of two methods run on the same seeds: intervals, tests and the words of a verdict.

The same seed means the same training subset and the same initial weights, so
the seed-to-seed spread (on 10 images per class, several points) is shared by
both methods and cancels in the per-seed difference. The headline comparison is
therefore the mean of the per-seed differences d_k = a_k − b_k, with

- a paired t interval, mean(d) ± t_{n−1, 0.975} · sd(d) / √n, and its
  two-sided p-value: `scipy.stats.ttest_rel`, and
- an exact sign-flip permutation p-value of the same mean, which needs no
  normal differences: under H0 (no difference between the methods) each
  d_k is as likely to have come out −d_k (the two methods' labels swapped on
  that seed), so all 2^n sign assignments are equally likely. With 10 pairs
  this is exact, where a bootstrap interval is known to be too narrow.

For a confirmatory protocol there are also the one-sided t test against the
paper's implied improvement (`one_sided_t`), the TOST equivalence test
(`tost`), the sign test for censored times to target (`sign_test`), Holm's
adjustment of a family (`holm`) and the rule that turns them into words
(`verdict`).

scipy.stats takes about a second to import, so it is imported inside the
functions: modules that import this one stay fast to load.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
EXACT_UP_TO = 20  # pairs: up to 2^20 sign assignments are enumerated, beyond that they are drawn
DRAWS = 100_000  # random sign assignments above EXACT_UP_TO pairs
PERMUTATION_SEED = 0  # numpy.random.default_rng(0): the same Monte Carlo p every time
TOLERANCE = 1e-12  # relative: a sum within 1e-12 · Σ|d_k| of the observed one is a tie, and ties count


@dataclass(frozen=True)
class PairedDifference:
    """Mean of a − b over n pairs (points), its t interval and two p-values (NaN below 2 pairs)."""

    n: int
    mean: float
    t_low: float
    t_high: float
    differences: tuple[float, ...] = ()
    level: float = LEVEL
    p_value: float = math.nan  # two-sided, of the paired t test (NaN below 2 pairs or without spread)
    p_permutation: float = math.nan  # two-sided, exact sign-flip permutation test of the mean (NaN below 2 pairs)


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> PairedDifference:
    """Paired t interval for mean(a − b), the t test's p and the sign-flip permutation p; a[k] and b[k] share a seed."""
    if len(a) != len(b):
        raise ValueError(f"paired samples need equal lengths, got {len(a)} and {len(b)}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(differences)
    if n == 0:
        return PairedDifference(0, math.nan, math.nan, math.nan, (), level)
    mean = float(differences.mean())
    if n == 1:
        return PairedDifference(1, mean, math.nan, math.nan, (float(differences[0]),), level)
    as_tuple = tuple(map(float, differences))
    p_permutation = sign_flip_p(differences)
    if np.all(differences == differences[0]):  # no spread: the interval is the point itself, and no t test applies
        return PairedDifference(n, mean, mean, mean, as_tuple, level, math.nan, p_permutation)
    from scipy import stats

    test = stats.ttest_rel(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    t_interval = test.confidence_interval(level)
    return PairedDifference(
        n, mean, float(t_interval.low), float(t_interval.high), as_tuple, level, float(test.pvalue), p_permutation,
    )


def sign_flip_p(differences: Sequence[float], draws: int = DRAWS, seed: int = PERMUTATION_SEED) -> float:
    """Two-sided sign-flip permutation p of the mean of paired differences (NaN below 2 pairs).

    Under H0 the signs of the differences are exchangeable, so every one of
    the 2^n assignments of signs is equally likely; the p is the fraction of
    them whose |mean| is at least the observed |mean| (the observed one among
    them, and ties within TOLERANCE counted). Every assignment has the same n,
    so sums stand in for means.

    Up to EXACT_UP_TO (20) pairs it is exact: the pairs are split in two
    halves, the 2^h sums of each half enumerated (at most 1024 each), and for
    each sum of the first half the sums of the second that complete an
    extreme total are counted by binary search in the sorted second half.
    That counts all 2^n totals in O(2^(n/2) log) time and memory (a few ms,
    kilobytes at n = 20) instead of materialising 2^20 × 20 signs.

    Above 20 pairs it is a Monte Carlo of `draws` (100,000) random sign
    assignments from numpy.random.default_rng(`seed`) (seed 0), with
    p = (1 + count) / (1 + draws), which never reports 0 (Phipson and Smyth).
    """
    d = np.asarray(differences, dtype=float)
    n = len(d)
    if n < 2:
        return math.nan
    observed = abs(float(d.sum()))
    threshold = observed - TOLERANCE * float(np.abs(d).sum())
    if threshold <= 0:  # observed mean 0 (or every difference 0): every assignment is as extreme
        return 1.0
    if n <= EXACT_UP_TO:
        first, second = half_sums(d[: n // 2]), np.sort(half_sums(d[n // 2:]))
        upper = len(second) - np.searchsorted(second, threshold - first, side="left")  # total >= +threshold
        lower = np.searchsorted(second, -threshold - first, side="right")  # total <= -threshold
        return float((upper.sum() + lower.sum()) / 2.0**n)
    rng = np.random.default_rng(seed)
    count, chunk = 0, 10_000
    for start in range(0, draws, chunk):
        signs = rng.integers(0, 2, size=(min(chunk, draws - start), n)) * 2.0 - 1.0
        count += int(np.count_nonzero(np.abs(signs @ d) >= threshold))
    return (1 + count) / (1 + draws)


def half_sums(values: np.ndarray) -> np.ndarray:
    """The 2^m sums ±v_1 ± … ± v_m of m values, one per assignment of signs."""
    sums = np.zeros(1)
    for value in values:
        sums = np.concatenate([sums + value, sums - value])
    return sums


def one_sided_t(differences: Sequence[float], null_mean: float) -> float:
    """p of the one-sided paired t test of H0: mean ≥ null_mean against H1: mean < null_mean (NaN below 2 pairs).

    Used with null_mean = the paper's implied improvement: a small p rejects
    "DBA improves by at least that much". Without spread (every difference
    equal to c) the t statistic is ±∞ or 0/0, and the p is its limit as the
    spread shrinks: 0 when c < null_mean, 1 when c > null_mean, and 0.5 when
    c = null_mean (t = 0, as with any spread).
    """
    return _one_sided(differences, null_mean, "less")


def tost(differences: Sequence[float], margin: float) -> float:
    """TOST equivalence p for |mean| < margin: the larger of two one-sided t tests' p (NaN below 2 pairs).

    H0: mean ≤ −margin (tested against mean > −margin) and H0: mean ≥ +margin
    (against mean < +margin); both rejected at α means equivalence within
    ±margin at α, so the larger p is the test's. Without spread each
    one-sided p is the limit described in `one_sided_t`.
    """
    if not margin > 0:
        raise ValueError(f"an equivalence margin must be positive, got {margin}")
    return max(_one_sided(differences, -margin, "greater"), _one_sided(differences, margin, "less"))


def _one_sided(differences: Sequence[float], null_mean: float, alternative: str) -> float:
    d = np.asarray(differences, dtype=float)
    if len(d) < 2:
        return math.nan
    if np.all(d == d[0]):  # no spread: the limit of the p as the spread shrinks
        below, above = d[0] < null_mean, d[0] > null_mean
        if not (below or above):
            return 0.5
        return 0.0 if below == (alternative == "less") else 1.0
    from scipy import stats

    return float(stats.ttest_1samp(d, popmean=null_mean, alternative=alternative).pvalue)


@dataclass(frozen=True)
class SignTest:
    """The exact sign test of paired values: n pairs, the pairs each side won, the ties dropped, and the p (two-sided)."""

    n: int
    wins_a: int
    wins_b: int
    ties: int
    p_value: float


def sign_test(a: Sequence[float], b: Sequence[float], lower_is_better: bool = False) -> SignTest:
    """Exact two-sided binomial sign test of paired values (ties dropped): scipy.stats.binomtest(wins_a, wins, 0.5).

    A pair is won by the better of its two values: the larger one, or with
    `lower_is_better` (times, steps) the smaller one. It is the test for time
    to target, where a run that never reached the target is censored at
    budget + 1 epoch: the Wilcoxon signed-rank test uses the magnitudes of
    the differences, which censoring changes; a sign test uses only which of
    the pair is faster, which censoring keeps whenever at most one of the pair
    is censored (a pair censored on both sides is a tie). p is NaN without
    pairs and 1 when every pair is a tie (no evidence either way).
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples need equal lengths, got {len(a)} and {len(b)}")
    differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if lower_is_better:
        differences = -differences
    n = len(differences)
    wins_a, wins_b = int(np.count_nonzero(differences > 0)), int(np.count_nonzero(differences < 0))
    ties = n - wins_a - wins_b
    if n == 0:
        return SignTest(0, 0, 0, 0, math.nan)
    if wins_a + wins_b == 0:
        return SignTest(n, 0, 0, ties, 1.0)
    from scipy import stats

    return SignTest(n, wins_a, wins_b, ties, float(stats.binomtest(wins_a, wins_a + wins_b, 0.5).pvalue))


def verdict(p_difference_holm: float, p_tost_holm: float, mean: float, alpha: float, margin: float) -> str:
    """The words of a comparison by the declared rule, from its Holm-adjusted p-values (NaN never rejects).

    "DBA better" or "DBA worse" where the two-sided test rejects no
    difference (by the sign of the mean DBA − baseline), else "equivalent
    within ±margin" where TOST rejects a difference of margin or more, else
    "no difference shown" (the data are too few to say either).
    """
    if p_difference_holm < alpha and mean > 0:  # a NaN p compares False: it never rejects
        return "DBA better"
    if p_difference_holm < alpha and mean < 0:
        return "DBA worse"
    if p_tost_holm < alpha:
        return f"equivalent within ±{margin:g}"
    return "no difference shown"


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
