"""The decision rule: claims, Holm per claim, words, reasons and the floor.

Data are on the grid 1/10000 (H) and built by hand so that each decision is known in
advance; p values are exact counts, compared with ==.
"""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest

from ablate.stats import (
    DIVERGED,
    ContrastData,
    compare,
    compare_contrasts,
    decide,
    holm,
    pair,
    sign_flip,
)

# These tests check the mean's sign-flip machinery (estimand = "mean"); the
# median's sign test, the default, is tested in test_median.py.
decide = functools.partial(decide, estimand="mean")
compare = functools.partial(compare, estimand="mean")
compare_contrasts = functools.partial(compare_contrasts, estimand="mean")

H = 1e-4
ROPE = 20 * H


def one(units: list[int] | np.ndarray, name: str = "arm", kind: str = "arm") -> ContrastData:
    return ContrastData.from_diffs(np.asarray(units) * H, name=name, reference="base",
                                   kind=kind, resolution=H)  # type: ignore[arg-type]


def verdict(units: list[int], *, higher: bool = True, kind: str = "arm") -> tuple[str, str]:
    c = decide([one(units, kind=kind)], metric="m", rope=ROPE, higher_is_better=higher,
               power=False).contrasts[0]
    return c.decision, c.reason


BIG = [60, 75, 52, 81, 66, 70, 58, 90]  # every seed far above +r
SMALL = [3, -4, 6, -2, 0, 5, -6, 1, 2, -3]  # all inside +-r


@pytest.mark.parametrize(("units", "higher", "expected", "phrase"), [
    (BIG, True, "better", "lies above +0.002"),
    ([-u for u in BIG], True, "worse", "lies below -0.002"),
    ([-u for u in BIG], False, "better", "lies below -0.002"),  # a loss went down
    (BIG, False, "worse", "lies above +0.002"),
    (SMALL, True, "equivalent", "lies inside +-0.002"),
    ([25, 18, 30, 22, 15, 28, 21, 19], True, "inconclusive", "no claim reached"),
])
def test_decisions_and_their_reasons(units: list[int], higher: bool, expected: str,
                                     phrase: str) -> None:
    decision, reason = verdict(units, higher=higher)
    assert decision == expected
    assert phrase in reason


def test_claims_use_the_exact_one_sided_p_values() -> None:
    d = np.array(BIG) * H
    c = decide([one(BIG)], metric="m", rope=ROPE, power=False).contrasts[0]
    dist = sign_flip(d, resolution=H)
    assert c.p_better == dist.p_greater(ROPE) == 1 / 256  # all 8 beyond r: only identity
    assert c.p_worse == dist.p_less(-ROPE) == 1.0
    assert c.p_equivalent == max(dist.p_greater(-ROPE), dist.p_less(ROPE))
    assert c.p_value == dist.p_two_sided() == 2 / 256
    assert (c.ci_low, c.ci_high) == dist.interval(0.95)
    assert c.interval == "exact sign-flip inversion (grid 1/10000)"


def test_a_decision_is_consistent_with_its_interval() -> None:
    # "better" only when the 95% CI lies above +r; "equivalent" only when the 90% CI
    # lies inside +-r: random studies, every decision checked against its interval.
    rng = np.random.default_rng(0)
    for _ in range(200):
        units = np.rint(rng.normal(rng.uniform(-50, 50), 25, rng.integers(6, 15)))
        c = decide([one(units)], metric="m", rope=ROPE, power=False).contrasts[0]
        if c.decision == "better":
            assert c.ci_low > ROPE
        if c.decision == "worse":
            assert c.ci_high < -ROPE
        if c.decision == "equivalent":
            assert c.ci90_low > -ROPE and c.ci90_high < ROPE
        assert c.ci_low <= c.ci90_low <= c.ci90_high <= c.ci_high


