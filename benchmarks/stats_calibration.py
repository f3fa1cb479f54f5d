"""Calibration of the verdict: every error rate the report's claims rest on, simulated.

    python benchmarks/stats_calibration.py            # ~25 minutes on 2 shared cores
    python benchmarks/stats_calibration.py --quick    # ~3 minutes, for development
    python benchmarks/stats_calibration.py --reach-only   # the reach scenario alone

Simulated studies look like real ones: accuracy differences on the grid 1/10000
(10,000 validation images), sd of the paired differences 25 grid units (0.25 points),
ROPE 20 units (0.2 points), alpha 0.05. Noise: normal; heavy-tailed (Student t with 3
degrees of freedom, scaled to the same sd); skewed (standardized gamma, skewness +-0.5
and +-1); and a bad-seed mixture (with p = 0.10 a seed 1 point worse).

The guarantees and what they assume. The median (the default estimand): its sign
test's statements (coverage >= 95%, P(false "better") <= alpha/2, P(false
"equivalent") <= alpha, sequential or not, divergence included) assume only
independent seeds, so its rows over every noise shape are guaranteed; its joint
step-down across contrasts assumes each seed's vector of signs is jointly symmetric.
The mean (estimand = "mean"): every exact statement assumes paired differences
symmetric about the true Delta (the joint step-down: each seed's vector of differences
jointly symmetric; a contrast with divergence: its joint outcome, diverged = worst,
symmetric). The mean's skewed, lopsided and asymmetric-divergence rows show what
happens when that fails; they are printed, and kept out of the worst-ratio line, which
covers the guaranteed cases: one contrast, five and seven arms sharing a baseline (the optimizer
study's shape, at 6 and 8 seeds, with and without far-better arms), the 2x2 factorial
with its simple effects in one family, divergence on both sides (fixed and
sequential), and the sequential design.

Two estimates per error rate:
- direct: the share of simulated studies with the error (standard error beside it);
- conditional: given each simulated study's magnitudes |d_i - Delta|, the signs are
  fair coins under symmetry, so the probability that the test at the true Delta
  rejects is counted exactly (the same dynamic programming as the test); its mean over
  studies is an unbiased estimate of the error rate with far less Monte Carlo noise.
  Where a claim needs more than that one test (equivalence needs both TOST halves;
  a sequential claim needs every shift up to the edge rejected), the simulated share
  of studies where the test rejected but no claim was made is subtracted, which keeps
  it unbiased.
- exact (the median's one-contrast rows): the sign test's claims are counts of seeds
  beyond a shift, so at the noise model's exact probabilities (P(u > +ROPE) etc., from
  its distribution function; the direct share beside it checks them) a fixed claim's
  rate is a binomial or trinomial tail, and a sequential one the probability that a
  +-1 walk with that step probability crosses the design's boundaries (built exactly
  as `_sequential.crossing` builds them: at step probability 1/2 it reproduces that
  function's size, checked on every run). No Monte Carlo error; for sequential
  'equivalent' it is an upper bound (the half of the test whose null holds).
Before it, the largest (direct - level) / SE over the guaranteed rows: each error rate
must be at or below its level within 2 Monte Carlo SE. The last line,
`worst error rate / alpha`, is the largest conditional or exact estimate
(direct where there is none: the families, divergence) divided by its own nominal
level (0.05 for non-coverage and "equivalent", 0.025 for "better"), over the
guaranteed cases.

Why "equivalent" stays on Holm (power, not an error rate; its own generator, so the
other rows do not move): m arms with no true difference, the share called equivalent
by Holm on the TOST p values and by the min-p step-down over the 2m one-sided halves.

The sequential design: looks after every round of 2 seeds from 6 to 30, spending
alpha t^1 (see ablate/stats/_sequential.py). Design effect Delta* = 2 x ROPE. Its
expected seeds at Delta* are compared with the fixed design of the same power: the
smallest fixed n whose P("better") at Delta* (same exact test, simulated) is at least
the sequential design's.

Reach to new images (`ablate.stats.two_way`): seeds x images from a generative model,
per-image correctness of two arms on I = 10,000 images. Image i has a logit of
ease eta_i ~ N(9, 3.5^2); each arm adds its own per-image term xi_i ~ N(0, 3^2 / 2)
(image difficulty differs between arms: their per-image logit difference has sd 3) and
arm A a shift delta0; seed s shifts each arm's logits by N(0, 0.15^2) (the arms'
shifts correlated 0.1); outcomes are Bernoulli. That gives accuracy ~98%, an sd of the
per-seed paired difference of ~0.2 points and an image-sampling sd of the difference
of ~0.1 points, as measured on MNIST. delta0 is solved so that the true
Delta for new images and new seeds (a one-dimensional Gauss-Hermite integral, since the
logits are normal) is +ROPE. Coverage is of that Delta, at 6, 10 and 20 seeds; the
verdict's one-way interval (exact over seeds, these images) is printed beside it: it
covers this image set, not new images.

Selection: two arms with no true difference, validation accuracy flat over 20 plateau
epochs with epoch-to-epoch noise of 0.05 vs 0.15 points (each half of the split twice
that variance): the difference of best-on-validation accuracies against the difference
of the cross-fitted metric (`ablate.engine.crossfit`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import scipy.stats as st
from scipy import optimize

# Run as a script, Python puts benchmarks/ first on sys.path: ablate (and tests/) come
# from this tree, installed or not (a bare copy of it on a GPU machine).
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ablate.engine import crossfit
from ablate.stats import (
    DIVERGED,
    ContrastData,
    SequentialDesign,
    compare,
    decide,
    factorial,
    holm,
    pair,
    sequential_verdicts,
    sign_flip,
    simple_effects,
    two_way,
)
from ablate.stats._divergence import improvement_scores, rank_scores
from ablate.stats._joint import step_down
from ablate.stats._median import sign_scores
from ablate.stats._power import claim_power
from ablate.stats._sequential import crossing

H = 1e-4  # the grid: 1 / 10,000 validation images
SD = 25  # sd of the paired differences, grid units (0.25 points)
ROPE = 20  # grid units (0.2 points)
ALPHA = 0.05
NS = (6, 8, 10, 20)
SYMMETRIC = ("normal", "heavy")
SKEWED = ("skew +0.5", "skew -0.5")
LOPSIDED = ("skew +1", "skew -1", "bad seeds")
GAMMA_SHAPE = 16.0  # skewness 2 / sqrt(16) = 0.5
BAD_P, BAD_UNITS = 0.10, 100  # a bad seed: with p = 0.10, 1 point = 100 units worse


def _shape(kind: str) -> float:
    return 4.0 if kind.endswith("1") else GAMMA_SHAPE  # skewness 2 / sqrt(shape)


def noise(rng: np.random.Generator, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    """Noise in grid units / SD, mean 0: normal, t(3) / sqrt(3), a standardized gamma
    (skewness +-0.5 or +-1), or "bad seeds" (normal, and with p = 0.10 a seed 1 point
    worse; centred on its mean)."""
    if kind == "normal":
        return rng.standard_normal(shape)
    if kind == "heavy":
        return rng.standard_t(3, shape) / math.sqrt(3.0)
    if kind == "bad seeds":
        bad = rng.random(shape) < BAD_P
        return rng.standard_normal(shape) - (BAD_UNITS / SD) * (bad - BAD_P)
    k = _shape(kind)
    sign = 1.0 if "+" in kind else -1.0
    return sign * (rng.gamma(k, 1.0, shape) - k) / math.sqrt(k)


def noise_cdf(kind: str, x: float) -> float:
    """P(SD * noise(kind) <= x), x in grid units: the noise model's exact law."""
    z = x / SD
    if kind == "normal":
        return float(st.norm.cdf(z))
    if kind == "heavy":
        return float(st.t.cdf(z * math.sqrt(3.0), 3))
    if kind == "bad seeds":  # SD z - BAD_UNITS (bad - BAD_P)
        shift = BAD_P * BAD_UNITS
        return float((1 - BAD_P) * st.norm.cdf((x - shift) / SD)
                     + BAD_P * st.norm.cdf((x + BAD_UNITS - shift) / SD))
    k = _shape(kind)
    if "+" in kind:
        return float(st.gamma.cdf(k + z * math.sqrt(k), k))
    return float(st.gamma.sf(k - z * math.sqrt(k), k))


