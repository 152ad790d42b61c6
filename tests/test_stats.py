"""Paired differences: intervals against hand computation and against scipy."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from dba_cli.reports.stats import pair_by_seed, paired_difference, ruled_out


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


def test_bootstrap_of_three_pairs_by_hand():
    # Resampling 0, 3, 6 gives means 0..6; each end has probability 1/27 = 3.7% > 2.5%,
    # so the 2.5th and 97.5th percentiles are exactly 0 and 6.
    # t: mean 3, sd 3, se 3 / sqrt(3) = 1.7321; t quantile for 2 df: 4.303 -> [-4.453, 10.453].
    d = paired_difference([0.0, 3.0, 6.0], [0.0, 0.0, 0.0])
    assert (d.boot_low, d.boot_high) == (0.0, 6.0)
    assert d.t_low == pytest.approx(3 - 4.303 * 1.7321, abs=2e-3)
    assert d.t_high == pytest.approx(3 + 4.303 * 1.7321, abs=2e-3)


@pytest.mark.parametrize("n", [2, 5, 10, 30])
def test_t_interval_matches_scipy_ttest_rel(n):
    rng = np.random.default_rng(n)
    a = rng.normal(80, 3, n)
    b = a - rng.normal(0.4, 1.0, n)
    d = paired_difference(a, b)
    reference = scipy_stats.ttest_rel(a, b).confidence_interval(0.95)
    assert (d.t_low, d.t_high) == pytest.approx((reference.low, reference.high), rel=1e-12)
    assert d.mean == pytest.approx(float(np.mean(a - b)))


def test_bootstrap_is_close_to_scipys_and_fixed():
    rng = np.random.default_rng(1)
    a, b = rng.normal(80, 3, 10), rng.normal(80, 3, 10)
    d = paired_difference(a, b)
    assert paired_difference(a, b) == d  # fixed RNG seed: the same interval every time
    reference = scipy_stats.bootstrap(
        (a - b,), np.mean, method="percentile", n_resamples=10_000, rng=np.random.default_rng(7)
    ).confidence_interval
    spread = np.std(a - b, ddof=1)
    assert d.boot_low == pytest.approx(reference.low, abs=0.05 * spread)
    assert d.boot_high == pytest.approx(reference.high, abs=0.05 * spread)
    assert d.t_low < d.mean < d.t_high and d.boot_low < d.mean < d.boot_high


def test_identical_differences_give_a_zero_width_interval():
    d = paired_difference([91.0, 92.0, 93.0], [90.0, 91.0, 92.0])
    assert (d.mean, d.t_low, d.t_high, d.boot_low, d.boot_high) == pytest.approx((1.0,) * 5)


def test_too_few_pairs_and_unequal_lengths():
    one = paired_difference([90.0], [89.0])
    assert one.n == 1 and one.mean == 1.0 and math.isnan(one.t_low) and math.isnan(one.boot_high)
    none = paired_difference([], [])
    assert none.n == 0 and math.isnan(none.mean)
    assert "no interval" in ruled_out(one)
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1.0, 2.0], [1.0])


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