def test_directional_claims_use_the_joint_step_down() -> None:
    # Two contrasts with 6 shared seeds, every seed beyond r in both: the only sign
    # pattern at least as extreme in either is the observed one, so the step-down's
    # adjusted p is 1/64 (Holm would give 2/64 > 0.025): both are "better".
    six = [one([60, 70, 65, 80, 55, 75], "a"), one([61, 71, 66, 81, 56, 76], "b")]
    fam = decide(six, metric="m", rope=ROPE, power=False)
    assert [c.p_better_holm for c in fam.contrasts] == [1 / 64, 1 / 64]
    assert {c.decision for c in fam.contrasts} == {"better"}
    assert fam.multiplicity == "joint step-down" and fam.size == 2 and fam.joint_exact
    # Seed 0 of the second contrast is below r (-5 - 20 = -25 units after the shift):
    # b's raw p is 2/64 (the observed pattern and the one flipping seed 0 reach its
    # observed sum), a's is 1/64. Step 1 (a) counts the patterns where either contrast
    # is at its own 1/64: the observed one (a) and the seed-0 flip (b's largest sum):
    # 2/64. Step 2 (b alone): its own p, 2/64. Holm would give 2/64 and 2/64 too here.
    mixed = [one([60, 70, 65, 80, 55, 75], "a"), one([-5, 71, 66, 81, 56, 76], "b")]
    fam = decide(mixed, metric="m", rope=ROPE, power=False)
    a_, b_ = fam.contrasts
    assert a_.p_better == 1 / 64 and b_.p_better == 2 / 64
    assert a_.p_better_holm == 2 / 64 and b_.p_better_holm == 2 / 64
    # The equivalence family is adjusted by Holm on the TOST p values.
    raw = [c.p_equivalent for c in fam.contrasts]
    assert [c.p_equivalent_holm for c in fam.contrasts] == holm(raw).tolist()


def test_the_floor_is_named_when_no_claim_was_possible() -> None:
    decision, reason = verdict([60, 70, 65, 80])  # n = 4: 1/16 > 0.05 > 0.025
    assert decision == "inconclusive"
    assert reason == ("inconclusive: no claim was possible: with 4 seeds the smallest "
                      "one-sided p is 0.0625, which the family's adjustment cannot accept for "
                      "any claim")
    decision, reason = verdict([60, 70, 65, 80, 55])  # n = 5: 1/32 > 0.025, < 0.05
    assert decision == "inconclusive"
    assert "out of reach: with 5 seeds the smallest one-sided p is 0.0312" in reason
    assert verdict([60, 70, 65, 80, 55, 75])[0] == "better"  # 1/64 <= 0.025


def test_an_interaction_has_its_own_words() -> None:
    assert verdict(BIG, kind="interaction")[0] == "interaction"
    assert verdict([-u for u in BIG], kind="interaction")[0] == "interaction"
    # For an interaction the direction of "better" does not apply: a loss is the same.
    assert verdict([-u for u in BIG], higher=False, kind="interaction")[0] == "interaction"
    decision, reason = verdict(SMALL, kind="interaction")
    assert decision == "no interaction" and reason.startswith("no interaction: TOST")
    assert verdict([25, 18, 30, 22, 15, 28, 21, 19], kind="interaction")[0] == "inconclusive"


def test_a_diverging_arm_is_never_favoured() -> None:
    # The arm beats the baseline by far on the 8 seeds where it finished, but diverged
    # on 4 more. Metric test alone: "better"; on the joint outcome (diverged = worst):
    # not, and its interval reaches -inf (divergence bounds nothing from below).
    seeds = list(range(12))
    base = {s: 0.9800 for s in seeds}
    arm: dict[int, float | str] = {s: 0.9800 + (60 + s) * H for s in seeds[:8]}
    arm.update({s: DIVERGED for s in seeds[8:]})
    c = decide([pair(arm, base, seeds, name="arm", reference="base", resolution=H)],
               metric="m", rope=ROPE, power=False).contrasts[0]
    assert c.n == 8 and c.n_paired == 12
    assert c.decision == "inconclusive"
    assert "joint outcome (diverged = worst)" in c.reason
    assert c.estimand == "pseudo-median of the joint outcome (diverged = worst)"
    assert c.ci_low == -math.inf and c.ci_high > ROPE
    assert (c.divergence.arm_only, c.divergence.baseline_only) == (4, 0)
    assert c.divergence.p_value == 2 / 16  # exact binomial: 4 of 4 discordant
    # The same arm with the baseline diverging instead: now "better" stands.
    base2: dict[int, float | str] = {s: 0.9800 for s in seeds}
    base2.update({s: DIVERGED for s in seeds[8:]})
    arm2 = {s: 0.9800 + (60 + s) * H for s in seeds}
    c2 = decide([pair(arm2, base2, seeds, name="arm", reference="base", resolution=H)],
                metric="m", rope=ROPE, power=False).contrasts[0]
    assert c2.decision == "better"


