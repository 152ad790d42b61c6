"""The greedy search (running sums, compiled) against plain recomputation, and
greedy against the exhaustive optimum on small batches."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dba_cli.dba import METRICS, DBAConfig
from dba_cli.dba._jit import HAVE_NUMBA
from dba_cli.dba.metrics import metric_code, subset_metric, to_score
from dba_cli.dba.search import DEFAULT_RTOL, _greedy, exhaustive_search, greedy_reference, greedy_search

from .oracles import random_gradients

CONFIGS = [
    DBAConfig(metric=metric, direction=direction, unbiased=unbiased)
    for metric, direction in itertools.product(METRICS, ("minimize", "maximize"))
    for unbiased in ((False, True) if metric in ("variance", "mean_variance", "snr") else (False,))
]


def config_id(config: DBAConfig) -> str:
    return f"{config.metric}-{config.direction}{'-unbiased' if config.unbiased else ''}"


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_greedy_equals_reference_recomputation(config):
    rng = np.random.default_rng(metric_code(config.metric))
    for case in range(40):
        B = int(rng.integers(1, 16))
        G = random_gradients(rng, B)
        if case % 5 == 0 and B > 2:
            G[rng.integers(B)] = G[0]  # an exact duplicate: a tie
        K = G @ G.T
        limits = {"min_size": int(rng.integers(1, max(B, 1) + 1))}
        if case % 3 == 0:
            limits["max_removals"] = int(rng.integers(0, B + 1))
        variant = DBAConfig(**{**config.__dict__, **limits})
        fast = greedy_search(K, variant)
        assert fast.dtype == bool and fast.shape == (B,)
        np.testing.assert_array_equal(fast, greedy_reference(K, variant), err_msg=f"case {case}, {variant}")


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed: everything already runs as Python")
def test_plain_python_fallback_matches_the_compiled_search():
    """Without numba the same functions run as Python; they must agree with the compiled ones."""
    rng = np.random.default_rng(6)
    for config in CONFIGS:
        G = random_gradients(rng, 12)
        maximize = config.direction == "maximize"
        args = (G @ G.T, metric_code(config.metric), maximize, config.unbiased, 3, -1, DEFAULT_RTOL)
        np.testing.assert_array_equal(_greedy.py_func(*args), _greedy(*args))


def test_float32_gram_is_searched_like_its_float64_copy():
    rng = np.random.default_rng(4)
    for config in CONFIGS:
        G = random_gradients(rng, 40, dim=8).astype(np.float32)
        K = G @ G.T
        assert K.dtype == np.float32
        np.testing.assert_array_equal(greedy_search(K, config), greedy_search(K.astype(np.float64), config))


def test_limits_are_respected():
    rng = np.random.default_rng(5)
    G = random_gradients(rng, 30)
    K = G @ G.T
    assert greedy_search(K, DBAConfig(min_size=1)).sum() == 1  # plain variance collapses to one sample
    assert greedy_search(K, DBAConfig(min_size=12)).sum() == 12
    assert greedy_search(K, DBAConfig(max_removals=4)).sum() == 26
    assert greedy_search(K, DBAConfig(max_removals=0)).all()
    assert greedy_search(K, DBAConfig(min_size=40)).all()
    assert greedy_search(K, DBAConfig(min_size=20, max_removals=4)).sum() == 26


def test_batch_of_one_and_equal_gradients_keep_everything():
    for config in CONFIGS:
        assert greedy_search(np.array([[2.0]]), config).tolist() == [True]
        equal = np.full((6, 6), 3.0)  # six identical gradients: nothing to improve
        assert greedy_search(equal, config).all(), config
        assert greedy_search(np.zeros((4, 4)), config).all(), config


def test_ties_remove_the_lowest_index():
    G = np.array([[0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [1.0, 0.0]]) * 3.0  # symmetric: every removal ties
    for config in (DBAConfig(max_removals=1), DBAConfig(metric="cosine", direction="maximize", max_removals=1)):
        assert greedy_search(G @ G.T, config).tolist() == [False, True, True, True]
        assert greedy_search(G[::-1] @ G[::-1].T, config).tolist() == [False, True, True, True]


def test_greedy_finds_a_planted_optimum():
    """Six gradients near one direction and three outliers, at least six kept: drop exactly the outliers."""
    rng = np.random.default_rng(7)
    inliers = np.array([4.0, 1.0, 0.0, 0.0, 0.0]) + 0.1 * rng.normal(size=(6, 5))
    outliers = np.array([[-3.0, 2.0, 1.0, 0.0, 0.0], [0.0, -4.0, 2.0, 1.0, 0.0], [1.0, 0.0, 0.0, -5.0, 3.0]])
    G = np.concatenate([inliers[:2], outliers[:1], inliers[2:4], outliers[1:], inliers[4:]])
    is_outlier = np.array([False, False, True, False, False, True, True, False, False])
    K = G @ G.T
    for config in (
        DBAConfig(metric="variance", min_size=6),
        DBAConfig(metric="mean_variance", min_size=6),
        DBAConfig(metric="snr", direction="maximize", min_size=6),
        DBAConfig(metric="cosine", direction="maximize", min_size=6),
        DBAConfig(metric="mean_norm", direction="maximize", min_size=6),
    ):
        best, _ = exhaustive_search(K, config)
        assert best.tolist() == (~is_outlier).tolist(), config
        assert greedy_search(K, config).tolist() == (~is_outlier).tolist(), config


def test_how_often_greedy_reaches_the_exhaustive_optimum():
    """Not a property of greedy search, a measurement: printed with -s; asserted only loosely."""
    rng = np.random.default_rng(11)
    CASES = 100
    rates = {}
    for metric in METRICS:
        config_direction = "minimize" if metric in ("variance", "mean_variance") else "maximize"
        matches = cases = 0
        for _ in range(CASES):
            B = int(rng.integers(4, 11))
            G = random_gradients(rng, B)
            K = G @ G.T
            config = DBAConfig(metric=metric, direction=config_direction, min_size=max(1, B // 2))
            greedy = greedy_search(K, config)
            greedy_score = to_score(subset_metric(K, greedy, metric, rtol=DEFAULT_RTOL), config_direction == "maximize")
            _, optimum = exhaustive_search(K, config)
            slack = 1e-9 * max(1.0, abs(optimum))
            assert greedy_score >= optimum - slack  # exhaustive is a lower bound
            matches += greedy_score <= optimum + slack
            cases += 1
        rates[metric] = matches / cases
    print(f"\ngreedy reaches the exhaustive optimum (B = 4..10, min_size = B // 2, {CASES} cases each):")
    for metric, rate in rates.items():
        print(f"  {metric:14s} {rate:.0%}")
    assert all(rate >= 0.25 for rate in rates.values()), rates


def test_non_finite_gram_keeps_everything_and_degenerate_grams_stay_in_bounds():
    import numpy as np

    from dba_cli.dba.config import DBAConfig
    from dba_cli.dba.search import greedy_search

    K = np.eye(5)
    K[1, 2] = K[2, 1] = np.nan
    assert greedy_search(K, DBAConfig(min_size=1)).all()
    rng = np.random.default_rng(0)
    for trial in range(300):  # near-degenerate batches: rank one, tiny or huge scales, min_size 1
        B = int(rng.integers(1, 40))
        g = rng.normal(size=(B, 3)) * 10.0 ** rng.integers(-20, 20)
        if trial % 3 == 0:
            g = np.outer(rng.normal(size=B), rng.normal(size=3))
        for metric in ("variance", "mean_variance", "snr", "mean_norm", "cosine"):
            mask = greedy_search((g @ g.T).astype(np.float32), DBAConfig(metric=metric, min_size=1))
            assert mask.shape == (B,) and mask.sum() >= 1


def test_vanishing_gradients_with_a_slightly_negative_gram_never_divide_by_zero():
    """Seen in the ablation: a layer whose per-sample gradients all vanish; rounding left diag K a hair below 0."""
    import numpy as np

    from dba_cli.dba.config import DBAConfig
    from dba_cli.dba.search import greedy_search

    for diagonal in (-1e-30, 0.0, 1e-300):
        K = np.zeros((6, 6))
        np.fill_diagonal(K, diagonal)
        for metric in ("variance", "mean_variance", "snr", "mean_norm", "cosine"):
            for direction in ("minimize", "maximize"):
                mask = greedy_search(K, DBAConfig(metric=metric, direction=direction, min_size=1))
                assert mask.shape == (6,) and mask.sum() >= 1