def noise_median(kind: str) -> float:
    """The median of SD * noise(kind), grid units (0 for the symmetric kinds)."""
    if kind in SYMMETRIC:
        return 0.0
    return float(optimize.brentq(lambda x: noise_cdf(kind, x) - 0.5, -3 * SD, 3 * SD,
                                 xtol=1e-10))


def edge_probabilities(kind: str) -> tuple[float, float, float]:
    """For median_units(kind, delta=ROPE), u = rint(ROPE - m + SD noise): the exact
    P(u > ROPE), P(u < ROPE) and P(u <= -ROPE) (a value rounds up from .5 on)."""
    m = noise_median(kind)
    return (1.0 - noise_cdf(kind, m + 0.5), noise_cdf(kind, m - 0.5),
            noise_cdf(kind, m - 2 * ROPE + 0.5))


def median_units(rng: np.random.Generator, kind: str, sims: int, n: int, delta: int
                 ) -> np.ndarray:
    """(sims, n) grid units whose median is exactly the integer delta, for any kind."""
    return np.rint(delta - noise_median(kind) + SD * noise(rng, kind, (sims, n))
                   ).astype(np.int64)


def units(rng: np.random.Generator, kind: str, sims: int, n: int, delta: int) -> np.ndarray:
    """(sims, n) integer grid units: rint(delta + SD * noise), symmetric about an
    integer delta whenever the noise is symmetric."""
    return np.rint(delta + SD * noise(rng, kind, (sims, n))).astype(np.int64)


@dataclass(frozen=True)
class Rate:
    """One error rate: direct share and, where available, the conditional estimate."""

    label: str
    nominal: float
    direct: float
    direct_se: float
    conditional: float | None = None
    conditional_se: float | None = None
    guaranteed: bool = True

    @property
    def ratio(self) -> float:
        value = self.direct if self.conditional is None else self.conditional
        return value / self.nominal


def share(hits: np.ndarray) -> tuple[float, float]:
    """Mean of 0/1 (or bounded) values and its standard error."""
    x = np.asarray(hits, dtype=np.float64)
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))


def size(y: np.ndarray, level: float) -> float:
    """P(the one-sided upper test of these shifted differences rejects at `level` |
    their magnitudes): exact, by the one-look case of the sequential dynamic programming."""
    return crossing(y, (y.size,), (level,), to_the_end=True).size


def fixed_rates(rng: np.random.Generator, kind: str, n: int, sims: int) -> list[Rate]:
    """Coverage and the two claims at the ROPE edge for one noise and one n (m = 1)."""
    x = units(rng, kind, sims, n, ROPE)  # true Delta on the edge
    miss, better, equiv, cond_miss, cond_better, equiv_gap, cond_equiv_test = (
        np.zeros(sims) for _ in range(7))
    for i, row in enumerate(x):
        dist = sign_flip(row * H, resolution=H)
        lo, hi = dist.interval(0.95)
        miss[i] = not lo <= ROPE * H <= hi
        p_up, p_eq_lo, p_eq_hi = (dist.p_greater(ROPE * H), dist.p_greater(-ROPE * H),
                                  dist.p_less(ROPE * H))
        better[i] = p_up <= ALPHA / 2
        equiv[i] = p_eq_lo <= ALPHA and p_eq_hi <= ALPHA
        y = row - ROPE  # shifted to the truth: fair signs given |y| under symmetry
        up = size(y, ALPHA / 2)
        cond_miss[i] = 2 * up  # both tails at the truth; the null law is symmetric
        cond_better[i] = up
        cond_equiv_test[i] = size(-y, ALPHA)  # the TOST half whose null is true
        equiv_gap[i] = (p_eq_hi <= ALPHA) and not (p_eq_lo <= ALPHA)
    sym = kind in SYMMETRIC
    out = []
    for label, nominal, direct, cond in (
            (f"mean: non-coverage of the 95% CI, {kind}, n={n}", ALPHA, miss, cond_miss),
            (f"mean: P('better') at Delta = +ROPE, {kind}, n={n}", ALPHA / 2, better,
             cond_better),
            (f"mean: P('equivalent') at Delta = +ROPE, {kind}, n={n}", ALPHA, equiv,
             cond_equiv_test - equiv_gap)):
        d, d_se = share(direct)
        c, c_se = share(cond) if sym else (None, None)
        out.append(Rate(label, nominal, d, d_se, c, c_se, guaranteed=sym))
    return out


