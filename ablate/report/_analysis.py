"""A study's runs -> the one decision object the report renders (text, tables, plots).

`load` reads a run directory's store into plain arrays (`StudyData`); `analyse` pairs
the runs by seed, keeps the seeds every arm completed (listing the failed, diverged
and unfinished ones), and decides the study's family of contrasts with `ablate.stats`:

- one-at-a-time designs (and factorials other than 2x2): every arm against the
  baseline arm (`compare`; Friedman + Nemenyi when there are more than two arms);
- a 2x2 factorial: the two main effects and the interaction (`factorial_2x2` +
  `compare_contrasts`), each factor going from its baseline level to the other one.

Every number the report shows comes from the `Analysis` returned here, so the prose,
the tables and the plots cannot disagree. The bootstrap (and, above 13 seeds, the
Monte Carlo sign-flip test) draws from a generator seeded by the study's name, so the
same runs always give the same report.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.stats as st

from ablate.errors import UserError
from ablate.files import jsonable
from ablate.stats import Family, compare, compare_contrasts, complete_pairs, factorial_2x2
from ablate.store import Run, Store
from ablate.study import Study, StudyRecord, read_record

ALPHA = 0.05
CORRECTION = "holm"  # confirmatory; DESIGN.md offers BH only as a labelled option


@dataclass(frozen=True)
class Curves:
    """Per-epoch training history of one arm over the analysed seeds.

    Arrays are (n_seeds, n_epochs), NaN where a run logged no finite value (or stopped
    early); grad_norms is (n_seeds, n_epochs, n_dense_layers).
    """

    epochs: np.ndarray  # (n_epochs,) 1-based epoch numbers
    train_loss: np.ndarray
    val_loss: np.ndarray
    train_accuracy: np.ndarray
    val_accuracy: np.ndarray
    grad_norms: np.ndarray


@dataclass(frozen=True)
class StudyData:
    """What the report needs from a run directory, read once."""

    record: StudyRecord  # the study as trained (overrides applied), data, provenance
    runs: tuple[Run, ...]  # every run of the planned arms and seeds
    epochs: Mapping[str, Sequence[Mapping[str, Any]]]  # arm -> store.epochs(arm) rows

    @property
    def study(self) -> Study:
        return self.record.study


@dataclass(frozen=True)
class Effect:
    """What a contrast changes, for the prose: the family's `Contrast.arm` is `label`."""

    label: str
    kind: str  # "arm" (arm vs baseline) | "main" (2x2 main effect) | "interaction"
    changes: tuple[tuple[str, str, str], ...]  # (factor, from level, to level)
    other: tuple[str, str, str] | None  # main: factor averaged over; interaction: moderator
    diffs: np.ndarray  # (n_seeds,) the per-seed contrast values that were tested


@dataclass(frozen=True)
class ArmSummary:
    """One row of the per-arm table; metric values in metric units (fractions)."""

    arm: str
    levels: tuple[tuple[str, str], ...]
    n: int  # analysed seeds (complete in every arm)
    mean: float
    sd: float  # ddof=1; nan when n < 2
    median: float
    ci_low: float  # 95% t interval of the mean; nan when n < 2
    ci_high: float
    test_mean: float  # test accuracy over the same seeds (reported, never tuned on)
    test_sd: float
    done: int  # runs of this arm by status, over the planned seeds
    diverged: int
    failed: int
    unfinished: int  # pending or running: the study was interrupted

    def to_dict(self) -> dict[str, Any]:
        return jsonable({k: getattr(self, k) for k in self.__dataclass_fields__})


@dataclass(frozen=True)
class Failure:
    """A planned run that is not in the analysis, and why."""

    arm: str
    seed: int
    status: str  # failed | diverged | pending | running | missing | done (metric missing)
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"arm": self.arm, "seed": self.seed, "status": self.status, "error": self.error}


@dataclass(frozen=True)
class Analysis:
    """The decision object: everything the report says, computed once."""

    record: StudyRecord
    family: Family
    effects: Mapping[str, Effect]  # Contrast.arm -> what it changes
    arms: tuple[ArmSummary, ...]  # in study order, baseline first
    seeds: tuple[int, ...]  # analysed seeds, complete in every arm
    scores: Mapping[str, np.ndarray]  # arm -> (n_seeds,) metric, aligned with `seeds`
    curves: Mapping[str, Curves]  # arm -> history over `seeds`
    failures: tuple[Failure, ...]
    dropped: tuple[int, ...]  # planned seeds left out of every contrast
    factorial: tuple[str, str] | None  # (factor A, factor B) when analysed as a 2x2
    training_seconds: float
    lost: tuple[str, ...] = field(default=())  # arms with no completed run, left out
    notes: tuple[str, ...] = field(default=())  # report-level sentences (pairing, design)

    @property
    def study(self) -> Study:
        return self.record.study

    @property
    def higher_is_better(self) -> bool:
        return self.study.higher_is_better


