"""The epoch curves behind an outlier flag: one flagged arm's per-epoch validation curve
of every seed, and where each flagged seed leaves the others.

`Analysis.outliers` flags the seeds far from their arm's bulk on the compared metric;
these curves show why. For an arm with a flagged seed, `seed_curves` stacks the
per-epoch validation value of the quantity the study compares (accuracy or loss; the
training one where a study has no validation split) for every seed whose run finished
or diverged; a diverged run's values end at its last finite epoch.

The departure of a flagged seed is the first epoch k from which its curve lies outside
the range (min to max, per epoch) of the bulk, the arm's other finished and unflagged
seeds, at every epoch up to its last: outside at k, k + 1, ..., last, and inside at
k - 1 (or k = 1). None where its curve ends inside the range (the flag is on the kept
epoch's compared metric, not on the last epoch) or there is no bulk to compare with. A
departure is early when it falls in the first half of the epochs trained (k <= E / 2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ablate.stats import DIVERGED, Outcome

__all__ = ["SeedCurves", "departure", "seed_curves"]


@dataclass(frozen=True)
class SeedCurves:
    """One flagged arm's per-epoch curves (module doc): every seed drawn, the flagged ones
    and where each departs from the bulk."""

    arm: str
    key: str  # the per-epoch series: "val_accuracy" | "val_loss" | "train_*" (no validation)
    epochs: np.ndarray  # (n_epochs,) 1-based epoch numbers
    seeds: tuple[int, ...]  # every seed drawn (finished or diverged), in seed order
    values: np.ndarray  # (n_seeds, n_epochs), NaN where not logged or after divergence
    flagged: tuple[int, ...]  # the outlier seeds, most extreme first (Outliers.seeds)
    departs: tuple[int | None, ...]  # per flagged seed: its departure epoch, or None
    diverged: tuple[int, ...]  # drawn seeds whose run diverged
    bulk: tuple[int, ...]  # the seeds whose range a flagged seed is measured against

    def curve(self, seed: int) -> np.ndarray:
        """(n_epochs,) one seed's values."""
        return np.asarray(self.values[self.seeds.index(seed)], dtype=np.float64)

    def last_epoch(self, seed: int) -> int | None:
        """The last epoch with a finite value (a diverged run stopped after it)."""
        logged = np.flatnonzero(np.isfinite(self.curve(seed)))
        return int(self.epochs[logged[-1]]) if logged.size else None

    def early(self, epoch: int) -> bool:
        """Whether a departure at `epoch` falls in the first half of the epochs trained."""
        return epoch <= self.epochs.size / 2

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(n_epochs,) the bulk's min and max per epoch, NaN where no bulk seed logged."""
        return _range(self.values[[self.seeds.index(s) for s in self.bulk]])


def _range(others: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(others)
    has = ok.any(axis=0)
    low = np.where(ok, others, np.inf).min(axis=0, initial=np.inf)
    high = np.where(ok, others, -np.inf).max(axis=0, initial=-np.inf)
    return np.where(has, low, np.nan), np.where(has, high, np.nan)


def departure(curve: np.ndarray, others: np.ndarray) -> int | None:
    """The 1-based first epoch from which `curve: (n_epochs,)` stays outside the per-epoch
    range of `others: (m, n_epochs)` through its last finite value (module doc)."""
    low, high = _range(others)
    with np.errstate(invalid="ignore"):  # NaN compares False: not outside
        outside = np.isfinite(curve) & ((curve < low) | (curve > high))
    logged = np.flatnonzero(np.isfinite(curve))
    if not logged.size or not outside[logged[-1]]:
        return None
    k = int(logged[-1])
    while k > 0 and outside[k - 1]:
        k -= 1
    return k + 1


def seed_curves(arm: str, rows: Sequence[Mapping[str, Any]], outcomes: Mapping[int, Outcome],
                flagged: Sequence[int], quantity: str) -> SeedCurves | None:
    """The curves of one arm with flagged seeds, from its `store.epochs(arm)` rows; None
    when nothing is flagged, the quantity has no per-epoch series (runs trained elsewhere)
    or no flagged seed has epoch rows (a directory written without them)."""
    if not flagged or quantity not in ("accuracy", "loss"):
        return None
    seeds = tuple(sorted(s for s, o in outcomes.items()
                         if not isinstance(o, str) or o == DIVERGED))
    mine = [r for r in rows if r["seed"] in seeds]
    key = next((k for k in (f"val_{quantity}", f"train_{quantity}")
                if any(r.get(k) is not None for r in mine)), None)
    if key is None:
        return None
    n_epochs = max(int(r["epoch"]) for r in mine)
    values = np.full((len(seeds), n_epochs), np.nan)
    for r in mine:
        value = r.get(key)
        values[seeds.index(r["seed"]), int(r["epoch"]) - 1] = np.nan if value is None else value
    if not any(s in seeds and np.isfinite(values[seeds.index(s)]).any() for s in flagged):
        return None
    flagged = tuple(s for s in flagged if s in seeds)
    diverged = tuple(s for s in seeds if outcomes[s] == DIVERGED)
    bulk = tuple(s for s in seeds if s not in flagged and s not in diverged)
    others = values[[seeds.index(s) for s in bulk]]
    return SeedCurves(
        arm=arm, key=key, epochs=np.arange(1, n_epochs + 1), seeds=seeds, values=values,
        flagged=flagged, departs=tuple(departure(values[seeds.index(s)], others)
                                       for s in flagged),
        diverged=diverged, bulk=bulk)