def median_fixed_rates(rng: np.random.Generator, kind: str, n: int, sims: int
                       ) -> list[Rate]:
    """The median's verdict (the default): coverage and the two claims with the true
    median on the ROPE edge, for any noise (the sign test assumes no symmetry)."""
    x = median_units(rng, kind, sims, n, ROPE)
    miss, better, equiv = np.zeros(sims), np.zeros(sims), np.zeros(sims)
    for i, row in enumerate(x):
        fam = decide([one(row)], metric="acc", rope=ROPE * H, power=False)
        c = fam.contrasts[0]
        miss[i] = not c.ci_low <= ROPE * H <= c.ci_high
        better[i] = c.decision == "better"
        equiv[i] = c.decision == "equivalent"
    exact = median_exact(kind, n)
    return [Rate(f"median: {label}, {kind}, n={n}", nominal, *share(direct), value, 0.0)
            for (label, nominal, direct), value in zip((
                ("non-coverage of the 95% CI", ALPHA, miss),
                ("P('better') at median = +ROPE", ALPHA / 2, better),
                ("P('equivalent') at median = +ROPE", ALPHA, equiv)), exact, strict=True)]


def critical(n: int, a: float) -> int | None:
    """The smallest count c with P(Binomial(n, 1/2) >= c) <= a (None if even n fails),
    from SciPy: the sign test's rejection count, independent of ablate's."""
    return next((c for c in range(n + 1) if st.binom.sf(c - 1, n, 0.5) <= a + 1e-15),
                None)


def _binom_tail(n: int, q: float, c: int | None) -> float:
    """P(Binomial(n, q) >= c); 0 when no count is rare enough (c None)."""
    return 0.0 if c is None else float(st.binom.sf(c - 1, n, q))


def median_exact(kind: str, n: int) -> tuple[float, float, float]:
    """The exact rates of median_fixed_rates' three errors at the noise model's edge
    probabilities (no simulation): the sign test's claims are counts of seeds beyond a
    shift, so each is a binomial (or trinomial) tail. Non-coverage: c_{alpha/2} seeds
    above +ROPE or c_{alpha/2} below it; 'better': the first alone; 'equivalent': at
    most n - c_alpha seeds at or above +ROPE and at most n - c_alpha at or below -ROPE."""
    q_up, q_down, q_low = edge_probabilities(kind)
    c2, c1 = critical(n, ALPHA / 2), critical(n, ALPHA)
    better = _binom_tail(n, q_up, c2)
    miss = better + _binom_tail(n, q_down, c2)
    equiv = 0.0
    if c1 is not None:
        q_high = 1.0 - q_down  # u >= +ROPE
        for x1 in range(n - c1 + 1):
            for x3 in range(min(n - c1, n - x1) + 1):
                equiv += float(st.multinomial.pmf([x1, x3, n - x1 - x3], n,
                                                  [q_low, q_high, 1 - q_low - q_high]))
    return miss, better, equiv


def walk_rate(q: float, looks: tuple[int, ...], spend: tuple[float, ...]) -> float:
    """P(a walk of +1 (probability q) / -1 steps crosses the median's sequential
    boundaries by the last look): the boundaries built as `_sequential.crossing` builds
    them for fair +-1 steps (the fair counts), the biased probability carried beside
    them. At q = 1/2 it is crossing's own size (checked in main)."""
    n = looks[-1]
    fair = np.zeros(2 * n + 1, dtype=np.int64)  # index s + n holds partial sum s
    prob = np.zeros(2 * n + 1)
    fair[n], prob[n] = 1, 1.0
    spent, rate, i = 0, 0.0, 0
    for k, n_k in enumerate(looks):
        while i < n_k:
            fair = np.roll(fair, 1) + np.roll(fair, -1)
            prob = q * np.roll(prob, 1) + (1 - q) * np.roll(prob, -1)
            spent *= 2
            i += 1
        budget = math.floor(Fraction(spend[k]) * 2**n_k) - spent
        if budget < 1:
            continue
        tail = np.cumsum(fair[::-1])  # from the top down
        fits = int(np.searchsorted(tail, budget, side="right"))
        if fits == 0:
            continue
        b = fair.size - fits
        spent += int(tail[fits - 1])
        rate += float(prob[b:].sum())
        fair[b:], prob[b:] = 0, 0.0
    return rate


def power_rates(rng: np.random.Generator, sims: int, n: int) -> list[Rate]:
    """What the median's robustness costs: P('better') at Delta* = 2 x ROPE with normal
    differences (median = mean), for each estimand on the same draws."""
    x = units(rng, "normal", sims, n, 2 * ROPE)
    out = []
    for estimand in ("median", "mean"):
        said = [decide([one(row)], metric="acc", rope=ROPE * H, power=False,
                       estimand=estimand).contrasts[0].decision == "better" for row in x]
        out.append(Rate(f"{estimand}: P('better') at 2 x ROPE, normal, n={n} (power)", 1.0,
                        *share(np.array(said, dtype=np.float64)), guaranteed=False))
    return out


