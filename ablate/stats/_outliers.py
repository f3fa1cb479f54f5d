"""Seeds far from their arm's bulk: the generalized ESD test (Rosner 1983), per arm.

An unstable treatment shows as a seed or two far below the rest (a bad initialization,
a learning rate on the edge). The report flags them so the reader sees the instability
the verdict averages over; the flag decides nothing.

`values: (n,)` one arm's finished outcomes. For i = 1..r (r = the most seeds that may
be flagged, a fifth of n): R_i = max |x - mean| / sd (ddof 1) over the values not yet
removed, then that value is removed; its critical value is
lambda_i = (n - i) t_{p, n-i-1} / sqrt((n - i - 1 + t^2)(n - i + 1)),
p = 1 - alpha / (2 (n - i + 1)). The flagged seeds are the first k removed, k the
largest i with R_i > lambda_i. The test assumes a normal bulk; with fewer than 5
values nothing is flagged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.stats as st

__all__ = ["OUTLIER_ALPHA", "Outliers", "outliers"]

OUTLIER_ALPHA = 0.05
_MIN_VALUES = 5


@dataclass(frozen=True)
class Outliers:
    """The seeds of one arm the generalized ESD test flags."""

    seeds: tuple[int, ...]  # flagged, most extreme first
    values: tuple[float, ...]  # their outcomes
    median: float  # the arm's median over all its finished seeds
    alpha: float


def outliers(values: object, seeds: object, *, alpha: float = OUTLIER_ALPHA) -> Outliers:
    """Flag the seeds far from the bulk of `values: (n,)` (finite; `seeds: (n,)`)."""
    x = np.asarray(values, dtype=np.float64)
    ids = [int(s) for s in np.asarray(seeds).tolist()]
    if x.ndim != 1 or x.size != len(ids) or not np.all(np.isfinite(x)):
        raise ValueError("values and seeds must be 1-D of one length, values finite")
    n = x.size
    median = float(np.median(x)) if n else math.nan
    if n < _MIN_VALUES:
        return Outliers((), (), median, alpha)
    keep = list(range(n))
    removed: list[int] = []
    flagged = 0
    for i in range(1, max(1, n // 5) + 1):
        rest = x[keep]
        sd = float(rest.std(ddof=1))
        if not sd > 0:
            break
        dev = np.abs(rest - rest.mean()) / sd
        j = int(np.argmax(dev))
        p = 1.0 - alpha / (2.0 * (n - i + 1))
        t = float(st.t.ppf(p, n - i - 1))
        lam = (n - i) * t / math.sqrt((n - i - 1 + t * t) * (n - i + 1))
        removed.append(keep.pop(j))
        if dev[j] > lam:
            flagged = i
    chosen = removed[:flagged]
    return Outliers(tuple(ids[k] for k in chosen), tuple(float(x[k]) for k in chosen),
                    median, alpha)
