"""The decision rule: three claims, each controlled family-wise, and one verdict.

Units: the *improvement* u of a contrast is arm - baseline for a higher-is-better
metric and baseline - arm for a loss, so "better" always means u > 0. r >= 0 is the
ROPE half-width and alpha the study's level. Delta is the study's estimand: the median
of the joint outcome per seed (the default; exact one-sided sign-test p values,
`_median`) or the mean difference (exact one-sided sign-flip p values, `_signflip`).
Per contrast:

- better:     reject H: Delta <= +r,  p_better = p_greater(+r), at alpha / 2;
- worse:      reject H: Delta >= -r,  p_worse  = p_less(-r),    at alpha / 2;
- equivalent: reject both H: Delta <= -r and H: Delta >= +r (TOST),
              p_equivalent = max(p_greater(-r), p_less(+r)),     at alpha.

Each claim type is controlled family-wise over the study's contrasts: "better" and
"worse" by the min-p step-down over the joint sign flips of the shared seeds
(`_joint`, Westfall-Young), "equivalent" by Holm's method on the TOST p values (a
step-down over the 2m one-sided halves is sound too, but calls fewer arms equivalent:
a contrast's halves disagree on every seed outside the ROPE, so it pays for 2m
hypotheses; `benchmarks/stats_calibration.py` measures both); a claim is made when
its adjusted p is <= its level. So P(any false "better") <= alpha / 2, P(any false
"worse") <= alpha / 2 and P(any false "equivalent") <= alpha (the
step-down assumes each seed's vector of shifted differences is jointly symmetric; Holm
holds under any dependence). The claims exclude each other: "better" needs the 95%
interval's lower end above +r, "equivalent" the 90% interval's upper end below +r, and
the 90% interval lies inside the 95% one. Neither claim made: "inconclusive".

An interaction contrast says "interaction" (better or worse: u is the interaction in
metric units, either sign) or "no interaction" (equivalent); a simple or main effect
uses the arm's words.

Diverged runs are an outcome: the joint outcome per seed is the improvement, -inf
where only the arm diverged, +inf where only the baseline did, a tie where both did.
The median's sign test counts it directly. Under the mean, a contrast with a diverged
paired seed is decided on that joint outcome by the exact signed-rank test of symmetry
about the shift (`_divergence.rank_p`); its estimand is then the joint outcome's
pseudo-median, and its intervals invert the same test. So an arm
that diverges where the baseline does not can be "worse" from divergence alone, and is
never "better" or "equivalent" on the seeds where it happened to survive.

The floor: with n paired seeds no one-sided p is below 1/2^n. When even that smallest p
could not pass the claim's level (for "equivalent": Holm's, given the other contrasts'
p's), the reason says so instead of implying a near miss.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ablate.stats._family import holm
from ablate.stats._median import ESTIMAND_MEDIAN, SignTest
from ablate.stats._signflip import SignFlip

__all__ = [
    "CLAIMS",
    "DECISIONS",
    "Case",
    "INTERACTION_DECISIONS",
    "ClaimTests",
    "claim_tests",
    "decide_claims",
    "label",
    "levels",
]

CLAIMS = ("better", "worse", "equivalent")
DECISIONS = ("better", "worse", "equivalent", "inconclusive")
INTERACTION_DECISIONS = ("interaction", "no interaction", "inconclusive")


@dataclass(frozen=True)
class ClaimTests:
    """One contrast's one-sided p value per claim (improvement units)."""

    better: float
    worse: float
    equivalent: float
    floor: float  # the smallest p these seeds allow (1/2^n for the exact test)

    def get(self, claim: str) -> float:
        return float(getattr(self, claim))


def claim_tests(dist: SignFlip | SignTest, rope: float) -> ClaimTests:
    """The three claims' p values from the test of the improvements' estimand."""
    return ClaimTests(
        better=dist.p_greater(rope),
        worse=dist.p_less(-rope),
        equivalent=max(dist.p_greater(-rope), dist.p_less(rope)),
        floor=dist.floor,
    )


def levels(alpha: float) -> dict[str, float]:
    """Each claim's family-wise level: alpha/2 per direction, alpha for equivalence."""
    return {"better": alpha / 2, "worse": alpha / 2, "equivalent": alpha}


def label(claim: str | None, kind: str) -> str:
    """The decision word: the claim made, in the interaction's own words if it is one."""
    if kind == "interaction":
        return {"better": "interaction", "worse": "interaction",
                "equivalent": "no interaction"}.get(claim or "", "inconclusive")
    return claim or "inconclusive"


