"""Multiplicity adjustment over the family of a study's contrasts.

Holm's step-down procedure controls the family-wise error rate at alpha under any
dependence between the contrasts (they share a baseline, so they are dependent).

It takes and returns `p: (m,)` in the caller's order; adjusted p values are monotone
in the raw p values and capped at 1, so "adjusted p <= alpha" is the decision rule.
"""

from __future__ import annotations

import numpy as np

__all__ = ["holm"]


def _as_pvalues(p: object) -> np.ndarray:
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"p values must be a 1-D array (m,), got shape {arr.shape}")
    if np.any(~np.isfinite(arr)) or np.any((arr < 0) | (arr > 1)):
        raise ValueError(f"p values must lie in [0, 1] and be finite, got {arr.tolist()}")
    return arr


def holm(p: object) -> np.ndarray:
    """Holm step-down adjusted p values.

    p: (m,). With p sorted ascending, p_(1) <= ... <= p_(m), the adjusted value of the
    i-th smallest (1-based) is max_{j <= i} min(1, (m - j + 1) * p_(j)); returned in the
    input order. Rejecting where adjusted p <= alpha is Holm's procedure at level alpha.
    """
    arr = _as_pvalues(p)
    m = arr.size
    order = np.argsort(arr, kind="stable")  # (m,)
    scaled = np.minimum(1.0, (m - np.arange(m)) * arr[order])  # (m - j + 1) p_(j), 0-based
    out = np.empty(m)
    out[order] = np.maximum.accumulate(scaled)  # step-down: never below an earlier step
    return out
