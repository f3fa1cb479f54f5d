"""Exact paired sign-flip inference: p values at any shift, and intervals by inversion.

Data: the per-seed differences of one contrast, `diffs: (n,)`. The null hypothesis
H(delta0): the differences are independent and each is symmetric about delta0. Under
H(delta0) the signs of y_i = d_i - delta0 are fair coins given their magnitudes, so the
observed T = sum(y_i) is one draw from the 2^n equally likely sums sum(s_i y_i).

Counting those sums is a subset problem. Flipping the signs of a subset F turns T into
T - 2 sum_F(y_i), so the flipped sum is >= T exactly when sum_F(d_i) <= |F| delta0, i.e.
when F is empty or the mean of d over F is <= delta0. Hence

    p_greater(delta0) = #{F : sum_F(d) <= |F| delta0} / 2^n      (tests H: Delta <= delta0)
    p_less(delta0)    = #{F : sum_F(d) >= |F| delta0} / 2^n      (tests H: Delta >= delta0)

Both are monotone step functions of delta0 that jump at the subset means (Hartigan
1969), so inverting the one-sided tests gives an interval whose ends are subset means:
the lower bound at one-sided level a is the K-th smallest nonempty subset mean,
K = floor(a 2^n), and the upper bound the K-th largest (-inf / +inf when K = 0: with
fewer than 1/a patterns no shift can be rejected). The 95% interval is the set of
delta0 that neither one-sided test rejects at 2.5%; the 90% interval (TOST at 5%)
likewise at 5%. Monotonicity also makes the composite nulls H: Delta <= r exact at the
edge r: a true Delta < r only makes p_greater(r) larger.

How the subsets are counted:
- grid (accuracy; `resolution` h): d / h are integers, and a table of counts by
  (|F|, sum_F) built by dynamic programming holds every subset exactly (int64 counts,
  exact for n <= 62; Python integers beyond). Cost ~ n^2 * sum|d / h| additions.
- no grid (loss): all 2^n subsets are enumerated for n <= EXACT_MAX_N; beyond that,
  R random sign patterns give the Monte Carlo p = (1 + count) / (1 + R), valid at any R,
  with its standard error stated (`mc_se`). Never silently: `exact` and `method` say
  which one was used.

Ties (a subset mean equal to delta0) count as "at least as extreme", which keeps every
p value valid. On the grid, delta0 is compared in grid units with a tolerance of 1e-9
units (a true tie computed in float differs by ~1e-15; distinct subset means differ by
at least 1/n^2 units), so r = 0.002 on the grid 1/10000 is exactly 20 units.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ablate.stats._grid import grid_label, to_grid

__all__ = [
    "DEFAULT_RESAMPLES",
    "EXACT_MAX_N",
    "MAX_TABLE_CELLS",
    "SignFlip",
    "sign_flip",
    "subset_table",
]

EXACT_MAX_N = 20  # no grid: 2^20 subsets enumerated (~10^6 sums, ~50 ms)
DEFAULT_RESAMPLES = 200_000  # no grid, n > 20: SE of p = 0.025 is 0.00035
# Count table cells (n + 1) * (sum|x| + 1): 4e7 int64 cells is 320 MB. Realistic
# accuracy studies use ~10^4-10^5 (n = 30, sd 25 units); beyond the cap the grid
# path is abandoned for the no-grid one, and the method label says so.
MAX_TABLE_CELLS = 40_000_000
_INT64_MAX_N = 62  # counts reach 2^n; int64 holds them exactly up to n = 62
_GRID_TIE_TOL = 1e-9  # grid units, see the module docstring
_FLOAT_TIE_RTOL = 1e-12  # relative to the sums' scale: float re-association error
_MC_CHUNK = 16_384  # sign patterns drawn per block, bounds memory at (chunk, n)


def subset_table(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count the subsets of integers x by (size, sum), exactly.

    x: (n,) int64. Returns (sizes, sums, counts), each (M,), over the M (size, sum)
    pairs that occur: counts[j] subsets F have |F| = sizes[j] and sum_F x = sums[j].
    counts sum to 2^n (the empty subset is the pair (0, 0)); int64 for n <= 62, Python
    integers (object arrays) beyond.
    """
    x = np.asarray(x, dtype=np.int64)
    n = x.size
    neg, pos = int(-x[x < 0].sum()), int(x[x > 0].sum())
    width = neg + pos + 1
    table = np.zeros((n + 1, width), dtype=np.int64 if n <= _INT64_MAX_N else object)
    table[0, neg] = 1  # column c holds sum c - neg
    lo = hi = neg  # occupied columns so far
    for i, xi in enumerate(x.tolist()):
        # Subsets of the first i+1 values: those without x_i, plus those with it
        # (one larger, xi more). NumPy buffers the overlapping views of `table`.
        table[1:i + 2, lo + xi:hi + 1 + xi] += table[0:i + 1, lo:hi + 1]
        lo, hi = min(lo, lo + xi), max(hi, hi + xi)
    sizes, cols = np.nonzero(table)
    return sizes.astype(np.int64), cols.astype(np.int64) - neg, table[sizes, cols]


