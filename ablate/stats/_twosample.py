"""Exact two-sample permutation inference, for arms whose seeds do not match.

When an arm and its baseline were not run on the same seeds (results trained
elsewhere, say), nothing pairs them and the sign-flip test does not apply. The matching
exact test is the two-sample permutation test of a shift. Data: the arm's values
`a: (n_a,)` and the baseline's `b: (n_b,)`, independent runs. The null H(delta0): the
values a_i - delta0 and b_j are exchangeable (the arm is the baseline shifted by
delta0). Under H(delta0) every one of the C(N, n_a) ways to split the N = n_a + n_b
pooled values into groups of n_a and n_b is equally likely, and the observed split is
one of them.

Counting the splits is a pair-of-subsets problem, as the sign flips are a subset
problem. A split moves some j values of a out of group A (a subset G of a, |G| = j)
and j values of b in (H of b, |H| = j). Its group-A sum of a - delta0 and b is at
least the observed one exactly when sum_H(b) - sum_G(a) >= -j delta0, i.e. when
W = sum_G(a) - sum_H(b) <= j delta0: when j = 0 (the observed split) or the
difference of the moved subsets' means W / j is <= delta0. Hence

    p_greater(delta0) = #{(G, H) : W <= j delta0} / C(N, n_a)   (tests H: Delta <= delta0)
    p_less(delta0)    = #{(G, H) : W >= j delta0} / C(N, n_a)   (tests H: Delta >= delta0)

with the same form as the sign-flip p values (`_signflip`), the subset size being j and
the subset sum W. So the distribution is a `SignFlip` over (j, W) pairs, and its p
values, interval inversion (the interval ends are differences of subset means, the
Hodges-Lehmann-type bounds), ties and floor (1 / C(N, n_a)) are that class's, unchanged.

How the pairs are counted:
- grid (accuracy; `resolution` h): values / h are integers; the subsets of a and of -b
  are each counted by (size, sum) with `subset_table`, and for every j the two count
  vectors are convolved (integer counts, exact while C(N, n_a) fits int64, N <= 62).
  The values are first centred on a grid point near the pooled median (W does not
  change: both subsets have j members), which keeps the tables narrow.
- no grid: every pair is enumerated when C(N, n_a) <= EXACT_MAX_SPLITS; beyond that,
  R random splits give the Monte Carlo p = (1 + count) / (1 + R), with its standard
  error. `exact` and `method` say which one was used.

`rank_sum_p` is the two-sample analogue of `_divergence.rank_p`: the exact rank-sum
(Wilcoxon-Mann-Whitney) test of a shift with diverged runs ranked worst, counted by the
same machinery on midranks.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.stats as st

from ablate.stats._grid import grid_label, to_grid
from ablate.stats._signflip import DEFAULT_RESAMPLES, MAX_TABLE_CELLS, SignFlip, subset_table

__all__ = ["EXACT_MAX_SPLITS", "rank_sum_p", "splits", "two_sample"]

EXACT_MAX_SPLITS = 2**22  # no grid: ~4 million splits enumerated (~0.3 s, ~70 MB)
_INT64_MAX_N = 62  # C(N, n_a) <= 2^N; int64 holds every count exactly up to N = 62
_MC_CHUNK = 8_192  # random splits drawn per block, bounds memory at (chunk, N)


def splits(n_a: int, n_b: int) -> int:
    """How many ways the pooled runs split into groups of n_a and n_b: C(N, n_a)."""
    return math.comb(n_a + n_b, n_a)


def _check(values: object, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be a non-empty finite 1-D array (n,), got {x!r}")
    return x


def _dense(sizes: np.ndarray, sums: np.ndarray, counts: np.ndarray, j: int
           ) -> tuple[int, np.ndarray]:
    """The counts of one subset size as a dense vector: (lowest sum, counts by sum)."""
    keep = sizes == j
    s, c = sums[keep], counts[keep]
    lo = int(s.min())
    out = np.zeros(int(s.max()) - lo + 1, dtype=counts.dtype)
    out[s - lo] = c
    return lo, out


def _grid_pairs(xa: np.ndarray, xb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(j, W, count) of every pair (G, H), |G| = |H| = j, in grid units, exactly.

    xa: (n_a,), xb: (n_b,) int64 (centred). W = sum_G xa - sum_H xb: the subsets of xa
    by (size, sum) convolved, per size, with the subsets of -xb.
    """
    ta, tb = subset_table(xa), subset_table(-xb)
    sizes, sums, weights = [], [], []
    for j in range(min(xa.size, xb.size) + 1):
        lo_a, ca = _dense(*ta, j)
        lo_b, cb = _dense(*tb, j)
        conv = np.convolve(ca, cb)  # integer dtype: exact counts by W = lo_a + lo_b + k
        nz = np.nonzero(conv)[0]
        sizes.append(np.full(nz.size, j, dtype=np.int64))
        sums.append(nz.astype(np.int64) + lo_a + lo_b)
        weights.append(conv[nz])
    return np.concatenate(sizes), np.concatenate(sums), np.concatenate(weights)


