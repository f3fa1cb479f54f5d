"""Power of the verdict itself: how many seeds make "better" or "equivalent" likely.

The question a reader asks is not "would p < 0.05?" but "would this study say
*better*?". So power here is the probability of the verdict, computed by simulating the
decision rule of `_verdict` (exact sign-flip p values on the grid, the claim's level)
on planned data:

- per-seed differences Delta + sd_u * z, z standard normal; each test sees them
  shifted by its null edge and rounded to the metric's grid, or to sd_u / 25 when
  that grid is finer or there is none (a loss): rounding to sd/25 adds 1/7500 to the
  variance and keeps the counting cheap;
- the exact sign-flip p for up to 40 seeds; beyond, the normal approximation of the
  same conditional null, (T - 0.5 den) / sqrt(sum y^2) with T = sum y (continuity
  corrected), whose tail error at 40+ seeds is far below the Monte Carlo error;
- sd_u, not the observed sd: the one-sided 80% upper confidence bound
  sd * sqrt((n - 1) / chi2_{0.20, n-1}), so a lucky small sd does not promise power.
  The bound is a normal-theory one: it covers the true sd 80% of the time under normal
  differences but only about half the time under heavy tails (t with 3 degrees of
  freedom: 0.60 at 4 seeds, 0.49 at 10, 0.45 at 30; measured), so plans are optimistic
  there; the report says so;
- the design effect Delta* = 2 x ROPE (a difference clearly beyond the ROPE; half an
  sd_u when the ROPE is 0), fixed in advance rather than the observed effect, whose
  "observed power" would only restate its p value;
- the test of the study's estimand: the sign-flip test of the mean, or the sign test
  of the median (its p from the binomial count of seeds beyond the edge; a seed on the
  edge counts against), both on the same simulated differences;
- m contrasts: the claim's level is Holm's first step, alpha / (2m) for "better" and
  alpha / m for "equivalent", so the power stated is a lower bound for Holm.

`power_for` returns the seeds needed for P("better") >= 0.8 at Delta* and for
P("equivalent") >= 0.8 at Delta = 0, the powers with the seeds used, and the minimum
detectable effect of the verdict (the smallest Delta with P("better") >= 0.8), each from
`simulations` draws with common random numbers, Monte Carlo standard error stated.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.stats as st

__all__ = [
    "DESIGN_EFFECT_ROPES",
    "MAX_SEEDS",
    "SD_CONFIDENCE",
    "SIMULATIONS",
    "TARGET_POWER",
    "Power",
    "claim_power",
    "floor_seeds",
    "min_seeds_for_sign_flip",
    "power_for",
    "sd_upper",
]

TARGET_POWER = 0.8
SD_CONFIDENCE = 0.8  # one-sided confidence of the sd bound used for planning
DESIGN_EFFECT_ROPES = 2.0  # Delta* = 2 x ROPE
SIMULATIONS = 1000  # SE of a power near 0.8: 0.013
MAX_SEEDS = 200  # beyond this, seeds needed is reported as None (out of reach)
_MDE_STEPS = 14  # bisection halvings of the effect bracket: 1/16000 of its width
_PLAN_UNITS_PER_SD = 25  # the planning grid is never finer than sd_u / 25
_EXACT_MAX_N = 40  # exact counting up to here, normal approximation of it beyond


def floor_seeds(level: float) -> int:
    """Smallest n whose smallest one-sided sign-flip p, 1/2^n, is <= level."""
    n = 1
    while 2.0 ** -n > level:
        n += 1
    return n


def min_seeds_for_sign_flip(alpha: float = 0.05, m: int = 1) -> int:
    """Smallest n at which a contrast can be called better or worse: 1/2^n <= alpha / (2m)
    (Holm's first step). 6 at alpha 0.05 with one contrast, 8 with five."""
    return floor_seeds(alpha / (2 * m))


def sd_upper(sd: float, n: int, confidence: float = SD_CONFIDENCE) -> float:
    """One-sided upper confidence bound of a normal sd from n values: sd * sqrt((n-1) /
    chi2_{1-confidence}(n-1)). nan for n < 2."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    return sd * math.sqrt((n - 1) / float(st.chi2.ppf(1.0 - confidence, n - 1)))


def _count_at_most(mags: np.ndarray, limit: int) -> int:
    """#{subsets F : sum_F mags <= limit}, exactly (0/1 knapsack count, truncated)."""
    if limit < 0:
        return 0
    c = np.zeros(limit + 1, dtype=np.int64)
    c[0] = 1
    for a in mags.tolist():
        if a == 0:
            c *= 2
        elif a <= limit:
            c[a:] += c[:-a]  # NumPy buffers the overlap: each value used once
    return int(c.sum())


def _p_greater(y: np.ndarray) -> float:
    """p_greater(0) of integer shifted differences y: (n,): exact counting up to 40
    seeds, the normal approximation of the same conditional null beyond."""
    if y.size <= _EXACT_MAX_N:
        return _count_at_most(np.abs(y), int(-y[y < 0].sum())) / 2.0 ** y.size
    scale = math.sqrt(float(np.dot(y, y)))
    if scale == 0.0:
        return 1.0
    # Ties with the observed sum count as extreme: a continuity correction of one unit.
    return float(st.norm.sf((float(y.sum()) - 1.0) / scale))


def _p_sign(y: np.ndarray) -> float:
    """The sign test's p_greater(0) of shifted differences y: (n,): P(Bin(n, 1/2) >= K),
    K the seeds above 0 (a seed at 0 counts against)."""
    k = int(np.count_nonzero(y > 0))
    return 1.0 if k == 0 else float(st.binom.sf(k - 1, y.size, 0.5))


def claim_power(z: np.ndarray, *, effect: float, sd: float, rope: float, h: float,
                level: float, claim: str, test: str = "mean") -> float:
    """Share of simulated studies that make `claim`.

    z: (sims, n) standard normal draws; the differences are effect + sd z (metric
    units). Each test sees the differences shifted by its null edge and rounded to the
    planning grid h: better, p_greater(+r) of d <= level; equivalent, p_greater(-r) of d
    and p_greater(-r) of -d (= p_less(+r) of d) both <= level. test: "mean" (sign-flip)
    or "median" (sign test).
    """
    p_greater = _p_sign if test == "median" else _p_greater
    n = z.shape[1]
    if 2.0 ** -n > level:
        return 0.0
    hits = 0
    if claim == "better":
        y = np.rint((effect - rope + sd * z) / h).astype(np.int64)  # (sims, n)
        hits = sum(int(p_greater(row) <= level) for row in y)
    else:
        lo = np.rint((effect + rope + sd * z) / h).astype(np.int64)
        hi = np.rint((rope - effect - sd * z) / h).astype(np.int64)
        hits = sum(int(p_greater(a) <= level and p_greater(b) <= level)
                   for a, b in zip(lo, hi, strict=True))
    return hits / len(z)


@dataclass(frozen=True)
class Power:
    """Power of the verdict at the design effect and at no difference (see module doc)."""

    n: int  # seeds used
    m: int  # contrasts in the family
    sd: float  # observed sd of the differences
    sd_upper: float  # its one-sided 80% upper confidence bound, used for planning
    effect: float  # design effect Delta* in improvement units (metric units)
    effect_rule: str  # "2 x ROPE" or "sd_u / 2 (ROPE 0)"
    power_better: float  # P("better") at Delta* with n seeds
    power_equivalent: float  # P("equivalent") at Delta = 0 with n seeds
    seeds_better: int | None  # seeds for P("better") >= 0.8 at Delta*; None: > MAX_SEEDS
    seeds_equivalent: int | None  # seeds for P("equivalent") >= 0.8 at Delta = 0
    mde: float  # smallest Delta with P("better") >= 0.8 with n seeds (improvement units)
    simulations: int
    mc_se: float  # Monte Carlo SE of a power of 0.8 from `simulations` draws
    # The seeds needed are read off simulated powers: the n at which the power reaches
    # 0.8 - 2 SE and 0.8 + 2 SE bracket the figure within its Monte Carlo error.
    seeds_better_range: tuple[int | None, int | None] = (None, None)
    seeds_equivalent_range: tuple[int | None, int | None] = (None, None)

    def sentence(self) -> str:
        """One sentence, true of the verdict rule (within the stated Monte Carlo error);
        effects and sds in metric units."""
        need_b = "more than " + str(MAX_SEEDS) if self.seeds_better is None \
            else str(self.seeds_better)
        need_e = "more than " + str(MAX_SEEDS) if self.seeds_equivalent is None \
            else str(self.seeds_equivalent)
        return (f"Planning with the sd's 80% upper bound {self.sd_upper:.3g} and normal "
                f"per-seed differences, this decision rule (Holm over {self.m} "
                f"contrast{'s' if self.m > 1 else ''}) says 'better' with probability "
                f"{self.power_better:.2f} at a true improvement of {self.effect:.3g} "
                f"({self.effect_rule}) with the {self.n} seeds used, and would need "
                f"{need_b} seeds for 0.8 ({_range(self.seeds_better_range)} within 2 "
                f"Monte Carlo SE); it says 'equivalent' with probability "
                f"{self.power_equivalent:.2f} at no difference, {need_e} seeds for 0.8; "
                f"the smallest improvement it calls 'better' with probability 0.8 is "
                f"{self.mde:.3g} (simulated, {self.simulations} draws, SE "
                f"{self.mc_se:.2f}).")


def power_for(
    sd: float,
    n: int,
    *,
    rope: float,
    alpha: float,
    m: int,
    resolution: float | None,
    rng: np.random.Generator,
    simulations: int = SIMULATIONS,
    test: str = "mean",
) -> Power | None:
    """Power of the verdict for a contrast whose differences have sample sd `sd` over
    n seeds; None when n < 2 (no sd). rng: a stream keyed by the contrast's name.
    test: "mean" (the sign-flip test) or "median" (the sign test)."""
    if n < 2 or not math.isfinite(sd):
        return None
    sd_u = sd_upper(sd, n)
    if sd_u == 0.0:  # no spread at all: plan with one grid unit of noise
        sd_u = resolution if resolution is not None else max(rope, 1e-12) / 100
    effect, rule = (DESIGN_EFFECT_ROPES * rope, "2 x ROPE") if rope > 0 else \
        (sd_u / 2, "sd_u / 2, as the ROPE is 0")
    h = sd_u / _PLAN_UNITS_PER_SD
    if resolution is not None and resolution > h:
        h = resolution
    z = rng.standard_normal((simulations, MAX_SEEDS))  # common random numbers for all n
    lv_b, lv_e = alpha / (2 * m), alpha / m

    def better(k: int, eff: float) -> float:
        return claim_power(z[:, :k], effect=eff, sd=sd_u, rope=rope, h=h, level=lv_b,
                           claim="better", test=test)

    def equivalent(k: int) -> float:
        return claim_power(z[:, :k], effect=0.0, sd=sd_u, rope=rope, h=h, level=lv_e,
                           claim="equivalent", test=test)

    se = math.sqrt(TARGET_POWER * (1 - TARGET_POWER) / simulations)
    lo_t, hi_t = TARGET_POWER - 2 * se, TARGET_POWER + 2 * se
    return Power(
        seeds_better_range=(
            _seeds_needed(lambda k: better(k, effect), floor_seeds(lv_b), lo_t),
            _seeds_needed(lambda k: better(k, effect), floor_seeds(lv_b), hi_t)),
        seeds_equivalent_range=(_seeds_needed(equivalent, floor_seeds(lv_e), lo_t),
                                _seeds_needed(equivalent, floor_seeds(lv_e), hi_t)),
        n=n, m=m, sd=sd, sd_upper=sd_u, effect=effect, effect_rule=rule,
        power_better=better(n, effect), power_equivalent=equivalent(n),
        seeds_better=_seeds_needed(lambda k: better(k, effect), floor_seeds(lv_b)),
        seeds_equivalent=_seeds_needed(equivalent, floor_seeds(lv_e)),
        mde=_mde(lambda eff: better(n, eff), rope, sd_u) if n >= floor_seeds(lv_b)
        else math.inf,
        simulations=simulations,
        mc_se=math.sqrt(TARGET_POWER * (1 - TARGET_POWER) / simulations),
    )


def _mde(power: Callable[[float], float], rope: float, sd_u: float) -> float:
    """Smallest effect with power >= 0.8, by bisection above the ROPE (power rises with
    the effect: with common random numbers every simulated difference does); inf when
    even rope + 100 sd_u is not enough."""
    hi = rope + sd_u
    while power(hi) < TARGET_POWER:
        if hi > rope + 100 * sd_u:
            return math.inf
        hi = rope + 2 * (hi - rope)
    lo = rope
    for _ in range(_MDE_STEPS):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if power(mid) >= TARGET_POWER else (mid, hi)
    return hi


def _range(r: tuple[int | None, int | None]) -> str:
    """'12 to 16' seeds; 'more than 200' for an end out of reach."""
    lo, hi = (f"more than {MAX_SEEDS}" if k is None else str(k) for k in r)
    return lo if lo == hi else f"{lo} to {hi}"


def _seeds_needed(f: Callable[[int], float], start: int,
                  target: float = TARGET_POWER) -> int | None:
    """Smallest n >= start with f(n) >= target, by doubling and bisection (f rises with
    n: common random numbers)."""
    if f(start) >= target:
        return start
    lo, hi = start, min(2 * start, MAX_SEEDS)
    while lo < MAX_SEEDS and f(hi) < target:
        lo, hi = hi, min(2 * hi, MAX_SEEDS)
    if lo == MAX_SEEDS:
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if f(mid) >= target else (mid, hi)
    return hi