def _enumerate_subsets(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All 2^n subsets of d: (sizes, sums), each (2^n,); float sums."""
    sums = np.zeros(1)
    sizes = np.zeros(1, dtype=np.int64)
    for di in d.tolist():
        sums = np.concatenate([sums, sums + di])
        sizes = np.concatenate([sizes, sizes + 1])
    return sizes, sums


def _sample_subsets(d: np.ndarray, r: int, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """R uniformly random subsets of d (each seed flipped with probability 1/2)."""
    sizes, sums = [], []
    done = 0
    while done < r:
        b = min(_MC_CHUNK, r - done)
        flip = rng.integers(0, 2, size=(b, d.size), dtype=np.int8).astype(bool)  # (b, n)
        sizes.append(flip.sum(axis=1).astype(np.int64))
        sums.append(flip.astype(np.float64) @ d)
        done += b
    return np.concatenate(sizes), np.concatenate(sums)


@dataclass(frozen=True)
class SignFlip:
    """The sign-flip null distribution of one contrast, for p values and intervals.

    Every subset F of seeds is stored as a weighted (size, sum) pair: exact tables and
    enumerations carry every subset (total = 2^n), Monte Carlo carries R random ones
    plus the observed pattern (total = 1 + R, `base` = 1). Sums are in grid units when
    `resolution` is set (scale = resolution), in metric units otherwise (scale = 1).
    """

    n: int
    exact: bool
    method: str  # e.g. "exact sign-flip inversion (grid 1/10000)"
    resolution: float | None  # the grid used; None when counted without one
    n_resamples: int  # 0 when exact
    sizes: np.ndarray = field(repr=False)  # (M,) |F|
    sums: np.ndarray = field(repr=False)  # (M,) sum_F d, grid units or metric units
    weights: np.ndarray = field(repr=False)  # (M,) number of subsets with that pair
    total: int  # 2^n (exact) or 1 + R (Monte Carlo)
    base: int  # patterns always counted: 1 for the observed one under Monte Carlo

    @property
    def scale(self) -> float:
        return 1.0 if self.resolution is None else self.resolution

    def _tol(self, delta: float) -> float:
        if self.resolution is not None:
            return _GRID_TIE_TOL
        reach = float(np.abs(self.sums).max(initial=0.0)) + self.n * abs(delta)
        return _FLOAT_TIE_RTOL * max(reach, 1e-300)

    def _count(self, delta0: float, upper: bool) -> int:
        delta = delta0 / self.scale
        excess = self.sums - self.sizes * delta  # (M,) sum_F (d - delta0)
        hit = excess <= self._tol(delta) if upper else excess >= -self._tol(delta)
        return self.base + int(self.weights[hit].sum())

    def p_greater(self, delta0: float = 0.0) -> float:
        """p value of H: Delta <= delta0 against Delta > delta0 (metric units)."""
        return self._count(delta0, upper=True) / self.total

    def p_less(self, delta0: float = 0.0) -> float:
        """p value of H: Delta >= delta0 against Delta < delta0 (metric units)."""
        return self._count(delta0, upper=False) / self.total

    def p_two_sided(self, delta0: float = 0.0) -> float:
        """Two-sided p of H: Delta = delta0: the share of |flipped sum| >= |observed|.

        Because the null distribution is symmetric, this is min(1, 2 min(p_greater,
        p_less)); it equals the classic count of |sum(s_i y_i)| >= |sum(y_i)|.
        """
        return min(1.0, 2.0 * min(self.p_greater(delta0), self.p_less(delta0)))

    @property
    def floor(self) -> float:
        """Smallest attainable one-sided p: 1/2^n exact, 1/(1 + R) Monte Carlo."""
        return (self.base + int(self.weights[self.sizes == 0].sum())) / self.total

    def mc_se(self, p: float) -> float:
        """Monte Carlo standard error of a p value from this distribution (0 if exact)."""
        if self.exact:
            return 0.0
        return math.sqrt(max(p * (1.0 - p), 0.0) / self.n_resamples)

    @functools.cached_property
    def _ordered(self) -> tuple[np.ndarray, np.ndarray]:
        """Nonempty subset means in ascending order and their cumulative weights."""
        keep = self.sizes > 0
        means = self.sums[keep] / self.sizes[keep]  # (M',) units; equal rationals -> equal
        order = np.argsort(means, kind="stable")
        weights = self.weights[keep][order].astype(np.float64) if self.n <= 52 else \
            self.weights[keep][order]
        return means[order], np.cumsum(weights)

    def _k(self, a: float) -> int:
        """Subset means a one-sided bound at level a must pass: floor(a*total) - base."""
        if not 0.0 < a < 0.5 + 1e-12:
            raise ValueError(f"one-sided level must lie in (0, 0.5], got {a}")
        always = self.base + int(self.weights[self.sizes == 0].sum())
        return math.floor(Fraction(a) * self.total) - always + 1

    def lower_bound(self, a: float) -> float:
        """Smallest delta0 that p_greater does not reject at level a (metric units).

        -inf when no delta0 can be rejected (floor(a 2^n) = 0: too few seeds).
        """
        k = self._k(a)
        if k <= 0:
            return -math.inf
        means, cum = self._ordered
        return float(means[int(np.searchsorted(cum, k, side="left"))]) * self.scale

    def upper_bound(self, a: float) -> float:
        """Largest delta0 that p_less does not reject at level a (metric units)."""
        k = self._k(a)
        if k <= 0:
            return math.inf
        means, cum = self._ordered
        from_top = cum[-1] - np.concatenate([[0], cum[:-1]])  # weight of means >= each
        idx = int(np.searchsorted(-from_top, -k, side="right")) - 1
        return float(means[idx]) * self.scale

    def interval(self, confidence: float) -> tuple[float, float]:
        """The confidence interval: delta0 rejected by neither one-sided test at
        (1 - confidence) / 2. (low, high) in metric units; infinite ends below the floor."""
        a = (1.0 - confidence) / 2.0
        return self.lower_bound(a), self.upper_bound(a)


def _grid_or_none(d: np.ndarray, resolution: float | None) -> np.ndarray | None:
    """Integers d / resolution, or None without a grid or when its table would be too big."""
    if resolution is None:
        return None
    x = to_grid(d, resolution)
    cells = (x.size + 1) * (int(np.abs(x).sum()) + 1)
    if cells > MAX_TABLE_CELLS:
        return None
    return x


def sign_flip(
    diffs: object,
    *,
    resolution: float | None,
    rng: np.random.Generator | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    exact_max_n: int = EXACT_MAX_N,
) -> SignFlip:
    """The sign-flip distribution of `diffs: (n,)` (finite), counted as the module says.

    resolution: the grid of the differences (1 / n_val for accuracy), or None. rng is
    needed only without a grid and with n > exact_max_n (Monte Carlo); pass a stream
    keyed by the contrast's name so results do not depend on the order of contrasts.
    """
    d = np.asarray(diffs, dtype=np.float64)
    if d.ndim != 1 or d.size == 0 or not np.all(np.isfinite(d)):
        raise ValueError(f"diffs must be a non-empty finite 1-D array (n,), got {d!r}")
    n = d.size
    x = _grid_or_none(d, resolution)
    if x is not None:
        sizes, sums, weights = subset_table(x)
        return SignFlip(n=n, exact=True, method=f"exact sign-flip inversion (grid "
                        f"{grid_label(resolution)})", resolution=resolution,
                        n_resamples=0, sizes=sizes, sums=sums, weights=weights,
                        total=2**n, base=0)
    note = "" if resolution is None else f"; grid {grid_label(resolution)} too wide to count"
    if n <= exact_max_n:
        sizes, sums = _enumerate_subsets(d)
        return SignFlip(n=n, exact=True, method=f"exact sign-flip inversion (all {2**n} "
                        f"sign patterns{note})", resolution=None, n_resamples=0,
                        sizes=sizes, sums=sums, weights=np.ones(sums.size, np.int64),
                        total=2**n, base=0)
    if rng is None:
        raise ValueError(f"n={n} > {exact_max_n} without a grid: the Monte Carlo "
                         "sign-flip test needs rng (a stream keyed by the contrast name)")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    sizes, sums = _sample_subsets(d, n_resamples, rng)
    return SignFlip(n=n, exact=False, method=f"Monte Carlo sign-flip inversion "
                    f"({n_resamples} sign patterns{note})", resolution=None,
                    n_resamples=n_resamples, sizes=sizes, sums=sums,
                    weights=np.ones(sums.size, np.int64), total=1 + n_resamples, base=1)
