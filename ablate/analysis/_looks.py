"""Sequential studies: which seeds have been run, the verdicts by look, and the report's
contrasts with the sequential decisions and intervals in place of fixed-sample ones.

A sequential study (`seeds = { min, max, step }`) looks after every round. After
peeking, a fixed-sample p value or confidence interval is no longer valid, so the
report takes every decision and interval from `ablate.stats.sequential_verdicts`: the
95% repeated confidence interval at the last look, the look that settled each
contrast, and why the study stopped. The fixed-sample numbers that would read as
inference (p values, the 90% interval, power) are removed from the contrasts;
descriptive ones (mean difference, wins, pairing, divergence counts) stay.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from ablate.analysis._sourced import AnyRun
from ablate.design import Study
from ablate.stats import (
    Contrast,
    ContrastData,
    Family,
    SequentialDesign,
    SequentialResult,
    SequentialVerdict,
    grid_label,
    sequential_verdicts,
)

__all__ = [
    "FINAL_STATUSES", "SEQUENTIAL_MULTIPLICITY", "apply", "design", "interval_label",
    "seed_order", "seeds_run", "seeds_used", "verdicts",
]

FINAL_STATUSES = ("done", "diverged", "failed")  # a run that will not change by waiting


def design(study: Study, alpha: float) -> SequentialDesign:
    """The study's sequential design (its looks, spending and ROPE)."""
    seq = study.sequential
    if seq is None:
        raise ValueError(f"study {study.name!r} has a fixed design, not a sequential one")
    return SequentialDesign(min_seeds=seq.min, max_seeds=seq.max, step=seq.step,
                            alpha=alpha, rope=study.rope, estimand=study.estimand)


def seed_order(study: Study) -> tuple[int, ...]:
    """The order seeds are run in: the study's first seeds, then the rest of 0..max-1
    (a sequential study uses seeds 0..max-1 in order, `min` of them first)."""
    seq = study.sequential
    rest = () if seq is None else tuple(s for s in range(seq.max) if s not in study.seeds)
    return (*study.seeds, *rest)


def seeds_run(study: Study, runs: Sequence[AnyRun]) -> tuple[int, ...]:
    """The longest prefix of the seed order whose runs are finished in every arm.

    A seed still pending or running in some arm (an interrupted round) waits, with
    every later seed, until it finishes: a look must not change once made except by
    its own seeds finishing. A failed run counts as finished (it is missing from its
    own contrasts only).
    """
    status = {(r.arm, r.seed): r.status for r in runs}
    out = []
    for s in seed_order(study):
        if not all(status.get((a.name, s)) in FINAL_STATUSES for a in study.arms):
            break
        out.append(s)
    return tuple(out)


def seeds_used(result: SequentialResult, seeds: Sequence[int]) -> tuple[int, ...]:
    """The seeds the looks so far used: up to the last look (later ones wait)."""
    if not result.looks_done:
        return tuple(seeds)
    return tuple(seeds[:result.looks_done[-1]])


def verdicts(study: Study, contrasts: Sequence[ContrastData], seeds: Sequence[int],
             alpha: float) -> SequentialResult:
    """The sequential verdicts of the study's contrasts after `seeds` (`seeds_run`)."""
    return sequential_verdicts(design(study, alpha), contrasts, seeds,
                               higher_is_better=study.higher_is_better)


def _grid(resolution: float | None) -> str:
    if resolution is None:
        return "loss differences rounded to 1/100 of the ROPE"
    return f"grid {grid_label(resolution)}"


def interval_label(result: SequentialResult, resolution: float | None = None,
                   *, grid: bool = True) -> str:
    """What the sequential intervals are: the repeated CI of the design's tests."""
    d = result.design
    where = f"; {_grid(resolution)}" if grid else ""
    return (f"95% repeated confidence interval of the group-sequential exact sign-flip test "
            f"(looks at {d.looks[0]} to {d.max_seeds} seeds per arm in steps of {d.step}, "
            f"alpha spent as (n/{d.max_seeds})^{d.rho:g}{where})")


SEQUENTIAL_MULTIPLICITY = ("Holm per claim type, made sequential (a rejected claim passes its "
                "level on to the rest: Maurer & Bretz 2013)")


def _sequential(c: Contrast, v: SequentialVerdict, result: SequentialResult) -> Contrast:
    lo, hi = (v.path[-1].ci_low, v.path[-1].ci_high) if v.path else (-math.inf, math.inf)
    nan = math.nan
    return dataclasses.replace(
        c, decision=v.decision, reason=v.reason, ci_low=lo, ci_high=hi, ci90_low=nan,
        ci90_high=nan, interval=interval_label(result, c.resolution),
        multiplicity=SEQUENTIAL_MULTIPLICITY, p_value=nan, p_holm=nan, p_better=nan, p_worse=nan,
        p_equivalent=nan, p_better_holm=nan, p_worse_holm=nan, p_equivalent_holm=nan,
        p_wilcoxon=nan, p_t=nan, exact=True, mc_se=0.0, power=None)


def apply(family: Family, result: SequentialResult) -> Family:
    """The family with each contrast's decision, reason and 95% interval taken from the
    sequential verdicts, and its fixed-sample inference (p values, 90% CI, power)
    removed: after peeking those are not valid."""
    by_name = {v.arm: v for v in result.verdicts}
    contrasts = tuple(_sequential(c, by_name[c.arm], result) for c in family.contrasts)
    return dataclasses.replace(family, contrasts=contrasts,
                               interval=interval_label(result, grid=False),
                               multiplicity=SEQUENTIAL_MULTIPLICITY, warnings=())
