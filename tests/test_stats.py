"""Paired comparisons: intervals and tests against hand computation, brute force and scipy."""

import itertools
import math
import time
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats as scipy_stats

from dba_cli.reports.stats import (
    DRAWS, holm, one_sided_t, pair_by_seed, paired_difference, ruled_out, sign_flip_p, sign_test, tost, verdict,
)


def test_five_pairs_by_hand():
    # d = a - b = 0.5, -0.5, 1.0, 0.0, 1.5: mean 0.5; squared deviations 0, 1, 0.25, 0.25, 1 -> 2.5;
    # sample variance 2.5 / 4 = 0.625; standard error sqrt(0.625 / 5) = 0.353553;
    # t quantile for 4 df at 97.5%: 2.776 -> half width 0.98146 -> [-0.48146, 1.48146].
    a = [90.5, 89.5, 91.0, 90.0, 91.5]
    b = [90.0, 90.0, 90.0, 90.0, 90.0]
    d = paired_difference(a, b)
    assert d.n == 5 and d.mean == pytest.approx(0.5)
    assert d.t_low == pytest.approx(0.5 - 2.776 * 0.353553, abs=5e-4)
    assert d.t_high == pytest.approx(0.5 + 2.776 * 0.353553, abs=5e-4)
    assert d.differences == pytest.approx((0.5, -0.5, 1.0, 0.0, 1.5))
    # Sign flips: the zero's sign changes nothing, so count over ±0.5 ±0.5 ±1 ±1.5 (16, each twice).
    # The observed sum 2.5 = 3.5 - 2 · (what is negated): at least 2.5 when at most 0.5 is negated:
    # nothing, or either 0.5 -> 3; by symmetry 3 at or below -2.5: 6 of 16.
    assert d.p_permutation == 6 / 16


def test_three_pairs_by_hand():
    # t: mean 3, sd 3, se 3 / sqrt(3) = 1.7321; t quantile for 2 df: 4.303 -> [-4.453, 10.453].
    # Sign flips of 0, 3, 6: sums ±3 ±6 = 9, 3, -3, -9; |sum| >= 9 in 2 of 4.
    d = paired_difference([0.0, 3.0, 6.0], [0.0, 0.0, 0.0])
    assert d.t_low == pytest.approx(3 - 4.303 * 1.7321, abs=2e-3)
    assert d.t_high == pytest.approx(3 + 4.303 * 1.7321, abs=2e-3)
    assert d.p_permutation == 0.5


def brute_force_p(differences: list[str]) -> float:
    """Every one of the 2^n sign assignments, in exact rational arithmetic: the fraction with |sum| >= |observed|."""
    exact = [Fraction(x) for x in differences]
    observed = abs(sum(exact))
    extreme = sum(abs(sum(s * x for s, x in zip(signs, exact))) >= observed
                  for signs in itertools.product((1, -1), repeat=len(exact)))
    return extreme / 2 ** len(exact)


@pytest.mark.parametrize("differences", [
    ["0.1", "0.2", "0.3", "-0.4", "0.6", "0.7"],  # many exact ties (0.1 + 0.2 = 0.3) that floats get slightly wrong
    ["1.25", "-0.5", "2.0", "0.75", "-1.5", "3.0"],
    ["0.3", "-0.3", "0.0", "0.0", "0.1", "-0.1"],  # observed mean 0: every assignment is as extreme
])
def test_sign_flip_p_matches_brute_force_over_all_64_assignments(differences):
    reference = brute_force_p(differences)
    assert sign_flip_p([float(x) for x in differences]) == pytest.approx(reference, rel=1e-12)
    assert paired_difference([float(x) for x in differences], [0.0] * 6).p_permutation == pytest.approx(reference, rel=1e-12)


def test_sign_flip_p_matches_scipys_exact_permutation_test_for_12_pairs():
    rng = np.random.default_rng(12)
    a = rng.normal(80, 3, 12)
    b = a - rng.normal(0.5, 1.0, 12)
    ours = paired_difference(a, b).p_permutation
    mean = lambda x, axis: np.mean(x, axis=axis)  # noqa: E731
    # One sample with permutation_type="samples": scipy flips the sign of each observation (all 2^12, exact).
    one = scipy_stats.permutation_test((a - b,), mean, permutation_type="samples", n_resamples=np.inf)
    # The same as swapping a_k and b_k within each pair.
    two = scipy_stats.permutation_test((a, b), lambda x, y, axis: np.mean(x - y, axis=axis),
                                       permutation_type="samples", n_resamples=np.inf)
    assert ours == pytest.approx(one.pvalue, rel=1e-12) and ours == pytest.approx(two.pvalue, rel=1e-12)
    assert 0.001 < ours < 0.5  # a real, non-trivial p


