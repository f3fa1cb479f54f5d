"""Family-wise control from the shared seeds: the min-p step-down over joint sign flips.

The contrasts of a study share seeds (and a baseline), so their tests are dependent.
Holm's method ignores that and cannot go below m / 2^n; a step-down over the joint
randomization of the seeds (Westfall & Young 1993, min-p) uses it.

Data: `scores: (N, m)`, seed i's score in contrast j for one claim type, oriented so
that a large sum is evidence against H_j (0 where seed i has no score in contrast j).
The randomization: under the intersection of the true nulls, flipping the sign of a
seed's whole row leaves the joint law of the true-null columns unchanged (a seed's
vector of shifted differences is jointly symmetric). Each pattern s in {-1, +1}^N
gives the sums S_j(s) = sum_i s_i scores_ij and the marginal p values
p_j(s) = P_t(S_j(t) >= S_j(s)); the observed p_j is p_j at s = (+1, ..., +1), exactly
the per-contrast exact sign-flip p.

Step-down: with the observed p sorted ascending, p_(1) <= ... <= p_(m), the adjusted
p of the k-th is max_{l <= k} P_s(min_{j in R_l} p_j(s) <= p_(l)), R_l the hypotheses
from the l-th on. Rejecting where the adjusted p <= the claim's level controls the
family-wise error at that level (closed testing with the min-p test of each
intersection; the shortcut holds because the min over a larger set is smaller). It is
never above Holm's adjusted p (P(min_j p_j <= t) <= m t), and where every contrast's
seeds agree in sign the smallest adjusted p is 1/2^N, not m / 2^N.

Counting: all 2^N patterns for N <= JOINT_EXACT_MAX_SEEDS (seeds scoring 0 in every
contrast are left out: they change nothing); beyond, the observed pattern plus R
random ones (each seed flipped with probability 1/2), p = count / (1 + R), with its
Monte Carlo standard error stated.

The assumption (joint symmetry) is stronger than each contrast's own: a single
difference of two i.i.d. arms is symmetric, but the vector of differences against a
shared baseline is not when the noise is skewed (the baseline's deviation enters every
contrast with one sign). The calibration benchmark measures what skew does to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["JOINT_EXACT_MAX_SEEDS", "JOINT_RESAMPLES", "Joint", "step_down"]

JOINT_EXACT_MAX_SEEDS = 16  # 65,536 joint patterns, counted exactly
JOINT_RESAMPLES = 20_000  # beyond: SE of an adjusted p of 0.025 is 0.0011
_REL_TOL = 1e-10  # ties of sums, relative to the largest possible sum
_P_TOL = 1e-12


@dataclass(frozen=True)
class Joint:
    """The step-down's adjusted p values of one claim type over one family."""

    raw: np.ndarray  # (m,) each contrast's own exact sign-flip p
    adjusted: np.ndarray  # (m,) step-down adjusted p, >= raw
    exact: bool  # every joint pattern counted
    patterns: int  # patterns counted (2^N exact; 1 + R Monte Carlo)
    mc_se: float  # largest Monte Carlo standard error of an adjusted p (0 when exact)


def _patterns(n: int, exact: bool, resamples: int, rng: np.random.Generator | None
              ) -> np.ndarray:
    """(P, n) signs +-1; row 0 is the observed pattern (all +1)."""
    if exact:
        bits = (np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1  # (2^n, n)
        return 1 - 2 * bits.astype(np.int8)  # row 0: all zeros -> all +1
    if rng is None:
        raise ValueError(f"{n} seeds > {JOINT_EXACT_MAX_SEEDS}: the joint step-down needs "
                         "rng for its Monte Carlo patterns")
    draws = 1 - 2 * rng.integers(0, 2, size=(resamples, n), dtype=np.int8)
    return np.concatenate([np.ones((1, n), dtype=np.int8), draws])


def step_down(scores: object, *, rng: np.random.Generator | None = None,
              exact_max_seeds: int = JOINT_EXACT_MAX_SEEDS,
              resamples: int = JOINT_RESAMPLES) -> Joint:
    """Min-p step-down adjusted p values of the m columns of `scores: (N, m)` (module
    doc): finite scores, large sums are evidence. rng: needed only beyond
    exact_max_seeds informative seeds (pass a stream keyed by the study)."""
    y = np.asarray(scores, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] == 0 or not np.all(np.isfinite(y)):
        raise ValueError(f"scores must be a finite (N, m) array with m >= 1, got {y.shape}")
    m = y.shape[1]
    y = y[np.any(y != 0, axis=1)]  # seeds that score in no contrast change nothing
    n = y.shape[0]
    if n == 0:
        ones = np.ones(m)
        return Joint(ones, ones.copy(), True, 1, 0.0)
    exact = n <= exact_max_seeds
    signs = _patterns(n, exact, resamples, rng)  # (P, n)
    sums = signs.astype(np.float64) @ y  # (P, m)
    total = sums.shape[0]
    tol = _REL_TOL * max(float(np.abs(y).sum(axis=0).max()), 1e-300)
    ordered = np.sort(sums, axis=0)
    p = np.empty_like(sums)  # (P, m) p_j(s): share of patterns with S_j >= S_j(s)
    for j in range(m):
        p[:, j] = (total - np.searchsorted(ordered[:, j], sums[:, j] - tol, side="left")) \
            / total
    raw = p[0].copy()
    order = np.argsort(raw, kind="stable")
    q = np.empty(m)
    running = np.full(total, np.inf)  # min over R_k of p_j(s), built from the end
    for k in range(m - 1, -1, -1):
        j = order[k]
        running = np.minimum(running, p[:, j])
        q[k] = np.count_nonzero(running <= raw[j] + _P_TOL) / total
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(q))
    se = 0.0 if exact else max(math.sqrt(a * (1 - a) / (total - 1)) for a in adjusted)
    return Joint(raw, adjusted, exact, total, se)