def test_failed_seeds_cost_only_their_contrast() -> None:
    seeds = list(range(8))
    rng = np.random.default_rng(1)
    scores = {a: {s: float(np.rint(9800 + rng.normal(0, 10)) * H) for s in seeds}
              for a in ("base", "x", "y")}
    scores["y"][3] = "failed"  # type: ignore[assignment]
    fam = compare(scores, "base", "m", ROPE, resolution=H, power=False)
    by = {c.arm: c for c in fam.contrasts}
    assert by["x"].n == 8 and by["y"].n == 7
    assert by["y"].missing == ((3, "y failed"),) and by["x"].missing == ()
    assert any("3 (y failed)" in w for w in fam.warnings)


def test_reordering_arms_changes_no_number() -> None:
    # A loss with 25 seeds takes the Monte Carlo path; power is simulated too: both
    # draw from streams keyed by the contrast's name.
    rng = np.random.default_rng(2)
    scores = {a: rng.normal(0.08, 0.01, 25) for a in ("base", "p", "q")}
    one_way = compare(scores, "base", "loss", 0.002, higher_is_better=False, key="study",
                      simulations=50)
    other = compare({k: scores[k] for k in ("base", "q", "p")}, "base", "loss", 0.002,
                    higher_is_better=False, key="study", simulations=50)
    first = {c.arm: c for c in one_way.contrasts}
    for c in other.contrasts:
        assert c == first[c.arm]
    assert not first["p"].exact and first["p"].mc_se > 0
    assert first["p"].power is not None


def test_to_dict_is_strict_json_with_the_contract_keys() -> None:
    fam = compare({"base": np.zeros(7), "same": np.zeros(7), "up": np.ones(7) * 0.01},
                  "base", "acc", ROPE, resolution=H, simulations=100)
    out = json.loads(json.dumps(fam.to_dict(), allow_nan=False))
    assert out["multiplicity"] == "joint step-down"
    assert out["interval"] == "exact sign-flip inversion (grid 1/10000)"
    for c in out["contrasts"]:
        for key in ("arm", "baseline", "metric", "n", "mean_diff", "ci_low", "ci_high",
                    "p_value", "p_holm", "decision", "interval", "multiplicity",
                    "p_better_holm", "p_worse_holm", "p_equivalent_holm", "reason", "d_z",
                    "wins", "pairing", "divergence", "power"):
            assert key in c, key
    same, up = out["contrasts"]
    assert same["decision"] == "equivalent" and up["decision"] == "better"
    assert same["d_z"] is None  # 0/0 becomes null, not NaN


def test_compare_contrasts_takes_vectors_and_kinds() -> None:
    fam = compare_contrasts({("A x B (interaction)", "additive effects"): np.array(SMALL) * H},
                            metric="m", rope=ROPE, resolution=H,
                            kinds={"A x B (interaction)": "interaction"}, power=False)
    assert fam.contrasts[0].decision == "no interaction"
    assert fam.contrasts[0].pairing is None  # no sides: nothing to say about pairing
    assert math.isnan(decide([one([5])], metric="m", rope=ROPE, power=False)
                      .contrasts[0].sd_diff)


def test_an_inconclusive_reason_never_rounds_a_p_onto_its_level() -> None:
    # The case: p = 0.0508 for 'equivalent' (level 0.05) printed as "0.05".
    from ablate.metric import METRICS
    from ablate.report._format import Units
    from ablate.report._text import p_against, why_sentence
    c = decide([one([-9, 4, -11, 6, 5, 15, 26, 34])], metric="m", rope=ROPE,
               power=False).contrasts[0]
    assert c.decision == "inconclusive" and 0.05 < c.p_equivalent_holm < 0.0505 + 0.001
    text = why_sentence(c, Units.for_metric(METRICS["val_accuracy"]), 1)
    assert "0.05 for 'equivalent'" not in text
    assert f"{p_against(c.p_equivalent_holm, 0.05)} for 'equivalent'" in text
    assert float(p_against(c.p_equivalent_holm, 0.05)) > 0.05
    assert p_against(0.0312, 0.025) == "0.03" and p_against(0.025, 0.025) == "0.025"
