"""Subset metrics from the Gram matrix K of per-sample gradients, K_ij = <g_i, g_j>.

For a subset S of m samples every metric is a function of four sums:

    D = sum_{i in S} K_ii                       (sum of squared norms)
    T = sum_{i,j in S} K_ij = ||sum_{i in S} g_i||^2
    C = sum_{i in S} r_i / sqrt(K_ii),  r_i = sum_{j in S} K_ij   (cosine only)
    N1 = sum_{i in S} sqrt(K_ii)                (sum of norms, for `tolerance` only)
    m = |S|

    mean_norm      ||mean||^2           = T / m^2
    variance       (1/m) sum ||g_i - mean||^2 = D/m - T/m^2      (V_S, trace of the covariance)
    mean_variance  variance of the mean = V_S / m
    snr            ||mean||^2 / (V_S / m)
    cosine         (1/m) sum_i cos(g_i, mean) = C / (m sqrt(T))

With `unbiased`, sums of squared deviations are divided by m - 1 instead of m:
variance = m V_S / (m - 1), mean_variance = V_S / (m - 1), and snr uses the latter.

Removing one sample k from S changes the sums in O(1) given the running row
sums r (and, for cosine, u_k = sum_{i in S} K_ik / sqrt(K_ii)):

    m' = m - 1,  D' = D - K_kk,  T' = T - 2 r_k + K_kk,
    C' = C - r_k / sqrt(K_kk) - u_k + sqrt(K_kk)

so `candidate_values` scores every possible removal in O(m).

Conventions where a formula breaks down (the search must never see NaN):
- values a formula would make NaN (0/0) are NaN here and become the *worst*
  score in `to_score`, whatever the direction, so they are never chosen:
  unbiased variance of one sample, snr and cosine of a subset whose mean is zero;
- snr with zero noise and a non-zero mean is +inf (a perfect signal);
- a zero gradient (K_ii = 0) has cosine 0 to anything;
- K comes from floating point: a variance that rounding makes negative is 0;
  a variance of the mean below rtol q / m (q = D/m, the mean squared norm) is
  zero noise for snr, and a squared mean norm below rtol q is a zero mean for
  snr and cosine. ||mean||^2 <= q and V_S <= q always, so q bounds every term
  of these formulas and rtol q is their rounding noise (see `search.noise_rtol`).

The compiled functions take the metric as its index in METRICS (numba has no
cheap string dispatch); `metric_code` converts.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import njit
from .config import METRICS

MEAN_NORM, VARIANCE, MEAN_VARIANCE, SNR, COSINE = (
    METRICS.index(name) for name in ("mean_norm", "variance", "mean_variance", "snr", "cosine")
)


def metric_code(metric: str) -> int:
    """The integer the compiled functions use for `metric`."""
    return METRICS.index(metric)


@njit
def metric_from_sums(metric, m, D, T, C, unbiased, rtol):
    """The metric of a subset of m >= 1 samples with sums D, T, C (module docstring)."""
    return _metric(metric, m, 1.0 / m, _inverse_dof(m, unbiased), D, T, C, unbiased, rtol)


@njit
def _inverse_dof(m, unbiased):
    """1 / (degrees of freedom of the variance): 1/m, or 1/(m - 1) with Bessel's correction."""
    if unbiased:
        return 1.0 / (m - 1.0) if m >= 2 else math.nan
    return 1.0 / m


@njit
def _metric(metric, m, inv_m, inv_dof, D, T, C, unbiased, rtol):
    """metric_from_sums given 1/m and 1/dof, which all candidates of a search
    round share: computed once per round, not once per candidate."""
    floor = rtol * D * inv_m  # rtol q
    mean_norm = max(T * inv_m * inv_m, 0.0)
    if metric == MEAN_NORM:
        return mean_norm
    if metric == COSINE:
        if mean_norm <= floor or T <= 0.0:
            return math.nan
        return C * inv_m / math.sqrt(T)
    # variance-based metrics; with Bessel's correction a single sample has none
    if unbiased and m < 2:
        return math.nan
    deviations = max(D - T * inv_m, 0.0)  # sum_i ||g_i - mean||^2 = m V_S
    if metric == VARIANCE:
        return deviations * inv_dof
    mean_variance = deviations * inv_dof * inv_m
    if metric == MEAN_VARIANCE:
        return mean_variance
    # SNR
    # `<= 0.0` too: rounding can push D (hence the floor) a hair below zero when
    # every gradient of a layer vanishes, and compiled code raises on x / 0.
    if mean_variance <= floor * inv_m or mean_variance <= 0.0:
        return math.nan if mean_norm <= max(floor, 0.0) else math.inf
    return mean_norm / mean_variance


