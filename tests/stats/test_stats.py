"""Tests of ablate.stats against independent oracles: SciPy, brute force, hand values.

Tolerances: 1e-12 where both sides compute the same quantity in float64 by different
routes (only rounding differs); Monte Carlo comparisons use 3-4 standard errors of the
simulated proportion (stated at each use); published tables use half their last digit.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from fractions import Fraction

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given
from hypothesis import strategies as hs

from ablate.stats import _contrast as S

ALPHA = 0.05


def brute_force_sign_flip(diffs: list[int]) -> Fraction:
    """Oracle: enumerate sign patterns with exact integer arithmetic (no float ties)."""
    observed = abs(sum(diffs))
    patterns = list(itertools.product((1, -1), repeat=len(diffs)))
    hits = sum(abs(sum(s * d for s, d in zip(signs, diffs, strict=True))) >= observed
               for signs in patterns)
    return Fraction(hits, len(patterns))


def mc_se(p: float, trials: int) -> float:
    """Standard error of a simulated proportion."""
    return math.sqrt(p * (1 - p) / trials)


# --- sign-flip test ------------------------------------------------------------------


def test_sign_flip_hand_cases() -> None:
    # [1, 2, 3]: only all-plus and all-minus reach |sum| = 6, so p = 2/8.
    assert S.sign_flip_test(np.array([1.0, 2.0, 3.0])).p_value == 0.25
    # [1, -2, 3]: |sums| over the 8 patterns are 6,4,2,0,0,2,4,6; six are >= 2.
    assert S.sign_flip_test(np.array([1.0, -2.0, 3.0])).p_value == 0.75
    assert S.sign_flip_test(np.zeros(7)).p_value == 1.0
    assert S.sign_flip_test(np.array([5.0])).p_value == 1.0
    assert S.sign_flip_test(np.arange(1.0, 11.0)).label == "sign-flip (exact, 1024 patterns)"


def test_sign_flip_exact_matches_brute_force() -> None:
    rng = np.random.default_rng(11)
    for n in range(1, 9):
        for _ in range(5):
            ints = rng.integers(-4, 6, size=n).tolist()  # small ints: many ties and zeros
            expected = brute_force_sign_flip(ints)
            got = S.sign_flip_test(np.array(ints, dtype=float)).p_value
            assert got == float(expected), (ints, got, expected)


@pytest.mark.parametrize("n", [3, 6, 9, 12])
def test_sign_flip_exact_matches_scipy_permutation_test(n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.normal(0.97, 0.01, n)
    y = x + rng.normal(0.004, 0.006, n)  # (n,) paired scores: arm y, baseline x

    def paired_mean(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
        return np.mean(a - b, axis=axis)

    # "samples" with two samples swaps within each pair; n_resamples=inf makes it exact.
    paired = st.permutation_test(
        (y, x), paired_mean, permutation_type="samples", n_resamples=np.inf, vectorized=True
    )
    # With one sample, "samples" flips the sign of each observation.
    one = st.permutation_test(
        (y - x,), lambda d, axis: np.mean(d, axis=axis), permutation_type="samples",
        n_resamples=np.inf, vectorized=True,
    )
    ours = S.sign_flip_test(y - x).p_value
    # Both count patterns / 2^n; only float rounding of sums could differ (no near-ties).
    assert ours == pytest.approx(paired.pvalue, abs=1e-12)
    assert ours == pytest.approx(one.pvalue, abs=1e-12)


def test_zero_differences_leave_p_unchanged() -> None:
    d = np.array([0.3, -0.1, 0.5, 0.2, 0.4])
    assert S.sign_flip_test(np.r_[d, 0.0, 0.0]).p_value == S.sign_flip_test(d).p_value


def test_monte_carlo_agrees_with_exact_and_is_reproducible() -> None:
    rng = np.random.default_rng(5)
    d = rng.normal(0.35, 1.0, 14)  # n = 14 > EXACT_MAX_N: Monte Carlo by default
    exact = float(S.sign_flip_p_exact(d))  # 16384 patterns, computed both ways
    assert 0.02 < exact < 0.5, "choose data with a p value MC can resolve"
    r = S.DEFAULT_RESAMPLES
    mc = S.sign_flip_test(d, rng=np.random.default_rng(1))
    assert not mc.exact and mc.n_patterns == r
    assert mc.label == f"sign-flip (Monte Carlo, {r} resamples)"
    # 4 standard errors of a proportion over R resamples, plus the (1 + .)/(1 + R) shift.
    assert abs(mc.p_value - exact) <= 4 * mc_se(exact, r) + 1 / r
    assert S.sign_flip_test(d, rng=np.random.default_rng(1)).p_value == mc.p_value
    assert S.sign_flip_test(d, rng=np.random.default_rng(2)).p_value != mc.p_value


def test_monte_carlo_p_is_never_zero_and_needs_rng() -> None:
    d = np.linspace(1.0, 2.0, 20)  # all positive: true p = 2 / 2^20
    r = 5_000
    p = S.sign_flip_p_mc(d, r, np.random.default_rng(0))
    assert 1 / (1 + r) <= p <= 3 / (1 + r)
    with pytest.raises(ValueError, match="rng"):
        S.sign_flip_test(d)


# --- bootstrap intervals -------------------------------------------------------------


def test_bca_equals_scipy_with_the_same_seed() -> None:
    d = np.random.default_rng(3).normal(0.002, 0.003, 10)
    ci95, ci90 = S.bca_intervals(d, rng=np.random.default_rng(42), levels=(0.95, 0.90))
    for level, ci in ((0.95, ci95), (0.90, ci90)):
        ref = st.bootstrap((d,), np.mean, confidence_level=level, method="BCa",
                           rng=np.random.default_rng(42)).confidence_interval
        # Same resamples from the same seed: identical up to rounding.
        assert (ci.low, ci.high) == pytest.approx((ref.low, ref.high), abs=1e-15)
        assert ci.method == "BCa"
        assert ci.low < d.mean() < ci.high
    assert ci95.low <= ci90.low <= ci90.high <= ci95.high


def test_bca_degenerate_cases() -> None:
    (ci,) = S.bca_intervals(np.full(8, 0.25), rng=np.random.default_rng(0), levels=(0.95,))
    assert (ci.low, ci.high) == (0.25, 0.25)
    assert ci.method.startswith("degenerate")
    (one,) = S.bca_intervals(np.array([1.0]), rng=np.random.default_rng(0), levels=(0.95,))
    assert math.isnan(one.low) and math.isnan(one.high)


# --- family corrections --------------------------------------------------------------


def test_holm_hand_example() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> max(0.06, 0.04)
    got = S.holm([0.01, 0.04, 0.03, 0.005])
    assert got == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)
    assert S.holm([0.5, 0.6]).tolist() == [1.0, 1.0]  # 2 * 0.5 = 1, then the cap
    assert S.holm([0.3, 0.9, 0.02]) == pytest.approx([0.6, 0.9, 0.06], abs=1e-15)


def test_bh_matches_scipy() -> None:
    rng = np.random.default_rng(9)
    for m in (1, 2, 5, 17):
        p = rng.uniform(0, 0.2, m) ** 2
        p[: m // 3] = p[0]  # ties
        assert S.benjamini_hochberg(p) == pytest.approx(
            st.false_discovery_control(p, method="bh"), abs=1e-12)


pvals = hs.lists(hs.floats(0.0, 1.0), min_size=1, max_size=12)


@given(pvals)
def test_holm_properties(p: list[float]) -> None:
    adj = S.holm(p)
    raw = np.array(p)
    assert np.all(adj >= raw) and np.all(adj <= 1.0)
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(adj[order]) >= 0)  # monotone in raw-p order
    # Same rejections as Holm's sequential procedure: reject p_(i) < alpha / (m - i)
    # (0-based) while every earlier one was rejected.
    m, reject = len(p), np.zeros(len(p), bool)
    for i, j in enumerate(order):
        if raw[j] * (m - i) >= ALPHA:
            break
        reject[j] = True
    assert np.array_equal(adj < ALPHA, reject)


# --- secondary tests and effect sizes ------------------------------------------------


def test_wilcoxon_and_t_match_scipy() -> None:
    rng = np.random.default_rng(4)
    a = rng.normal(0.9, 0.01, 12)
    b = a + rng.normal(0.003, 0.004, 12)
    assert S.wilcoxon_p(b - a) == st.wilcoxon(b - a).pvalue
    assert S.t_p(b - a) == pytest.approx(st.ttest_rel(b, a).pvalue, abs=1e-14)
    tied = np.array([1.0, 2, 2, 3, 0, -1])
    assert S.wilcoxon_p(tied) == st.wilcoxon(tied).pvalue
    assert S.wilcoxon_p(np.zeros(6)) == 1.0  # SciPy: nan and a warning
    assert S.t_p(np.zeros(6)) == 1.0
    assert S.t_p(np.full(6, 0.01)) == 0.0  # zero spread, nonzero mean: t = inf
    assert math.isnan(S.t_p(np.array([0.3])))


def test_d_z_by_hand() -> None:
    assert S.d_z(np.array([1.0, 2.0, 3.0])) == 2.0  # mean 2, sd 1
    assert S.d_z(np.array([1.0, 1.0, 1.0])) == math.inf
    assert S.d_z(np.array([-2.0, -2.0])) == -math.inf
    assert math.isnan(S.d_z(np.zeros(4)))


def test_wins_and_clopper_pearson() -> None:
    w = S.wins(np.array([1.0, 2.0, 0.0, -1.0, 3.0]))
    assert (w.wins, w.ties, w.n) == (3, 1, 5)
    # Clopper-Pearson as beta quantiles (independent of binomtest).
    assert w.ci == pytest.approx((st.beta.ppf(0.025, 3, 3), st.beta.ppf(0.975, 4, 2)), rel=1e-9)
    ref = st.binomtest(3, 5).proportion_ci(method="exact")
    assert w.ci == pytest.approx((ref.low, ref.high), abs=1e-15)
    all_won = S.wins(np.ones(10))
    # k = n = 10: lower bound solves p^10 = 0.025, upper bound is 1.
    assert all_won.ci == pytest.approx((0.025 ** 0.1, 1.0), rel=1e-9)
    assert S.wins(np.array([-1.0, -2.0, 1.0]), higher_is_better=False).wins == 2


# --- more than two levels ------------------------------------------------------------


def test_friedman_matches_scipy_and_ranks_by_hand() -> None:
    scores = np.random.default_rng(8).normal(size=(9, 4))  # (n_seeds, n_arms)
    res = S.friedman(scores, ["a", "b", "c", "d"])
    ref = st.friedmanchisquare(*scores.T)
    assert (res.statistic, res.p_value) == pytest.approx((ref.statistic, ref.pvalue), abs=1e-12)
    tiny = np.array([[3.0, 2.0, 1.0], [3.0, 1.0, 2.0]])
    assert S.average_ranks(tiny).tolist() == [1.0, 2.5, 2.5]  # rank 1 = best
    assert S.average_ranks(tiny, higher_is_better=False).tolist() == [3.0, 1.5, 1.5]
    tied = S.friedman(np.ones((5, 3)), ["a", "b", "c"])  # SciPy: 0/0 and a warning
    assert (tied.statistic, tied.p_value) == (0.0, 1.0)


@pytest.mark.parametrize(("k", "q"), [(3, 2.343), (4, 2.569), (5, 2.728), (10, 3.164)])
def test_nemenyi_q_matches_published_table(k: int, q: float) -> None:
    # The table truncates to 3 decimals (k=3: 2.34370 is printed 2.343), hence 1e-3.
    assert S.nemenyi_q(k, 0.05) == pytest.approx(q, abs=1e-3)


def test_nemenyi_cd_by_hand() -> None:
    # k = 4, n = 10: 2.569 * sqrt(4 * 5 / 60) = 2.569 / sqrt(3) = 1.48321 (table q, 1e-3)
    assert S.nemenyi_cd(4, 10) == pytest.approx(2.569 / math.sqrt(3), abs=1e-3 / math.sqrt(3))


# --- decisions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "ci95", "ci90", "higher", "expected", "phrase"),
    [
        (0.01, (0.02, 0.05), (0.025, 0.045), True, "better", "above +0.01"),
        (0.01, (-0.05, -0.02), (-0.045, -0.025), True, "worse", "below -0.01"),
        (0.01, (-0.05, -0.02), (-0.045, -0.025), False, "better", "below -0.01"),
        (0.01, (0.02, 0.05), (0.025, 0.045), False, "worse", "above +0.01"),
        (0.01, (0.01, 0.05), (0.015, 0.045), True, "inconclusive", "overlaps"),  # edge
        (0.01, (0.005, 0.05), (0.008, 0.045), True, "inconclusive", "overlaps"),
        (0.20, (0.02, 0.05), (0.025, 0.045), True, "inconclusive", "0.2 >= 0.05"),
        (0.05, (0.02, 0.05), (0.025, 0.045), True, "inconclusive", "0.05 >= 0.05"),  # strict
        (0.50, (-0.006, 0.005), (-0.005, 0.004), True, "equivalent", "inside the ROPE"),
        (0.01, (0.001, 0.004), (0.0015, 0.0035), True, "equivalent", "inside the ROPE"),
        (0.50, (-0.012, 0.011), (-0.009, 0.008), True, "equivalent", "90% CI"),  # not 95%
        (0.50, (-0.02, 0.02), (-0.015, 0.012), True, "inconclusive", "not inside"),
    ],
)
def test_decision_table(
    p: float, ci95: tuple[float, float], ci90: tuple[float, float], higher: bool,
    expected: str, phrase: str,
) -> None:
    decision, reason = S.decide(n=10, p_adjusted=p, ci95=ci95, ci90=ci90, rope=0.01,
                                higher_is_better=higher)
    assert decision == expected
    assert phrase in reason


def test_decision_withheld_below_six_seeds() -> None:
    decision, reason = S.decide(n=5, p_adjusted=0.0625, ci95=(0.5, 0.9), ci90=(0.6, 0.8),
                                rope=0.01)
    assert decision == "inconclusive"
    assert "with n=5 paired seeds the smallest possible sign-flip p is 2/2^5 = 0.0625 > 0.05" \
        in reason
    assert S.decide(n=6, p_adjusted=0.03125, ci95=(0.5, 0.9), ci90=(0.6, 0.8),
                    rope=0.01)[0] == "better"


def _study(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    base = rng.normal(0.97, 0.003, n)  # (n,) baseline scores; arms differ by design
    return {
        "base": base,
        "up": base + 0.02 + rng.normal(0, 0.001, n),
        "down": base - 0.02 + rng.normal(0, 0.001, n),
        "same": base + rng.normal(0, 0.0005, n),
        # alternating +0.02 / -0.018: mean 0.001, spread far wider than the ROPE
        "noisy": base + np.where(np.arange(n) % 2 == 0, 0.02, -0.018),
    }


def test_compare_end_to_end_all_outcomes_and_direction() -> None:
    scores = _study(10, np.random.default_rng(0))
    fam = S.compare(scores, "base", "val_accuracy", 0.005, rng=np.random.default_rng(1))
    got = {c.arm: c.decision for c in fam.contrasts}
    assert got == {"up": "better", "down": "worse", "same": "equivalent",
                   "noisy": "inconclusive"}
    raw = [c.p_value for c in fam.contrasts]
    assert [c.p_holm for c in fam.contrasts] == S.holm(raw).tolist()
    for c in fam.contrasts:
        d = scores[c.arm] - scores["base"]
        assert c.p_value == S.sign_flip_test(d).p_value
        assert c.mean_diff == pytest.approx(d.mean(), abs=1e-15)
        assert c.test == "sign-flip (exact, 1024 patterns)"
    assert fam.friedman is not None and fam.friedman.arms == tuple(scores)
    assert fam.warnings == ()
    # The same numbers as a loss: lower is better, so better and worse swap.
    loss = S.compare(scores, "base", "val_loss", 0.005, higher_is_better=False,
                     rng=np.random.default_rng(1))
    assert {c.arm: c.decision for c in loss.contrasts}["up"] == "worse"
    assert {c.arm: c.decision for c in loss.contrasts}["down"] == "better"
    again = S.compare(scores, "base", "val_accuracy", 0.005, rng=np.random.default_rng(1))
    assert again == fam  # reproducible from the seed


def test_compare_small_study_reports_intervals_only() -> None:
    scores = _study(5, np.random.default_rng(0))
    fam = S.compare(scores, "base", "val_accuracy", 0.005, rng=np.random.default_rng(1))
    assert {c.decision for c in fam.contrasts} == {"inconclusive"}
    assert all("2/2^5 = 0.0625 > 0.05" in c.reason for c in fam.contrasts)
    assert all(math.isfinite(c.ci_low) for c in fam.contrasts)
    # m = 4 contrasts: log2(2 * 4 / 0.05) = 7.3 > 5, so the Holm warning appears too.
    assert any("Holm's strictest threshold" in w for w in fam.warnings)
    assert any("intervals only" in w for w in fam.warnings)


def test_holm_changes_the_decision() -> None:
    d = np.arange(1.0, 7.0)  # 6 positive differences: p = 2/64 = 0.03125
    one = S.compare_contrasts({("a", "b"): d}, metric="m", rope=0.1,
                              rng=np.random.default_rng(0))
    assert one.contrasts[0].decision == "better"
    two = S.compare_contrasts({("a", "b"): d, ("c", "b"): d + 1}, metric="m", rope=0.1,
                              rng=np.random.default_rng(0))
    assert [c.p_holm for c in two.contrasts] == [0.0625, 0.0625]
    assert {c.decision for c in two.contrasts} == {"inconclusive"}
    bh = S.compare_contrasts({("a", "b"): d, ("c", "b"): d + 1}, metric="m", rope=0.1,
                             correction="bh", rng=np.random.default_rng(0))
    assert [c.p_adjusted for c in bh.contrasts] == [0.03125, 0.03125]
    assert [c.p_holm for c in bh.contrasts] == [0.0625, 0.0625]
    assert any("exploratory" in w for w in bh.warnings)


def test_factorial_contrasts_by_hand_and_through_the_paired_machinery() -> None:
    a0b0, a0b1 = np.array([1.0, 2.0]), np.array([2.0, 3.0])
    a1b0, a1b1 = np.array([3.0, 5.0]), np.array([6.0, 9.0])
    vecs = list(S.factorial_2x2(a0b0, a0b1, a1b0, a1b1, factor_a="drop",
                                factor_b="bn").items())
    assert vecs[0][0] == ("drop (main effect)", "drop off")
    assert vecs[0][1].tolist() == [3.0, 4.5]  # ((3+6)-(1+2))/2, ((5+9)-(2+3))/2
    assert vecs[1][1].tolist() == [2.0, 2.5]  # ((2+6)-(1+3))/2, ((3+9)-(2+5))/2
    assert vecs[2][1].tolist() == [2.0, 3.0]  # (6-2)-(3-1), (9-3)-(5-2)
    rng = np.random.default_rng(6)
    base = rng.normal(0.9, 0.01, 8)
    # Additive effects: A adds 0.02, B subtracts 0.01, no interaction.
    cells = (base, base - 0.01, base + 0.02, base + 0.01)
    fam = S.compare_contrasts(S.factorial_2x2(*cells), metric="acc", rope=0.002,
                              rng=np.random.default_rng(0))
    a, b, ab = fam.contrasts
    assert (a.decision, b.decision, ab.decision) == ("better", "worse", "equivalent")
    assert a.mean_diff == pytest.approx(0.02, abs=1e-12)
    assert ab.mean_diff == pytest.approx(0.0, abs=1e-12)


def test_complete_pairs_lists_failed_seeds() -> None:
    paired = S.complete_pairs({
        "base": {0: 0.9, 1: 0.8, 2: 0.85, 3: 0.7},
        "drop": {0: 0.91, 1: None, 2: 0.86, 3: 0.72},
        "bn": {0: 0.92, 1: 0.81, 2: float("nan")},  # seed 3 missing
    })
    assert paired.seeds == (0,)
    assert paired.failed == {"base": (), "drop": (1,), "bn": (2, 3)}
    assert paired.dropped == (1, 2, 3)
    assert paired.scores["drop"].tolist() == [0.91]


def test_to_dict_is_strict_json_with_the_contract_keys() -> None:
    # 7 seeds: the all-positive arm has p = 2/128, Holm over 2 contrasts 0.031 < 0.05.
    scores = {"base": np.zeros(7), "same": np.zeros(7), "up": np.ones(7)}
    fam = S.compare(scores, "base", "acc", 0.1, rng=np.random.default_rng(0))
    out = json.loads(json.dumps(fam.to_dict(), allow_nan=False))
    for c in out["contrasts"]:
        for key in ("arm", "baseline", "metric", "n", "mean_diff", "ci_low", "ci_high",
                    "p_value", "p_holm", "decision"):
            assert key in c
    same, up = out["contrasts"]
    assert same["d_z"] is None and up["d_z"] is None  # nan and +inf become None
    assert same["decision"] == "equivalent" and up["decision"] == "better"


# --- seeds needed and minimum detectable effect --------------------------------------


def test_seeds_needed_is_the_smallest_sufficient_n() -> None:
    # Published (G*Power, one-sample t, two-sided, alpha .05, power .8): d=.5 -> 34, .8 -> 15.
    assert S.seeds_needed(1.0, 0.5) == 34
    assert S.seeds_needed(2.0, 1.6) == 15
    for sd, delta, m in ((0.01, 0.004, 3), (0.003, 0.001, 1), (1.0, 0.2, 6)):
        n = S.seeds_needed(sd, delta, m=m)
        assert n is not None and n > S.min_seeds_for_sign_flip(ALPHA, m)
        level = ALPHA / m
        assert S.t_power(n, delta / sd, level) >= 0.8 > S.t_power(n - 1, delta / sd, level)


def test_seeds_needed_floor_and_undefined_cases() -> None:
    # 2/2^n < alpha/m: n = 6 for m = 1 (2/64 < .05 <= 2/32); n = 7 for m = 3.
    assert S.min_seeds_for_sign_flip(ALPHA, 1) == 6
    assert S.min_seeds_for_sign_flip(ALPHA, 3) == 7
    assert S.seeds_needed(0.001, 1.0) == 6  # the t-test alone would need 3
    assert S.seeds_needed(0.0, 1.0, m=3) == 7
    assert S.seeds_needed(1.0, 0.0) is None
    assert S.seeds_needed(float("nan"), 1.0) is None


def test_t_power_is_finite_and_monotone_deep_in_the_tails() -> None:
    # SciPy's nct.cdf gives nan in the far lower tail (df=4, nc=8.9); power must not.
    for n in (2, 3, 5, 8, 30, 200):
        power = [S.t_power(n, e, ALPHA / 20) for e in np.linspace(0.0, 30.0, 61)]
        assert all(0.0 <= p <= 1.0 for p in power)
        assert all(a <= b for a, b in itertools.pairwise(power))
    assert S.t_power(10, 0.0, ALPHA) == pytest.approx(ALPHA, abs=1e-12)  # size = level
    assert S.mde(1.0, 5, m=4) > 0


def test_t_power_and_mde_by_simulation() -> None:
    n, sd, trials = 10, 2.0, 20_000
    effect = S.mde(sd, n)  # metric units
    assert S.t_power(n, effect / sd, ALPHA) == pytest.approx(0.8, abs=1e-9)
    assert S.seeds_needed(sd, effect * (1 + 1e-6)) == n
    x = np.random.default_rng(12).normal(effect, sd, (trials, n))  # (trials, n)
    sim = float(np.mean(st.ttest_1samp(x, 0.0, axis=1).pvalue < ALPHA))
    assert abs(sim - 0.8) <= 4 * mc_se(0.8, trials)  # 4 SE = 0.011
    assert S.mde(0.0, 10) == 0.0 and math.isnan(S.mde(1.0, 1))


# --- calibration of the primary test -------------------------------------------------


def _rejection_rate(diffs: np.ndarray) -> float:
    """diffs: (studies, n) -> share of studies whose exact sign-flip p < alpha."""
    return float(np.mean(S.sign_flip_p_exact(diffs) < ALPHA))


@pytest.mark.parametrize("noise", ["normal", "cauchy"])
def test_false_positive_rate_under_the_null(noise: str) -> None:
    studies, n = 2000, 10
    rng = np.random.default_rng(2024)
    null = getattr(rng, f"standard_{noise}")((studies, n))  # (studies, n), symmetric at 0
    assert S.sign_flip_p_exact(null[:3]).tolist() == [
        S.sign_flip_test(row).p_value for row in null[:3]]
    fpr = _rejection_rate(null)
    # Exact level with continuous data: p = 2j/1024, j uniform on 1..512, so
    # P(p < .05) = 25/512 = 0.0488. Allow 3 Monte Carlo SE (0.0146) either way.
    exact_level = 25 / 512
    assert fpr <= ALPHA + 3 * mc_se(ALPHA, studies)
    assert abs(fpr - exact_level) <= 3 * mc_se(exact_level, studies)


def test_power_grows_with_the_effect() -> None:
    studies, n = 2000, 10
    z = np.random.default_rng(7).standard_normal((studies, n))  # (studies, n)
    effects = [0.0, 0.25, 0.5, 1.0, 2.0]  # true mean difference in sd units
    power = [_rejection_rate(z + e) for e in effects]
    assert all(a < b for a, b in itertools.pairwise(power))
    assert power[-1] > 0.99
    for e, got in zip(effects, power, strict=True):
        # Under normality the sign-flip test is about as powerful as the t-test (ARE 1);
        # allow 3 MC SE (<= 0.034) plus 0.02 for its discreteness at n = 10.
        assert abs(got - S.t_power(n, e, ALPHA)) <= 3 * mc_se(0.5, studies) + 0.02


def test_compare_decisions_are_calibrated_under_the_null() -> None:
    studies, n = 1000, 10  # ~3 s; the slow test runs 4000 with full bootstraps
    rng = np.random.default_rng(99)
    claims = 0
    for _ in range(studies):
        d = rng.normal(0.0, 0.01, n)
        fam = S.compare_contrasts({("a", "b"): d}, metric="m", rope=0.0, rng=rng,
                                  n_bootstrap=999)
        claims += fam.contrasts[0].decision in ("better", "worse")
    # The decision adds the CI condition to p < alpha, so it can only be stricter.
    assert claims / studies <= ALPHA + 3 * mc_se(ALPHA, studies)


@pytest.mark.slow
def test_calibration_large() -> None:
    studies = 4000
    rng = np.random.default_rng(123)
    claims = 0
    for _ in range(studies):
        d = rng.normal(0.0, 0.01, 10)
        fam = S.compare_contrasts({("a", "b"): d}, metric="m", rope=0.0, rng=rng)
        claims += fam.contrasts[0].decision in ("better", "worse")
    assert claims / studies <= ALPHA + 3 * mc_se(ALPHA, studies)
    # Monte Carlo path at n = 20 under the null: p = (1 + count) / (1 + R) is valid.
    mc = [S.sign_flip_p_mc(rng.standard_normal(20), 999, rng) for _ in range(2000)]
    assert np.mean(np.array(mc) < ALPHA) <= ALPHA + 3 * mc_se(ALPHA, 2000)


# --- properties ----------------------------------------------------------------------


small_diffs = hs.lists(hs.integers(-20, 20), min_size=1, max_size=10).map(
    lambda xs: np.array(xs, dtype=float) * 0.001)  # metric-like values with many ties


@given(small_diffs, hs.randoms())
def test_sign_flip_properties(d: np.ndarray, r: random.Random) -> None:
    p = S.sign_flip_test(d).p_value
    assert 0.0 < p <= 1.0
    shuffled = list(d)
    r.shuffle(shuffled)
    assert S.sign_flip_test(np.array(shuffled)).p_value == p  # seed order does not matter
    assert S.sign_flip_test(-d).p_value == p  # two-sided: symmetric under negation
    exact = brute_force_sign_flip([round(x * 1000) for x in d])
    assert p == float(exact)
