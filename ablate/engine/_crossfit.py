"""The selection-free estimand: cross-fitted validation metrics.

A run keeps the epoch best on validation; scoring that same validation split then
reports the maximum of a noisy curve, an optimistic number (and more optimistic for
noisier or longer curves, which favours some arms over others). Cross-fitting removes
the selection: the validation split is cut into two fixed halves A and B; the epoch
best on A is scored on B and the epoch best on B is scored on A, and the two scores are
pooled over all validation images. No image scores the epoch it helped choose.

Inputs are per-epoch *sums* over each half (correct predictions, or summed
cross-entropy), so the pooled accuracy is an integer count over the validation size:
accuracy differences between arms stay on the grid of 1 / n_val.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["CrossFit", "crossfit"]


@dataclass(frozen=True)
class CrossFit:
    """Cross-fitted value per run and the epochs each half chose (1-based; 0: none)."""

    value: np.ndarray  # (...,) pooled metric over both halves; NaN when nothing to choose
    epoch_a: np.ndarray  # (...,) epoch chosen on half A (scored on B)
    epoch_b: np.ndarray  # (...,) epoch chosen on half B (scored on A)


def _choose(means: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """First best epoch along the last axis, ignoring NaN; -1 where every epoch is NaN."""
    filled = np.where(np.isnan(means), -np.inf if higher_is_better else np.inf, means)
    best = np.argmax(filled, axis=-1) if higher_is_better else np.argmin(filled, axis=-1)
    all_nan = np.isnan(means).all(axis=-1)
    return np.where(all_nan, -1, best)


def crossfit(sums_a: np.ndarray, sums_b: np.ndarray, n_a: int, n_b: int, *,
             higher_is_better: bool) -> CrossFit:
    """Cross-fit per-epoch half sums: sums_a, sums_b (..., n_epochs) -> values (...,).

    value = (sums_b[e_A] + sums_a[e_B]) / (n_a + n_b), where e_A is the first epoch with
    the best mean on half A (sums_a / n_a) and e_B likewise on half B. Epochs with NaN
    (a diverged run's later epochs) are never chosen; a run with no finite epoch, or a
    half with no image, gives NaN.
    """
    a = np.asarray(sums_a, dtype=np.float64)
    b = np.asarray(sums_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim < 1:
        raise ValueError(f"half sums must share a shape (..., n_epochs), got {a.shape}, "
                         f"{b.shape}")
    if n_a <= 0 or n_b <= 0 or a.shape[-1] == 0:
        nan = np.full(a.shape[:-1], np.nan)
        zero = np.zeros(a.shape[:-1], dtype=np.int64)
        return CrossFit(nan, zero, zero)
    e_a = _choose(a / n_a, higher_is_better)
    e_b = _choose(b / n_b, higher_is_better)
    ok = (e_a >= 0) & (e_b >= 0)
    safe_a, safe_b = np.maximum(e_a, 0), np.maximum(e_b, 0)
    scored_b = np.take_along_axis(b, safe_a[..., None], axis=-1)[..., 0]
    scored_a = np.take_along_axis(a, safe_b[..., None], axis=-1)[..., 0]
    value = np.where(ok, (scored_b + scored_a) / (n_a + n_b), np.nan)
    return CrossFit(value, np.where(ok, e_a + 1, 0), np.where(ok, e_b + 1, 0))
