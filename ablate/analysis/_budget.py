"""Had the arms converged at their budget? A verdict says what the arms did with the
epochs and optimizer they were given; if their validation curves were still rising at
the end, it holds at this budget and may not at a longer one. The report says so.

The rule, per finished run, on the validation curve of the metric its epoch was kept
on (accuracy, or loss with its sign flipped, so that up is better):

- its kept epoch is its last (the curve never turned down from its best), and
- the least-squares slope of that curve over its last `LAST_EPOCHS` epochs is positive
  by more than `SLOPE_SE` standard errors (from the fit's own residuals, on
  `LAST_EPOCHS - 2` degrees of freedom): still rising beyond the epoch-to-epoch noise.

Such a run was *still improving* when its budget ended. An arm *had not converged*
when at least `SHARE` of its finished runs were still improving. Runs with fewer than
3 epochs, or without a validation split, have no curve to judge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ablate.analysis._sourced import AnyRun
from ablate.design import Study
from ablate.store import Run

__all__ = ["LAST_EPOCHS", "SHARE", "SLOPE_SE", "Convergence", "convergence", "still_improving"]

LAST_EPOCHS = 5  # the slope is fitted over this many last epochs (fewer if it has fewer)
SLOPE_SE = 2.0  # "rising beyond noise": slope above this many standard errors
SHARE = 0.5  # an arm had not converged when at least this share of its runs still rose
_LEAST_EPOCHS = 3  # a slope and its standard error need at least 3 points


@dataclass(frozen=True)
class Convergence:
    """One arm at its budget, by the rule above."""

    arm: str
    epochs: int  # the arm's budget: epochs ...
    optimizer: str  # ... and optimizer with its learning rate, 'sgd lr=0.01'
    runs: int  # finished runs with a curve to judge
    improving: int  # of those, still improving when the budget ended

    @property
    def converged(self) -> bool:
        return not (self.runs and self.improving >= SHARE * self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {"arm": self.arm, "epochs": self.epochs, "optimizer": self.optimizer,
                "runs": self.runs, "still_improving": self.improving,
                "converged": self.converged}


def still_improving(curve: Sequence[float], kept_epoch: int) -> bool | None:
    """The rule for one run: `curve` is its validation metric per epoch (up is better),
    `kept_epoch` the 1-based epoch it kept. None: too short or not finite to judge."""
    y = np.asarray(curve, dtype=np.float64)
    if len(y) < _LEAST_EPOCHS or not np.isfinite(y).all():
        return None
    if kept_epoch != len(y):
        return False
    tail = y[-LAST_EPOCHS:]  # (k,)
    k = len(tail)
    x = np.arange(k, dtype=np.float64) - (k - 1) / 2  # centred epochs
    slope = float(x @ (tail - tail.mean()) / (x @ x))
    residual = tail - tail.mean() - slope * x
    se = math.sqrt(float(residual @ residual) / (k - 2) / float(x @ x))
    return slope > SLOPE_SE * se


def convergence(study: Study, runs: Sequence[AnyRun],
                epochs: Mapping[str, Sequence[Mapping[str, Any]]]) -> tuple[Convergence, ...]:
    """Each arm at its budget (study order), from its finished runs' epoch rows; () when
    the study has no validation split, or its runs were trained elsewhere (no curves,
    no budget known: `ablate analyze`)."""
    if study.validation == 0 or any(arm.config is None for arm in study.arms):
        return ()
    quantity = study.metric.selection.quantity  # the curve the kept epoch was chosen on
    sign = 1.0 if quantity == "accuracy" else -1.0
    out = []
    for arm in study.arms:
        rows: dict[int, list[tuple[int, float]]] = {}
        for r in epochs.get(arm.name, ()):
            v = r.get(f"val_{quantity}")
            rows.setdefault(int(r["seed"]), []).append(
                (int(r["epoch"]), math.nan if v is None else sign * float(v)))
        judged = []
        for run in runs:
            if (not isinstance(run, Run) or run.arm != arm.name or run.status != "done"
                    or not run.best_epoch):
                continue
            curve = [v for _, v in sorted(rows.get(run.seed, []))]
            verdict = still_improving(curve, run.best_epoch)
            if verdict is not None:
                judged.append(verdict)
        opt = arm.run_config.optimizer
        out.append(Convergence(arm.name, arm.run_config.epochs, f"{opt.name} lr={opt.lr:g}",
                               len(judged), sum(judged)))
    return tuple(out)
