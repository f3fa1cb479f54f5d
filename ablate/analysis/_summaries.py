"""What the numbers rest on, per arm: the summary of its outcomes (mean, sd, 95% t interval
of the mean, test accuracy, runs by status), its training curves over seeds with their
bands, and the runs without an outcome and why. Descriptive numbers only (the verdicts are
`_analysis`'s); every band a figure draws is computed here, by `t_band`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.stats as st

from ablate.analysis._contrasts import Outcomes
from ablate.analysis._looks import seed_order
from ablate.analysis._sourced import AnyRun, metric_value
from ablate.design import Study
from ablate.files import jsonable
from ablate.stats import DIVERGED, Friedman, friedman

__all__ = ["ArmSummary", "Band", "Curves", "Failure", "arm_summary", "arm_curves", "done_seeds",
           "rank_summary", "run_failures", "t_band"]

CONFIDENCE = 0.95  # of every descriptive band and interval


@dataclass(frozen=True)
class Band:
    """A mean over seeds with its descriptive 95% t band; NaN where fewer than two seeds
    have a value (the band) or none (the mean). Arrays of one shape."""

    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray


def t_band(values: np.ndarray) -> Band:
    """Mean and 95% t interval over axis 0 (seeds), ignoring NaN, without warnings.

    values: (n_seeds, ...) -> a Band of shape values.shape[1:]. Where every seed has the
    same value the band is that point.
    """
    ok = np.isfinite(values)
    n = ok.sum(axis=0)
    filled = np.where(ok, values, 0.0)
    mean = np.where(n > 0, filled.sum(axis=0) / np.maximum(n, 1), np.nan)
    dev = np.where(ok, values - mean, 0.0)
    var = np.where(n > 1, (dev**2).sum(axis=0) / np.maximum(n - 1, 1), np.nan)
    q = st.t.ppf(0.5 + CONFIDENCE / 2, np.maximum(n - 1, 1))
    half = np.where(n > 1, q * np.sqrt(var / np.maximum(n, 1)), np.nan)
    return Band(mean, mean - half, mean + half)


@dataclass(frozen=True)
class Curves:
    """Per-epoch training history of one arm over its finished seeds.

    Arrays are (n_seeds, n_epochs), NaN where a run logged no finite value (or stopped
    early); grad_norms is (n_seeds, n_epochs, n_dense_layers).
    """

    epochs: np.ndarray  # (n_epochs,) 1-based epoch numbers
    train_loss: np.ndarray
    val_loss: np.ndarray
    train_accuracy: np.ndarray
    val_accuracy: np.ndarray
    grad_norms: np.ndarray

    def band(self, key: str) -> Band:
        """Mean and 95% t band over seeds of one curve ("train_loss", "val_loss",
        "train_accuracy", "val_accuracy"), per epoch: (n_epochs,) arrays."""
        return t_band(getattr(self, key))

    def grad_band(self) -> Band:
        """Geometric mean and 95% band over seeds of each layer's gradient norm (the band
        of the log norms, exponentiated: norms span decades): (n_epochs, n_layers)."""
        with np.errstate(divide="ignore", invalid="ignore"):  # a 0 or NaN norm: masked
            logs = np.log(np.where(self.grad_norms > 0, self.grad_norms, np.nan))
        b = t_band(logs)
        return Band(np.exp(b.mean), np.exp(b.low), np.exp(b.high))


@dataclass(frozen=True)
class ArmSummary:
    """One row of the per-arm table over the arm's own finished seeds (metric units)."""

    arm: str
    levels: tuple[tuple[str, str], ...]
    n: int  # finished runs with a metric value
    mean: float
    sd: float  # ddof=1; nan when n < 2
    median: float
    ci_low: float  # 95% t interval of the mean (descriptive); nan when n < 2
    ci_high: float
    test_mean: float  # test accuracy of the same runs (reported, never selected on)
    test_sd: float
    done: int  # runs of this arm by status, over the analysed seeds
    diverged: int
    failed: int
    unfinished: int  # pending, running or missing: the study was interrupted

    @property
    def divergence_rate(self) -> float:
        """Diverged among the runs with an outcome (done or diverged); nan if none."""
        k = self.done + self.diverged
        return self.diverged / k if k else math.nan

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["divergence_rate"] = self.divergence_rate
        return dict(jsonable(out))


