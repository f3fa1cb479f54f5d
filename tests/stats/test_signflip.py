"""Exact sign-flip inference against brute-force enumeration, SciPy and hand cases.

Tolerances: p values are ratios of exact integer counts, so they are compared with ==
(or 1e-15, one rounding of a division). Interval ends are subset means s/k times the
resolution; 1e-12 covers that product's rounding.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given
from hypothesis import strategies as hs

from ablate.stats import sign_flip, to_grid
from ablate.stats._signflip import subset_table

H = 1e-4  # the grid of accuracy differences over 10,000 validation images


def brute(x: list[int], delta: Fraction) -> tuple[Fraction, Fraction]:
    """Oracle: (p_greater, p_less) of H: Delta = delta by enumerating all 2^n signs with
    exact rational arithmetic (no float ties to worry about)."""
    y = [Fraction(v) - delta for v in x]
    t = sum(y)
    sums = [sum(s * v for s, v in zip(signs, y, strict=True))
            for signs in itertools.product((1, -1), repeat=len(y))]
    return (Fraction(sum(u >= t for u in sums), len(sums)),
            Fraction(sum(u <= t for u in sums), len(sums)))


def test_hand_cases() -> None:
    # [1, 2, 3]: only all-plus and all-minus reach |sum| = 6: two-sided p = 2/8.
    dist = sign_flip(np.array([1, 2, 3]) * H, resolution=H)
    assert dist.p_two_sided() == 0.25
    assert dist.p_greater() == 1 / 8 and dist.p_less() == 1.0
    # [1, -2, 3]: |sums| over the 8 patterns are 6,4,2,0,0,2,4,6; six are >= 2.
    assert sign_flip(np.array([1, -2, 3]) * H, resolution=H).p_two_sided() == 0.75
    assert sign_flip(np.zeros(7), resolution=H).p_two_sided() == 1.0
    # Shift: H: Delta = 2 on [1, 2, 3] leaves y = [-1, 0, 1], symmetric: p = 1.
    assert sign_flip(np.array([1, 2, 3]) * H, resolution=H).p_two_sided(2 * H) == 1.0
    assert dist.floor == 1 / 8


def test_matches_brute_force_at_integer_half_and_odd_shifts() -> None:
    rng = np.random.default_rng(11)
    shifts = [Fraction(-3), Fraction(-3, 2), Fraction(0), Fraction(1, 2), Fraction(2),
              Fraction(20, 7)]
    for _ in range(60):
        x = rng.integers(-6, 9, size=rng.integers(1, 9)).tolist()  # many ties and zeros
        grid = sign_flip(np.array(x) * H, resolution=H)
        free = sign_flip(np.array(x, dtype=float), resolution=None)  # enumeration path
        for delta in shifts:
            g, lo = brute(x, delta)
            assert grid.p_greater(float(delta) * H) == float(g), (x, delta)
            assert grid.p_less(float(delta) * H) == float(lo), (x, delta)
            assert free.p_greater(float(delta)) == float(g), (x, delta)
            assert free.p_less(float(delta)) == float(lo), (x, delta)


def test_the_rope_edge_is_exactly_on_the_grid() -> None:
    # 0.002 / 1e-4 is 20.000000000000004 in float: a tie at the edge must still count.
    x = [20, 25, 30, 20, 40, 22]
    dist = sign_flip(np.array(x) * H, resolution=H)
    assert dist.p_greater(0.002) == float(brute(x, Fraction(20))[0])


@pytest.mark.parametrize("n", [3, 6, 9, 12])
def test_two_sided_p_matches_scipy_permutation_test(n: int) -> None:
    rng = np.random.default_rng(n)
    d = np.rint(rng.normal(12, 25, n)) * H  # (n,) on the grid
    ref = st.permutation_test((d,), lambda v, axis: np.mean(v, axis=axis),
                              permutation_type="samples", n_resamples=np.inf,
                              vectorized=True)
    # SciPy counts |mean| >= |observed| over all 2^n sign flips with a relative
    # tolerance for float ties; on the grid there are no near-ties to disagree about.
    assert sign_flip(d, resolution=H).p_two_sided() == pytest.approx(ref.pvalue, abs=1e-15)


def test_subset_table_counts_every_subset_once() -> None:
    x = np.array([3, -1, 0, 3, 5])
    sizes, sums, counts = subset_table(x)
    expected: dict[tuple[int, int], int] = {}
    for mask in itertools.product((0, 1), repeat=x.size):
        key = (sum(mask), int(np.dot(mask, x)))
        expected[key] = expected.get(key, 0) + 1
    got = {(int(k), int(s)): int(c) for k, s, c in zip(sizes, sums, counts, strict=True)}
    assert got == expected and sum(got.values()) == 2**x.size


def inverted(dist_p: object, candidates: np.ndarray, a: float) -> np.ndarray:
    """Oracle for an interval: the candidate shifts that neither one-sided test rejects."""
    keep = [c for c in candidates if dist_p.p_greater(c) > a and dist_p.p_less(c) > a]  # type: ignore[attr-defined]
    return np.array(keep)


def test_interval_is_the_set_of_shifts_not_rejected() -> None:
    rng = np.random.default_rng(5)
    for _ in range(40):
        n = int(rng.integers(6, 12))
        x = np.rint(rng.normal(15, 25, n)).astype(int)
        dist = sign_flip(x * H, resolution=H)
        for confidence in (0.95, 0.90):
            a = (1 - confidence) / 2
            lo, hi = dist.interval(confidence)
            # The ends are subset means (rationals s/k): not rejected at the end, rejected
            # just beyond it: 1e-6 grid units, far below the gap between subset means
            # (>= 1/n^2 units) and far above the tie tolerance (1e-9 units).
            assert dist.p_greater(lo) > a >= dist.p_greater(lo - 1e-6 * H)
            assert dist.p_less(hi) > a >= dist.p_less(hi + 1e-6 * H)
            # And every shift on a fine grid between them is accepted, none outside.
            grid = np.linspace(x.min() - 2, x.max() + 2, 801) * H
            kept = inverted(dist, grid, a)
            assert kept.min() >= lo - 1e-12 and kept.max() <= hi + 1e-12
            inside = grid[(grid >= lo) & (grid <= hi)]
            assert np.array_equal(kept, inside)


def test_interval_ends_are_hartigan_order_statistics_of_subset_means() -> None:
    # Hartigan (1969): the lower end at one-sided level a is the K-th smallest nonempty
    # subset mean, K = floor(a 2^n). Computed here by listing all 2^n - 1 means.
    rng = np.random.default_rng(8)
    x = np.rint(rng.normal(0, 25, 9)).astype(int)
    means = sorted(Fraction(int(np.dot(m, x)), sum(m))
                   for m in itertools.product((0, 1), repeat=x.size) if sum(m))
    dist = sign_flip(x * H, resolution=H)
    k = math.floor(0.025 * 2**x.size)  # 12
    assert dist.lower_bound(0.025) == pytest.approx(float(means[k - 1]) * H, abs=1e-12)
    assert dist.upper_bound(0.025) == pytest.approx(float(means[-k]) * H, abs=1e-12)


def test_below_the_floor_the_interval_is_unbounded() -> None:
    # n = 5: floor(0.025 * 32) = 0, so no shift can be rejected at 2.5%.
    lo, hi = sign_flip(np.arange(1, 6) * H, resolution=H).interval(0.95)
    assert (lo, hi) == (-math.inf, math.inf)
    # n = 6: K = 1, the interval is [min, max] of the differences.
    x = np.array([3, 9, -4, 7, 12, 1])
    assert sign_flip(x * H, resolution=H).interval(0.95) == pytest.approx(
        (x.min() * H, x.max() * H), abs=1e-15)


@given(hs.lists(hs.integers(-30, 30), min_size=1, max_size=9),
       hs.floats(-40, 40), hs.floats(0, 10))
def test_p_values_are_monotone_in_the_shift(x: list[int], delta: float, step: float) -> None:
    # What the interval and the composite nulls rely on: p_greater never decreases and
    # p_less never increases as the shift grows.
    dist = sign_flip(np.array(x) * H, resolution=H)
    assert dist.p_greater(delta * H) <= dist.p_greater((delta + step) * H)
    assert dist.p_less(delta * H) >= dist.p_less((delta + step) * H)


@given(hs.lists(hs.integers(-20, 20), min_size=1, max_size=10))
def test_order_and_sign_symmetry(x: list[int]) -> None:
    d = np.array(x) * H
    p = sign_flip(d, resolution=H).p_two_sided()
    assert sign_flip(d[::-1], resolution=H).p_two_sided() == p  # seed order is irrelevant
    assert sign_flip(-d, resolution=H).p_two_sided() == p
    assert 0 < p <= 1


def test_grid_and_enumeration_paths_agree_on_intervals() -> None:
    x = np.array([12, -5, 30, 18, 7, 22, -1, 15])
    a, b = sign_flip(x * H, resolution=H), sign_flip(x.astype(float), resolution=None)
    # Same subsets; float enumeration vs integer table: only the final scaling differs.
    assert a.interval(0.95) == pytest.approx(tuple(v * H for v in b.interval(0.95)), abs=1e-12)
    assert a.method == "exact sign-flip inversion (grid 1/10000)"
    assert b.method == "exact sign-flip inversion (all 256 sign patterns)"


def test_off_grid_values_are_refused_not_rounded() -> None:
    with pytest.raises(ValueError, match="off the grid"):
        sign_flip(np.array([0.00015, 0.0002]), resolution=H)
    assert to_grid(np.array([0.0003, -0.0012]), H).tolist() == [3, -12]


def test_monte_carlo_path_states_its_error_and_agrees_with_exact() -> None:
    rng = np.random.default_rng(3)
    d = rng.normal(0.3, 1.0, 21)  # a loss: no grid, n = 21 > 20: Monte Carlo
    mc = sign_flip(d, resolution=None, rng=np.random.default_rng(1), n_resamples=40_000)
    exact = sign_flip(d, resolution=None, exact_max_n=21)  # 2^21 subsets, enumerated
    assert not mc.exact and exact.exact and "Monte Carlo" in mc.method
    for delta in (0.0, 0.2):
        p = exact.p_greater(delta)
        # (1 + count) / (1 + R): within 4 standard errors plus the 1/R shift.
        assert abs(mc.p_greater(delta) - p) <= 4 * mc.mc_se(p) + 1 / 40_000
    assert mc.mc_se(0.05) == pytest.approx(math.sqrt(0.05 * 0.95 / 40_000))
    assert exact.mc_se(0.05) == 0.0
    with pytest.raises(ValueError, match="rng"):
        sign_flip(d, resolution=None)


def test_a_grid_too_wide_to_count_falls_back_and_says_so() -> None:
    # 1e-9 resolution: differences of ~1e7 units would need a 10^8-cell table.
    d = np.array([0.012, -0.004, 0.009, 0.011, 0.002, 0.007])
    dist = sign_flip(d, resolution=1e-9)
    assert dist.resolution is None and dist.exact
    assert dist.method == ("exact sign-flip inversion (all 64 sign patterns; grid 1/1000000000 "
                           "too wide to count)")
    assert dist.p_two_sided() == sign_flip(d, resolution=None).p_two_sided()
