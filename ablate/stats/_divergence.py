"""Diverged runs: an outcome of the treatment, counted as the worst one.

A run that blew up did not fail to produce an outcome; its outcome was the worst
possible. Two analyses keep an unstable arm from being favoured:

- Divergence rates, compared on their own: per paired seed, did each side diverge?
  Seeds where exactly one side diverged are the discordant ones; under "equal
  divergence rates" each discordant seed is equally likely to be the arm's or the
  baseline's, so the exact two-sided binomial test on them (McNemar's exact test)
  compares the rates.
- A rank test of the contrast with diverged = worst: per paired seed, the improvement
  u (arm - baseline, sign-flipped for lower-is-better metrics) is -inf when only the
  arm diverged, +inf when only the baseline did, and the seed is a tie (left out) when
  both did. The exact Wilcoxon signed-rank test of symmetry about delta0 (ranks of
  |u - delta0|, midranks for ties, infinities tied at the top) is counted with the
  same exact sign-flip machinery (twice the midranks are integers).

A contrast with a diverged run among its paired seeds is decided on this joint
outcome alone (`_verdict`): diverged ranks below every finished run, so an arm that
diverges where the baseline does not can be "worse" from that alone. `rank_scores`
gives the per-seed signed ranks the joint step-down flips (`_joint`), and
`rank_interval` inverts the test: the interval of the joint outcome's pseudo-median
(an end is -inf or +inf where divergence decides it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.stats as st

from ablate.stats._outcomes import ContrastData
from ablate.stats._signflip import sign_flip

__all__ = ["Divergence", "divergence", "improvement_scores", "rank_interval", "rank_p",
           "rank_scores"]


@dataclass(frozen=True)
class Divergence:
    """Divergence of a contrast's two sides over its paired seeds."""

    paired: int  # seeds where neither side is missing
    arm_only: int  # seeds where only the arm diverged
    baseline_only: int  # seeds where only the baseline diverged
    both: int  # seeds where both diverged
    p_value: float  # exact two-sided binomial test on the discordant seeds (1 if none)
    arm_seeds: tuple[int, ...] = ()  # seeds where the arm diverged
    baseline_seeds: tuple[int, ...] = ()  # seeds where the baseline diverged


def divergence(data: ContrastData) -> Divergence:
    """Count divergences per side and compare the rates on the discordant seeds."""
    arm_only = int(np.count_nonzero(data.diverged_a & ~data.diverged_b))
    base_only = int(np.count_nonzero(data.diverged_b & ~data.diverged_a))
    both = int(np.count_nonzero(data.diverged_a & data.diverged_b))
    k = arm_only + base_only
    p = 1.0 if k == 0 else float(st.binomtest(arm_only, k, 0.5).pvalue)
    seeds = np.asarray(data.seeds, dtype=np.int64)
    return Divergence(len(data.seeds), arm_only, base_only, both, p,
                      tuple(int(x) for x in seeds[data.diverged_a]),
                      tuple(int(x) for x in seeds[data.diverged_b]))


def improvement_scores(data: ContrastData, *, higher_is_better: bool) -> np.ndarray:
    """(n_paired,) improvement per paired seed: +-inf for one-sided divergence, NaN for
    a seed where both sides diverged (a tie, left out of rank tests)."""
    sign = 1.0 if higher_is_better else -1.0
    with np.errstate(invalid="ignore"):
        u = sign * (data.a - data.b)
    u = np.where(data.diverged_a, -np.inf, u)
    u = np.where(data.diverged_b, np.inf, u)
    return np.where(data.diverged_a & data.diverged_b, np.nan, u)


def _shifted(u: np.ndarray, delta0: float, resolution: float | None) -> np.ndarray:
    """(n,) u - delta0 with NaN (both diverged) and zeros (ties at delta0) as 0."""
    z = np.where(np.isnan(u), 0.0, u - delta0)
    finite = z[np.isfinite(z)]
    scale = resolution if resolution is not None else \
        1e-12 * max(float(np.abs(finite).max(initial=0.0)), abs(delta0), 1e-300)
    tiny = 1e-6 * scale if resolution is not None else scale
    return np.where(np.abs(z) > tiny, z, 0.0)


def rank_scores(u: np.ndarray, delta0: float, *, resolution: float | None) -> np.ndarray:
    """(n,) twice the signed midranks of |u - delta0| (integers), 0 for a seed that is
    a tie (both diverged, or exactly delta0): the scores `rank_p` counts, per seed."""
    z = _shifted(u, delta0, resolution)
    out = np.zeros(z.size)
    nz = z != 0
    if nz.any():
        out[nz] = np.sign(z[nz]) * 2.0 * st.rankdata(np.abs(z[nz]))
    return out


def rank_p(u: np.ndarray, delta0: float, *, upper: bool, resolution: float | None) -> float:
    """Exact one-sided signed-rank p of symmetry about delta0, diverged = worst.

    u: (n,) improvements from `improvement_scores`. upper=True tests H: Delta <= delta0
    (small p: u lies above delta0); upper=False tests H: Delta >= delta0.
    """
    z = rank_scores(u, delta0, resolution=resolution)
    z = z[z != 0]
    if z.size == 0:
        return 1.0
    dist = sign_flip(z / 2.0, resolution=0.5)
    return dist.p_greater(0.0) if upper else dist.p_less(0.0)


def rank_interval(u: np.ndarray, confidence: float, *, resolution: float | None
                  ) -> tuple[float, float]:
    """The interval of the joint outcome's pseudo-median: the shifts neither one-sided
    rank test rejects at (1 - confidence) / 2, found by bisection on the half-grid
    (the signed-rank statistic falls as the shift rises). (low, high), improvement units;
    an end is -inf / +inf when no finished value bounds it (e.g. all -inf: (-inf, -inf))."""
    a = (1.0 - confidence) / 2.0
    finite = u[np.isfinite(u)]
    if finite.size == 0:
        lo_v = hi_v = 0.0
    else:
        lo_v, hi_v = float(finite.min()), float(finite.max())
    step = (resolution / 2.0) if resolution is not None else max(hi_v - lo_v, 1e-12) / 4096
    k_lo, k_hi = math.floor(lo_v / step) - 2, math.ceil(hi_v / step) + 2

    def last_true(pred: Callable[[int], bool], lo: int, hi: int) -> int | None:
        """Largest k in [lo, hi] with pred(k), pred true then false; None if never."""
        if not pred(lo):
            return None
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if pred(mid) else (lo, mid - 1)
        return lo

    # Lower end: the smallest shift the upper test does not reject.
    def rejected_up(k: int) -> bool:
        return rank_p(u, k * step, upper=True, resolution=resolution) <= a

    def kept_down(k: int) -> bool:
        return rank_p(u, k * step, upper=False, resolution=resolution) > a

    k = last_true(rejected_up, k_lo, k_hi)
    if k is None:
        low = -math.inf
    elif k >= k_hi:
        low = math.inf
    else:
        low = (k + 1) * step
    k = last_true(kept_down, k_lo, k_hi)
    if k is None:
        high = -math.inf
    elif k >= k_hi:
        high = math.inf
    else:
        high = k * step
    if low == math.inf:
        high = math.inf
    return float(low), float(high)