def test_twenty_pairs_are_exact_and_fast():
    d = np.random.default_rng(20).normal(0.3, 1.0, 20)
    start = time.perf_counter()
    p = sign_flip_p(d)
    assert time.perf_counter() - start < 0.5
    # Reference: all 2^20 assignments, enumerated in chunks of 2^16 by the bits of their index.
    bits = np.arange(20)
    extreme = 0
    for first in range(0, 2**20, 2**16):
        signs = ((np.arange(first, first + 2**16)[:, None] >> bits) & 1) * 2.0 - 1.0
        extreme += int(np.count_nonzero(np.abs(signs @ d) >= abs(d.sum()) * (1 - 1e-12)))
    assert p == extreme / 2**20


def test_above_twenty_pairs_a_seeded_monte_carlo_near_the_exact_p():
    d = np.random.default_rng(22).normal(0.2, 1.0, 22)
    bits = np.arange(22)
    extreme = 0
    for first in range(0, 2**22, 2**16):
        signs = ((np.arange(first, first + 2**16)[:, None] >> bits) & 1) * 2.0 - 1.0
        extreme += int(np.count_nonzero(np.abs(signs @ d) >= abs(d.sum()) * (1 - 1e-12)))
    exact = extreme / 2**22
    p = sign_flip_p(d)
    assert sign_flip_p(d) == p  # fixed seed: the same p every time
    assert p == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / DRAWS))
    # Far from H0, no draw is as extreme, and the p is 1 / (1 + draws), never 0.
    assert sign_flip_p(np.full(25, 1.0) + np.arange(25) * 0.01) == 1 / (1 + DRAWS)


def test_t_interval_matches_scipy_ttest_rel():
    for n in (2, 5, 10, 30):
        rng = np.random.default_rng(n)
        a = rng.normal(80, 3, n)
        b = a - rng.normal(0.4, 1.0, n)
        d = paired_difference(a, b)
        reference = scipy_stats.ttest_rel(a, b)
        interval = reference.confidence_interval(0.95)
        assert (d.t_low, d.t_high) == pytest.approx((interval.low, interval.high), rel=1e-12)
        assert d.p_value == pytest.approx(reference.pvalue, rel=1e-12)
        assert d.mean == pytest.approx(float(np.mean(a - b)))


def test_identical_differences_give_a_zero_width_interval():
    d = paired_difference([91.0, 92.0, 93.0], [90.0, 91.0, 92.0])
    assert (d.mean, d.t_low, d.t_high) == pytest.approx((1.0,) * 3)
    assert math.isnan(d.p_value) and d.p_permutation == 2 / 8  # only all + and all − reach |sum| 3


def test_too_few_pairs_and_unequal_lengths():
    one = paired_difference([90.0], [89.0])
    assert one.n == 1 and one.mean == 1.0 and math.isnan(one.t_low) and math.isnan(one.p_permutation)
    none = paired_difference([], [])
    assert none.n == 0 and math.isnan(none.mean) and math.isnan(none.p_permutation)
    assert "no interval" in ruled_out(one)
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1.0, 2.0], [1.0])


@pytest.mark.parametrize("null_mean", [-1.0, 0.0, 0.4, 1.5])
def test_one_sided_t_and_tost_match_scipy_ttest_1samp(null_mean):
    d = [0.5, -0.5, 1.0, 0.0, 1.5, 0.3, 0.9]
    assert one_sided_t(d, null_mean) == pytest.approx(
        scipy_stats.ttest_1samp(d, null_mean, alternative="less").pvalue, rel=1e-12)
    margin = abs(null_mean) + 0.5
    reference = max(scipy_stats.ttest_1samp(d, -margin, alternative="greater").pvalue,
                    scipy_stats.ttest_1samp(d, margin, alternative="less").pvalue)
    assert tost(d, margin) == pytest.approx(reference, rel=1e-12)


def test_one_sided_t_and_tost_by_hand_and_at_the_edges():
    # d = 0.5, -0.5, 1.0, 0.0, 1.5: mean 0.5, se 0.353553 (see above). Against null 1.5: t = -1 / 0.353553 = -2.828,
    # P(T_4 <= -2.828) = 0.0237: "at least 1.5 points better" is rejected at 5%.
    d = [0.5, -0.5, 1.0, 0.0, 1.5]
    assert one_sided_t(d, 1.5) == pytest.approx(0.0237, abs=2e-4)
    # TOST at ±2: t = (0.5 + 2) / 0.3536 = 7.07 and (0.5 - 2) / 0.3536 = -4.24: the larger p is P(T_4 <= -4.24) = 0.0066.
    assert tost(d, 2.0) == pytest.approx(0.0066, abs=2e-4)
    assert tost(d, 0.25) > 0.5  # the mean itself lies outside ±0.25
    assert math.isnan(one_sided_t([1.0], 0.0)) and math.isnan(tost([1.0], 1.0))
    # No spread: the limit of p as the spread shrinks.
    assert one_sided_t([0.2, 0.2, 0.2], 1.0) == 0.0 and one_sided_t([2.0, 2.0], 1.0) == 1.0
    assert one_sided_t([1.0, 1.0], 1.0) == 0.5
    assert tost([0.2, 0.2, 0.2], 0.5) == 0.0 and tost([0.7, 0.7], 0.5) == 1.0
    with pytest.raises(ValueError, match="positive"):
        tost(d, 0.0)


