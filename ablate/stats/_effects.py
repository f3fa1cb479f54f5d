"""Effect sizes and reference tests of one contrast's differences, `diffs: (n,)`.

The verdict rests on the exact sign-flip test (`_signflip`); these numbers describe the
effect for a reader: d_z (the standardized paired effect), wins k/n with an exact
Clopper-Pearson interval, and, for comparison only, the Wilcoxon signed-rank and paired
t p values (both two-sided, SciPy's defaults).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.stats as st

__all__ = ["Wins", "d_z", "t_p", "wilcoxon_p", "wins"]


def _finite(diffs: object) -> np.ndarray:
    d = np.asarray(diffs, dtype=np.float64)
    if d.ndim != 1 or not np.all(np.isfinite(d)):
        raise ValueError(f"diffs must be a finite 1-D array (n,), got shape {d.shape}")
    return d


def wilcoxon_p(diffs: object) -> float:
    """Two-sided Wilcoxon signed-rank p (`scipy.stats.wilcoxon`, its defaults).

    diffs: (n,). Zero differences are dropped (zero_method="wilcox"); when every
    difference is zero (SciPy: nan and a warning) p = 1.0; nan for n = 0.
    """
    d = _finite(diffs)
    if d.size == 0:
        return float("nan")
    if not np.any(d):
        return 1.0
    return float(st.wilcoxon(d).pvalue)


def t_p(diffs: object) -> float:
    """Two-sided paired t-test p (`scipy.stats.ttest_1samp(diffs, 0)`).

    diffs: (n,). nan for n < 2. All differences equal: p = 1.0 if they are zero,
    else 0.0 (the t statistic is 0/0 or +-inf; SciPy would warn and return nan).
    """
    d = _finite(diffs)
    if d.size < 2:
        return float("nan")
    if np.ptp(d) == 0.0:
        return 1.0 if d[0] == 0.0 else 0.0
    with warnings.catch_warnings():
        # Nearly identical values: SciPy warns of precision loss in the variance; the
        # p value is still the best available, and it is tiny, as it should be.
        warnings.filterwarnings("ignore", message="Precision loss", category=RuntimeWarning)
        return float(st.ttest_1samp(d, 0.0).pvalue)


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
    if d.size == 0:
        return Wins(0, 0, 0, (0.0, 1.0))
    ci = st.binomtest(k, d.size).proportion_ci(confidence_level=confidence, method="exact")
    return Wins(k, int(np.count_nonzero(d == 0)), int(d.size), (float(ci.low), float(ci.high)))
