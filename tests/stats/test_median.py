"""The median estimand (the default): the sign test of the joint outcome per seed.

Oracles: SciPy's exact binomial test for the p values, a brute-force scan of shifts for
the intervals, the fixed design for a one-look sequential design, and seeded
simulation for the levels under lopsided noise (where the mean's test is shown to fail).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st

from ablate.stats import (
    DIVERGED,
    ESTIMAND_MEDIAN,
    ContrastData,
    SequentialDesign,
    compare,
    decide,
    pair,
    sequential_verdicts,
    sign_flip,
)
from ablate.stats._median import sign_scores, sign_test

H = 1e-4
ROPE = 20  # grid units
SD = 25
ALPHA = 0.05


def one(units: np.ndarray, name: str = "arm") -> ContrastData:
    return ContrastData.from_diffs(units * H, name=name, reference="base", resolution=H)


def limit(level: float, sims: int) -> float:
    return level + 2 * math.sqrt(level * (1 - level) / sims)


def bad_seed_units(rng: np.random.Generator, sims: int, n: int, centre: str) -> np.ndarray:
    """Grid units with p = 0.10 of a seed 100 units worse; `centre` ("median" or "mean")
    of the distribution exactly at +ROPE."""
    bad = rng.random((sims, n)) < 0.10
    z = SD * rng.standard_normal((sims, n)) - 100 * bad
    if centre == "mean":
        return np.rint(ROPE + z + 10)
    # median of 0.9 N(0, SD) + 0.1 N(-100, SD): solved numerically
    from scipy.optimize import brentq
    med = brentq(lambda x: 0.9 * st.norm.cdf(x / SD) + 0.1 * st.norm.cdf((x + 100) / SD)
                 - 0.5, -50, 50)
    return np.rint(ROPE - med + z)


@pytest.mark.parametrize("seed", range(8))
def test_p_values_are_scipys_exact_binomial_test(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 25))
    u = np.rint(rng.normal(ROPE, SD, n)) * H  # on the grid: ties with the edge happen
    u[: int(rng.integers(0, 3))] = ROPE * H  # plant ties at the edge
    t = sign_test(u)
    for delta0 in (ROPE * H, -ROPE * H, 0.0):
        above = int(np.sum(u > delta0 + 1e-12))
        below = int(np.sum(u < delta0 - 1e-12))
        assert t.p_greater(delta0) == pytest.approx(
            st.binomtest(above, n, 0.5, alternative="greater").pvalue, rel=1e-12)
        assert t.p_less(delta0) == pytest.approx(
            st.binomtest(below, n, 0.5, alternative="greater").pvalue, rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_interval_is_the_set_of_shifts_neither_test_rejects(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(6, 21))
    u = np.rint(rng.normal(0, SD, n)) * H
    t = sign_test(u)
    for confidence in (0.95, 0.90):
        a = (1 - confidence) / 2
        values = np.unique(u)
        shifts = np.concatenate([values, (values[:-1] + values[1:]) / 2,
                                 [values[0] - H, values[-1] + H]])
        kept = [d for d in shifts if t.p_greater(d) > a and t.p_less(d) > a]
        lo, hi = t.interval(confidence)
        assert lo == pytest.approx(min(kept)) and hi == pytest.approx(max(kept))


def test_interval_is_unbounded_below_the_floor() -> None:
    t = sign_test(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))  # 2^-5 > 0.025
    assert t.interval(0.95) == (-math.inf, math.inf)


def test_a_fully_diverging_arm_is_worse_at_the_floor() -> None:
    base = {s: 0.98 + 1e-4 * s for s in range(10)}
    c = compare({"base": base, "arm": {s: DIVERGED for s in range(10)}}, "base",
                "val_accuracy", 0.002, resolution=1e-4, power=False, key="k").contrasts[0]
    assert c.decision == "worse" and c.estimand == ESTIMAND_MEDIAN
    assert c.p_worse == 2.0 ** -10 and c.ci_high == -math.inf


def test_an_arm_diverging_on_half_its_seeds_is_never_better() -> None:
    base = {s: 0.98 + 1e-4 * s for s in range(10)}
    arm: dict[int, float | str] = {s: DIVERGED if s % 2 else base[s] + 0.01 for s in range(10)}
    c = compare({"base": base, "arm": arm}, "base", "val_accuracy", 0.002, resolution=1e-4,
                power=False, key="k").contrasts[0]
    # Five seeds better by 100 units, five diverged (below every finished run): the
    # median is the midpoint of -inf and +0.01, so no claim but 'inconclusive'.
    assert c.decision == "inconclusive" and c.median_diff == -math.inf


def test_seven_arms_with_overwhelming_effects_are_decided_at_six_seeds() -> None:
    rng = np.random.default_rng(3)
    base = np.rint(9000 + 18 * rng.standard_normal(6))
    scores = {"base": base * H}
    for j, shift in enumerate(np.linspace(1500, 3800, 7)):
        scores[f"opt{j}"] = np.rint(base + shift + 18 * rng.standard_normal(6)) * H
    fam = compare(scores, "base", "acc", ROPE * H, resolution=H, power=False, key="opt")
    assert [c.decision for c in fam.contrasts] == ["better"] * 7
    assert all(c.p_better_holm == pytest.approx(1 / 64) for c in fam.contrasts)


def test_a_one_look_sequential_design_is_the_fixed_sign_test() -> None:
    rng = np.random.default_rng(11)
    for _ in range(20):
        n = int(rng.integers(6, 16))
        row = np.rint(rng.normal(ROPE + 20, SD, n))
        design = SequentialDesign(min_seeds=n, max_seeds=n, rope=ROPE * H)
        v = sequential_verdicts(design, [one(row)], list(range(n))).verdicts[0]
        c = decide([one(row)], metric="acc", rope=ROPE * H, power=False).contrasts[0]
        assert v.decision == c.decision
        assert (v.path[-1].ci_low, v.path[-1].ci_high) == pytest.approx((c.ci_low, c.ci_high))


def test_bad_seeds_keep_the_medians_level_and_break_the_means() -> None:
    # The lopsided case at small size: the median's false 'better' stays at its
    # level; the mean's sign-flip test, at its own edge, does not (so this test would
    # fail if the median's path fell back to the mean's test).
    rng = np.random.default_rng(5)
    sims, n = 1500, 10
    median_rows = bad_seed_units(rng, sims, n, "median")
    said = np.mean([decide([one(r)], metric="acc", rope=ROPE * H, power=False)
                    .contrasts[0].decision == "better" for r in median_rows])
    assert said <= limit(ALPHA / 2, sims)
    mean_rows = bad_seed_units(rng, sims, n, "mean")
    mean_said = np.mean([sign_flip(r * H, resolution=H).p_greater(ROPE * H) <= ALPHA / 2
                         for r in mean_rows])
    assert mean_said > 2 * ALPHA / 2


def test_sequential_median_keeps_its_level_with_bad_seeds() -> None:
    rng = np.random.default_rng(8)
    design = SequentialDesign(min_seeds=6, max_seeds=14, step=2, rope=ROPE * H)
    sims = 600
    rows = bad_seed_units(rng, sims, design.max_seeds, "median")
    seeds = list(range(design.max_seeds))
    said = np.mean([sequential_verdicts(design, [one(r)], seeds, intervals=False)
                    .verdicts[0].decision == "better" for r in rows])
    assert said <= limit(ALPHA / 2, sims)


def test_joint_scores_are_plus_one_only_beyond_the_edge() -> None:
    u = np.array([-math.inf, 0.001, 0.002, 0.0021, math.inf])
    assert sign_scores(u, 0.002, upper=True).tolist() == [-1, -1, -1, 1, 1]
    assert sign_scores(u, 0.002, upper=False).tolist() == [1, 1, -1, -1, -1]


def test_divergence_on_either_side_is_counted_by_the_sign() -> None:
    seeds = list(range(8))
    base: dict[int, float | str] = {s: 0.98 for s in seeds}
    arm: dict[int, float | str] = {s: 0.99 for s in seeds}
    base[0] = DIVERGED  # the baseline's divergence is the arm's gain: +inf
    arm[1] = base[1] = DIVERGED  # both: a tie at no difference
    c = decide([pair(arm, base, seeds, name="arm", reference="base", resolution=H)],
               metric="acc", rope=ROPE * H, power=False).contrasts[0]
    # 7 of 8 seeds above +ROPE (the tie counts against): P(Bin(8, 1/2) >= 7) = 9/256.
    assert c.p_better == pytest.approx(9 / 256)
