"""Runs -> each arm's outcome per seed -> the study's contrasts, paired per contrast.

An arm's outcome on a seed is its metric value (a finished run), "diverged" (the worst
outcome: an effect of the treatment, never dropped), or the reason it has none
(failed, pending, running, missing). Each contrast pairs its two sides on the seeds
where neither is missing (`ablate.stats.pair`), so a seed lost in one arm costs only
that arm's contrasts, and lists what it lost.

Designs: every arm against the baseline arm (one-at-a-time designs, and factorials
other than 2x2); a 2x2 factorial gives the two main effects and the interaction
(`ablate.stats.factorial`), and, when the interaction is decided, the simple effects
of the first factor at each level of the second (`ablate.stats.simple_effects`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ablate.analysis import _looks as seq
from ablate.analysis._estimand import Estimand, estimand
from ablate.analysis._sourced import AnyRun, metric_value
from ablate.design import Study
from ablate.stats import DIVERGED, ContrastData, Outcome, factorial, pair, simple_effects

__all__ = ["ContrastInputs", "contrast_inputs", "form_contrasts",
    "Effect", "Factorial", "Outcomes", "arm_contrasts", "arm_outcomes",
    "factorial_contrasts", "simple_contrasts", "without_divergence",
]

Outcomes = Mapping[str, Mapping[int, Outcome]]  # arm -> seed -> value | status


@dataclass(frozen=True)
class Factorial:
    """A 2x2 factorial: each factor from its baseline level to its other level, and
    which arm is which cell. The one cell mapping for contrasts and figures."""

    factor_a: str
    factor_b: str
    levels_a: tuple[str, str]  # (baseline level, other level)
    levels_b: tuple[str, str]
    cells: Mapping[tuple[str, str], str]  # (level of A, level of B) -> arm name

    @classmethod
    def of(cls, study: Study) -> Factorial | None:
        """The study's 2x2 structure, or None when it is not a full 2x2 factorial."""
        if study.design != "factorial" or len(study.factors) != 2:
            return None
        if any(len(f.levels) != 2 for f in study.factors):
            return None
        fa, fb = study.factors
        levels = [(f.baseline, next(lv for lv in f.levels if lv != f.baseline))
                  for f in (fa, fb)]
        cells = {(dict(a.levels)[fa.name], dict(a.levels)[fb.name]): a.name
                 for a in study.arms}
        return cls(fa.name, fb.name, levels[0], levels[1], cells)


@dataclass(frozen=True)
class Effect:
    """What a contrast changes, for the prose: its `ContrastData.name` is `label`."""

    label: str
    kind: str  # "arm" | "main" | "interaction" | "simple"
    changes: tuple[tuple[str, str, str], ...]  # (factor, from level, to level)
    other: tuple[str, str, str] | None  # main: averaged over; interaction: moderator;
    # simple: (factor, level, level) held fixed


def arm_outcomes(study: Study, runs: Sequence[AnyRun], metric: str, seeds: Sequence[int]
                 ) -> dict[str, dict[int, Outcome]]:
    """arm -> seed -> the run's metric value, "diverged", or why it has none."""
    by_key = {(r.arm, r.seed): r for r in runs}
    out: dict[str, dict[int, Outcome]] = {}
    for arm in study.arms:
        per_seed: dict[int, Outcome] = {}
        for s in seeds:
            run = by_key.get((arm.name, s))
            if run is None:
                per_seed[s] = "missing"
            elif run.status == "done":
                value = metric_value(run, metric)
                per_seed[s] = "not recorded" if value is None else value
            else:
                per_seed[s] = DIVERGED if run.status == DIVERGED else run.status
        out[arm.name] = per_seed
    return out


def _changes(base: tuple[tuple[str, str], ...], levels: tuple[tuple[str, str], ...]
             ) -> tuple[tuple[str, str, str], ...]:
    return tuple((f, b, lv) for (f, b), (_, lv) in zip(base, levels, strict=True) if b != lv)


def arm_contrasts(study: Study, outcomes: Outcomes, seeds: Sequence[int], arms: Sequence[str],
                  resolution: float | None) -> tuple[list[ContrastData], dict[str, Effect]]:
    """Each of `arms` (not the baseline) against the baseline arm."""
    base = study.baseline
    data, effects = [], {}
    for arm in study.arms[1:]:
        if arm.name not in arms:
            continue
        data.append(pair(outcomes[arm.name], outcomes[base.name], seeds, name=arm.name,
                         reference=base.name, resolution=resolution))
        effects[arm.name] = Effect(arm.name, "arm", _changes(base.levels, arm.levels), None)
    return data, effects


