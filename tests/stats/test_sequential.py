"""The group-sequential design: exact by enumeration, resumable, and honest about stopping.

Exactness is checked against the definition: for a fixed vector of magnitudes, run the
test on every one of the 2^n sign patterns and count the rejections (an integer, so
the comparison with level * 2^n is exact).
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest

from ablate.stats import DIVERGED, ContrastData, SequentialDesign, pair, sequential_verdicts
from ablate.stats._sequential import claim_look, crossing, first_crossing

# These tests check the mean's sign-flip machinery (estimand = "mean"); the
# median's sign test, the default, is tested in test_median.py.
SequentialDesign = functools.partial(SequentialDesign, estimand="mean")

H = 1e-4
ROPE = 20 * H
DESIGN = SequentialDesign(rope=ROPE)


def one(units: np.ndarray, name: str = "arm") -> ContrastData:
    return ContrastData.from_diffs(np.asarray(units) * H, name=name, reference="base",
                                   resolution=H)


def test_every_look_is_exact_over_all_sign_patterns() -> None:
    rng = np.random.default_rng(0)
    looks = (2, 4, 6, 8)
    for _ in range(60):
        mags = rng.integers(0, 7, 8)  # zeros and ties included
        level = float(rng.uniform(0.03, 0.3))
        spend = [level * (n / 8) ** float(rng.uniform(0.5, 3)) for n in looks]
        patterns = [np.array(s) * mags for s in itertools.product((1, -1), repeat=8)]
        rejected = sum(first_crossing(y, looks, spend) < len(looks) for y in patterns)
        assert rejected <= level * 2**8
        # The size the DP reports is that count, the same for every pattern.
        sizes = {crossing(y, looks, spend, to_the_end=True).size for y in patterns}
        assert sizes == {rejected / 2**8}


def test_no_level_is_spent_where_no_decision_is_possible() -> None:
    # rho = 1 over 6..30 seeds: 0.025 * 6/30 = 0.005 < 1/64, so the first look cannot
    # reject even eight... six seeds all beyond the edge; the level carries forward and
    # the next look (0.025 * 8/30 = 0.0067 >= 1/256) rejects the same strong data.
    spend = DESIGN.spending(0.025)
    y = np.full(30, 7)
    assert crossing(y[:6], DESIGN.looks, spend).look == len(DESIGN.looks)
    assert first_crossing(y, DESIGN.looks, spend) == 1
    assert crossing(y[:6], DESIGN.looks, spend).size == 0.0  # nothing spent at look 1


def test_a_claim_needs_every_shift_up_to_the_edge_rejected() -> None:
    # claim_look is the maximum over half-grid shifts <= edge of the first crossing:
    # checked by brute force over every shift down to below the smallest difference.
    rng = np.random.default_rng(1)
    spend = DESIGN.spending(0.025)
    for _ in range(30):
        x2 = 2 * np.rint(rng.normal(45, 25, 30)).astype(np.int64)
        valid = rng.uniform(size=30) > 0.1  # some seeds without a difference
        edge = 40
        brute = max(first_crossing(np.where(valid, x2 - s, 0), DESIGN.looks, spend)
                    for s in range(int(x2[valid].min()) - 1, edge + 1))
        assert claim_look(x2, valid, edge, DESIGN.looks, spend) == brute


def test_resuming_continues_the_same_sequence() -> None:
    rng = np.random.default_rng(2)
    units = np.rint(rng.normal(30, 25, 30))
    early = sequential_verdicts(DESIGN, [one(units[:10])], list(range(10))).verdicts[0]
    late = sequential_verdicts(DESIGN, [one(units[:16])], list(range(16))).verdicts[0]
    assert late.path[:len(early.path)] == early.path  # the looks so far are unchanged
    again = sequential_verdicts(DESIGN, [one(units[:16])], list(range(16)))
    assert again.verdicts[0] == late  # a pure function of the stored data


def test_stops_when_settled_and_says_why() -> None:
    big = np.full(30, 90.0)  # far beyond the edge on every seed
    res = sequential_verdicts(DESIGN, [one(big[:8])], list(range(8)))
    assert res.stop and res.verdicts[0].decision == "better"
    assert res.verdicts[0].settled_at == 8 and res.next_seeds is None
    assert "every contrast settled" in res.why
    near = np.full(30, 20.0) + np.tile([3.0, -3.0], 15)  # on the edge: never settles early
    res = sequential_verdicts(DESIGN, [one(near[:12])], list(range(12)))
    assert not res.stop and res.next_seeds == 14
    assert not res.verdicts[0].settled and "not settled" in res.verdicts[0].reason
    res = sequential_verdicts(DESIGN, [one(near)], list(range(30)))
    assert res.stop and res.why == "reached max_seeds = 30"
    assert res.verdicts[0].settled_at == 30 and res.verdicts[0].decision == "inconclusive"
    before = sequential_verdicts(DESIGN, [one(near[:4])], list(range(4)))
    assert not before.stop and before.next_seeds == 6 and before.looks_done == ()


def test_the_path_interval_agrees_with_the_claims() -> None:
    # One contrast: "better" is the upper test at alpha/2, the same test whose
    # non-rejected shifts give the repeated CI's lower end.
    rng = np.random.default_rng(3)
    for _ in range(8):
        units = np.rint(rng.normal(rng.uniform(0, 70), 25, 30))
        v = sequential_verdicts(DESIGN, [one(units)], list(range(30))).verdicts[0]
        for look in v.path:
            if look.decision == "better":
                assert look.ci_low > ROPE
            assert look.ci_low <= look.mean_diff <= look.ci_high
        lows = [look.ci_low for look in v.path]
        highs = [look.ci_high for look in v.path]
        assert all(a <= b for a, b in itertools.pairwise(lows))  # by look: only narrows
        assert all(a >= b for a, b in itertools.pairwise(highs))


def test_repeated_intervals_cover_at_every_look_at_once() -> None:
    # Simultaneous coverage: P(Delta outside the interval at any of the 13 looks)
    # <= alpha. 120 studies: limit alpha + 3 SE = 0.11; a fixed 95% CI recomputed at
    # each look would miss at some look far more often.
    rng = np.random.default_rng(4)
    sims, miss = 120, 0
    for _ in range(sims):
        units = np.rint(20 + 25 * rng.standard_normal(30))
        v = sequential_verdicts(DESIGN, [one(units)], list(range(30))).verdicts[0]
        miss += any(not look.ci_low <= ROPE <= look.ci_high for look in v.path)
    assert miss / sims <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / sims)


def test_a_diverging_arm_is_not_called_better_in_a_sequential_study() -> None:
    seeds = list(range(12))
    base = {s: 0.98 for s in seeds}
    arm: dict[int, float | str] = {s: 0.98 + 90 * H for s in seeds}
    for s in (1, 3, 5, 7):
        arm[s] = DIVERGED
    data = pair(arm, base, seeds, name="arm", reference="base", resolution=H)
    v = sequential_verdicts(DESIGN, [data], seeds).verdicts[0]
    assert v.decision != "better"
    healthy = pair({s: 0.98 + 90 * H for s in seeds}, base, seeds, name="arm",
                   reference="base", resolution=H)
    assert sequential_verdicts(DESIGN, [healthy], seeds).verdicts[0].decision == "better"


def test_a_loss_is_rounded_to_a_hundredth_of_the_rope() -> None:
    rng = np.random.default_rng(5)
    d = rng.normal(-0.01, 0.002, 12)  # a loss went down by 5 ROPEs
    data = ContrastData.from_diffs(d, name="arm", reference="base", resolution=None)
    v = sequential_verdicts(SequentialDesign(rope=0.002), [data], list(range(12)),
                            higher_is_better=False).verdicts[0]
    assert v.decision == "better"
    with pytest.raises(ValueError, match="needs a grid"):
        sequential_verdicts(SequentialDesign(rope=0.0), [data], list(range(12)))


def test_design_validation_and_looks() -> None:
    assert DESIGN.looks == (6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
    assert SequentialDesign(min_seeds=6, max_seeds=11, step=2).looks == (6, 8, 10, 11)
    assert DESIGN.spending(0.05)[-1] == 0.05
    with pytest.raises(ValueError):
        SequentialDesign(min_seeds=8, max_seeds=6)


def test_seeds_beyond_the_last_look_wait_for_their_look() -> None:
    units = np.full(11, 90.0)  # 11 seeds run: looks at 6, 8, 10; seed 10 waits for 12
    v = sequential_verdicts(DESIGN, [one(units)], list(range(11))).verdicts[0]
    assert [look.n for look in v.path] == [6, 8, 10] and v.path[-1].n_paired == 10
    with pytest.raises(ValueError, match="not among the seeds run"):
        sequential_verdicts(DESIGN, [one(units)], list(range(10, 21)))