def _fmt(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else ("-inf" if x < 0 else "inf")


def _ci(ci: tuple[float, float]) -> str:
    return f"[{_fmt(ci[0])}, {_fmt(ci[1])}]"


@dataclass(frozen=True)
class Case:
    """What a reason needs about one contrast (raw units: arm - baseline)."""

    n: int
    kind: str
    higher_is_better: bool
    ci95: tuple[float, float]
    ci90: tuple[float, float]
    metric: ClaimTests | None  # None: no seed where both sides finished
    rank: ClaimTests | None  # None: no divergence among the paired seeds (or the median)
    estimand: str = ""  # the Contrast's estimand label; "" reads as the mean


def decide_claims(
    tests: Sequence[ClaimTests | None],
    cases: Sequence[Case],
    *,
    rope: float,
    alpha: float,
    adjusted: Mapping[str, np.ndarray] | None = None,
) -> list[tuple[str, str, dict[str, float]]]:
    """Each contrast's decision and reason from the family's adjusted p values.

    tests: per contrast, the claims' p values (of the joint outcome where a side
    diverged), or None when nothing could be tested. adjusted: claim -> (m,) adjusted p
    values (the joint step-down's for "better" and "worse"); a claim not given is
    adjusted by Holm. Returns per contrast (decision, reason, {claim: adjusted p}).
    """
    lv = levels(alpha)
    raw = {c: np.array([1.0 if t is None else t.get(c) for t in tests]) for c in CLAIMS}
    given = dict(adjusted or {})
    adj = {c: np.asarray(given[c]) if c in given else holm(raw[c]) for c in CLAIMS}
    joint = {c for c in CLAIMS if c in given}
    out = []
    for j, (t, case) in enumerate(zip(tests, cases, strict=True)):
        adjusted_j = {c: float(adj[c][j]) for c in CLAIMS}
        made = [c for c in CLAIMS if t is not None and adjusted_j[c] <= lv[c]]
        claim = made[0] if len(made) == 1 else None
        if len(made) > 1:  # impossible by the nesting of the intervals; kept honest
            reason = f"conflicting claims {made}: no decision"
        elif claim is not None:
            reason = _made(claim, adjusted_j[claim], case, rope, lv[claim])
        else:
            reason = _not_made(j, t, case, raw, adjusted_j, rope, lv, joint)
        out.append((label(claim, case.kind), reason, adjusted_j))
    return out


def _made(claim: str, p: float, case: Case, rope: float, level: float) -> str:
    sign = 1.0 if case.higher_is_better or case.kind == "interaction" else -1.0
    of = _of(case)
    if claim == "equivalent":
        word = "no interaction" if case.kind == "interaction" else "equivalent"
        return (f"{word}: TOST{of} Holm p = {_p(p)} <= {level:g} against |Delta| >= "
                f"{rope:g}; the 90% CI {_ci(case.ci90)} lies inside +-{rope:g}")
    up = (claim == "better") == (sign > 0)  # the raw difference lies above +r
    null = f"Delta <= +{rope:g}" if up else f"Delta >= -{rope:g}"
    side = f"above +{rope:g}" if up else f"below -{rope:g}"
    word = "interaction" if case.kind == "interaction" else claim
    return (f"{word}: step-down p{of} = {_p(p)} <= {level:g} against H: {null}; the 95% "
            f"CI {_ci(case.ci95)} lies {side}")


def _of(case: Case) -> str:
    """What the p values are of, where it is not the mean difference."""
    if case.rank is not None:
        return " of the joint outcome (diverged = worst)"
    return " of the median (sign test)" if case.estimand == ESTIMAND_MEDIAN else ""


def _p(p: float) -> str:
    """A p value with enough digits that it never reads as equal to a level it is not."""
    text = f"{p:.3g}"
    for digits in (4, 6, 17):
        if float(text) != p and any(float(text) == lv for lv in (0.025, 0.05, 0.01)):
            text = f"{p:.{digits}g}"
    return text


def _not_made(j: int, t: ClaimTests | None, case: Case, raw: dict[str, np.ndarray],
              adjusted: dict[str, float], rope: float, lv: dict[str, float],
              joint: set[str]) -> str:
    if t is None:
        return "inconclusive: no seed where both sides finished, so there is nothing to test"
    # Could the smallest p these seeds allow pass? For the joint step-down its smallest
    # adjusted p is the floor itself (every contrast's seeds agreeing); Holm's depends on
    # the other contrasts' p's.
    blocked = []
    for c in CLAIMS:
        if c in joint:
            if t.floor > lv[c]:
                blocked.append(c)
            continue
        best = raw[c].copy()
        best[j] = t.floor
        if holm(best)[j] > lv[c]:
            blocked.append(c)
    which = "any claim" if len(blocked) == len(CLAIMS) else " or ".join(
        f"{c!r} (level {lv[c]:g})" for c in blocked)
    floor = (f"with {case.n} seeds the smallest one-sided p is {t.floor:.3g}, which the "
             f"family's adjustment cannot accept for {which}")
    if len(blocked) == len(CLAIMS):
        return f"inconclusive: no claim was possible: {floor}"
    ps = ", ".join(f"{c} {_p(adjusted[c])}" for c in CLAIMS)
    note = f"; out of reach: {floor}" if blocked else ""
    of = _of(case)
    return (f"inconclusive: no claim reached its level (adjusted p{of}: {ps}; levels "
            f"{lv['better']:g}, {lv['worse']:g}, {lv['equivalent']:g}); 95% CI "
            f"{_ci(case.ci95)}, 90% CI {_ci(case.ci90)}, ROPE +-{rope:g}{note}")
