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

`_verdict` requires this rank test to agree before any claim is made for a contrast
with a diverged run among its paired seeds; see there for the rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.stats as st

from ablate.stats._outcomes import ContrastData
from ablate.stats._signflip import sign_flip

__all__ = ["Divergence", "divergence", "improvement_scores", "rank_p"]


@dataclass(frozen=True)
class Divergence:
    """Divergence of a contrast's two sides over its paired seeds."""

    paired: int  # seeds where neither side is missing
    arm_only: int  # seeds where only the arm diverged
    baseline_only: int  # seeds where only the baseline diverged
    both: int  # seeds where both diverged
    p_value: float  # exact two-sided binomial test on the discordant seeds (1 if none)


def divergence(data: ContrastData) -> Divergence:
    """Count divergences per side and compare the rates on the discordant seeds."""
    arm_only = int(np.count_nonzero(data.diverged_a & ~data.diverged_b))
    base_only = int(np.count_nonzero(data.diverged_b & ~data.diverged_a))
    both = int(np.count_nonzero(data.diverged_a & data.diverged_b))
    k = arm_only + base_only
    p = 1.0 if k == 0 else float(st.binomtest(arm_only, k, 0.5).pvalue)
    return Divergence(len(data.seeds), arm_only, base_only, both, p)


def improvement_scores(data: ContrastData, *, higher_is_better: bool) -> np.ndarray:
    """(n_paired,) improvement per paired seed: +-inf for one-sided divergence, NaN for
    a seed where both sides diverged (a tie, left out of rank tests)."""
    sign = 1.0 if higher_is_better else -1.0
    with np.errstate(invalid="ignore"):
        u = sign * (data.a - data.b)
    u = np.where(data.diverged_a, -np.inf, u)
    u = np.where(data.diverged_b, np.inf, u)
    return np.where(data.diverged_a & data.diverged_b, np.nan, u)


def rank_p(u: np.ndarray, delta0: float, *, upper: bool, resolution: float | None) -> float:
    """Exact one-sided signed-rank p of symmetry about delta0, diverged = worst.

    u: (n,) improvements from `improvement_scores`. upper=True tests H: Delta <= delta0
    (small p: u lies above delta0); upper=False tests H: Delta >= delta0.
    """
    z = u[~np.isnan(u)] - delta0
    finite = z[np.isfinite(z)]
    scale = resolution if resolution is not None else \
        1e-12 * max(float(np.abs(finite).max(initial=0.0)), abs(delta0), 1e-300)
    z = z[np.abs(z) > 1e-6 * scale if resolution is not None else np.abs(z) > scale]
    if z.size == 0:
        return 1.0
    ranks = st.rankdata(np.abs(z))  # midranks; inf ties with inf at the top
    dist = sign_flip(np.sign(z) * ranks, resolution=0.5)
    return dist.p_greater(0.0) if upper else dist.p_less(0.0)