def joint_size(y: np.ndarray, level: float) -> float:
    """P(the joint step-down makes any claim | the orbit of y under joint sign flips),
    y: (n, m) per-seed scores of m contrasts whose nulls all hold (shifted to the
    truth): the first step rejects exactly when the min-p of a pattern is among the
    smallest `level` share of the orbit's min-p values, so this is counted exactly."""
    n = y.shape[0]
    bits = (np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1
    sums = (1 - 2 * bits).astype(np.float64) @ y  # (2^n, m)
    total = sums.shape[0]
    ordered = np.sort(sums, axis=0)
    p = np.stack([(total - np.searchsorted(ordered[:, j], sums[:, j] - 1e-9, side="left"))
                  / total for j in range(y.shape[1])], axis=1)
    minp = p.min(axis=1)
    cdf = np.searchsorted(np.sort(minp), minp + 1e-12, side="right") / total
    return float(np.mean(cdf <= level + 1e-12))


def family_rates(rng: np.random.Generator, sims: int, estimand: str) -> list[Rate]:
    """Five arms exactly on the edge against one baseline, 10 seeds: family-wise."""
    n, arms = 10, 5
    any_equiv, any_better, cond = np.zeros(sims), np.zeros(sims), np.zeros(sims)
    for i in range(sims):
        base = np.rint(9800 + SD / math.sqrt(2) * rng.standard_normal(n))
        scores = {"base": base * H}
        cols = []
        for j in range(arms):
            arm = np.rint(9800 + ROPE + SD / math.sqrt(2) * rng.standard_normal(n))
            scores[f"arm{j}"] = arm * H
            cols.append(arm - base - ROPE)
        fam = compare(scores, "base", "acc", ROPE * H, resolution=H, power=False,
                      estimand=estimand)
        any_equiv[i] = any(c.decision == "equivalent" for c in fam.contrasts)
        any_better[i] = any(c.decision == "better" for c in fam.contrasts)
        if estimand == "mean":
            cond[i] = joint_size(np.stack(cols, axis=1), ALPHA / 2)
    exact = share(cond) if estimand == "mean" else (None, None)
    return [Rate(f"{estimand}: family-wise P(any 'equivalent'), 5 arms on +ROPE, n=10",
                 ALPHA, *share(any_equiv)),
            Rate(f"{estimand}: family-wise P(any 'better'), 5 arms on +ROPE, n=10", ALPHA / 2,
                 *share(any_better), *exact)]


def arms_on_edge(rng: np.random.Generator, sims: int, n: int, arms: int, true: int,
                 estimand: str) -> tuple[Rate, Rate]:
    """`arms` arms against one baseline, n seeds, judged by the joint step-down: `true`
    of them far better (15 to 38 points: the shipped optimizer study), the rest exactly
    on +ROPE. Family-wise P(any false 'better') among the edge arms, and P(every far
    arm 'better')."""
    any_better, all_true, cond = np.zeros(sims), np.zeros(sims), np.zeros(sims)
    far = np.linspace(1500, 3800, max(true, 1)).round() if true else np.array([])
    for i in range(sims):
        base = np.rint(9000 + SD / math.sqrt(2) * rng.standard_normal(n))
        scores = {"base": base * H}
        cols = []
        for j in range(arms):
            shift = far[j] if j < true else ROPE
            arm = np.rint(9000 + shift + SD / math.sqrt(2) * rng.standard_normal(n))
            scores[f"arm{j}"] = arm * H
            cols.append(arm - base - ROPE)
        if not true and estimand == "mean":  # every null holds: counted exactly
            cond[i] = joint_size(np.stack(cols, axis=1), ALPHA / 2)
        fam = compare(scores, "base", "acc", ROPE * H, resolution=H, power=False,
                      key=f"sim{i}", estimand=estimand)
        said = [c.decision == "better" for c in fam.contrasts]
        any_better[i] = any(said[true:])
        all_true[i] = all(said[:true]) if true else 0.0
    label = f"{arms} arms, {true} far better and {arms - true} on +ROPE, n={n}"
    exact = (*share(cond),) if not true and estimand == "mean" else (None, None)
    label = f"{label} ({estimand})"
    return (Rate(f"family-wise P(any false 'better'), {label}", ALPHA / 2,
                 *share(any_better), *exact),
            Rate(f"P(every far arm 'better') (power, not an error), {label}", 1.0,
                 *share(all_true), guaranteed=False))


def factorial_rates(rng: np.random.Generator, sims: int, n: int, estimand: str
                    ) -> list[Rate]:
    """A 2x2 with a true interaction of 6 x ROPE, the main effect of B and the simple
    effect of A at B's baseline level exactly on +ROPE: study-wide P(any false
    'better') over the one family (main effects, interaction, simple effects)."""
    r = ROPE
    mean = {("0", "0"): 0, ("1", "0"): r, ("0", "1"): -2 * r, ("1", "1"): 5 * r}
    # A at b0 = r (edge); A at b1 = 7r; B at a0 = -2r, at a1 = 4r: main B = r (edge);
    # main A = 4r; interaction = 6r. False 'better' claims: main B, A at b0.
    seeds = list(range(n))
    false_better = np.zeros(sims)
    for i in range(sims):
        shared = 9000 + 40 * rng.standard_normal(n)
        cells = {k: {s: float(np.rint(shared[s] + v + SD / math.sqrt(2)
                                      * rng.standard_normal())) * H for s in seeds}
                 for k, v in mean.items()}
        main_a, main_b, inter = factorial(cells, seeds, factor_a="A", factor_b="B",
                                          levels_a=("0", "1"), levels_b=("0", "1"),
                                          resolution=H)
        at_b0, at_b1 = simple_effects(cells, seeds, factor_a="A", factor_b="B",
                                      levels_a=("0", "1"), levels_b=("0", "1"), resolution=H)
        fam = decide([main_a, main_b, inter, at_b0, at_b1], metric="acc", rope=r * H,
                     power=False, key=f"sim{i}", estimand=estimand)
        by = {c.arm: c.decision for c in fam.contrasts}
        false_better[i] = by[main_b.name] == "better" or by[at_b0.name] == "better"
    return [Rate(f"{estimand}: 2x2, interaction 6 x ROPE, main B and A at B=0 on +ROPE: "
                 f"study-wide P(any false 'better'), n={n}", ALPHA / 2, *share(false_better))]


def _diverging(rng: np.random.Generator, n: int, delta: int, q_arm: float, q_base: float
               ) -> tuple[dict[int, float | str], dict[int, float | str]]:
    """One contrast's sides: finished differences rint(delta + SD z) (the baseline at a
    shared level), each side diverging independently with its own probability."""
    base_v = np.rint(9000 + 40 * rng.standard_normal(n))
    arm_v = base_v + np.rint(delta + SD * rng.standard_normal(n))
    arm = {s: (DIVERGED if rng.random() < q_arm else float(arm_v[s]) * H) for s in range(n)}
    base = {s: (DIVERGED if rng.random() < q_base else float(base_v[s]) * H)
            for s in range(n)}
    return arm, base


def divergence_rates(rng: np.random.Generator, sims: int, n: int,
                     design: SequentialDesign, estimand: str) -> list[Rate]:
    """Divergence as an outcome. (a) Both sides diverge at 0.2, finished differences on
    +ROPE: the joint outcome is symmetric about +ROPE, so P('better') <= alpha/2, fixed
    and sequential. (b) The issue's case: the arm diverges on 30% of seeds, its survivors
    3 x ROPE better; the joint outcome is below -ROPE, so 'better' is false (was 0.122
    sequential). (c) A fully diverging arm: P('worse') (power, not an error)."""
    design = dataclasses.replace(design, estimand=estimand)
    seeds = list(range(design.max_seeds))

    def verdict(c: ContrastData) -> str:
        return decide([c], metric="acc", rope=ROPE * H, power=False,
                      estimand=estimand).contrasts[0].decision

    b_fix, b_seq, b_issue_fix, b_issue_seq, worse_all, cond = (np.zeros(sims)
                                                                for _ in range(6))
    for i in range(sims):
        arm, base = _diverging(rng, n, ROPE, 0.2, 0.2)
        c = pair(arm, base, list(range(n)), name="arm", reference="base", resolution=H)
        b_fix[i] = verdict(c) == "better"
        # Given the joint outcome's magnitudes about the truth, its signs are fair coins:
        # the signed-rank test's exact size (twice the midranks are integers).
        u = improvement_scores(c, higher_is_better=True)
        if estimand == "mean":
            cond[i] = size(np.rint(rank_scores(u, ROPE * H, resolution=H)).astype(np.int64),
                           ALPHA / 2)
        arm, base = _diverging(rng, design.max_seeds, ROPE, 0.2, 0.2)
        c = pair(arm, base, seeds, name="arm", reference="base", resolution=H)
        b_seq[i] = sequential_verdicts(design, [c], seeds, intervals=False).verdicts[0] \
            .decision == "better"
        arm, base = _diverging(rng, design.max_seeds, 3 * ROPE, 0.3, 0.0)
        c = pair(arm, base, seeds, name="arm", reference="base", resolution=H)
        b_issue_seq[i] = sequential_verdicts(design, [c], seeds, intervals=False) \
            .verdicts[0].decision == "better"
        c = pair(arm, base, seeds, name="arm", reference="base", resolution=H)
        b_issue_fix[i] = verdict(c) == "better"
        arm, base = _diverging(rng, n, 0, 1.0, 0.0)
        c = pair(arm, base, list(range(n)), name="arm", reference="base", resolution=H)
        worse_all[i] = verdict(c) == "worse"
    mean = estimand == "mean"
    exact = share(cond) if mean else (None, None)
    # Under the median the issue's case is no error: the median of the joint outcome is
    # a survivor's, 3 x ROPE better (P(u > r) = 0.7 x 0.99); the report shows the
    # divergence and its exact rate test beside the claim.
    issue = ALPHA / 2 if mean else 1.0
    return [
        Rate(f"{estimand}: P('better'), both sides diverge at 0.2, finished on +ROPE, fixed "
             f"n={n}", ALPHA / 2, *share(b_fix), *exact),
        Rate(f"{estimand}: P('better'), both sides diverge at 0.2, finished on +ROPE, "
             "sequential", ALPHA / 2, *share(b_seq)),
        # Outside the guarantee: the joint outcome is far from symmetric (a point mass at
        # -inf against a bump at +3r), and with no divergence among the first seeds no
        # test can tell this arm from a stable one: a sequential claim at 8 seeds has
        # probability at least 0.7^8 = 0.058 times the test's power there.
        Rate(f"{estimand}: P('better'), arm diverges on 30%, survivors 3 x ROPE better, "
             f"fixed n={design.max_seeds}", issue, *share(b_issue_fix), guaranteed=False),
        Rate(f"{estimand}: P('better'), arm diverges on 30%, survivors 3 x ROPE better, "
             "sequential", issue, *share(b_issue_seq), guaranteed=False),
        Rate(f"{estimand}: P('worse') of a fully diverging arm (power, not an error), n={n}",
             1.0, *share(worse_all), guaranteed=False),
    ]


def lopsided_rates(rng: np.random.Generator, sims: int, n: int) -> list[Rate]:
    """Outside the guarantee: lopsided seeds. A bad-seed mixture (with p = 0.10 a seed is
    1 point = 100 units worse), its mean on +ROPE; and skewness +-1 (standardized gamma,
    shape 4), mean on +ROPE. P('better') of the mean's exact sign-flip test."""
    out = []
    for label in ("bad seeds p=0.10 of -1 point", "skew +1", "skew -1"):
        better = np.zeros(sims)
        for i in range(sims):
            if label.startswith("bad"):
                bad = rng.random(n) < 0.10
                z = SD * rng.standard_normal(n) - 100 * bad
                row = np.rint(ROPE + z + 100 * 0.10)  # mean on the edge
            else:
                sign = 1.0 if "+" in label else -1.0
                g = sign * (rng.gamma(4.0, 1.0, n) - 4.0) / 2.0
                row = np.rint(ROPE + SD * g)
            better[i] = sign_flip(row * H, resolution=H).p_greater(ROPE * H) <= ALPHA / 2
        out.append(Rate(f"mean: P('better') at mean = +ROPE, {label}, n={n}", ALPHA / 2,
                        *share(better), guaranteed=False))
    return out


def equivalence_choice(rng: np.random.Generator, sims: int, m: int, n: int
                       ) -> list[Rate]:
    """Why 'equivalent' stays on Holm: m arms with no true difference against one
    baseline (median sign scores), the share of arms called 'equivalent' by Holm on the
    TOST p values (what the verdict uses) and by the other sound choice, the min-p
    step-down over the 2m one-sided halves at alpha (a contrast equivalent when both its
    halves are rejected): the same seeds, judged both ways."""
    holm_share, step_share = np.zeros(sims), np.zeros(sims)
    for i in range(sims):
        base = np.rint(SD / math.sqrt(2) * rng.standard_normal(n))
        u = np.rint(SD / math.sqrt(2) * rng.standard_normal((n, m))) - base[:, None]
        lo = np.stack([sign_scores(u[:, j], -ROPE, upper=True) for j in range(m)], axis=1)
        hi = np.stack([sign_scores(u[:, j], ROPE, upper=False) for j in range(m)], axis=1)
        tost = np.maximum(*(st.binom.sf((x > 0).sum(axis=0) - 1, n, 0.5) for x in (lo, hi)))
        holm_share[i] = np.mean(holm(tost) <= ALPHA)
        adj = step_down(np.concatenate([lo, hi], axis=1)).adjusted
        step_share[i] = np.mean(np.maximum(adj[:m], adj[m:]) <= ALPHA)
    label = f"share of {m} arms at Delta = 0 called 'equivalent', n={n} (power)"
    return [Rate(f"median: Holm on TOST (used): {label}", 1.0, *share(holm_share),
                 guaranteed=False),
            Rate(f"median: step-down over the 2m halves: {label}", 1.0, *share(step_share),
                 guaranteed=False)]


def one(row: np.ndarray) -> ContrastData:
    return ContrastData.from_diffs(row * H, name="arm", reference="base", resolution=H)


def sequential_rates(rng: np.random.Generator, kind: str, sims: int,
                     design: SequentialDesign, estimand: str) -> list[Rate]:
    """Peeking after every round with the true Delta (the estimand's) on the edge."""
    design = dataclasses.replace(design, estimand=estimand)
    mean = estimand == "mean"
    draw = units if mean else median_units
    seeds = list(range(design.max_seeds))
    looks, k_all = design.looks, len(design.looks)
    better, equiv = np.zeros(sims), np.zeros(sims)
    cond_b, cond_e = np.zeros(sims), np.zeros(sims)
    for i, row in enumerate(draw(rng, kind, sims, design.max_seeds, ROPE)):
        v = sequential_verdicts(design, [one(row)], seeds, intervals=False).verdicts[0]
        better[i] = v.decision == "better"
        equiv[i] = v.decision == "equivalent"
        if not mean:
            continue
        y = 2 * (row - ROPE)  # half-grid units, shifted to the truth
        up = crossing(y, looks, design.spending(ALPHA / 2), to_the_end=True)
        down = crossing(-y, looks, design.spending(ALPHA), to_the_end=True)
        # Claims need their test at the truth to cross; subtract crossings without one.
        cond_b[i] = up.size - ((up.look < k_all) and not better[i])
        cond_e[i] = down.size - ((down.look < k_all) and not equiv[i])
    sym = kind in SYMMETRIC
    estimates: list[tuple[float | None, float | None]]
    if mean:  # conditional given the magnitudes, under symmetry only
        estimates = [share(cond) if sym else (None, None) for cond in (cond_b, cond_e)]
    else:
        # The walk's crossing probability at the model's edge probabilities: exact for
        # 'better', an upper bound for 'equivalent' (the half whose null holds).
        q_up, q_down, _ = edge_probabilities(kind)
        estimates = [(walk_rate(q_up, looks, design.spending(ALPHA / 2)), 0.0),
                     (walk_rate(q_down, looks, design.spending(ALPHA)), 0.0)]
    out = []
    for (claim, nominal, direct), (c, c_se) in zip(
            (("better", ALPHA / 2, better), ("equivalent", ALPHA, equiv)), estimates,
            strict=True):
        d, d_se = share(direct)
        out.append(Rate(f"{estimand}: sequential P('{claim}') at +ROPE, peeking every "
                        f"round, {kind}", nominal, d, d_se, c, c_se,
                        guaranteed=sym or not mean))
    return out


def expected_seeds(rng: np.random.Generator, sims: int, design: SequentialDesign
                   ) -> list[str]:
    """E[seeds] of the sequential design at Delta* = 2 ROPE vs the fixed design of the
    same power; and the seeds it uses at the edge and at no difference."""
    seeds = list(range(design.max_seeds))
    lines = []
    stats: dict[int, tuple[float, float, float]] = {}
    for delta in (2 * ROPE, ROPE, 0):
        used, said_better = np.zeros(sims), np.zeros(sims)
        for i, row in enumerate(units(rng, "normal", sims, design.max_seeds, delta)):
            v = sequential_verdicts(design, [one(row)], seeds, intervals=False).verdicts[0]
            used[i] = v.settled_at or design.max_seeds
            said_better[i] = v.decision == "better"
        mean, se = share(used)
        stats[delta] = (mean, se, float(said_better.mean()))
    mean, se, power = stats[2 * ROPE]
    z = rng.standard_normal((4 * sims, 80))  # common random numbers across fixed n
    fixed = {n: claim_power(z[:, :n], effect=2.0 * ROPE, sd=SD, rope=ROPE, h=1.0,
                            level=ALPHA / 2, claim="better", test=design.estimand)
             for n in range(6, 81)}
    n_fix = min((n for n, p in fixed.items() if p >= power), default=None)
    n_08 = min((n for n, p in fixed.items() if p >= 0.8), default=None)
    lines.append(f"  design effect Delta* = 2 x ROPE = {2 * ROPE} units ({2 * ROPE * H * 100:.2f}"
                 f" points); sequential P('better') at Delta* = {power:.3f}")
    lines.append(f"  expected seeds at Delta*: {mean:.2f} (SE {se:.2f}); fixed design with "
                 f"the same power: n = {n_fix} (P = {fixed.get(n_fix or 0, float('nan')):.3f}"
                 f", {4 * sims} draws); the fixed n for power 0.80 is {n_08}")
    edge, edge_se, _ = stats[ROPE]
    zero, zero_se, _ = stats[0]
    lines.append(f"  seeds used at Delta = ROPE (keeps going): {edge:.2f} (SE {edge_se:.2f}) "
                 f"of max {design.max_seeds}; at Delta = 0: {zero:.2f} (SE {zero_se:.2f})")
    ratio = mean / n_fix if n_fix else float("nan")
    lines.append(f"expected seeds ratio: {ratio:.2f}  (SE {se / (n_fix or 1):.2f}, target "
                 "<= 0.75)")
    return lines


IMAGES = 10_000  # validation images of the reach simulation
LOGIT_MEAN, LOGIT_SD = 9.0, 3.5  # image difficulty, logit scale
SHIFT_SD = 3.0  # sd of the per-image logit difference of the arms (image x arm)
SEED_SD, SEED_RHO = 0.15, 0.1  # per-seed logit shift of each arm, their correlation
REACH_NS = (6, 10, 20)


def _logistic(z: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)))