def _cells(f: Factorial, outcomes: Outcomes) -> dict[tuple[str, str], Mapping[int, Outcome]]:
    return {key: outcomes[arm] for key, arm in f.cells.items()}


def factorial_contrasts(f: Factorial, outcomes: Outcomes, seeds: Sequence[int],
                        resolution: float | None
                        ) -> tuple[list[ContrastData], dict[str, Effect]]:
    """Main effects of A and B and their interaction, each factor baseline -> other."""
    main_a, main_b, inter = factorial(
        _cells(f, outcomes), seeds, factor_a=f.factor_a, factor_b=f.factor_b,
        levels_a=f.levels_a, levels_b=f.levels_b, resolution=resolution)
    change_a = (f.factor_a, *f.levels_a)
    change_b = (f.factor_b, *f.levels_b)
    effects = {main_a.name: Effect(main_a.name, "main", (change_a,), change_b),
               main_b.name: Effect(main_b.name, "main", (change_b,), change_a),
               inter.name: Effect(inter.name, "interaction", (change_a,), change_b)}
    return [main_a, main_b, inter], effects


def simple_contrasts(f: Factorial, outcomes: Outcomes, seeds: Sequence[int],
                     resolution: float | None
                     ) -> tuple[list[ContrastData], dict[str, Effect]]:
    """The effect of A at each level of B (for when the interaction is decided)."""
    pair_ = simple_effects(_cells(f, outcomes), seeds, factor_a=f.factor_a,
                           factor_b=f.factor_b, levels_a=f.levels_a, levels_b=f.levels_b,
                           resolution=resolution)
    effects = {c.name: Effect(c.name, "simple", ((f.factor_a, *f.levels_a),),
                              (f.factor_b, lb, lb))
               for c, lb in zip(pair_, f.levels_b, strict=True)}
    return list(pair_), effects


def without_divergence(data: ContrastData) -> ContrastData:
    """The same contrast with its diverged seeds left out instead of counted as worst:
    what complete pairs would have analysed (for the report's counterfactual only)."""
    keep = data.both_done
    gone = tuple((s, "diverged") for s, ok in zip(data.seeds, keep, strict=True) if not ok)
    return ContrastData(
        name=data.name, reference=data.reference, kind=data.kind,
        seeds=tuple(s for s, ok in zip(data.seeds, keep, strict=True) if ok),
        a=data.a[keep], b=data.b[keep], diverged_a=data.diverged_a[keep],
        diverged_b=data.diverged_b[keep], missing=tuple(sorted((*data.missing, *gone))),
        resolution=data.resolution, sides_known=data.sides_known)


@dataclass(frozen=True)
class ContrastInputs:
    """The contrasts' data before any decision: shared by `analyse` and the driver."""

    estimand: Estimand
    seeds: tuple[int, ...]  # fixed: planned; sequential: run so far (in run order)
    outcomes: Outcomes
    factorial: Factorial | None
    lost: tuple[str, ...]
    contrasts: list[ContrastData]
    effects: dict[str, Effect]


def _has_outcome(outcomes: Mapping[int, object]) -> bool:
    return any(not isinstance(o, str) or o == DIVERGED for o in outcomes.values())


def form_contrasts(study: Study, outcomes: Outcomes, seeds: Sequence[int], f: Factorial | None,
          arms: Sequence[str], resolution: float | None
          ) -> tuple[list[ContrastData], dict[str, Effect]]:
    if f is not None:
        return factorial_contrasts(f, outcomes, seeds, resolution)
    return arm_contrasts(study, outcomes, seeds, arms, resolution)


def contrast_inputs(study: Study, runs: Sequence[AnyRun]) -> ContrastInputs:
    """The estimand, the seeds analysed (fixed: planned; sequential: run so far), each
    arm's outcomes and the study's contrasts, before any decision."""
    est = estimand(study, runs)
    sequential = study.sequential is not None
    seeds = seq.seeds_run(study, runs) if sequential else tuple(study.seeds)
    outcomes = arm_outcomes(study, runs, est.metric.name, seeds)
    arm_names = [a.name for a in study.arms]
    # An arm with no outcome at all (every run failed, say) is left out of a fixed
    # design rather than joining its Holm family with nothing to test. A sequential
    # design keeps its contrasts fixed from the first look to the last.
    lost = () if sequential else tuple(a for a in arm_names if not _has_outcome(outcomes[a]))
    f = Factorial.of(study) if not lost else None
    usable = [a for a in arm_names if a not in lost]
    contrasts, effects = form_contrasts(study, outcomes, seeds, f, usable, est.resolution)
    return ContrastInputs(est, seeds, outcomes, f, lost, contrasts, effects)
