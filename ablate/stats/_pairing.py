"""What pairing by seed bought, measured rather than assumed.

Every arm trains on the same seeds, so a contrast's two sides can be paired seed by
seed. That helps only as much as the sides are correlated:
var(a - b) = var(a) + var(b) - 2 cov(a, b). The numbers here let a report say exactly
that: the realized correlation (with an approximate Fisher-z 95% interval, so five
seeds are not read as proof), the variance of the paired differences, the variance a
difference of independent runs would have, var(a) + var(b), and their ratio: a paired
study with n seeds is as precise as an unpaired one with about ratio * n seeds per arm.
A ratio near 1 means the pairing bought nothing (it cost nothing either).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.stats as st

__all__ = ["Pairing", "pairing"]


@dataclass(frozen=True)
class Pairing:
    """Pairing numbers over the seeds where both sides finished (nan where undefined)."""

    n: int
    correlation: float  # Pearson r of the two sides
    correlation_ci: tuple[float, float]  # approximate 95% (Fisher z); nan for n < 4
    var_paired: float  # var(a - b), ddof = 1
    var_unpaired: float  # var(a) + var(b), ddof = 1
    ratio: float  # var_unpaired / var_paired: seeds' worth of the pairing


def pairing(a: object, b: object) -> Pairing:
    """a, b: (n,) the two sides of a contrast on the same seeds (both finished)."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"a and b must be 1-D arrays of one shape, got {x.shape}, {y.shape}")
    n = x.size
    nan = math.nan
    if n < 2:
        return Pairing(n, nan, (nan, nan), nan, nan, nan)
    va, vb, vd = (float(np.var(v, ddof=1)) for v in (x, y, x - y))
    r = float(np.corrcoef(x, y)[0, 1]) if va > 0 and vb > 0 else nan
    if n >= 4 and math.isfinite(r) and abs(r) < 1:
        half = float(st.norm.isf(0.025)) / math.sqrt(n - 3)
        ci = (math.tanh(math.atanh(r) - half), math.tanh(math.atanh(r) + half))
    else:
        ci = (nan, nan)
    ratio = (va + vb) / vd if vd > 0 else (math.inf if va + vb > 0 else nan)
    return Pairing(n, r, ci, vd, va + vb, ratio)
