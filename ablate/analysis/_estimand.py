"""What the report compares: the selection-free metric, its grid, and each arm's
selection optimism.

A run keeps the epoch best on the validation split, so that split's score of the kept
epoch is optimistic. Studies therefore compare on the cross-fitted validation metric
(epoch chosen on one half, scored on the other). Stores written before the cross-fit
existed have no cross-fitted values: they are compared on what they have, the
optimistic `val_*` metric, and the report says so (`Estimand.fallback`).

Accuracy is a count of images over a fixed split, so differences live on the grid
1 / n: the validation size for `val_*` and `crossfit_val_*` (the cross-fit pools both
halves), 10,000 test images for `test_accuracy` (a subset of them lies on a coarser
grid that 1/10,000 contains). Losses have no grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ablate.analysis._sourced import AnyRun
from ablate.data import TEST_IMAGES
from ablate.design import Study
from ablate.metric import METRICS, Metric

__all__ = ["Estimand", "Optimism", "estimand", "optimism"]


@dataclass(frozen=True)
class Estimand:
    """The metric the contrasts are decided on, and why it is that one."""

    metric: Metric  # what is compared
    study_metric: Metric  # what the study record asked for
    resolution: float | None  # grid of its differences; None for a loss
    fallback: int  # finished runs without a cross-fitted value (>0: compared on val_*)

    @property
    def optimistic(self) -> bool:
        """True when the compared number was scored on the split that chose its epoch."""
        return not self.metric.selection_free


def _finished(runs: Sequence[AnyRun]) -> list[AnyRun]:
    return [r for r in runs if r.status == "done"]


def estimand(study: Study, runs: Sequence[AnyRun]) -> Estimand:
    """The metric to compare: the selection-free one of the study's quantity when every
    finished run has it, else (an older store) the optimistic `val_*` one."""
    asked = study.metric
    if asked.split == "external":  # trained elsewhere: compared as recorded, on its grid
        return Estimand(asked, asked, asked.resolution, 0)
    if asked.split == "test":
        compared, missing = asked, 0
    else:
        free = METRICS[f"crossfit_val_{asked.quantity}"]
        missing = sum(getattr(r, free.name) is None for r in _finished(runs))
        compared = free if missing == 0 else asked.selection
    if compared.quantity != "accuracy":
        resolution = None
    elif compared.split == "test":
        resolution = 1.0 / TEST_IMAGES
    else:
        resolution = 1.0 / study.validation
    return Estimand(compared, asked, resolution, missing)


@dataclass(frozen=True)
class Optimism:
    """One arm's selection optimism: best-on-validation minus cross-fitted, per seed.

    In improvement units: val - crossfit for accuracy, crossfit - val for a loss, so a
    positive number always means the best-epoch figure flatters the arm.
    """

    arm: str
    n: int  # finished runs with both values
    mean: float  # metric units
    sd: float  # ddof = 1; nan for n < 2
    low: float  # smallest per-seed optimism
    high: float  # largest

    def to_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def optimism(study: Study, runs: Sequence[AnyRun], est: Estimand) -> tuple[Optimism, ...]:
    """Each arm's selection optimism, in study order; () when nothing was selected on
    validation (no split) or the store has no cross-fitted values."""
    if study.validation == 0 or est.fallback:
        return ()
    quantity = est.metric.quantity
    best, free = METRICS[f"val_{quantity}"], METRICS[f"crossfit_val_{quantity}"]
    sign = 1.0 if best.higher_is_better else -1.0
    out = []
    for arm in study.arms:
        vals = [sign * (b - f) for r in _finished(runs) if r.arm == arm.name
                and (b := getattr(r, best.name)) is not None
                and (f := getattr(r, free.name)) is not None]
        x = np.asarray(vals, dtype=np.float64)
        nan = math.nan
        out.append(Optimism(
            arm.name, int(x.size), float(x.mean()) if x.size else nan,
            float(x.std(ddof=1)) if x.size >= 2 else nan,
            float(x.min()) if x.size else nan, float(x.max()) if x.size else nan))
    return tuple(out)