def report_rng(name: str) -> np.random.Generator:
    """The report's generator: seeded by the study name, so reruns give identical numbers."""
    digest = hashlib.sha256(f"ablate-report:{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def load(store: Store) -> StudyData:
    """Read the study record, runs and per-epoch history from a store."""
    record = read_record(store)
    arm_names = [a.name for a in record.study.arms]
    planned = set(record.study.seeds)
    runs = tuple(r for r in store.runs() if r.arm in arm_names and r.seed in planned)
    return StudyData(record=record, runs=runs, epochs={a: store.epochs(a) for a in arm_names})


def analyse(data: StudyData, *, alpha: float = ALPHA) -> Analysis:
    """Pair the runs by seed and decide the study's contrasts (see the module doc)."""
    study = data.study
    metric, rope = study.metric.name, study.rope
    arm_names = [a.name for a in study.arms]
    by_key = {(r.arm, r.seed): r for r in data.runs}

    values: dict[str, dict[int, float | None]] = {a: {} for a in arm_names}
    failures: list[Failure] = []
    for arm in arm_names:
        for seed in study.seeds:
            run = by_key.get((arm, seed))
            value: float | None = getattr(run, metric) if run is not None else None
            ok = run is not None and run.status == "done" and value is not None \
                and math.isfinite(value)
            values[arm][seed] = value if ok else None
            if not ok:
                status = "missing" if run is None else run.status
                error = None if run is None else run.error
                if run is not None and run.status == "done":
                    error = f"{metric} was not recorded"
                failures.append(Failure(arm, seed, status, error))
    # An arm with no usable seed at all (every run diverged, say) is left out rather than
    # emptying every contrast; the baseline cannot be left out.
    usable = [a for a in arm_names if any(v is not None for v in values[a].values())]
    lost = [a for a in arm_names if a not in usable]
    if arm_names[0] in lost or len(usable) < 2:
        who = "the baseline arm" if arm_names[0] in lost else "fewer than two arms"
        raise UserError(f"{who} ({', '.join(lost)}) has no completed run, so there is "
                        "nothing to compare; see `ablate runs RUN_DIR` and rerun the study "
                        "to retry failed runs")
    paired = complete_pairs({a: values[a] for a in usable})
    if not paired.seeds:
        listed = "; ".join(f"{f.arm} seed {f.seed} {f.status}" for f in failures[:6])
        raise UserError(f"no seed completed in every arm, so there is nothing to compare "
                        f"({listed}{'...' if len(failures) > 6 else ''}); see `ablate runs "
                        "RUN_DIR` and rerun the study to retry failed runs")

    rng = report_rng(study.name)
    higher = study.metric.higher_is_better
    factorial = _factorial_factors(study) if not lost else None
    if factorial is not None:
        family, effects = _factorial(study, factorial, paired.scores, metric, rope, rng,
                                     higher, alpha)
    else:
        family = compare(paired.scores, arm_names[0], metric, rope, rng=rng,
                         higher_is_better=higher, alpha=alpha, correction=CORRECTION)
        effects = {a.name: Effect(a.name, "arm", _changes(study.arms[0].levels, a.levels),
                                  None, paired.scores[a.name] - paired.scores[arm_names[0]])
                   for a in study.arms[1:] if a.name in usable}

    notes = []
    for arm in lost:
        counts = Counter(f.status for f in failures if f.arm == arm)
        how = ", ".join(f"{k} {status}" for status, k in sorted(counts.items()))
        notes.append(f"Arm {arm} has no completed run ({how}): it is left out of every "
                     "contrast.")
    if paired.dropped:
        notes.append(
            f"The analysis uses the {len(paired.seeds)} seeds that completed in every arm "
            f"(complete pairs); seed{'s' if len(paired.dropped) > 1 else ''} "
            f"{_join([str(s) for s in paired.dropped])} "
            f"{'were' if len(paired.dropped) > 1 else 'was'} left out of every contrast "
            "because a run failed, diverged or did not finish (listed below).")
    if study.design == "factorial" and factorial is None:
        notes.append("This factorial is not 2x2, so each arm is compared with the baseline "
                     "arm; main effects and interactions are reported for 2x2 designs only.")
    return Analysis(
        record=data.record, family=family, effects=effects,
        arms=tuple(_arm_summary(a.name, a.levels, paired.scores.get(a.name, np.empty(0)),
                                paired.seeds if a.name in usable else (),
                                [r for r in data.runs if r.arm == a.name], by_key)
                   for a in study.arms),
        seeds=paired.seeds, scores=paired.scores,
        curves={a: _curves(data.epochs.get(a, ()), paired.seeds) for a in usable},
        failures=tuple(failures), dropped=paired.dropped, factorial=factorial,
        training_seconds=float(sum(r.seconds or 0.0 for r in data.runs)),
        lost=tuple(lost),
        notes=tuple(notes),
    )


def _join(words: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _changes(base: tuple[tuple[str, str], ...], levels: tuple[tuple[str, str], ...]
             ) -> tuple[tuple[str, str, str], ...]:
    return tuple((f, b, lv) for (f, b), (_, lv) in zip(base, levels, strict=True) if b != lv)


def _factorial_factors(study: Study) -> tuple[str, str] | None:
    """(A, B) when the study is a full 2x2 factorial, else None."""
    if study.design != "factorial" or len(study.factors) != 2:
        return None
    if any(len(f.levels) != 2 for f in study.factors):
        return None
    return study.factors[0].name, study.factors[1].name


def _factorial(study: Study, factors: tuple[str, str], scores: Mapping[str, np.ndarray],
               metric: str, rope: float, rng: np.random.Generator, higher: bool,
               alpha: float) -> tuple[Family, dict[str, Effect]]:
    """Main effects and interaction of a paired 2x2, each factor baseline -> other level."""
    fa, fb = (next(f for f in study.factors if f.name == n) for n in factors)
    a0, a1 = fa.baseline, next(lv for lv in fa.levels if lv != fa.baseline)
    b0, b1 = fb.baseline, next(lv for lv in fb.levels if lv != fb.baseline)
    cell = {tuple(dict(a.levels)[n] for n in factors): a.name for a in study.arms}
    vectors = factorial_2x2(scores[cell[a0, b0]], scores[cell[a0, b1]],
                            scores[cell[a1, b0]], scores[cell[a1, b1]],
                            factor_a=fa.name, factor_b=fb.name)
    # factorial_2x2 returns main A, main B, interaction in that order; relabel them with
    # the levels compared so a reader sees which way each effect points.
    main_a, main_b, inter = vectors.values()
    change_a, change_b = (fa.name, a0, a1), (fb.name, b0, b1)
    effects = {
        f"{fa.name}={a1} (main effect)": Effect(f"{fa.name}={a1} (main effect)", "main",
                                                (change_a,), change_b, main_a),
        f"{fb.name}={b1} (main effect)": Effect(f"{fb.name}={b1} (main effect)", "main",
                                                (change_b,), change_a, main_b),
        f"{fa.name} x {fb.name} (interaction)": Effect(
            f"{fa.name} x {fb.name} (interaction)", "interaction", (change_a,), change_b,
            inter),
    }
    baselines = [f"{fa.name}={a0}", f"{fb.name}={b0}", "additive effects"]
    family = compare_contrasts(
        {(label, base): e.diffs for (label, e), base in zip(effects.items(), baselines,
                                                             strict=True)},
        metric=metric, rope=rope, rng=rng, higher_is_better=higher, alpha=alpha,
        correction=CORRECTION)
    return family, effects


def _arm_summary(arm: str, levels: tuple[tuple[str, str], ...], scores: np.ndarray,
                 seeds: tuple[int, ...], runs: list[Run],
                 by_key: Mapping[tuple[str, int], Run]) -> ArmSummary:
    n = scores.size
    if n == 0:  # an arm left out: counts only
        scores = np.full(1, np.nan)
    sd = float(scores.std(ddof=1)) if n >= 2 else math.nan
    if n >= 2 and sd > 0:
        low, high = st.t.interval(0.95, n - 1, loc=scores.mean(), scale=sd / math.sqrt(n))
    elif n >= 2:  # every seed scored the same: the interval is that point
        low = high = float(scores.mean())
    else:
        low = high = math.nan
    test = np.array([v for s in seeds if (v := by_key[arm, s].test_accuracy) is not None],
                    dtype=np.float64)
    return ArmSummary(
        arm=arm, levels=levels, n=n, mean=float(scores.mean()), sd=sd,
        median=float(np.median(scores)), ci_low=float(low), ci_high=float(high),
        test_mean=float(test.mean()) if test.size else math.nan,
        test_sd=float(test.std(ddof=1)) if test.size >= 2 else math.nan,
        done=sum(r.status == "done" for r in runs),
        diverged=sum(r.status == "diverged" for r in runs),
        failed=sum(r.status == "failed" for r in runs),
        unfinished=sum(r.status in ("pending", "running") for r in runs),
    )


def _curves(rows: Sequence[Mapping[str, Any]], seeds: tuple[int, ...]) -> Curves:
    """Stack one arm's epoch rows into (n_seeds, n_epochs[, n_layers]) arrays."""
    index = {s: i for i, s in enumerate(seeds)}
    mine = [r for r in rows if r["seed"] in index]
    n_epochs = max((int(r["epoch"]) for r in mine), default=0)
    n_layers = max((len(r["grad_norms"]) for r in mine), default=0)
    shape = (len(seeds), n_epochs)
    out = {k: np.full(shape, np.nan) for k in
           ("train_loss", "val_loss", "train_accuracy", "val_accuracy")}
    grads = np.full((*shape, n_layers), np.nan)
    for r in mine:
        i, e = index[r["seed"]], int(r["epoch"]) - 1  # epochs are stored 1-based
        for k, arr in out.items():
            arr[i, e] = np.nan if r[k] is None else r[k]
        g = [np.nan if x is None else x for x in r["grad_norms"]]
        grads[i, e, :len(g)] = g
    return Curves(epochs=np.arange(1, n_epochs + 1), grad_norms=grads, **out)
