"""Metrics from the Gram matrix against the same statistics of explicit vectors,
and the O(m) candidate scores against recomputation from scratch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dba_cli.dba import METRICS
from dba_cli.dba.metrics import candidate_values, metric_code, running_sums, subset_metric, to_score

from .oracles import random_gradients, vector_metric

SETTINGS = [(metric, False) for metric in METRICS] + [(m, True) for m in ("variance", "mean_variance", "snr")]


@pytest.mark.parametrize("metric,unbiased", SETTINGS)
def test_metric_from_gram_equals_metric_of_vectors(metric, unbiased):
    rng = np.random.default_rng(0)
    for _ in range(30):
        B = int(rng.integers(2, 12))
        G = random_gradients(rng, B)
        K = G @ G.T
        subset = np.flatnonzero(rng.random(B) < 0.7)
        if len(subset) < 2:
            subset = np.arange(B)
        expected = vector_metric(G[subset], metric, unbiased)
        assert subset_metric(K, subset, metric, unbiased) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("metric,unbiased", SETTINGS)
def test_candidate_values_equal_recomputation(metric, unbiased):
    rng = np.random.default_rng(1)
    for _ in range(30):
        B = int(rng.integers(3, 14))
        G = random_gradients(rng, B)
        if rng.random() < 0.2:
            G[rng.integers(B)] = 0.0  # a zero gradient: its cosine counts as 0
        K = G @ G.T
        active = rng.random(B) < 0.8
        active[:2] = True
        r, u, w, D, T, C = running_sums(K, active)
        out = np.full(B, -123.0)
        m, code = int(active.sum()), metric_code(metric)
        candidate_values(np.diag(K).copy(), active, r, u, w, m, D, T, C, code, unbiased, 0.0, out)
        for k in range(B):
            if not active[k]:
                assert out[k] == -123.0
                continue
            without = active.copy()
            without[k] = False
            expected = subset_metric(K, without, metric, unbiased)
            if math.isnan(expected):
                assert math.isnan(out[k])
            else:
                assert out[k] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_degenerate_subsets_have_documented_values():
    G = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]])  # all equal: no variance
    K = G @ G.T
    assert subset_metric(K, [0, 1, 2], "variance") == 0.0
    assert subset_metric(K, [0, 1, 2], "snr") == math.inf
    assert subset_metric(K, [0, 1, 2], "cosine") == pytest.approx(1.0)
    assert math.isnan(subset_metric(K, [0], "variance", unbiased=True))
    assert subset_metric(K, [0], "variance") == 0.0
    Z = np.zeros((3, 3))  # all gradients zero: no mean direction, no signal
    assert subset_metric(Z, [0, 1, 2], "mean_norm") == 0.0
    assert math.isnan(subset_metric(Z, [0, 1, 2], "snr"))
    assert math.isnan(subset_metric(Z, [0, 1, 2], "cosine"))


def test_float_noise_below_the_floor_counts_as_zero_variance():
    G = np.array([[1.0, 2.0], [1.0, 2.0 + 1e-4]])  # variance 2.5e-9, q = 5
    K = G @ G.T
    assert subset_metric(K, [0, 1], "snr", rtol=1e-6) == math.inf
    assert math.isfinite(subset_metric(K, [0, 1], "snr", rtol=0.0))


def test_scores_make_undefined_values_the_worst_in_both_directions():
    assert to_score(math.nan, False) == math.inf
    assert to_score(math.nan, True) == math.inf
    assert to_score(2.0, True) == -2.0
    assert to_score(math.inf, True) == -math.inf
