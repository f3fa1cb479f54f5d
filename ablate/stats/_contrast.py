"""The statistical verdict of a study: paired contrasts, a family correction, a decision.

Every arm runs on the same seed list, so each contrast is paired by seed: its data are
the per-seed differences `diffs: (n_seeds,)` (arm minus baseline). For one contrast
(`paired_contrast`) this module gathers the mean difference, its 95% and 90% BCa
bootstrap intervals, the two-sided sign-flip p value (primary), Wilcoxon and paired-t
p values, d_z, wins with a Clopper-Pearson interval, the seeds needed and the minimum
detectable effect. `compare` (arms against a baseline) and `compare_contrasts` (any
per-seed contrast vectors, e.g. the main effects and interaction of a 2x2 factorial
from `factorial_2x2`) then adjust the family's p values (Holm; BH only as an
exploratory option) and decide each contrast:

- better / worse: adjusted p < alpha AND the 95% CI lies entirely beyond the ROPE
  [-rope, +rope] on that side (for `higher_is_better=False`, better means negative);
- equivalent: the 90% CI lies inside the ROPE (TOST at level 0.05);
- inconclusive: otherwise.

Small samples: the smallest two-sided sign-flip p with n seeds is 2/2^n, so below
`min_seeds_for_sign_flip(alpha)` seeds (6 at alpha 0.05) no contrast is decided:
intervals and p values are still reported, the decision is `inconclusive` (not even
`equivalent`: a bootstrap interval from five seeds is too narrow to trust for a claim
of no effect) and the reason says why.

The primitives live in `stats_paired` (one contrast; pairing by seed with
`complete_pairs`), `stats_family` (corrections), `stats_ranks` (Friedman, Nemenyi) and
`stats_power` (seeds needed, MDE); the names are re-exported here so callers import
from `ablate.stats._contrast` only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ablate.files import jsonable
from ablate.stats._family import CORRECTIONS, adjust, benjamini_hochberg, holm
from ablate.stats._paired import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_RESAMPLES,
    EXACT_MAX_N,
    Interval,
    Paired,
    SignFlip,
    Wins,
    as_diffs,
    bca_intervals,
    complete_pairs,
    d_z,
    sign_flip_p_exact,
    sign_flip_p_mc,
    sign_flip_test,
    t_p,
    wilcoxon_p,
    wins,
)
from ablate.stats._power import mde, min_seeds_for_sign_flip, seeds_needed, t_power
from ablate.stats._ranks import Friedman, average_ranks, friedman, nemenyi_cd, nemenyi_q

__all__ = [
    "CORRECTIONS", "DEFAULT_BOOTSTRAP", "DEFAULT_RESAMPLES", "EXACT_MAX_N", "Contrast",
    "Family", "Friedman", "Interval", "Paired", "SignFlip", "Wins", "adjust",
    "average_ranks", "bca_intervals", "benjamini_hochberg", "compare", "compare_contrasts",
    "complete_pairs", "d_z", "decide", "factorial_2x2", "friedman", "holm", "mde",
    "min_seeds_for_sign_flip", "nemenyi_cd", "nemenyi_q", "paired_contrast",
    "seeds_needed", "sign_flip_p_exact", "sign_flip_p_mc", "sign_flip_test", "t_p",
    "t_power", "wilcoxon_p", "wins",
]

DECISIONS = ("better", "worse", "equivalent", "inconclusive")


@dataclass(frozen=True)
class Contrast:
    """One paired contrast and its decision; the unit the report renders."""

    arm: str
    baseline: str
    metric: str
    n: int  # paired seeds
    mean_diff: float  # mean over seeds of (arm - baseline), metric units
    sd_diff: float  # sd of the per-seed differences, ddof=1 (nan if n < 2)
    ci_low: float  # 95% bootstrap CI of mean_diff (BCa unless ci_method says otherwise)
    ci_high: float
    ci90_low: float  # 90% CI from the same resamples, for the TOST equivalence check
    ci90_high: float
    ci_method: str  # "BCa" | "degenerate (all differences equal)" | "percentile" | ...
    p_value: float  # primary: two-sided paired sign-flip permutation test
    p_holm: float  # Holm-adjusted over the family (always computed)
    p_adjusted: float  # the adjusted p the decision used: p_holm, or BH q if "bh"
    correction: str  # "holm" | "bh" (exploratory)
    p_wilcoxon: float  # Wilcoxon signed-rank, two-sided
    p_t: float  # paired t, two-sided
    d_z: float  # mean_diff / sd_diff; +-inf if sd = 0 (nan if the mean is 0 too)
    wins: int  # seeds where the arm did better (direction-aware)
    ties: int  # seeds with a difference of exactly 0
    wins_ci: tuple[float, float]  # Clopper-Pearson 95% interval of wins / n
    test: str  # e.g. "sign-flip (exact, 1024 patterns)"
    rope: float  # region of practical equivalence half-width, metric units
    alpha: float
    higher_is_better: bool
    decision: str  # better | worse | equivalent | inconclusive
    reason: str  # one sentence: why this decision
    seeds_needed: int | None  # for power 0.8 at the ROPE edge, level alpha / m
    mde: float  # minimum detectable effect with n seeds, power 0.8, level alpha / m

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: plain floats, tuples as lists, nan and +-inf as None."""
        return {k: jsonable(v) for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class Family:
    """All contrasts of one study and metric, adjusted together: the decision object."""

    metric: str
    n: int  # paired seeds per contrast
    rope: float
    alpha: float
    correction: str  # "holm" (confirmatory) or "bh" (exploratory)
    higher_is_better: bool
    contrasts: tuple[Contrast, ...]
    friedman: Friedman | None  # omnibus over all arms when there are more than two
    warnings: tuple[str, ...]  # sentences the report must show

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; `contrasts` is the list report.json carries."""
        out = {k: jsonable(getattr(self, k)) for k in
               ("metric", "n", "rope", "alpha", "correction", "higher_is_better", "warnings")}
        out["contrasts"] = [c.to_dict() for c in self.contrasts]
        out["friedman"] = None if self.friedman is None else {
            k: jsonable(v) for k, v in dataclasses.asdict(self.friedman).items()
        }
        return out


def _ci_text(low: float, high: float) -> str:
    return f"[{low:.3g}, {high:.3g}]"


def decide(
    *,
    n: int,
    p_adjusted: float,
    ci95: tuple[float, float],
    ci90: tuple[float, float],
    rope: float,
    alpha: float = 0.05,
    higher_is_better: bool = True,
    correction: str = "holm",
) -> tuple[str, str]:
    """The decision for one contrast and a one-sentence reason (see the module doc).

    ci95, ci90: (low, high) of the mean difference, metric units; rope >= 0.
    """
    label = "Holm p" if correction == "holm" else "BH q (exploratory)"
    n_min = min_seeds_for_sign_flip(alpha)
    if n < n_min:
        return "inconclusive", (
            f"with n={n} paired seeds the smallest possible sign-flip p is "
            f"2/2^{n} = {2.0 ** (1 - n):.4g} > {alpha:g}; intervals only, "
            f"no decision below {n_min} seeds"
        )
    lo, hi = ci95
    sig = p_adjusted < alpha
    above, below = lo > rope, hi < -rope  # whole 95% CI beyond the ROPE on one side
    if sig and (above or below):
        good = above if higher_is_better else below
        side = f"above +{rope:g}" if above else f"below -{rope:g}"
        return ("better" if good else "worse"), (
            f"{label} = {p_adjusted:.3g} < {alpha:g} and the 95% CI {_ci_text(lo, hi)} "
            f"lies {side}, outside the ROPE"
        )
    lo90, hi90 = ci90
    if -rope <= lo90 and hi90 <= rope:
        return "equivalent", (
            f"the 90% CI {_ci_text(lo90, hi90)} lies inside the ROPE +-{rope:g} (TOST)"
        )
    if sig:
        return "inconclusive", (
            f"{label} = {p_adjusted:.3g} < {alpha:g} but the 95% CI {_ci_text(lo, hi)} "
            f"overlaps the ROPE +-{rope:g}"
        )
    return "inconclusive", (
        f"{label} = {p_adjusted:.3g} >= {alpha:g} and the 90% CI {_ci_text(lo90, hi90)} "
        f"is not inside the ROPE +-{rope:g}"
    )


def paired_contrast(
    diffs: np.ndarray,
    *,
    arm: str,
    baseline: str,
    metric: str,
    rope: float,
    rng: np.random.Generator,
    higher_is_better: bool = True,
    alpha: float = 0.05,
    family_size: int = 1,
    n_resamples: int = DEFAULT_RESAMPLES,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
) -> Contrast:
    """All statistics of one paired contrast, decided as a family of one.

    diffs: (n_seeds,) per-seed differences arm - baseline (or any per-seed contrast
    value). `family_size` m sets the level alpha / m used for seeds needed and MDE;
    `compare_contrasts` then replaces p_holm / p_adjusted / decision for the family.
    rng seeds the bootstrap and, for n > EXACT_MAX_N, the Monte Carlo sign-flip test
    (each from its own spawned child stream).
    """
    d = as_diffs(diffs)
    if not rope >= 0:
        raise ValueError(f"rope must be >= 0 (metric units), got {rope}")
    boot_rng, flip_rng = rng.spawn(2)
    ci95, ci90 = bca_intervals(d, rng=boot_rng, levels=(0.95, 0.90), n_resamples=n_bootstrap)
    flip = sign_flip_test(d, rng=flip_rng, n_resamples=n_resamples)
    w = wins(d, higher_is_better=higher_is_better)
    sd = float(d.std(ddof=1)) if d.size >= 2 else float("nan")
    decision, reason = decide(
        n=d.size, p_adjusted=flip.p_value, ci95=(ci95.low, ci95.high),
        ci90=(ci90.low, ci90.high), rope=rope, alpha=alpha, higher_is_better=higher_is_better,
    )
    return Contrast(
        arm=arm, baseline=baseline, metric=metric, n=int(d.size),
        mean_diff=float(d.mean()), sd_diff=sd,
        ci_low=ci95.low, ci_high=ci95.high, ci90_low=ci90.low, ci90_high=ci90.high,
        ci_method=ci95.method,
        p_value=flip.p_value, p_holm=flip.p_value, p_adjusted=flip.p_value, correction="holm",
        p_wilcoxon=wilcoxon_p(d), p_t=t_p(d), d_z=d_z(d),
        wins=w.wins, ties=w.ties, wins_ci=w.ci, test=flip.label,
        rope=float(rope), alpha=alpha, higher_is_better=higher_is_better,
        decision=decision, reason=reason,
        seeds_needed=seeds_needed(sd, rope, alpha=alpha, m=family_size),
        mde=mde(sd, int(d.size), alpha=alpha, m=family_size),
    )


def _family_warnings(n: int, m: int, alpha: float, correction: str) -> list[str]:
    out: list[str] = []
    n_min = min_seeds_for_sign_flip(alpha)
    if n < n_min:
        out.append(
            f"only n={n} paired seeds: the smallest possible sign-flip p is 2/2^{n} = "
            f"{2.0 ** (1 - n):.4g} > {alpha:g}, so no contrast can be declared better, "
            f"worse or equivalent; intervals only (use at least {n_min} seeds)"
        )
    if m > 1 and n < math.log2(2 * m / alpha):
        out.append(
            f"n={n} seeds cannot reach Holm's strictest threshold alpha/m = "
            f"{alpha:g}/{m} = {alpha / m:.3g} for m={m} contrasts (smallest sign-flip p "
            f"2/2^{n} = {2.0 ** (1 - n):.3g}); use at least "
            f"{min_seeds_for_sign_flip(alpha, m)} seeds"
        )
    if correction == "bh":
        out.append(
            "Benjamini-Hochberg adjustment is exploratory: it controls the false discovery "
            "rate, not the family-wise error rate, so these decisions are not confirmatory"
        )
    return out


def compare_contrasts(
    contrasts: Mapping[tuple[str, str], np.ndarray],
    *,
    metric: str,
    rope: float,
    rng: np.random.Generator,
    higher_is_better: bool = True,
    alpha: float = 0.05,
    correction: str = "holm",
    n_resamples: int = DEFAULT_RESAMPLES,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
) -> Family:
    """Test and decide a family of per-seed contrast vectors together.

    contrasts: (arm label, baseline label) -> (n_seeds,) per-seed contrast values, all
    of the same n_seeds. Holm (or, exploratory, BH) runs over all of them.
    """
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; use one of {CORRECTIONS}")
    if not contrasts:
        raise ValueError("no contrasts to compare: a family needs at least one")
    arrays = {key: as_diffs(v) for key, v in contrasts.items()}
    sizes = {v.size for v in arrays.values()}
    if len(sizes) != 1:
        raise ValueError(f"all contrasts must have the same number of paired seeds, got {sizes}")
    m = len(arrays)
    children = rng.spawn(m)  # one stream per contrast: results do not depend on order
    single = [
        paired_contrast(
            d, arm=arm, baseline=base, metric=metric, rope=rope, rng=child,
            higher_is_better=higher_is_better, alpha=alpha, family_size=m,
            n_resamples=n_resamples, n_bootstrap=n_bootstrap,
        )
        for ((arm, base), d), child in zip(arrays.items(), children, strict=True)
    ]
    raw = [c.p_value for c in single]
    p_holm, p_adj = holm(raw), adjust(raw, correction)
    decided = []
    for c, ph, pa in zip(single, p_holm, p_adj, strict=True):
        decision, reason = decide(
            n=c.n, p_adjusted=float(pa), ci95=(c.ci_low, c.ci_high),
            ci90=(c.ci90_low, c.ci90_high), rope=rope, alpha=alpha,
            higher_is_better=higher_is_better, correction=correction,
        )
        decided.append(dataclasses.replace(
            c, p_holm=float(ph), p_adjusted=float(pa), correction=correction,
            decision=decision, reason=reason,
        ))
    n = sizes.pop()
    return Family(
        metric=metric, n=n, rope=float(rope), alpha=alpha, correction=correction,
        higher_is_better=higher_is_better, contrasts=tuple(decided), friedman=None,
        warnings=tuple(_family_warnings(n, m, alpha, correction)),
    )


def compare(
    scores: Mapping[str, np.ndarray],
    baseline: str,
    metric: str,
    rope: float,
    *,
    rng: np.random.Generator,
    higher_is_better: bool = True,
    alpha: float = 0.05,
    correction: str = "holm",
    n_resamples: int = DEFAULT_RESAMPLES,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
) -> Family:
    """Compare every arm with the baseline, paired by seed; the study's decision object.

    scores: arm -> (n_seeds,), aligned by seed (use `complete_pairs` to drop failed
    seeds first). With more than two arms the Friedman omnibus over all arms,
    scores (n_seeds, n_arms) in `scores` order, is attached.
    """
    if baseline not in scores:
        raise ValueError(f"baseline {baseline!r} is not an arm; arms are {list(scores)}")
    if len(scores) < 2:
        raise ValueError("compare needs the baseline and at least one other arm")
    base = as_diffs(scores[baseline])
    arrays = {arm: as_diffs(v) for arm, v in scores.items()}
    bad = {arm: v.size for arm, v in arrays.items() if v.size != base.size}
    if bad:
        raise ValueError(
            f"arms must share the baseline's {base.size} seeds, got {bad}; "
            "align them with ablate.stats.complete_pairs"
        )
    family = compare_contrasts(
        {(arm, baseline): v - base for arm, v in arrays.items() if arm != baseline},
        metric=metric, rope=rope, rng=rng, higher_is_better=higher_is_better, alpha=alpha,
        correction=correction, n_resamples=n_resamples, n_bootstrap=n_bootstrap,
    )
    if len(arrays) > 2 and base.size >= 2:
        table = np.stack(list(arrays.values()), axis=1)  # (n_seeds, n_arms)
        omnibus = friedman(table, list(arrays), higher_is_better=higher_is_better, alpha=alpha)
        family = dataclasses.replace(family, friedman=omnibus)
    return family


def factorial_2x2(
    a0b0: np.ndarray,
    a0b1: np.ndarray,
    a1b0: np.ndarray,
    a1b1: np.ndarray,
    *,
    factor_a: str = "A",
    factor_b: str = "B",
) -> dict[tuple[str, str], np.ndarray]:
    """Per-seed contrast vectors of a paired 2x2 factorial, for `compare_contrasts`.

    Each cell: (n_seeds,) scores, aligned by seed (a0 = factor A off, a1 = on). Returns
    (label, reference) -> (n_seeds,):
    main A = ((a1b0 + a1b1) - (a0b0 + a0b1)) / 2, main B likewise, and
    interaction = (a1b1 - a0b1) - (a1b0 - a0b0): how much B changes A's effect.
    """
    cells = [as_diffs(c) for c in (a0b0, a0b1, a1b0, a1b1)]
    if len({c.size for c in cells}) != 1:
        raise ValueError("the four factorial cells must have the same seeds")
    c00, c01, c10, c11 = cells
    return {
        (f"{factor_a} (main effect)", f"{factor_a} off"): ((c10 + c11) - (c00 + c01)) / 2,
        (f"{factor_b} (main effect)", f"{factor_b} off"): ((c01 + c11) - (c00 + c10)) / 2,
        (f"{factor_a} x {factor_b} (interaction)", "additive effects"):
            (c11 - c01) - (c10 - c00),
    }