def test_sign_test_by_hand():
    # a - b = +2, +3, 0, +4, -1, +4, +3, +3: a larger in 6, b in 1, one tie dropped.
    # Two-sided exact binomial with 7 trials: 2 · P(X <= 1) = 2 · (1 + 7) / 128 = 0.125.
    a = [10, 12, 9, 15, 11, 14, 13, 10]
    b = [8, 9, 9, 11, 12, 10, 10, 7]
    test = sign_test(a, b)
    assert (test.n, test.wins_a, test.wins_b, test.ties) == (8, 6, 1, 1)
    assert test.p_value == pytest.approx(0.125, rel=1e-12)
    faster = sign_test(a, b, lower_is_better=True)  # times: the smaller value wins
    assert (faster.wins_a, faster.wins_b, faster.ties, faster.p_value) == (1, 6, 1, test.p_value)
    assert sign_test([3.0, 3.0], [3.0, 3.0]).p_value == 1.0 and math.isnan(sign_test([], []).p_value)


def test_censoring_moves_the_signed_rank_test_but_not_the_sign_test():
    # Steps to target of DBA and a baseline on 8 seeds; budget 10 epochs of 100 steps, censored at 1100.
    # Two baseline runs never reached it: their true times (5000, 2000 if trained on) are unknown.
    dba = [300, 1000, 800, 350, 450, 600, 700, 400]
    true_base = [500, 5000, 450, 300, 2000, 650, 900, 420]
    censored_base = [500, 1100, 450, 300, 1100, 650, 900, 420]
    assert sign_test(dba, censored_base, lower_is_better=True) == sign_test(dba, true_base, lower_is_better=True)
    # Wilcoxon ranks |differences|: censoring turns the largest one (-4000) into one (-100) smaller than DBA's
    # loss of 350 on seed 2, whose rank rises from 6 to 7: the sum of positive ranks and the p move.
    true_w, censored_w = (scipy_stats.wilcoxon(np.subtract(dba, base)) for base in (true_base, censored_base))
    assert (true_w.statistic, censored_w.statistic) == (8.5, 9.5) and true_w.pvalue != censored_w.pvalue
    # Both censored (both never reached): a tie, whatever the true times.
    assert sign_test([1100], [1100]).ties == 1


def test_verdict_words_for_each_outcome():
    assert verdict(0.01, 0.5, +0.8, 0.05, 0.5) == "DBA better"
    assert verdict(0.01, 0.5, -0.8, 0.05, 0.5) == "DBA worse"
    assert verdict(0.30, 0.02, +0.1, 0.05, 0.5) == "equivalent within ±0.5"
    assert verdict(0.30, 0.20, +0.1, 0.05, 0.5) == "no difference shown"
    assert verdict(math.nan, math.nan, +3.0, 0.05, 1.0) == "no difference shown"  # NaN never rejects
    assert verdict(math.nan, 0.01, +3.0, 0.05, 1.0) == "equivalent within ±1"


def test_holm_by_hand():
    # Sorted 0.01, 0.02, 0.04 times 3, 2, 1: 0.03, 0.04, 0.04 (kept monotone); NaN stays out of the count.
    assert holm([0.04, 0.01, math.nan, 0.02]) == pytest.approx([0.04, 0.03, math.nan, 0.04], nan_ok=True)


def test_pairs_are_formed_on_the_seeds_both_have():
    seeds, a, b = pair_by_seed({0: 90.0, 1: 91.0, 2: 92.0, 5: 95.0}, {1: 80.0, 2: 81.0, 3: 82.0, 5: 85.0})
    assert (seeds, a, b) == ([1, 2, 5], [91.0, 92.0, 95.0], [80.0, 81.0, 85.0])


def test_sentences_say_what_is_ruled_out():
    straddles = paired_difference([90.5, 89.5, 91.0, 90.0, 91.5], [90.0] * 5)  # [-0.48, +1.48]
    assert ruled_out(straddles) == (
        "The interval contains zero (no difference detected): an improvement larger than 1.48 points, "
        "or a loss larger than 0.48, is ruled out at 95%."
    )
    better = paired_difference([91.0, 92.0, 91.5], [90.0, 90.5, 90.5])  # 1.0, 1.5, 1.0
    assert "lies above zero" in ruled_out(better) and f"larger than {better.t_high:.2f} points" in ruled_out(better)
    worse = paired_difference([89.0, 89.5, 89.0], [90.0, 90.5, 90.5])
    assert ruled_out(worse).startswith("The whole interval lies at or below zero: any improvement is ruled out at 95%")
