"""The integer grid that accuracy differences live on.

An accuracy over a fixed split of n_val images is (correct images) / n_val, so the
difference of two accuracies is an integer multiple of the resolution h = 1 / n_val.
On that grid the sign-flip null distribution can be counted exactly (see `_signflip`).
Averages of cells (a factorial main effect) live on h / 2; sums and differences of
differences (an interaction) stay on h. Losses have no grid: resolution None.

`to_grid` is the one place that turns metric values into grid units, and it refuses
values that are not on the stated grid rather than rounding them silently: a wrong
resolution would make "exact" p values wrong.
"""

from __future__ import annotations

import numpy as np

__all__ = ["GRID_TOL", "grid_label", "to_grid"]

# A value computed as count / n_val and then differenced sits within ~1e-12 grid units
# of its integer. A wrong resolution leaves values far off: half a unit when it is twice
# too coarse, k * 1e-4 units when it is 1/10001 instead of 1/10000. (A grid that is too
# fine is harmless: it contains the true one, and counting on it stays exact.)
GRID_TOL = 1e-6


def to_grid(values: object, resolution: float) -> np.ndarray:
    """Metric values on the grid k * resolution -> the integers k, checked.

    values: (...,) float; returns (...,) int64. Raises ValueError naming the worst
    value when any value is further than GRID_TOL grid units from an integer.
    """
    if not (resolution > 0 and np.isfinite(resolution)):
        raise ValueError(f"resolution must be a positive finite number, got {resolution}")
    v = np.asarray(values, dtype=np.float64)
    x = v / resolution
    if not np.all(np.isfinite(x)):
        raise ValueError("values contain NaN or inf; only finite values lie on a grid")
    k = np.rint(x)
    off = np.abs(x - k)
    if off.size and float(off.max()) > GRID_TOL:
        worst = int(np.argmax(off))
        raise ValueError(
            f"value {float(v.ravel()[worst])!r} is {float(off.max()):.3g} grid units off the "
            f"grid of resolution {resolution:g}; pass the metric's true resolution "
            "(1 / n_val for accuracy, half that for averaged cells) or resolution=None"
        )
    return k.astype(np.int64)


def grid_label(resolution: float | None) -> str:
    """'1/10000' for resolution 0.0001, 'none' for None; used in method labels."""
    if resolution is None:
        return "none"
    inverse = 1.0 / resolution
    if abs(inverse - round(inverse)) < 1e-9 * inverse:
        return f"1/{round(inverse)}"
    return f"{resolution:g}"