def _subsets_by_size(x: np.ndarray) -> list[np.ndarray]:
    """Float sums of every subset of x, grouped by size: [sums of size 0, 1, ..., n]."""
    sums, sizes = np.zeros(1), np.zeros(1, dtype=np.int64)
    for v in x.tolist():
        sums = np.concatenate([sums, sums + v])
        sizes = np.concatenate([sizes, sizes + 1])
    return [sums[sizes == j] for j in range(x.size + 1)]


def _enumerate_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(j, W) of every pair (G, H): C(N, n_a) of them; float W."""
    sa, sb = _subsets_by_size(a), _subsets_by_size(b)
    sizes, sums = [], []
    for j in range(min(a.size, b.size) + 1):
        w = (sa[j][:, None] - sb[j][None, :]).ravel()  # (C(n_a, j) * C(n_b, j),)
        sizes.append(np.full(w.size, j, dtype=np.int64))
        sums.append(w)
    return np.concatenate(sizes), np.concatenate(sums)


def _sample_pairs(a: np.ndarray, b: np.ndarray, r: int, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(j, W) of R uniformly random splits of the pooled values."""
    pooled = np.concatenate([a, b])  # (N,)
    n_a, n = a.size, pooled.size
    from_a = np.arange(n) < n_a  # (N,) which pooled values came from a
    sizes, sums = [], []
    done = 0
    while done < r:
        k = min(_MC_CHUNK, r - done)
        order = np.argsort(rng.random((k, n)), axis=1)  # (k, N) a random permutation
        in_a = np.zeros((k, n), dtype=bool)
        np.put_along_axis(in_a, order[:, :n_a], True, axis=1)  # the new group A
        left = from_a & ~in_a  # G: values of a moved out, (k, N)
        came = ~from_a & in_a  # H: values of b moved in
        sizes.append(came.sum(axis=1).astype(np.int64))
        sums.append(left.astype(np.float64) @ pooled - came.astype(np.float64) @ pooled)
        done += k
    return np.concatenate(sizes), np.concatenate(sums)


