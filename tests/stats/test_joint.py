"""The joint step-down (min-p over joint sign flips) and divergence as an outcome.

Oracles: a brute-force step-down written independently (itertools over every sign
pattern, each contrast's p counted by comparing sums one by one), Holm's adjusted p
(an upper bound the step-down never exceeds), and hand-counted cases.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest

from ablate.stats import (
    DIVERGED,
    SequentialDesign,
    compare,
    holm,
    pair,
    sequential_verdicts,
    sign_flip,
)
from ablate.stats._divergence import improvement_scores, rank_p
from ablate.stats._joint import step_down

# These tests check the mean's sign-flip machinery (estimand = "mean"); the
# median's sign test, the default, is tested in test_median.py.
compare = functools.partial(compare, estimand="mean")

H = 1e-4
ROPE = 20 * H


def brute(y: np.ndarray) -> np.ndarray:
    """Westfall-Young min-p step-down by enumeration, no vectorised shortcuts."""
    n, m = y.shape
    pats = [np.array(s) for s in itertools.product([1, -1], repeat=n)]
    sums = [s @ y for s in pats]
    obs = y.sum(axis=0)

    def p_of(j: int, value: float) -> float:
        return sum(1 for t in sums if t[j] >= value - 1e-9) / len(sums)

    raw = [p_of(j, obs[j]) for j in range(m)]
    order = sorted(range(m), key=lambda j: raw[j])
    pmat = [[p_of(j, t[j]) for j in range(m)] for t in sums]
    adj, running = [0.0] * m, 0.0
    for k, j in enumerate(order):
        rest = order[k:]
        q = sum(1 for row in pmat if min(row[i] for i in rest) <= raw[j] + 1e-12) / len(sums)
        running = max(running, q)
        adj[j] = min(1.0, running)
    return np.array(adj)


@pytest.mark.parametrize("seed", range(12))
def test_step_down_matches_brute_force_and_never_exceeds_holm(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(3, 8)), int(rng.integers(1, 5))
    shared = rng.integers(-30, 30, size=(n, 1))  # a shared baseline: dependent columns
    y = (shared + rng.integers(-40, 60, size=(n, m))).astype(float)
    y[rng.random((n, m)) < 0.15] = 0.0  # seeds missing from some contrasts
    got = step_down(y)
    np.testing.assert_array_equal(got.adjusted, brute(y))
    assert got.exact and got.patterns == 2 ** int(np.any(y != 0, axis=1).sum())
    for j in range(m):  # the raw p is the contrast's own exact sign-flip p
        col = y[:, j]
        assert got.raw[j] == sign_flip(col, resolution=1.0).p_greater(0.0)
    assert np.all(got.adjusted <= holm(got.raw) + 1e-12)
    assert np.all(got.adjusted >= got.raw - 1e-12)


def test_monte_carlo_step_down_agrees_within_its_error() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(-20, 60, size=(10, 3)).astype(float)
    exact = step_down(y)
    mc = step_down(y, rng=np.random.default_rng(1), exact_max_seeds=4, resamples=20_000)
    assert not mc.exact and mc.patterns == 20_001 and mc.mc_se > 0
    assert np.all(np.abs(mc.adjusted - exact.adjusted) <= 4 * mc.mc_se + 1e-4)


def test_seven_arms_with_overwhelming_effects_decide_at_six_seeds() -> None:
    # The shipped optimizer study's shape: 7 contrasts against one baseline, effects of
    # 15 to 38 points, every seed the same sign. Holm could not go below 7/64 = 0.11.
    rng = np.random.default_rng(0)
    base = np.round((0.90 + rng.normal(0, 0.01, 6)) / H) * H
    scores = {"base": base}
    for k in range(7):
        scores[f"arm{k}"] = np.round((base + 0.15 + 0.038 * k + rng.normal(0, 0.01, 6)) / H) * H
    fam = compare(scores, "base", "val_accuracy", ROPE, resolution=H, power=False, key="k")
    assert [c.decision for c in fam.contrasts] == ["better"] * 7
    assert all(c.p_better_holm == 1 / 64 for c in fam.contrasts)


def test_a_fully_diverging_arm_is_worse() -> None:
    base = {s: 0.98 + 1e-4 * s for s in range(10)}
    c = compare({"base": base, "arm": {s: DIVERGED for s in range(10)}}, "base",
                "val_accuracy", ROPE, resolution=H, power=False, key="k").contrasts[0]
    assert c.decision == "worse"
    assert c.p_worse == 2.0 ** -10  # every seed at the bottom of the joint outcome
    assert c.ci_high == -math.inf  # no finished value bounds the joint outcome
    assert c.divergence.arm_seeds == tuple(range(10))


def test_divergence_alone_makes_worse_and_the_rank_interval_agrees() -> None:
    # 7 of 10 seeds diverge in the arm; the 3 others equal the baseline.
    seeds = list(range(10))
    base = {s: 0.98 for s in seeds}
    arm: dict[int, float | str] = {s: (DIVERGED if s < 7 else 0.98) for s in seeds}
    c = compare({"base": base, "arm": arm}, "base", "m", ROPE, resolution=H, power=False,
                key="k").contrasts[0]
    # Oracle: signed ranks of u + r: seven -inf (midrank 7) and three +r (midrank 2);
    # W = sum s_i rank_i; P(W <= -49 + 6) over 2^10 patterns, counted by hand below.
    ranks = [7.0] * 7 + [2.0] * 3
    signs = [-1] * 7 + [1] * 3
    obs = sum(r * s for r, s in zip(ranks, signs, strict=True))
    count = sum(1 for pat in itertools.product([1, -1], repeat=10)
                if sum(r * p for r, p in zip(ranks, pat, strict=True)) <= obs)
    assert c.p_worse == count / 1024
    assert c.decision == ("worse" if count / 1024 <= 0.025 else "inconclusive")
    assert c.decision == "worse"
    assert c.ci_high < -ROPE  # the 95% interval lies below -r, as the claim says


def test_sequential_divergence_spends_its_level_across_looks() -> None:
    # An arm that diverges on seed 0 only, then is far better: at each look the rank
    # test gets only that look's share of alpha/2, not the full level.
    design = SequentialDesign(estimand="mean", min_seeds=6, max_seeds=12, step=2, rope=ROPE)
    seeds = list(range(12))
    base = {s: 0.98 for s in seeds}
    arm: dict[int, float | str] = {s: 0.98 + 300 * H for s in seeds}
    arm[0] = DIVERGED
    data = [pair(arm, base, seeds, name="arm", reference="base", resolution=H)]
    res = sequential_verdicts(design, data, seeds, intervals=False)
    v = res.verdicts[0]
    # Shares of 0.025: looks at 6, 8, 10, 12 -> 0.0125, 0.00417, 0.00417, 0.00417.
    # Signed ranks: one -inf (rank n) and n - 1 equal positives (midrank n/2).
    # At 6 seeds: P(W >= 15 - 6) = ... counted: the floor 1/64 > 0.0125, carried.
    u = improvement_scores(data[0], higher_is_better=True)
    shares = np.diff([0.0, *design.spending(0.025)])
    carry, first = 0.0, None
    for k, n in enumerate(design.looks):
        share = carry + shares[k]
        if 2.0 ** -n > share:
            carry = share
            continue
        carry = 0.0
        if rank_p(u[:n], ROPE, upper=True, resolution=H) <= share:
            first = n
            break
    assert v.settled_at == (first if first is not None else 12)
    assert v.decision == ("inconclusive" if first is None else "better")
    # Diverging only on the last seed: the looks before it use the differences' own
    # group-sequential test: at 6 seeds it may spend 0.0125 < 1/64, so "better" at 8.
    arm2: dict[int, float | str] = {s: 0.98 + 300 * H for s in seeds}
    arm2[11] = DIVERGED
    data2 = [pair(arm2, base, seeds, name="arm", reference="base", resolution=H)]
    v2 = sequential_verdicts(design, data2, seeds, intervals=False).verdicts[0]
    assert (v2.decision, v2.settled_at) == ("better", 8)
