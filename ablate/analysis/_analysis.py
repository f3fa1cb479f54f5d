"""A study's runs -> the one decision object the report renders (text, tables, plots).

`load` reads a run directory's store into plain values (`StudyData`); `analyse` turns
them into the `Analysis`:

1. the estimand (`_estimand`): the cross-fitted metric, or, for a store written before
   it existed, the optimistic one with a warning; and its grid;
2. each arm's outcome per seed and the study's contrasts, paired per contrast
   (`_contrasts`): a diverged run is the worst outcome, a failed or unfinished one is
   missing from its own contrasts only;
3. the decisions: `ablate.stats.decide` for a fixed design (each claim type controlled
   over the contrasts; a 2x2's main effects, interaction and simple effects are one
   family, the simple effects shown when the interaction is decided), or, for a
   sequential study, `ablate.stats.sequential_verdicts` over the
   seeds run so far (`_sequential`), whose decisions and repeated intervals replace
   the fixed-sample ones;
4. what the numbers rest on: per-arm summaries and selection optimism, the Friedman
   rank summary against the baseline (more than two arms, fixed design), the
   verdict each contrast would have had if its diverged runs had been dropped, and the
   seeds far from their arm's bulk with the epoch curves that show why (`_unstable`).

`sequential_of` is the same path stopped at step 3, for the study driver: its
stopping decision and the report cannot disagree. Every number the report shows comes
from the `Analysis`, so the prose, the tables and the plots cannot disagree either.
Monte Carlo draws (power) come from streams keyed by the study's name and each
contrast's name: the same runs always give the same report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ablate.analysis import _looks as seq
from ablate.analysis._alike import check_trained_alike
from ablate.analysis._budget import Convergence, convergence
from ablate.analysis._contrasts import (
    Effect,
    Factorial,
    Outcomes,
    contrast_inputs,
    form_contrasts,
    simple_contrasts,
    without_divergence,
)
from ablate.analysis._estimand import Estimand, Optimism, optimism
from ablate.analysis._sourced import AnyRun
from ablate.analysis._summaries import (
    ArmSummary,
    Curves,
    Failure,
    arm_curves,
    arm_summary,
    done_seeds,
    rank_summary,
    run_failures,
)
from ablate.analysis._unstable import SeedCurves, seed_curves
from ablate.analysis._where import Where, where
from ablate.data import cache_file, load_npz
from ablate.design import Study, StudyRecord, read_record
from ablate.errors import UserError
from ablate.predictions import Predictions, PredictionSet
from ablate.stats import (
    Contrast,
    ContrastData,
    Family,
    Friedman,
    Outliers,
    SequentialResult,
    decide,
    outliers,
    sequential_verdicts,
)
from ablate.store import STALE_AFTER_S, Store

__all__ = ["ALPHA", "Analysis", "StudyData", "analyse", "load", "sequential_of"]

ALPHA = 0.05


@dataclass(frozen=True)
class StudyData:
    """What the report needs from a run directory, read once."""

    record: StudyRecord  # the study as trained (overrides applied), data, provenance
    runs: tuple[AnyRun, ...]  # every run of the study's arms and seeds
    epochs: Mapping[str, Sequence[Mapping[str, Any]]]  # arm -> store.epochs(arm) rows
    training: bool = False  # a live `ablate study` holds the run directory (its lease)
    # per-image predictions of the finished runs that have them, by (arm, seed); the
    # finished runs without (trained before they were stored); the test images, (n, 28,
    # 28) uint8, when the MNIST the runs trained on is in the cache (for the gallery)
    predictions: Mapping[tuple[str, int], Predictions] = field(default_factory=dict)
    no_predictions: tuple[tuple[str, int], ...] = ()
    test_images: np.ndarray | None = None

    @property
    def study(self) -> Study:
        return self.record.study


@dataclass(frozen=True)
class Analysis:
    """The decision object: everything the report says, computed once."""

    record: StudyRecord
    estimand: Estimand
    family: Family  # the study's contrasts (a 2x2: main effects and interaction)
    simple: Family | None  # a 2x2's simple effects, when its interaction was decided
    sequential: SequentialResult | None  # a sequential study's looks and stopping
    effects: Mapping[str, Effect]  # contrast name -> what it changes
    pairs: Mapping[str, ContrastData]  # contrast name -> its paired data
    undiverged: Mapping[str, str]  # contrast -> its decision had diverged runs been
    # dropped instead of counted as worst; only where that decision differs
    arms: tuple[ArmSummary, ...]  # in study order, baseline first
    optimism: tuple[Optimism, ...]  # per arm; () without cross-fitted values
    seeds: tuple[int, ...]  # the seeds analysed (sequential: those the looks used)
    outcomes: Outcomes  # arm -> seed -> value | status, over `seeds`
    curves: Mapping[str, Curves]  # arm -> history over its finished seeds
    failures: tuple[Failure, ...]
    factorial: Factorial | None  # a 2x2 analysed as main effects and interaction
    friedman: Friedman | None  # rank summary against the baseline (> 2 arms, fixed)
    training_seconds: float
    lost: tuple[str, ...] = ()  # arms with no outcome at all (fixed design), left out
    convergence: tuple[Convergence, ...] = ()  # per arm: still improving at its budget?
    where: Where | None = None  # per-image: where the differences live, seed ensembles
    anatomy: Mapping[str, Any] | None = None  # anatomy.json as stored (`--anatomy`), if any
    outliers: Mapping[str, Outliers] = dataclasses.field(default_factory=dict)  # per arm:
    # seeds far from its bulk (generalized ESD on its finished outcomes); flags only
    unstable: Mapping[str, SeedCurves] = dataclasses.field(default_factory=dict)  # per arm
    # with a flagged seed and epoch rows: every seed's curve, where each flagged one departs

    @property
    def study(self) -> Study:
        return self.record.study

    @property
    def higher_is_better(self) -> bool:
        return self.study.higher_is_better

    @property
    def contrasts(self) -> tuple[Contrast, ...]:
        """Every decided contrast: the family's, then the simple effects'."""
        return self.family.contrasts + (self.simple.contrasts if self.simple else ())

    def family_of(self, c: Contrast) -> Family:
        return self.simple if self.simple and c in self.simple.contrasts else self.family


def load(store: Store, *, predictions: bool = True) -> StudyData:
    """Read the study record, runs and per-epoch history from a store, and (unless
    predictions=False: the driver's stopping decision needs none) the per-image
    predictions and the test images."""
    record = read_record(store)
    study = record.study
    arm_names = [a.name for a in study.arms]
    runs = tuple(r for r in store.runs() if r.arm in arm_names)
    if study.sequential is None:  # a fixed design analyses its planned seeds only
        planned = set(study.seeds)
        runs = tuple(r for r in runs if r.seed in planned)
    check_trained_alike(store, study, runs)
    held = store.holder()  # a heartbeat this recent: its driver is alive and training
    training = held is not None and store.clock() - held.heartbeat <= STALE_AFTER_S
    found = store.prediction_set(arm_names, {r.seed for r in runs}) if predictions else \
        PredictionSet(())
    return StudyData(record=record, runs=runs, epochs={a: store.epochs(a) for a in arm_names},
                     training=training, predictions={(a, s): p for a, s, p in found.runs},
                     no_predictions=found.missing,
                     test_images=_test_images(record) if found.runs else None)


def _test_images(record: StudyRecord) -> np.ndarray | None:
    """MNIST's test images from the cache, when they are the ones the runs trained on."""
    path = cache_file()
    if record.data_sha256 is None or not path.is_file():
        return None
    try:
        mnist = load_npz(path, record.data_sha256)
    except UserError:
        return None
    return np.asarray(mnist.x_test)


def sequential_of(data: StudyData, *, alpha: float = ALPHA) -> SequentialResult | None:
    """A sequential study's verdicts after the seeds run so far (None for a fixed
    design): exactly the `Analysis.sequential` the report is built from."""
    if data.study.sequential is None:
        return None
    inputs = contrast_inputs(data.study, data.runs)
    return seq.verdicts(data.study, inputs.contrasts, inputs.seeds, alpha)


def analyse(data: StudyData, *, alpha: float = ALPHA, power: bool = True) -> Analysis:
    """Decide the study's contrasts and gather what the report shows (module doc).

    power=False skips the power simulation (about a second per contrast).
    """
    study = data.study
    inputs = contrast_inputs(study, data.runs)
    est, f, lost = inputs.estimand, inputs.factorial, inputs.lost
    arm_names = [a.name for a in study.arms]
    if study.baseline.name in lost or len(arm_names) - len(lost) < 2:
        raise _nothing_to_compare(study, data, lost)
    if study.sequential is not None and not inputs.seeds:
        why = f"no seed has finished in every arm (the first look is at " \
            f"{study.sequential.min} seeds per arm){_still_training(data)}, so there is " \
            "nothing to report"
        raise UserError(f"{why}; see `ablate runs RUN_DIR`",
                        api=f"{why}; see ablate.read_runs(run_dir)")
    result = seq.verdicts(study, inputs.contrasts, inputs.seeds, alpha) \
        if study.sequential is not None else None
    seeds, contrasts, effects = inputs.seeds, inputs.contrasts, dict(inputs.effects)
    if result is not None:  # decide on the seeds the looks used; later ones wait
        seeds = seq.seeds_used(result, seeds)
        contrasts, _ = form_contrasts(study, inputs.outcomes, seeds, f,
                             [a for a in arm_names if a not in lost], est.resolution)
    elif not any(c.seeds for c in contrasts):
        why = "no seed has an outcome in both an arm and its baseline" \
            f"{_still_training(data)}, so there is nothing to compare"
        raise UserError(f"{why}; see `ablate runs RUN_DIR`{_retry(data.runs)}",
                        api=f"{why}; see ablate.read_runs(run_dir){_retry(data.runs)}")
    higher = study.higher_is_better

    def decided(cs: Sequence[ContrastData], with_power: bool) -> Family:
        return decide(cs, metric=est.metric.name, rope=study.rope, higher_is_better=higher,
                      alpha=alpha, key=study.name, power=with_power,
                      estimand=study.estimand)

    def undiverged(cs: Sequence[ContrastData], fam: Family) -> dict[str, str]:
        """Decisions had the diverged runs been dropped, where they differ."""
        if not any(c.any_divergence for c in cs):
            return {}
        dropped = [without_divergence(c) for c in cs]
        if result is None:
            actual = {c.arm: c.decision for c in fam.contrasts}
            other = {c.arm: c.decision for c in decided(dropped, False).contrasts}
        else:
            actual = {v.arm: v.decision for v in result.verdicts}
            other = {v.arm: v.decision for v in sequential_verdicts(
                result.design, dropped, inputs.seeds, higher_is_better=higher,
                intervals=False).verdicts}
        return {name: d for name, d in other.items() if d != actual[name]}

    pairs = {c.name: c for c in contrasts}
    simple = None
    if f is not None and result is None:
        # One family: the main effects, the interaction and both simple effects, so
        # every claim the report can show is controlled together; the simple effects
        # are shown only when the interaction is decided.
        simple_data, simple_effects = simple_contrasts(f, inputs.outcomes, seeds,
                                                       est.resolution)
        whole = decided([*contrasts, *simple_data], power)
        changed = undiverged([*contrasts, *simple_data], whole)
        k = len(contrasts)
        family = dataclasses.replace(whole, contrasts=whole.contrasts[:k],
                                     n=max(c.n for c in whole.contrasts[:k]))
        if family.contrasts[2].decision == "interaction":
            simple = dataclasses.replace(whole, contrasts=whole.contrasts[k:], friedman=None,
                                         n=max(c.n for c in whole.contrasts[k:]),
                                         warnings=())
            effects.update(simple_effects)
            pairs.update({c.name: c for c in simple_data})
        else:
            changed = {name: d for name, d in changed.items() if name in pairs}
    else:
        family = decided(contrasts, power and result is None)
        changed = undiverged(contrasts, family)
    if result is not None:
        family = seq.apply(family, result)
    used = set(seeds)
    runs = [r for r in data.runs if r.seed in used]
    outcomes = {a: {s: o for s, o in per.items() if s in used}
                for a, per in inputs.outcomes.items()}
    usable = [a for a in arm_names if a not in lost]
    flags = {a: _outliers_of(outcomes[a]) for a in usable}
    quantity = est.metric.quantity
    unstable = {a: c for a in usable if (c := seed_curves(
        a, data.epochs.get(a, ()), outcomes[a], flags[a].seeds, quantity)) is not None}
    return Analysis(
        record=data.record, estimand=est, family=family, simple=simple, sequential=result,
        effects=effects, pairs=pairs, undiverged=changed,
        arms=tuple(arm_summary(a.name, a.levels, outcomes[a.name], runs)
                   for a in study.arms),
        optimism=optimism(study, runs, est), seeds=tuple(seeds), outcomes=outcomes,
        curves={a: arm_curves(data.epochs.get(a, ()), done_seeds(outcomes[a])) for a in usable},
        failures=run_failures(study, data.runs, seeds, est.metric.name),
        factorial=f,
        friedman=rank_summary(outcomes, usable, study, alpha)
        if f is None and result is None and len(usable) > 2 else None,
        training_seconds=float(sum(r.seconds or 0.0 for r in data.runs)), lost=lost,
        convergence=convergence(study, runs, data.epochs),
        where=_where(data, arm_names, seeds),
        outliers=flags, unstable=unstable)


def _where(data: StudyData, arms: Sequence[str], seeds: Sequence[int]) -> Where | None:
    """None for runs trained elsewhere (no predictions to read)."""
    if data.record.origin is not None:
        return None
    used = set(seeds)
    images = data.test_images

    def pixels(index: np.ndarray) -> np.ndarray | None:
        return None if images is None else images[index].reshape(len(index), 28, 28)

    study = data.study
    rope = study.rope if study.metric.quantity == "accuracy" else 0.0
    return where(arms, study.baseline.name, seeds, data.predictions,
                 [k for k in data.no_predictions if k[1] in used], pixels, rope=rope)


def _outliers_of(per_seed: Mapping[int, object]) -> Outliers:
    """An arm's seeds far from its bulk, over its finished outcomes."""
    done = [(s, float(v)) for s, v in per_seed.items()
            if isinstance(v, int | float) and not isinstance(v, bool)]
    return outliers([v for _, v in done], [s for s, _ in done])


def _nothing_to_compare(study: Study, data: StudyData, lost: Sequence[str]) -> UserError:
    """Why no contrast can be formed: which arms have no outcome, and whether the study
    is still training (running is not failed) or has runs to retry."""
    base = study.baseline.name
    who = (f"the baseline arm {base} has no finished run" if base in lost else
           f"only {len(study.arms) - len(lost)} of {len(study.arms)} arms have a finished "
           f"run (none: {', '.join(lost)})")
    why = f"{who}{_still_training(data)}, so there is nothing to compare"
    return UserError(f"{why}; see `ablate runs RUN_DIR`{_retry(data.runs)}",
                     api=f"{why}; see ablate.read_runs(run_dir){_retry(data.runs)}")


def _still_training(data: StudyData) -> str:
    """' yet: the study is still training (2 running, 18 pending) ...', or where no
    driver holds the directory and runs are unfinished, that it was interrupted."""
    running = sum(r.status == "running" for r in data.runs)
    pending = sum(r.status == "pending" for r in data.runs)
    if not running and not pending:
        return ""
    if data.training:
        return (f" yet: the study is still training ({running} running, {pending} "
                "pending) and writes its report when it ends")
    return (f" yet: the study was interrupted with {running + pending} runs unfinished "
            "(rerun it to go on)")


def _retry(runs: Sequence[AnyRun]) -> str:
    """'; rerun the study to retry its 3 failed runs' or ''."""
    failed = sum(r.status == "failed" for r in runs)
    return f"; rerun the study to retry its {failed} failed runs" if failed else ""
