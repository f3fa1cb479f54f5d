"""Effect sizes and reference tests of one contrast's differences, `diffs: (n,)`.

The verdict rests on the exact sign-flip test (`_signflip`); these numbers describe the
effect for a reader: d_z (the standardized paired effect), wins k/n with an exact
Clopper-Pearson interval, and, for comparison only, the Wilcoxon signed-rank and paired
t p values (both two-sided, SciPy's defaults).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.stats as st

from ablate.stats._signflip import sign_flip

__all__ = ["Wins", "d_z", "t_p", "wilcoxon_p", "wins"]

_EXACT_RANKS = 62  # exact int64 counts of the 2^n signed-rank patterns


def _finite(diffs: object) -> np.ndarray:
    d = np.asarray(diffs, dtype=np.float64)
    if d.ndim != 1 or not np.all(np.isfinite(d)):
        raise ValueError(f"diffs must be a finite 1-D array (n,), got shape {d.shape}")
    return d


def wilcoxon_p(diffs: object) -> float:
    """Two-sided exact Wilcoxon signed-rank p.

    diffs: (n,). Zero differences are dropped (zero_method="wilcox"), ties share their
    midrank, and the 2^n sign patterns of the signed ranks are counted exactly (twice a
    midrank is an integer). This equals `scipy.stats.wilcoxon` wherever SciPy is exact
    (no ties; or ties with 2^n <= 9999, where it enumerates the patterns one by one,
    ~0.3 s); beyond, SciPy samples or approximates and this stays exact. When every
    difference is zero p = 1.0; nan for n = 0. Beyond 62 nonzero differences, SciPy.
    """
    d = _finite(diffs)
    if d.size == 0:
        return float("nan")
    z = d[d != 0]
    if z.size == 0:
        return 1.0
    if z.size > _EXACT_RANKS:
        return float(st.wilcoxon(d).pvalue)
    ranks = st.rankdata(np.abs(z))  # midranks
    return sign_flip(np.sign(z) * ranks, resolution=0.5).p_two_sided()


def t_p(diffs: object) -> float:
    """Two-sided paired t-test p, as `scipy.stats.ttest_1samp(diffs, 0)`.

    diffs: (n,). nan for n < 2. All differences equal: p = 1.0 if they are zero,
    else 0.0 (the t statistic is 0/0 or +-inf; SciPy would warn and return nan).
    """
    d = _finite(diffs)
    if d.size < 2:
        return float("nan")
    if np.ptp(d) == 0.0:
        return 1.0 if d[0] == 0.0 else 0.0
    t = float(d.mean()) / (float(d.std(ddof=1)) / math.sqrt(d.size))
    return float(2.0 * st.t.sf(abs(t), d.size - 1))


def d_z(diffs: object) -> float:
    """Standardized paired effect d_z = mean(diffs) / sd(diffs, ddof=1).

    diffs: (n,). nan for n < 2. If sd = 0: +inf or -inf with the sign of the mean,
    or nan when the mean is 0 too (no effect and no spread).
    """
    d = _finite(diffs)
    if d.size < 2:
        return float("nan")
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        return float("nan") if mean == 0.0 else float(np.copysign(np.inf, mean))
    return mean / sd


@dataclass(frozen=True)
class Wins:
    """Seeds on which the arm did better, with a Clopper-Pearson interval."""

    wins: int  # seeds where the arm is strictly better than the baseline
    ties: int  # seeds with a difference of exactly zero
    n: int  # all seeds compared (ties count as non-wins)
    ci: tuple[float, float]  # exact Clopper-Pearson 95% interval of wins / n


def wins(diffs: object, *, higher_is_better: bool = True, confidence: float = 0.95) -> Wins:
    """Wins k of n and the Clopper-Pearson interval of k/n.

    diffs: (n,) arm - baseline. A win is a strictly positive difference when higher is
    better and a strictly negative one when lower is better, so `wins` always means
    "the arm did better on this seed". n = 0 gives the interval (0, 1).
    """
    d = _finite(diffs)
    k = int(np.count_nonzero(d > 0 if higher_is_better else d < 0))
    n = d.size
    if n == 0:
        return Wins(0, 0, 0, (0.0, 1.0))
    a = (1.0 - confidence) / 2.0
    # Clopper-Pearson as beta quantiles (what binomtest's "exact" interval solves for).
    low = 0.0 if k == 0 else float(st.beta.ppf(a, k, n - k + 1))
    high = 1.0 if k == n else float(st.beta.isf(a, k + 1, n - k))
    return Wins(k, int(np.count_nonzero(d == 0)), n, (low, high))