@dataclass(frozen=True)
class Failure:
    """A run of an analysed seed without a metric value, and why."""

    arm: str
    seed: int
    status: str  # failed | diverged | pending | running | missing | done (value missing)
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"arm": self.arm, "seed": self.seed, "status": self.status, "error": self.error}


def arm_summary(arm: str, levels: tuple[tuple[str, str], ...],
                 outcomes: Mapping[int, object], runs: Sequence[AnyRun]) -> ArmSummary:
    values = np.array([o for o in outcomes.values() if not isinstance(o, str)],
                      dtype=np.float64)
    n = values.size
    nan = math.nan
    sd = float(values.std(ddof=1)) if n >= 2 else nan
    band = t_band(values[:, None])  # (1,) arrays: the 95% t interval of the mean
    low, high = float(band.low[0]), float(band.high[0])
    done = {s for s, o in outcomes.items() if not isinstance(o, str)}
    mine = [r for r in runs if r.arm == arm and r.seed in outcomes]
    test = np.array([r.test_accuracy for r in mine if r.seed in done
                     and r.test_accuracy is not None], dtype=np.float64)
    statuses = [outcomes[s] if isinstance(outcomes[s], str) else "done" for s in outcomes]
    return ArmSummary(
        arm=arm, levels=levels, n=n, mean=float(values.mean()) if n else nan, sd=sd,
        median=float(np.median(values)) if n else nan, ci_low=float(low),
        ci_high=float(high), test_mean=float(test.mean()) if test.size else nan,
        test_sd=float(test.std(ddof=1)) if test.size >= 2 else nan,
        done=sum(r.status == "done" for r in mine),
        diverged=statuses.count(DIVERGED),
        failed=statuses.count("failed"),
        unfinished=sum(s in ("pending", "running", "missing") for s in statuses),
    )


def arm_curves(rows: Sequence[Mapping[str, Any]], seeds: tuple[int, ...]) -> Curves:
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


def done_seeds(outcomes: Mapping[int, object]) -> tuple[int, ...]:
    return tuple(s for s, o in outcomes.items() if not isinstance(o, str))


def run_failures(study: Study, runs: Sequence[AnyRun], analysed: Sequence[int], metric: str
                 ) -> tuple[Failure, ...]:
    """Each analysed run without a metric value, and why (`_failure_seeds` says which
    seeds are covered)."""
    seeds = _failure_seeds(study, runs, analysed)
    by_key = {(r.arm, r.seed): r for r in runs}
    out = []
    for arm in study.arms:
        for s in seeds:
            run = by_key.get((arm.name, s))
            if run is None:
                out.append(Failure(arm.name, s, "missing", None))
            elif run.status != "done":
                out.append(Failure(arm.name, s, run.status, run.error))
            elif metric_value(run, metric) is None:
                out.append(Failure(arm.name, s, "done", f"{metric} was not recorded"))
    return tuple(out)


def _failure_seeds(study: Study, runs: Sequence[AnyRun], analysed: Sequence[int]
                   ) -> tuple[int, ...]:
    """Seeds whose runs the failure list covers: the planned ones (fixed), or every
    seed in the store (sequential: an interrupted round's runs are listed too)."""
    if study.sequential is None:
        return tuple(analysed)
    return tuple(s for s in seed_order(study) if any(r.seed == s for r in runs))


def rank_summary(outcomes: Outcomes, arms: Sequence[str], study: Study, alpha: float
              ) -> Friedman | None:
    """Friedman over the seeds where every arm has an outcome, a diverged run ranked
    last in its seed; Bonferroni-Dunn against the baseline (a versus-baseline design)."""
    seeds = [s for s in outcomes[arms[0]]
             if all(not isinstance(outcomes[a][s], str) or outcomes[a][s] == DIVERGED
                    for a in arms)]
    if len(seeds) < 2:
        return None
    values = np.array([[np.nan if isinstance(outcomes[a][s], str) else outcomes[a][s]
                        for a in arms] for s in seeds], dtype=np.float64)  # (n, k)
    finite = values[np.isfinite(values)]
    # Only ranks matter: a diverged run takes a value worse than every finished one.
    worst = (finite.min() - 1.0 if study.higher_is_better else finite.max() + 1.0) \
        if finite.size else 0.0
    values = np.where(np.isnan(values), worst, values)
    return friedman(values, list(arms), higher_is_better=study.higher_is_better,
                    alpha=alpha, baseline=study.baseline.name)
