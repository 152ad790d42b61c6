"""Which samples a layer keeps: greedy backward elimination on the Gram matrix.

Start from the whole batch S. Each round, score S minus {k} for every k in S,
remove the k whose removal improves the metric most, and stop when no removal
improves it, when |S| reaches `min_size`, or after `max_removals` removals.

"Improves" means by more than float noise (`metrics.tolerance`, scaled by
`rtol`); candidates within that noise of the best one are tied, and the lowest
index among them is removed. Both rules make the result deterministic and the
same whether the scores come from running sums or from scratch.

`greedy_search` keeps running row sums so that a round costs O(B) and the whole
search O(B^2). It runs compiled (numba) on the CPU, accumulating in float64: at
B = 256 a round is about half a microsecond of arithmetic and the whole search
about 0.07 ms, where a loop of torch or numpy calls (microseconds each) would
take longer than the rest of the training step. `greedy_reference` and
`exhaustive_search` recompute every candidate from scratch; they exist for the
tests.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from ._jit import njit, warn_if_slow
from .config import DBAConfig
from .metrics import (
    COSINE,
    candidate_values,
    inverse_norms,
    metric_code,
    metric_from_sums,
    subset_metric,
    to_score,
    tolerance,
)

# Relative noise below which differences do not count (see `metrics.tolerance`).
# A K computed in float32 carries rounding errors of a few float32 epsilons in
# every entry; in float64 the search's own running sums lose more (up to about
# B (B/m)^2 epsilons by the time B samples have shrunk to m), hence the floor.
NOISE_EPS_FACTOR = 8.0
MIN_RTOL = 1e-10
DEFAULT_RTOL = MIN_RTOL


def noise_rtol(eps: float) -> float:
    """rtol for a K computed in a precision with machine epsilon `eps`."""
    return max(NOISE_EPS_FACTOR * eps, MIN_RTOL)


def greedy_search(K: np.ndarray, config: DBAConfig, rtol: float = DEFAULT_RTOL) -> np.ndarray:
    """The boolean mask of the samples kept for Gram matrix K (B x B, symmetric).

    K may be float32 (as a float32 model computes it: no copy) or float64; the
    search itself always accumulates in float64.
    """
    warn_if_slow()
    if not np.isfinite(K).all():  # a diverging model: keep everything, the NaN loss will stop the run
        return np.ones(len(K), dtype=bool)
    K = np.ascontiguousarray(K, dtype=K.dtype if K.dtype in (np.float32, np.float64) else np.float64)
    max_removals = -1 if config.max_removals is None else config.max_removals
    return _greedy(
        K,
        metric_code(config.metric),
        config.direction == "maximize",
        config.unbiased,
        config.min_size,
        max_removals,
        rtol,
    )


@njit
def _greedy(K, metric, maximize, unbiased, min_size, max_removals, rtol):
    B = K.shape[0]
    kept = np.ones(B, dtype=np.bool_)
    diag = np.empty(B)
    r = np.zeros(B)  # r_i = sum_{j in S} K_ij, summed row by row (K is symmetric) so it vectorises
    for i in range(B):
        diag[i] = K[i, i]
        row = K[i]
        for j in range(B):
            r[j] += row[j]
    w = inverse_norms(diag)
    u = np.zeros(B)  # u_k = sum_{i in S} K_ik / sqrt(K_ii), cosine only
    if metric == COSINE:
        for i in range(B):
            u += w[i] * K[i]
    m = B
    D = diag.sum()
    T = r.sum()
    C = (w * r).sum()
    N1 = np.sqrt(np.maximum(diag, 0.0)).sum()
    current = to_score(metric_from_sums(metric, m, D, T, C, unbiased, rtol), maximize)
    values = np.empty(B)
    removals = 0
    while m > min_size and m > 1 and removals != max_removals:
        candidate_values(diag, kept, r, u, w, m, D, T, C, metric, unbiased, rtol, values)
        best = math.inf
        for k in range(B):
            if kept[k]:
                values[k] = to_score(values[k], maximize)
                best = min(best, values[k])
        # abs: running sums such as D can drift a hair below zero, and a negative
        # tolerance would let no candidate match below (an out-of-bounds scan).
        tol = abs(tolerance(metric, m, D, T, N1, rtol))
        if not best < current - tol:
            break
        k = 0
        while k < B and not (kept[k] and values[k] <= best + tol):
            k += 1
        if k == B:  # only with NaN scores; compiled code has no bounds checks, so never index past B
            break
        # remove k: update the sums of S and the running sums of every sample
        Kkk = diag[k]
        C = C - w[k] * r[k] - u[k] + w[k] * Kkk
        T = T - 2.0 * r[k] + Kkk
        D = D - Kkk
        N1 = N1 - math.sqrt(max(Kkk, 0.0))
        m -= 1
        current = values[k]
        kept[k] = False
        row = K[k]  # = column k: K is symmetric, and rows are contiguous
        for i in range(B):
            r[i] -= row[i]
        if metric == COSINE:
            for i in range(B):
                u[i] -= w[k] * row[i]
        removals += 1
    return kept


def greedy_search_many(Ks: np.ndarray, configs: list[DBAConfig], rtol: float = DEFAULT_RTOL) -> np.ndarray:
    """`greedy_search` of every K in Ks (N x B x B), each with its own config, in one compiled call: the masks, N x B.

    For packed training (training/packed_dba.py): every layer of every run of a
    pack at once. Each mask is exactly the one `greedy_search(Ks[i], configs[i], rtol)` returns.
    """
    warn_if_slow()
    Ks = np.ascontiguousarray(Ks, dtype=Ks.dtype if Ks.dtype in (np.float32, np.float64) else np.float64)
    finite = np.isfinite(Ks).all(axis=(1, 2))  # a diverging run keeps everything, as greedy_search does
    return _greedy_many(
        Ks, finite,
        np.array([metric_code(c.metric) for c in configs], dtype=np.int64),
        np.array([c.direction == "maximize" for c in configs], dtype=np.bool_),
        np.array([c.unbiased for c in configs], dtype=np.bool_),
        np.array([c.min_size for c in configs], dtype=np.int64),
        np.array([-1 if c.max_removals is None else c.max_removals for c in configs], dtype=np.int64),
        rtol,
    )


@njit
def _greedy_many(Ks, finite, metric, maximize, unbiased, min_size, max_removals, rtol):
    masks = np.ones((Ks.shape[0], Ks.shape[1]), dtype=np.bool_)
    for i in range(Ks.shape[0]):
        if finite[i]:
            masks[i] = _greedy(Ks[i], metric[i], maximize[i], unbiased[i], min_size[i], max_removals[i], rtol)
    return masks


def greedy_reference(K: np.ndarray, config: DBAConfig, rtol: float = DEFAULT_RTOL) -> np.ndarray:
    """The same greedy search, every candidate subset's metric recomputed from K."""
    K = np.asarray(K, dtype=np.float64)
    code, maximize = metric_code(config.metric), config.direction == "maximize"
    kept = np.ones(len(K), dtype=bool)

    def score(mask: np.ndarray) -> float:
        return to_score(subset_metric(K, mask, config.metric, config.unbiased, rtol), maximize)

    current = score(kept)
    removals = 0
    while kept.sum() > max(config.min_size, 1) and removals != config.max_removals:
        scores = {}
        for k in np.flatnonzero(kept):
            without = kept.copy()
            without[k] = False
            scores[k] = score(without)
        best = min(scores.values())
        block = K[np.ix_(kept, kept)]
        norms = np.sqrt(np.maximum(np.diag(block), 0.0))
        tol = tolerance(code, int(kept.sum()), float(np.trace(block)), float(block.sum()), float(norms.sum()), rtol)
        if not best < current - tol:
            break
        k = min(k for k, s in scores.items() if s <= best + tol)
        kept[k] = False
        current = scores[k]
        removals += 1
    return kept


def exhaustive_search(K: np.ndarray, config: DBAConfig, rtol: float = DEFAULT_RTOL) -> tuple[np.ndarray, float]:
    """The best subset of all those the search may reach, and its score (small B only).

    Subsets with at least min_size samples (and, with max_removals, at most that
    many removed). Ties: the larger subset, then the lexicographically first.
    """
    K = np.asarray(K, dtype=np.float64)
    B = len(K)
    if B > 16:
        raise ValueError(f"exhaustive search is for small batches (B <= 16), got B = {B}")
    maximize = config.direction == "maximize"
    smallest = max(config.min_size, 1, B - (config.max_removals if config.max_removals is not None else B))
    best_mask, best_score = np.ones(B, dtype=bool), math.inf
    for size in range(B, min(smallest, B) - 1, -1):
        for subset in itertools.combinations(range(B), size):
            s = to_score(subset_metric(K, list(subset), config.metric, config.unbiased, rtol), maximize)
            if s < best_score:
                best_score = s
                best_mask = np.zeros(B, dtype=bool)
                best_mask[list(subset)] = True
    return best_mask, best_score
