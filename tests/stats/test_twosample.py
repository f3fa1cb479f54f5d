"""The exact two-sample permutation test against brute-force enumeration and SciPy.

Tolerances: p values are ratios of exact integer counts, so they are compared with ==
against the rational oracle (or 1e-12 against SciPy, whose p is a float mean). Interval
ends are differences of subset means (rationals) times the resolution; 1e-12 covers the
rounding of that product.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hs

from ablate.stats import rank_sum_p, two_sample
from ablate.stats._twosample import splits

H = 1e-4  # accuracy on 10,000 validation images


def brute(a: list[int], b: list[int], delta: Fraction) -> tuple[Fraction, Fraction]:
    """Oracle: (p_greater, p_less) of H: Delta = delta by listing every split of the
    pooled values a - delta, b into groups of len(a) and len(b), in exact rationals."""
    pooled = [Fraction(v) - delta for v in a] + [Fraction(v) for v in b]
    t = sum(pooled[:len(a)])
    sums = [sum(pooled[i] for i in idx) for idx in
            itertools.combinations(range(len(pooled)), len(a))]
    return (Fraction(sum(s >= t for s in sums), len(sums)),
            Fraction(sum(s <= t for s in sums), len(sums)))


def test_hand_case() -> None:
    # a = [3, 4], b = [1, 2]: of the C(4, 2) = 6 splits only the observed one puts both
    # large values in group A, so p_greater(0) = 1/6; p_less(0) = 6/6.
    dist = two_sample(np.array([3, 4]) * H, np.array([1, 2]) * H, resolution=H)
    assert dist.total == 6
    assert dist.p_greater(0.0) == 1 / 6 and dist.p_less(0.0) == 1.0
    assert dist.floor == 1 / 6
    # A shift of 2 makes the pooled values [1, 2, 1, 2], observed group-A sum 3; the six
    # splits' sums are 3, 2, 3, 3, 4, 3: five are >= 3.
    assert dist.p_greater(2 * H) == 5 / 6 == float(brute([3, 4], [1, 2], Fraction(2))[0])


def test_matches_brute_force_grid_and_enumeration() -> None:
    rng = np.random.default_rng(5)
    shifts = [Fraction(-3), Fraction(-1, 2), Fraction(0), Fraction(1, 3), Fraction(2),
              Fraction(17, 5)]
    for _ in range(50):
        a = rng.integers(-4, 8, size=rng.integers(1, 6)).tolist()  # ties and zeros
        b = rng.integers(-6, 5, size=rng.integers(1, 6)).tolist()
        grid = two_sample(np.array(a) * H, np.array(b) * H, resolution=H)
        free = two_sample(np.array(a, dtype=float), np.array(b, dtype=float),
                          resolution=None)
        assert grid.exact and free.exact and grid.total == free.total == splits(len(a), len(b))
        for delta in shifts:
            g, lo = brute(a, b, delta)
            assert grid.p_greater(float(delta) * H) == float(g), (a, b, delta)
            assert grid.p_less(float(delta) * H) == float(lo), (a, b, delta)
            assert free.p_greater(float(delta)) == float(g), (a, b, delta)
            assert free.p_less(float(delta)) == float(lo), (a, b, delta)


def test_matches_scipy_permutation_test() -> None:
    rng = np.random.default_rng(8)
    for _ in range(10):
        a = rng.normal(0.3, 1.0, size=rng.integers(3, 8))
        b = rng.normal(0.0, 1.0, size=rng.integers(3, 8))
        ref = st.permutation_test(
            (a, b), lambda x, y: np.mean(x) - np.mean(y), permutation_type="independent",
            alternative="greater", n_resamples=np.inf, vectorized=False)
        assert two_sample(a, b, resolution=None).p_greater(0.0) == pytest.approx(
            ref.pvalue, abs=1e-12)


def test_interval_is_the_set_of_shifts_not_rejected() -> None:
    # Inversion: every delta inside the 90% interval has both one-sided p > 0.05, and
    # just outside either end one of them is <= 0.05.
    rng = np.random.default_rng(21)
    for _ in range(20):
        a = rng.integers(-30, 40, size=rng.integers(4, 9))
        b = rng.integers(-40, 30, size=rng.integers(4, 9))
        dist = two_sample(a * H, b * H, resolution=H)
        lo, hi = dist.interval(0.90)
        assert math.isfinite(lo) and math.isfinite(hi) and lo <= hi
        eps = 1e-6 * H  # beyond the tie tolerance (1e-9 units), below the gap between means
        assert dist.p_greater(lo) > 0.05 and dist.p_less(hi) > 0.05
        assert dist.p_greater(lo - eps) <= 0.05 and dist.p_less(hi + eps) <= 0.05
        # The ends are differences of subset means: rational multiples of H.
        for end in (lo, hi):
            frac = Fraction(end / H).limit_denominator(100)
            assert abs(float(frac) * H - end) < 1e-12


def test_too_few_runs_give_unbounded_interval() -> None:
    # C(3, 1) = 3 splits: the smallest p is 1/3 > 0.025, so no shift is rejected.
    lo, hi = two_sample([0.1], [0.2, 0.3], resolution=None).interval(0.95)
    assert lo == -math.inf and hi == math.inf


def test_grid_centre_and_wide_values() -> None:
    # Accuracies near 0.98 on 1/10000 are ~9800 grid units; centring keeps the table
    # small and W unchanged: the same p as the same data shifted to zero.
    rng = np.random.default_rng(2)
    a = (9800 + rng.integers(-30, 30, size=8)) * H
    b = (9790 + rng.integers(-30, 30, size=8)) * H
    near = two_sample(a, b, resolution=H)
    moved = two_sample(a - 0.98, b - 0.98, resolution=H)
    for d in (-0.002, 0.0, 0.001, 0.003):
        assert near.p_greater(d) == moved.p_greater(d)
    assert near.total == splits(8, 8) == 12870


def test_monte_carlo_path_agrees_with_exact() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.5, 1, 9), rng.normal(0, 1, 9)
    exact = two_sample(a, b, resolution=None)
    mc = two_sample(a, b, resolution=None, exact_max=10, n_resamples=40_000,
                    rng=np.random.default_rng(0))
    assert exact.exact and not mc.exact
    p, q = exact.p_greater(0.0), mc.p_greater(0.0)
    assert abs(p - q) < 5 * mc.mc_se(p) + 1 / 40_000  # 5 SE: a flake rate below 1e-6
    with pytest.raises(ValueError, match="needs rng"):
        two_sample(a, b, resolution=None, exact_max=10)


@settings(max_examples=40, deadline=None)
@given(hs.lists(hs.integers(-5, 5), min_size=1, max_size=5),
       hs.lists(hs.integers(-5, 5), min_size=1, max_size=5),
       hs.fractions(min_value=-6, max_value=6, max_denominator=4))
def test_property_grid_equals_brute(a: list[int], b: list[int], delta: Fraction) -> None:
    dist = two_sample(np.array(a) * H, np.array(b) * H, resolution=H)
    g, lo = brute(a, b, delta)
    assert dist.p_greater(float(delta) * H) == float(g)
    assert dist.p_less(float(delta) * H) == float(lo)


def _rank_brute(ua: list[float], ub: list[float], upper: bool) -> Fraction:
    """Oracle: rank-sum p by listing splits of the midranks (-inf tied at the bottom)."""
    ranks = st.rankdata(np.array(ua + ub))
    twice = [Fraction(int(round(2 * r))) for r in ranks]
    t = sum(twice[:len(ua)])
    sums = [sum(twice[i] for i in idx) for idx in
            itertools.combinations(range(len(twice)), len(ua))]
    hit = [s >= t for s in sums] if upper else [s <= t for s in sums]
    return Fraction(sum(hit), len(sums))


def test_rank_sum_with_diverged_runs() -> None:
    inf = -math.inf
    ua, ub = [0.3, 0.5, inf, 0.9], [0.1, 0.2, 0.4, inf, inf]
    for upper in (True, False):
        assert rank_sum_p(ua, ub, 0.0, upper=upper, resolution=None) == \
            float(_rank_brute(ua, ub, upper))
    # A shift moves the finite values only; diverged stay at the bottom.
    shifted = [v - 0.25 for v in ua]
    assert rank_sum_p(ua, ub, 0.25, upper=True, resolution=None) == \
        float(_rank_brute(shifted, ub, True))
    # Without ties or divergence it is the exact Mann-Whitney test.
    a, b = [0.31, 0.52, 0.77, 0.93], [0.12, 0.24, 0.45, 0.6, 0.05]
    ref = st.mannwhitneyu(a, b, alternative="greater", method="exact").pvalue
    assert rank_sum_p(a, b, 0.0, upper=True, resolution=None) == pytest.approx(ref, abs=1e-12)


def test_rank_sum_grid_ties_survive_float_shift() -> None:
    # 0.9712 - 0.0003 is not exactly 0.9709 in floats; on the grid they must tie.
    ua, ub = [0.9712, 0.9720], [0.9709, 0.9700]
    p_shift = rank_sum_p(ua, ub, 0.0003, upper=True, resolution=H)
    ranks_tied = _rank_brute([0.9709, 0.9717], [0.9709, 0.9700], True)
    assert p_shift == float(ranks_tied)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="non-empty finite"):
        two_sample([], [1.0], resolution=None)
    with pytest.raises(ValueError, match="non-empty finite"):
        two_sample([math.nan], [1.0], resolution=None)
    with pytest.raises(ValueError, match="off the grid"):
        two_sample([0.00015], [0.0], resolution=H)