def _normal_logistic_mean(mean: float, var: float) -> float:
    """E[logistic(N(mean, var))] by 160-point Gauss-Hermite (error far below 1e-9)."""
    x, w = np.polynomial.hermite_e.hermegauss(160)
    return float((w * _logistic(mean + math.sqrt(var) * x)).sum() / w.sum())


def reach_truth(shift: float) -> float:
    """True Delta = E[a - b] over new seeds and images for arm A's mean shift `shift`."""
    var = LOGIT_SD**2 + SHIFT_SD**2 / 2 + SEED_SD**2  # of either arm's logit
    return _normal_logistic_mean(LOGIT_MEAN + shift, var) - _normal_logistic_mean(
        LOGIT_MEAN, var)


def reach_shift(delta: float) -> float:
    """The mean shift delta0 whose true Delta is `delta` (bisection; monotone)."""
    lo, hi = -5.0, 5.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if reach_truth(mid) < delta else (lo, mid)
    return 0.5 * (lo + hi)


def reach_study(rng: np.random.Generator, n: int, shift: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """(a, b): (n, IMAGES) 0/1 correctness of arms A and B drawn from the model."""
    eta = LOGIT_MEAN + LOGIT_SD * rng.standard_normal(IMAGES)  # (I,)
    xi = SHIFT_SD / math.sqrt(2) * rng.standard_normal((2, IMAGES))  # (2, I) per arm
    z = rng.standard_normal((n, 2))
    u_a = SEED_SD * z[:, :1]  # (n, 1)
    u_b = SEED_SD * (SEED_RHO * z[:, :1] + math.sqrt(1 - SEED_RHO**2) * z[:, 1:])
    a = rng.random((n, IMAGES)) < _logistic(eta + shift + xi[0] + u_a)
    b = rng.random((n, IMAGES)) < _logistic(eta + xi[1] + u_b)
    return a, b


def reach_rates(rng: np.random.Generator, sims: int) -> tuple[list[Rate], list[str]]:
    """Non-coverage of Delta (new seeds, new images) by the two-way and the one-way
    95% intervals, true Delta = +ROPE; and what the two-way interval estimated."""
    shift = reach_shift(ROPE * H)
    rates, lines = [], []
    for n in REACH_NS:
        miss_two, miss_one = np.zeros(sims), np.zeros(sims)
        share_image, sd_image, sd_seed, dfs = (np.zeros(sims) for _ in range(4))
        for k in range(sims):
            a, b = reach_study(rng, n, shift)
            r = two_way(a, b, rope=ROPE * H)
            miss_two[k] = not r.low <= ROPE * H <= r.high
            miss_one[k] = not r.one_way_low <= ROPE * H <= r.one_way_high
            share_image[k] = r.image_share
            sd_image[k] = math.sqrt(r.var_image / IMAGES)
            sd_seed[k] = float(np.std(a.mean(axis=1) - b.mean(axis=1), ddof=1))
            dfs[k] = r.df
        rates.append(Rate(f"non-coverage of new images, two-way 95% CI, n={n}", ALPHA,
                          *share(miss_two)))
        rates.append(Rate(f"non-coverage of new images, one-way 95% CI, n={n}", ALPHA,
                          *share(miss_one), guaranteed=False))
        lines.append(f"  n={n}: per-seed paired sd {100 * sd_seed.mean():.3f} points, "
                     f"image-sampling sd {100 * sd_image.mean():.3f} points, image share "
                     f"of Var(mean) {share_image.mean():.2f}, Satterthwaite df median "
                     f"{np.median(dfs):.0f}")
    return rates, lines


def reach_lines(rates: list[Rate]) -> list[str]:
    """Coverage per interval and n, and whether the two-way one holds its level."""
    out = []
    for r in rates:
        cov = 1 - r.direct
        which = "two-way" if "two-way" in r.label else "one-way"
        n = r.label.rsplit("n=", 1)[1]
        ok = "" if which == "one-way" else (
            "  >= 0.95 within 2 SE" if cov >= 1 - ALPHA - 2 * r.direct_se else
            "  BELOW 0.95 by more than 2 SE")
        out.append(f"  coverage of new images, {which} 95% CI, n={n}: {cov:.4f} "
                   f"(SE {r.direct_se:.4f}){ok}")
    return out


def reach_section(seed: int, sims: int) -> list[str]:
    """The reach scenario, from its own generator (the other sections' draws stay put)."""
    reach, notes = reach_rates(np.random.default_rng([seed, 18]), sims)
    two = [r for r in reach if r.guaranteed]
    worst = max(two, key=lambda r: (r.direct - ALPHA) / r.direct_se)
    return ["", "reach to new images: two-way (seeds x images) vs one-way (seeds, these "
            f"images), true Delta = +ROPE on new images, {sims} studies per n",
            *table(reach), *notes, *reach_lines(reach),
            f"reach: worst two-way non-coverage {worst.direct:.4f} at "
            f"{worst.label.rsplit(', ', 1)[1]} = nominal "
            f"{(worst.direct - ALPHA) / worst.direct_se:+.2f} SE (passes at <= +2)"]


def selection(rng: np.random.Generator, sims: int) -> list[str]:
    """Spurious difference from picking the best epoch on the scored images."""
    epochs, n_half = 20, 5000
    mu = 0.98
    noise_points = {"A": 0.05, "B": 0.15}  # sd over plateau epochs, whole split
    best, fit = {}, {}
    for arm, sd_points in noise_points.items():
        sd_half = sd_points / 100 * math.sqrt(2)  # each half has twice the variance
        sums_a = np.rint(n_half * (mu + sd_half * rng.standard_normal((sims, epochs))))
        sums_b = np.rint(n_half * (mu + sd_half * rng.standard_normal((sims, epochs))))
        best[arm] = ((sums_a + sums_b) / (2 * n_half)).max(axis=1)  # (sims,)
        fit[arm] = crossfit(sums_a, sums_b, n_half, n_half, higher_is_better=True).value
    lines = []
    for name, values in (("best-on-validation", best), ("cross-fitted", fit)):
        diff = (values["B"] - values["A"]) * 100  # points
        lines.append(f"  {name:<19} difference B - A: {diff.mean():+.4f} points "
                     f"(SE {diff.std(ddof=1) / math.sqrt(sims):.4f})")
    return lines


def se_text(value: float, se: float) -> str:
    return f"{value:.4f} ({se:.4f})" if se >= 5e-5 else f"{value:.4f} (<.0001)"


def table(rates: list[Rate]) -> list[str]:
    lines = [f"  {'error rate':<64} {'nominal':>7} {'direct':>14} {'cond. or exact':>16} "
             f"{'/nominal':>8}"]
    for r in rates:
        cond = "" if r.conditional is None or r.conditional_se is None else \
            se_text(r.conditional, r.conditional_se)
        mark = "  (power, not an error rate)" if r.nominal >= 1 else \
            "" if r.guaranteed else "  (outside the guarantee)"
        lines.append(f"  {r.label:<64} {r.nominal:>7.3f} {se_text(r.direct, r.direct_se)} "
                     f"{cond:>16} {r.ratio:>8.2f}{mark}")
    return lines


def coverage_lines(rates: list[Rate]) -> list[str]:
    out = []
    for r in rates:
        if "non-coverage" in r.label:
            est, rest = r.label.split(": ", 1)
            kind_n = rest.split(", ", 1)[1]
            value = r.direct if r.conditional is None else r.conditional
            out.append(f"  {est}: coverage of the 95% CI, {kind_n}: {1 - value:.4f} "
                       f"(direct {1 - r.direct:.4f}, SE {r.direct_se:.4f})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer simulations (~3 min)")
    parser.add_argument("--seed", type=int, default=20260601)
    parser.add_argument("--reach-only", action="store_true",
                        help="only the reach-to-new-images scenario (~2 min; ~15 s quick)")
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0

    def sims(k: int) -> int:
        return max(100, int(k * scale))

    if args.reach_only:
        start = time.perf_counter()
        print("\n".join(reach_section(args.seed, sims(2000))))
        print(f"runtime: {time.perf_counter() - start:.0f} s")
        return

    rng = np.random.default_rng(args.seed)
    own = np.random.default_rng([args.seed, 17])  # sections added later: the rest unmoved
    design = SequentialDesign(rope=ROPE * H)
    for level in (ALPHA / 2, ALPHA):  # the exact walk rates use crossing's boundaries
        fair = crossing(np.ones(design.max_seeds, dtype=np.int64), design.looks,
                        design.spending(level), to_the_end=True).size
        assert walk_rate(0.5, design.looks, design.spending(level)) == fair
    start = time.perf_counter()
    median, mean = "median", "mean"
    sections: list[tuple[str, Callable[[], list[Rate]]]] = [
        ("the median's verdict (the default): one contrast, true median on the ROPE edge, "
         "every noise shape", lambda: [
            r for kind in (*SYMMETRIC, *SKEWED, *LOPSIDED) for n in NS
            for r in median_fixed_rates(rng, kind, n, sims(3000))]),
        ("median: family of five arms sharing a baseline",
         lambda: family_rates(rng, sims(2000), median)),
        ("median: sequential design (6..30 seeds, rounds of 2), peeking at all 13 looks",
         lambda: [r for kind in ("normal", "heavy", "skew -1", "bad seeds")
                  for r in sequential_rates(rng, kind, sims(3000), design, median)]),
        ("median: seven arms sharing a baseline (the optimizer study's shape)",
         lambda: [r for n in (6, 8) for true in (0, 3)
                  for r in arms_on_edge(rng, sims(1500), n, 7, true, median)]),
        ("median: 2x2 factorial, main effects, interaction and simple effects as one family",
         lambda: [r for n in (10, 20) for r in factorial_rates(rng, sims(1500), n, median)]),
        ("median: divergence as an outcome (diverged = worst), fixed and sequential",
         lambda: divergence_rates(rng, sims(1500), 10, design, median)),
        ("what the median's robustness costs: power at 2 x ROPE, normal differences",
         lambda: [r for n in (10, 20) for r in power_rates(rng, sims(2000), n)]),
        ("mean (estimand = \"mean\"): one contrast, true Delta on the ROPE edge", lambda: [
            r for kind in (*SYMMETRIC, *SKEWED) for n in NS
            for r in fixed_rates(rng, kind, n, sims(5000))]),
        ("mean: family of five arms sharing a baseline",
         lambda: family_rates(rng, sims(2000), mean)),
        ("mean: sequential design, peeking at all 13 looks", lambda: [
            r for kind in ("normal", "heavy", "skew -0.5")
            for r in sequential_rates(rng, kind, sims(3000), design, mean)]),
        ("mean: seven arms sharing a baseline, joint step-down",
         lambda: [r for n in (6, 8) for true in (0, 3)
                  for r in arms_on_edge(rng, sims(1500), n, 7, true, mean)]),
        ("mean: 2x2 factorial as one family",
         lambda: [r for n in (10, 20) for r in factorial_rates(rng, sims(1500), n, mean)]),
        ("mean: divergence as an outcome (signed-rank test of the joint outcome)",
         lambda: divergence_rates(rng, sims(1500), 10, design, mean)),
        ("mean: lopsided seeds (outside the mean's guarantee: use the median)",
         lambda: [r for n in (10, 20) for r in lopsided_rates(rng, sims(5000), n)]),
        ("why 'equivalent' stays on Holm: its power against the step-down over the halves "
         "(own generator)", lambda: [
             r for m, n in ((3, 6), (3, 10), (5, 16))
             for r in equivalence_choice(own, sims(1000), m, n)]),
    ]
    print("ablate statistics calibration: grid 1/10000, sd 25 units = 0.25 points, ROPE "
          f"20 units = 0.2 points, alpha {ALPHA}, seed {args.seed}"
          f"{', quick' if args.quick else ''}")
    print("columns: nominal level; direct share of simulated studies (its SE); "
          "conditional estimate (its SE), exact given each study's magnitudes, symmetric "
          "noise only, or the median's exact rate at the noise model's probabilities; "
          "the estimate used divided by the nominal level")
    every: list[Rate] = []
    for title, run in sections:
        rates = run()
        every += rates
        print(f"\n{title}")
        print("\n".join(table(rates)))
    print("\ninterval coverage (95%: the median's sign-test inversion, the mean's "
          "sign-flip inversion)")
    print("\n".join(coverage_lines(every)))
    print("\nsequential expected seeds (the median's design, against the fixed median design)")
    print("\n".join(expected_seeds(rng, sims(2000), design)))
    print("\n".join(reach_section(args.seed, sims(2000))))
    print("\nselection with unequal validation noise (no true difference, 20 epochs)")
    print("\n".join(selection(rng, sims(50000))))
    skewed = max(r.ratio for r in every if not r.guaranteed and r.nominal < 1)
    median_worst = max(r.ratio for r in every if r.label.startswith("median:")
                       and r.nominal < 1)
    print(f"\nthe median's verdict (the default), every noise shape, lopsided and "
          f"bad-seed cases included: worst error rate / alpha {median_worst:.2f}")
    worst = max(every, key=lambda r: r.ratio if r.guaranteed else -1.0)

    def z(r: Rate) -> float:  # the direct share's distance above its level, in SE
        if r.direct_se > 0:
            return (r.direct - r.nominal) / r.direct_se
        return -math.inf if r.direct <= r.nominal else math.inf

    far = max((r for r in every if r.guaranteed and r.nominal < 1), key=z)
    print(f"every guaranteed error rate's direct share against its level: largest "
          f"(direct - level) / SE = {z(far):+.2f} ({far.label}; passes at <= +2)")
    print(f"the mean's verdict on skewed or lopsided differences (outside its guarantee): "
          f"worst error rate / alpha "
          f"{skewed:.2f}")
    print(f"runtime: {time.perf_counter() - start:.0f} s")
    print(f"worst case: {worst.label}")
    print(f"worst error rate / alpha: {worst.ratio:.2f}")


if __name__ == "__main__":
    main()
