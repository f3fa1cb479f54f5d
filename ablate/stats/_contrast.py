"""The verdict of a study with a fixed number of seeds: one object for text and plots.

`decide` takes the study's contrasts, each paired per contrast (`ContrastData` from
`pair` or `factorial`), and returns a `Family`: one `Contrast` per contrast with

- the estimate: mean and median difference (arm - baseline, metric units), sd, d_z,
  wins k/n;
- the exact inference of the study's estimand (`ESTIMANDS`): for the median (the
  default), the sign test of the joint outcome per seed (`_median`: diverged = worst,
  valid for any shape of seed noise); for the mean, the sign-flip test (`_signflip`,
  which assumes symmetric differences); either way the two-sided p of Delta = 0 and the
  95% and 90% intervals obtained by inverting the same test;
- the decision (`_verdict`): better / worse / equivalent / inconclusive (an
  interaction: interaction / no interaction / inconclusive), each claim type
  family-wise controlled by Holm over the contrasts, with one sentence of reason;
- what pairing bought (`_pairing`), divergence and missing seeds (`_divergence`),
  and the power of the verdict itself (`_power`).

`compare` (arms against a baseline, from per-arm scores) and `compare_contrasts`
(any per-seed contrast vectors) build the `ContrastData` and call `decide`. Monte Carlo
draws (power; the sign-flip test of a loss beyond 20 seeds) come from streams keyed by
the study key and the contrast's name, so reordering the arms changes no number.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ablate.files import jsonable
from ablate.stats._divergence import (
    Divergence,
    divergence,
    improvement_scores,
    rank_interval,
    rank_p,
    rank_scores,
)
from ablate.stats._effects import d_z, t_p, wilcoxon_p, wins
from ablate.stats._family import holm
from ablate.stats._grid import to_grid
from ablate.stats._joint import step_down
from ablate.stats._median import (
    ESTIMAND_MEDIAN,
    SignTest,
    joint_median,
    joint_outcome,
    sign_scores,
    sign_test,
)
from ablate.stats._outcomes import ContrastData, Kind, Outcome, pair
from ablate.stats._pairing import Pairing, pairing
from ablate.stats._power import SIMULATIONS, Power, floor_seeds, power_for
from ablate.stats._ranks import Friedman, friedman
from ablate.stats._signflip import SignFlip, sign_flip
from ablate.stats._streams import stream
from ablate.stats._verdict import Case, ClaimTests, claim_tests, decide_claims

__all__ = [
    "ESTIMANDS",
    "ESTIMAND_JOINT",
    "ESTIMAND_MEAN",
    "ESTIMAND_MEDIAN",
    "MULTIPLICITY",
    "Contrast",
    "Family",
    "compare",
    "compare_contrasts",
    "decide",
]

# better and worse (at alpha/2 each): the min-p step-down over the joint sign flips of
# the shared seeds (`_joint`); equivalent (at alpha): Holm on the TOST p values.
MULTIPLICITY = "joint step-down"
ESTIMAND_MEAN = "mean difference"
ESTIMAND_JOINT = "pseudo-median of the joint outcome (diverged = worst)"
# What a study's verdict is about (study key `estimand`): "median", the default, is
# decided by the sign test, exact for any shape of seed-to-seed noise; "mean" by the
# sign-flip test, exact only where each seed's difference is symmetric (lopsided arms,
# with a bad seed now and then, break that: the calibration benchmark measures it).
# Under "mean" a contrast with a diverged seed is decided on ESTIMAND_JOINT.
ESTIMANDS = ("median", "mean")


@dataclass(frozen=True)
class Contrast:
    """One paired contrast and its decision; the unit the report renders."""

    arm: str
    baseline: str
    metric: str
    kind: str  # arm | main | interaction | simple
    n: int  # seeds with a metric difference (both sides finished)
    n_paired: int  # seeds paired for this contrast (neither side missing)
    seeds: tuple[int, ...]  # the n seeds
    mean_diff: float  # mean of arm - baseline over the n seeds, metric units
    median_diff: float  # median of the joint outcome over the n_paired seeds (+-inf
    # where divergence decides it), arm - baseline in metric units
    sd_diff: float  # sd of the differences, ddof=1 (nan if n < 2)
    ci_low: float  # 95% interval of the estimand, by inverting the exact test
    ci_high: float
    ci90_low: float  # 90% interval (TOST at 5%) from the same test
    ci90_high: float
    interval: str  # how they were obtained: "exact sign-flip inversion (grid 1/10000)"
    exact: bool  # False only for the Monte Carlo path (a loss with more than 20 seeds)
    mc_se: float  # Monte Carlo SE of p_value (0 when exact)
    p_value: float  # two-sided exact sign-flip p of Delta = 0
    p_holm: float  # p_value Holm-adjusted over the family
    p_better: float  # one-sided claim p values (improvement units; see _verdict)
    p_worse: float
    p_equivalent: float
    p_better_holm: float  # ... Holm-adjusted per claim type
    p_worse_holm: float
    p_equivalent_holm: float
    multiplicity: str  # MULTIPLICITY: the joint step-down (directional), Holm (equivalent)
    estimand: str  # what the decision and interval are about: ESTIMAND_MEDIAN, _MEAN or
    # _JOINT (the mean's study, a contrast with a diverged seed)
    p_wilcoxon: float  # for reference only: Wilcoxon signed-rank, two-sided
    p_t: float  # for reference only: paired t, two-sided
    d_z: float  # mean_diff / sd_diff
    wins: int  # seeds where the arm did better (direction-aware)
    ties: int  # seeds with a difference of exactly 0
    wins_ci: tuple[float, float]  # Clopper-Pearson 95% interval of wins / n
    rope: float
    alpha: float
    higher_is_better: bool
    resolution: float | None  # grid of the differences; None for a loss
    decision: str  # better | worse | equivalent | inconclusive (interaction: see _verdict)
    reason: str  # one sentence: why this decision, with its numbers
    pairing: Pairing | None  # None when built from differences alone
    divergence: Divergence
    missing: tuple[tuple[int, str], ...]  # (seed, why) left out of this contrast only
    power: Power | None  # power of the verdict; None with fewer than 2 seeds or off

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON values: nested objects as dicts, nan and +-inf as None."""
        return {k: jsonable(v) for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class Family:
    """All contrasts of one study and metric, decided together: the decision object."""

    metric: str
    n: int  # the most seeds any contrast has (each Contrast carries its own n)
    rope: float
    alpha: float
    multiplicity: str  # MULTIPLICITY (see _verdict)
    interval: str  # the interval method of the contrasts (the first one's, if they differ)
    higher_is_better: bool
    contrasts: tuple[Contrast, ...]
    friedman: Friedman | None  # omnibus over all arms when there are more than two
    warnings: tuple[str, ...]  # sentences the report must show
    family_size: int = 0  # contrasts decided as one family (>= len(contrasts) when the
    # report shows a part of it: a 2x2's simple effects); 0: len(contrasts)
    joint_exact: bool = True  # the step-down counted every joint sign pattern
    joint_mc_se: float = 0.0  # else: the largest Monte Carlo SE of its adjusted p

    @property
    def size(self) -> int:
        """The number of contrasts the claims were adjusted over."""
        return self.family_size or len(self.contrasts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; `contrasts` is the list report.json carries."""
        out = {k: jsonable(getattr(self, k)) for k in
               ("metric", "n", "rope", "alpha", "multiplicity", "interval",
                "higher_is_better", "warnings", "joint_exact", "joint_mc_se")}
        out["family_size"] = self.size
        out["contrasts"] = [c.to_dict() for c in self.contrasts]
        out["friedman"] = None if self.friedman is None else {
            k: jsonable(v) for k, v in dataclasses.asdict(self.friedman).items()}
        return out


@dataclass(frozen=True)
class _Tested:
    """One contrast's per-contrast numbers, before the family decides."""

    data: ContrastData
    sign: float  # +1: improvement = arm - baseline; -1 (a loss): baseline - arm
    d: np.ndarray  # (n,) arm - baseline over both-done seeds
    u: np.ndarray  # (n_paired,) the joint outcome, improvement units (`_median`)
    dist: SignFlip | SignTest | None  # the estimand's test; None when nothing to test
    metric: ClaimTests | None
    rank: ClaimTests | None
    tests: ClaimTests | None  # metric combined with rank where a side diverged


def _test(data: ContrastData, rope: float, higher: bool, key: str, estimand: str
          ) -> _Tested:
    sign = 1.0 if higher or data.kind == "interaction" else -1.0
    d = data.diffs
    joint = joint_outcome(improvement_scores(data, higher_is_better=sign > 0))
    if data.resolution is not None:  # on the grid exactly, as the sign-flip path is
        finite = np.isfinite(joint)
        joint[finite] = to_grid(joint[finite], data.resolution) * data.resolution
    if estimand == "median":
        signs = sign_test(joint) if joint.size else None
        tests = None if signs is None else claim_tests(signs, rope)
        return _Tested(data, sign, d, joint, signs, tests, None, tests)
    dist = None if d.size == 0 else sign_flip(
        sign * d, resolution=data.resolution, rng=stream(key, data.name, "p"))
    metric = None if dist is None else claim_tests(dist, rope)
    rank = None
    if data.any_divergence:  # the joint outcome decides (module doc of _verdict)
        u = improvement_scores(data, higher_is_better=sign > 0)
        r = data.resolution
        pb, pw = rank_p(u, rope, upper=True, resolution=r), rank_p(u, -rope, upper=False,
                                                                   resolution=r)
        pe = max(rank_p(u, -rope, upper=True, resolution=r),
                 rank_p(u, rope, upper=False, resolution=r))
        n_rank = int(np.count_nonzero(~np.isnan(u)))
        rank = ClaimTests(pb, pw, pe, floor=2.0 ** -n_rank) if n_rank else None
    tests = metric if rank is None else rank
    return _Tested(data, sign, d, joint, dist, metric, rank, tests)


def _scores(t: _Tested, claim: str, rope: float) -> dict[int, float]:
    """seed -> this contrast's score for a directional claim, oriented so that a large
    sum is evidence (the joint step-down flips these; `_joint`)."""
    data = t.data
    if t.tests is None:
        return {}
    up = claim == "better"
    delta0 = rope if up else -rope
    if isinstance(t.dist, SignTest):
        return dict(zip(data.seeds, sign_scores(t.u, delta0, upper=up).tolist(),
                        strict=True))
    if t.rank is not None:
        u = improvement_scores(data, higher_is_better=t.sign > 0)
        y = rank_scores(u, delta0, resolution=data.resolution)
        seeds = data.seeds
    else:
        h = data.resolution
        x = to_grid(t.sign * t.d, h).astype(np.float64) if h is not None else t.sign * t.d
        y = np.round(x - delta0 / (h or 1.0), 9)
        seeds = tuple(s for s, ok in zip(data.seeds, data.both_done, strict=True) if ok)
    y = y if up else -y
    return dict(zip(seeds, y.tolist(), strict=True))


def _joint_adjusted(tested: Sequence[_Tested], rope: float, key: str
                    ) -> tuple[dict[str, np.ndarray], bool, float]:
    """The step-down adjusted p of 'better' and 'worse' over the family's joint sign
    flips; whether every pattern was counted, and the largest Monte Carlo SE."""
    out, exact, se = {}, True, 0.0
    if len(tested) == 1:  # a family of one: the step-down is the contrast's own test
        t = tested[0]
        return ({c: np.array([1.0 if t.tests is None else t.tests.get(c)])
                 for c in ("better", "worse")}, True, 0.0)
    for claim in ("better", "worse"):
        per = [_scores(t, claim, rope) for t in tested]
        seeds = sorted({s for p in per for s in p})
        y = np.array([[p.get(s, 0.0) for p in per] for s in seeds]).reshape(len(seeds),
                                                                           len(per))
        joint = step_down(y, rng=stream(key, "joint", claim))
        out[claim] = joint.adjusted
        exact, se = exact and joint.exact, max(se, joint.mc_se)
    return out, exact, se


def _interval(t: _Tested, confidence: float) -> tuple[float, float]:
    """(low, high) of arm - baseline; the improvement interval mirrored for a loss. A
    contrast with a diverged side: the joint outcome's (`rank_interval`)."""
    if t.rank is not None:
        u = improvement_scores(t.data, higher_is_better=t.sign > 0)
        lo, hi = rank_interval(u, confidence, resolution=t.data.resolution)
    elif t.dist is None:
        return math.nan, math.nan
    else:
        lo, hi = t.dist.interval(confidence)
    return (lo, hi) if t.sign > 0 else (-hi, -lo)


def decide(
    contrasts: Sequence[ContrastData],
    *,
    metric: str,
    rope: float,
    higher_is_better: bool = True,
    alpha: float = 0.05,
    key: str = "",
    power: bool = True,
    simulations: int = SIMULATIONS,
    estimand: str = "median",
) -> Family:
    """Decide a study's family of contrasts (see the module docstring).

    contrasts: from `pair`, `factorial`, `simple_effects` or `ContrastData.from_diffs`,
    names unique. key: the study's name (seeds the keyed Monte Carlo streams).
    power=False skips the power simulation (Contrast.power None). estimand: one of
    ESTIMANDS.
    """
    if not contrasts:
        raise ValueError("no contrasts to decide: a family needs at least one")
    names = [c.name for c in contrasts]
    if len(set(names)) != len(names):
        raise ValueError(f"contrast names must be unique, got {names}")
    if not rope >= 0:
        raise ValueError(f"rope must be >= 0 (metric units), got {rope}")
    if estimand not in ESTIMANDS:
        raise ValueError(f"estimand must be one of {ESTIMANDS}, got {estimand!r}")
    tested = [_test(c, rope, higher_is_better, key, estimand) for c in contrasts]
    m = len(tested)
    cases = [Case(n=t.dist.n if isinstance(t.dist, SignTest) else t.d.size,
                  kind=t.data.kind, higher_is_better=higher_is_better,
                  ci95=_interval(t, 0.95), ci90=_interval(t, 0.90), metric=t.metric,
                  rank=t.rank, estimand=_estimand_of(t)) for t in tested]
    joint, joint_exact, joint_se = _joint_adjusted(tested, rope, key)
    decided = decide_claims([t.tests for t in tested], cases, rope=rope, alpha=alpha,
                            adjusted=joint)
    p_two = [1.0 if t.dist is None else t.dist.p_two_sided(0.0) for t in tested]
    p_holm = holm(p_two)
    out = []
    for t, case, (decision, reason, adjusted), p, ph in zip(
            tested, cases, decided, p_two, p_holm, strict=True):
        out.append(_contrast(t, case, decision, reason, adjusted, p, float(ph), metric=metric,
                             rope=rope, alpha=alpha, higher=higher_is_better, m=m, key=key,
                             power=power, simulations=simulations))
    n = max(c.n for c in out)
    return Family(
        metric=metric, n=n, rope=float(rope), alpha=alpha, multiplicity=MULTIPLICITY,
        interval=out[0].interval, higher_is_better=higher_is_better, contrasts=tuple(out),
        friedman=None, warnings=tuple(_warnings(out, alpha)), family_size=m,
        joint_exact=joint_exact, joint_mc_se=joint_se,
    )


def _estimand_of(t: _Tested) -> str:
    if isinstance(t.dist, SignTest):
        return ESTIMAND_MEDIAN
    return ESTIMAND_JOINT if t.rank is not None else ESTIMAND_MEAN


def _contrast(t: _Tested, case: Case, decision: str, reason: str,
              adjusted: Mapping[str, float], p: float, ph: float, *, metric: str,
              rope: float, alpha: float, higher: bool, m: int, key: str, power: bool,
              simulations: int) -> Contrast:
    data, d = t.data, t.d
    n = int(d.size)
    sd = float(d.std(ddof=1)) if n >= 2 else math.nan
    w = wins(d, higher_is_better=t.sign > 0)
    done = data.both_done
    median = isinstance(t.dist, SignTest)
    pw = power_for(sd, n, rope=rope, alpha=alpha, m=m, resolution=data.resolution,
                   rng=stream(key, data.name, "power"), simulations=simulations,
                   test="median" if median else "mean") if power and n >= 2 else None
    raw = t.tests or ClaimTests(1.0, 1.0, 1.0, 1.0)
    label = "no differences (no seed where both sides finished)" if t.dist is None \
        else t.dist.method
    return Contrast(
        arm=data.name, baseline=data.reference, metric=metric, kind=data.kind, n=n,
        n_paired=len(data.seeds), seeds=tuple(s for s, ok in zip(data.seeds, done,
                                                                 strict=True) if ok),
        mean_diff=float(d.mean()) if n else math.nan,
        median_diff=t.sign * joint_median(t.u) if t.u.size else math.nan, sd_diff=sd,
        ci_low=case.ci95[0], ci_high=case.ci95[1], ci90_low=case.ci90[0],
        ci90_high=case.ci90[1], interval=label,
        exact=t.dist is None or t.dist.exact,
        mc_se=0.0 if t.dist is None else t.dist.mc_se(p),
        p_value=p, p_holm=ph,
        p_better=raw.better, p_worse=raw.worse, p_equivalent=raw.equivalent,
        p_better_holm=adjusted["better"], p_worse_holm=adjusted["worse"],
        p_equivalent_holm=adjusted["equivalent"], multiplicity=MULTIPLICITY,
        estimand=case.estimand,
        p_wilcoxon=wilcoxon_p(d), p_t=t_p(d), d_z=d_z(d) if n else math.nan,
        wins=w.wins, ties=w.ties, wins_ci=w.ci, rope=float(rope), alpha=alpha,
        higher_is_better=higher, resolution=data.resolution, decision=decision,
        reason=reason,
        pairing=pairing(data.a[done], data.b[done]) if data.sides_known else None,
        divergence=divergence(data), missing=data.missing, power=pw,
    )


def _warnings(contrasts: Sequence[Contrast], alpha: float) -> list[str]:
    out: list[str] = []
    need = floor_seeds(alpha / 2)
    short = [c for c in contrasts if c.n_paired < need]
    if short:
        n_min = min(c.n_paired for c in short)
        out.append(
            f"with {n_min} seeds the smallest one-sided sign-flip p is 1/2^{n_min} = "
            f"{2.0 ** -n_min:.3g}, above the {alpha / 2:g} a 'better' or 'worse' claim "
            f"needs: use at least {need} seeds")
    for c in contrasts:
        if c.missing:
            listed = ", ".join(f"{s} ({why})" for s, why in c.missing)
            out.append(f"{c.arm} vs {c.baseline}: seeds left out of this contrast only: "
                       f"{listed}")
        dv = c.divergence
        if dv.arm_only or dv.baseline_only or dv.both:
            which = "; ".join(f"{who} on seed{'s' if len(ss) > 1 else ''} "
                              f"{', '.join(map(str, ss))}" for who, ss in
                              (("the arm", dv.arm_seeds), ("the baseline", dv.baseline_seeds))
                              if ss)
            out.append(
                f"{c.arm} vs {c.baseline}: diverged on {dv.arm_only + dv.both} "
                f"(arm) and {dv.baseline_only + dv.both} (baseline) of {dv.paired} paired "
                f"seeds ({which}); exact test of equal divergence rates p = "
                f"{dv.p_value:.3g}; the contrast was decided on the joint outcome per seed "
                "(diverged = worst)")
    return out


def _outcomes_of(values: object, n: int | None = None) -> dict[int, Outcome]:
    """Per-arm scores as seed -> outcome: a mapping passes through; an array (n_seeds,)
    is indexed by position, NaN meaning missing."""
    if isinstance(values, Mapping):
        return dict(values)
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or (n is not None and arr.size != n):
        raise ValueError(f"scores must be 1-D arrays of one length (n_seeds,), got {arr.shape}")
    return {i: (float(v) if math.isfinite(v) else "missing") for i, v in enumerate(arr)}


def _finished(outcome: Outcome) -> float | None:
    """The value of a finished run, None for a diverged or missing one."""
    if isinstance(outcome, str):
        return None
    value = float(outcome)
    return value if math.isfinite(value) else None


def _key_from(rng: np.random.Generator | None, key: str | None) -> str:
    """The stream key: given, or one draw from a caller's generator (order-free: drawn
    once, then combined with each contrast's name)."""
    if key is not None:
        return key
    return "" if rng is None else str(int(rng.integers(2**63)))


def compare(
    scores: Mapping[str, Any],
    baseline: str,
    metric: str,
    rope: float,
    *,
    resolution: float | None = None,
    higher_is_better: bool = True,
    alpha: float = 0.05,
    key: str | None = None,
    rng: np.random.Generator | None = None,
    power: bool = True,
    simulations: int = SIMULATIONS,
    estimand: str = "median",
) -> Family:
    """Compare every arm with the baseline, each contrast paired on its own seeds.

    scores: arm -> per-seed outcomes: an array (n_seeds,) aligned by seed (NaN: missing)
    or a mapping seed -> value / DIVERGED / reason missing. With more than two arms the
    Friedman omnibus (Bonferroni-Dunn critical difference against the baseline) over
    the seeds every arm finished is attached. key (or one draw from rng) seeds the
    keyed streams. estimand: "median" (the sign test, any shape of noise) or "mean".
    """
    if baseline not in scores:
        raise ValueError(f"baseline {baseline!r} is not an arm; arms are {list(scores)}")
    if len(scores) < 2:
        raise ValueError("compare needs the baseline and at least one other arm")
    sizes = {np.size(v) for v in scores.values() if not isinstance(v, Mapping)}
    if len(sizes) > 1:
        raise ValueError(f"arms must share the baseline's seeds, got lengths {sizes}")
    per_arm = {arm: _outcomes_of(v) for arm, v in scores.items()}
    seeds = sorted({s for o in per_arm.values() for s in o})
    data = [pair(per_arm[arm], per_arm[baseline], seeds, name=arm, reference=baseline,
                 resolution=resolution) for arm in scores if arm != baseline]
    family = decide(data, metric=metric, rope=rope, higher_is_better=higher_is_better,
                    alpha=alpha, key=_key_from(rng, key), power=power,
                    simulations=simulations, estimand=estimand)
    if len(scores) > 2:
        arms = list(scores)
        values = {a: {s: v for s, o in per_arm[a].items() if (v := _finished(o)) is not None}
                  for a in arms}
        complete = [s for s in seeds if all(s in values[a] for a in arms)]
        if len(complete) >= 2:
            table = np.array([[values[a][s] for a in arms] for s in complete])  # (n, k)
            omnibus = friedman(table, arms, higher_is_better=higher_is_better, alpha=alpha,
                               baseline=baseline)
            family = dataclasses.replace(family, friedman=omnibus)
    return family


def compare_contrasts(
    contrasts: Mapping[tuple[str, str], Any],
    *,
    metric: str,
    rope: float,
    resolution: float | None = None,
    kinds: Mapping[str, Kind] | None = None,
    higher_is_better: bool = True,
    alpha: float = 0.05,
    key: str | None = None,
    rng: np.random.Generator | None = None,
    power: bool = True,
    simulations: int = SIMULATIONS,
    estimand: str = "median",
) -> Family:
    """Decide a family of per-seed contrast vectors.

    contrasts: (label, reference) -> (n_seeds,) finite contrast values (or a
    ContrastData). kinds: label -> "interaction" etc. (default "arm"), which sets the
    decision's words. resolution: the grid of the vectors (for averaged cells, such
    as a factorial's main effects, half the metric's: pass the finer one). estimand:
    as for `compare`.
    """
    kinds = kinds or {}
    data = [v if isinstance(v, ContrastData) else ContrastData.from_diffs(
        v, name=label, reference=ref, kind=kinds.get(label, "arm"), resolution=resolution)
        for (label, ref), v in contrasts.items()]
    return decide(data, metric=metric, rope=rope, higher_is_better=higher_is_better,
                  alpha=alpha, key=_key_from(rng, key), power=power, simulations=simulations,
                  estimand=estimand)