@njit
def to_score(value, maximize):
    """What the search minimises: the value (or its negative), NaN as the worst (+inf)."""
    if math.isnan(value):
        return math.inf
    return -value if maximize else value


@njit
def tolerance(metric, m, D, T, N1, rtol):
    """How much a score must improve to count: smaller differences are float noise.

    From the current subset's size m, sums D and T and sum of gradient norms
    N1 = sum_{i in S} sqrt(K_ii). Each metric's rounding error is about rtol
    times a scale of its own: about q = D/m for the variance (q/m for the
    variance of the mean), N1^2/m^2 >= sum |K_ij| / m^2 for the squared mean norm,
    N1/sqrt(T) = sum ||g_i|| / ||sum g_i|| for the cosine, and
    m / (1 - rho)^2 for snr, whose value is m rho / (1 - rho) with rho = ||mean||^2 / q.
    A scale that is not finite gives 0 (the current value is then infinite or
    undefined, and any finite candidate is a real change).
    """
    scale = 0.0
    if metric == VARIANCE:
        scale = D / max(m - 1.0, 1.0)
    elif metric == MEAN_VARIANCE:
        scale = D / (m * max(m - 1.0, 1.0))
    elif metric == MEAN_NORM:
        scale = (N1 / m) ** 2
    elif metric == COSINE:
        if T > 0.0:
            scale = N1 / math.sqrt(T)
    else:  # SNR
        spread = 1.0 - T / (m * D) if D > 0.0 else 0.0  # 1 - rho
        if spread * spread > 0.0:  # (a tiny spread squares to zero)
            scale = m / (spread * spread)
    tol = rtol * scale
    return tol if math.isfinite(tol) else 0.0


@njit
def inverse_norms(diag):
    """1 / ||g_i|| for the cosine, 0 for a zero gradient (its cosine counts as 0)."""
    out = np.zeros(diag.shape[0])
    for i in range(diag.shape[0]):
        if diag[i] > 0.0:
            out[i] = 1.0 / math.sqrt(diag[i])
    return out


@njit
def candidate_values(diag, active, r, u, w, m, D, T, C, metric, unbiased, rtol, out):
    """out[k] = the metric of S minus {k} for every k in S (active[k]), in O(B).

    S is given by the boolean mask `active` (m = its size >= 2); diag = diag K,
    r and u the running sums over S (module docstring), w = inverse_norms(diag),
    and D, T, C the sums of S. Entries for k outside S are left untouched.
    """
    inv_m, inv_dof = 1.0 / (m - 1), _inverse_dof(m - 1, unbiased)
    for k in range(diag.shape[0]):
        if active[k]:
            Kkk = diag[k]
            C_k = C - w[k] * r[k] - u[k] + w[k] * Kkk
            out[k] = _metric(metric, m - 1, inv_m, inv_dof, D - Kkk, T - 2.0 * r[k] + Kkk, C_k, unbiased, rtol)
    return out


# --- references: recompute from scratch, obviously correct, used by the tests ---


def running_sums(K: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float, float]:
    """r, u, w and D, T, C of the subset `active` (boolean mask), computed directly."""
    w = inverse_norms(np.ascontiguousarray(np.diag(K)))
    r = K[:, active].sum(axis=1)
    u = (w[active, None] * K[active, :]).sum(axis=0)
    D = float(np.trace(K[np.ix_(active, active)]))
    T = float(K[np.ix_(active, active)].sum())
    C = float((w[active] * r[active]).sum())
    return r, u, w, D, T, C


def subset_metric(K: np.ndarray, subset, metric: str, unbiased: bool = False, rtol: float = 0.0) -> float:
    """The metric of the samples `subset` (indices or boolean mask), straight from K."""
    index = np.flatnonzero(subset) if np.asarray(subset).dtype == bool else np.asarray(subset, dtype=np.int64)
    block = K[np.ix_(index, index)]
    diag = np.diag(block)
    w = inverse_norms(np.ascontiguousarray(diag))
    C = float((w * block.sum(axis=1)).sum())
    return metric_from_sums(metric_code(metric), len(index), float(diag.sum()), float(block.sum()), C, unbiased, rtol)