def two_sample(
    a: object,
    b: object,
    *,
    resolution: float | None,
    rng: np.random.Generator | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    exact_max: int = EXACT_MAX_SPLITS,
) -> SignFlip:
    """The permutation distribution of the shift of `a: (n_a,)` over `b: (n_b,)`, both
    finite, counted as the module says. Its p values and intervals are of Delta, the
    shift a - b (`p_greater(r)` tests H: Delta <= r; `interval(0.95)`).

    resolution: the grid the values lie on (1 / n_val for accuracy), or None. rng is
    needed only for the Monte Carlo path (no grid and more than `exact_max` splits, or
    a grid too wide to count); pass a stream keyed by the contrast's name.
    """
    x, y = _check(a, "a"), _check(b, "b")
    n = x.size + y.size
    total = splits(x.size, y.size)
    note = ""
    if resolution is not None:
        xa, xb = to_grid(x, resolution), to_grid(y, resolution)
        centre = int(np.median(np.concatenate([xa, xb])))  # W is the same for any centre
        xa, xb = xa - centre, xb - centre
        cells = (max(x.size, y.size) + 1) * (int(np.abs(np.concatenate([xa, xb])).sum()) + 1)
        if n <= _INT64_MAX_N and cells <= MAX_TABLE_CELLS:
            sizes, sums, weights = _grid_pairs(xa, xb)
            return SignFlip(n=n, exact=True, method=f"exact two-sample permutation inversion "
                            f"(grid {grid_label(resolution)}, all {total} splits)",
                            resolution=resolution, n_resamples=0, sizes=sizes, sums=sums,
                            weights=weights, total=total, base=0)
        note = f"; grid {grid_label(resolution)} too wide to count"
    centre_f = float(np.median(np.concatenate([x, y])))  # fewer cancellations in W
    x, y = x - centre_f, y - centre_f
    if total <= exact_max:
        sizes, sums = _enumerate_pairs(x, y)
        return SignFlip(n=n, exact=True, method=f"exact two-sample permutation inversion "
                        f"(all {total} splits{note})", resolution=None, n_resamples=0,
                        sizes=sizes, sums=sums, weights=np.ones(sums.size, np.int64),
                        total=total, base=0)
    if rng is None:
        raise ValueError(f"{total} splits > {exact_max} without a countable grid: the "
                         "Monte Carlo permutation test needs rng (a stream keyed by the "
                         "contrast name)")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    sizes, sums = _sample_pairs(x, y, n_resamples, rng)
    return SignFlip(n=n, exact=False, method=f"Monte Carlo two-sample permutation inversion "
                    f"({n_resamples} random splits{note})", resolution=None,
                    n_resamples=n_resamples, sizes=sizes, sums=sums,
                    weights=np.ones(sums.size, np.int64), total=1 + n_resamples, base=1)


def rank_sum_p(u_a: object, u_b: object, delta0: float, *, upper: bool,
               resolution: float | None, rng: np.random.Generator | None = None) -> float:
    """Exact one-sided rank-sum p of a shift delta0, diverged runs ranked worst.

    u_a: (n_a,), u_b: (n_b,) the two sides' values in improvement units (higher is
    better), -inf for a diverged run. The pooled values u_a - delta0 and u_b are
    ranked (midranks; the diverged ones tied at the bottom) and the rank sums compared
    by the exact permutation test: upper=True tests H: Delta <= delta0 (small p: the
    arm ranks above), upper=False tests H: Delta >= delta0. Values within the metric's
    grid tolerance of each other (resolution, or a 1e-12 relative tolerance) tie.
    """
    ua, ub = np.asarray(u_a, dtype=np.float64), np.asarray(u_b, dtype=np.float64)
    if ua.ndim != 1 or ub.ndim != 1 or ua.size == 0 or ub.size == 0 or \
            np.isnan(ua).any() or np.isnan(ub).any() or (ua == np.inf).any() or \
            (ub == np.inf).any():
        raise ValueError("u_a and u_b must be non-empty 1-D arrays of finite values or -inf")
    pooled = np.concatenate([ua - delta0, ub])  # (N,)
    finite = pooled[np.isfinite(pooled)]
    if resolution is not None:
        tol = 1e-6 * resolution
    else:
        tol = 1e-12 * max(float(np.abs(finite).max(initial=0.0)), abs(delta0), 1e-300)
    # Snap values closer than the tolerance onto one value, so float noise from the
    # shift does not break a true tie (sorted, each value within tol of the previous
    # joins its group).
    order = np.argsort(pooled, kind="stable")
    snapped = pooled.copy()
    for i in range(1, order.size):
        prev, cur = order[i - 1], order[i]
        if np.isfinite(pooled[cur]) and np.isfinite(snapped[prev]) and \
                pooled[cur] - snapped[prev] <= tol:
            snapped[cur] = snapped[prev]
    ranks = st.rankdata(snapped)  # midranks; -inf ties with -inf at the bottom
    dist = two_sample(ranks[:ua.size], ranks[ua.size:], resolution=0.5, rng=rng)
    return dist.p_greater(0.0) if upper else dist.p_less(0.0)
