"""Runs -> the paired data of one contrast, seed by seed, with nothing dropped silently.

An arm's outcome on a seed is its metric value (a finished run), DIVERGED (the run blew
up: an outcome of the treatment, the worst one) or anything else (failed, pending,
missing: not an outcome, the seed is simply missing for that arm). Pairing is per
contrast: a seed missing in arm C costs only the contrasts that involve C.

A contrast compares two *sides* per seed: the arm and the baseline, or, in a 2x2
factorial, averages or differences of cells (`factorial`). `ContrastData` keeps both
sides so that the pairing itself can be measured (`_pairing`), each side's divergence
so that an unstable arm is never favoured (`_divergence`), and the seeds it lost and
why. `simple_effects` gives the effect of one factor at each level of the other, for
when the interaction is not negligible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = [
    "DIVERGED",
    "ContrastData",
    "Kind",
    "Outcome",
    "factorial",
    "pair",
    "simple_effects",
]

DIVERGED = "diverged"
Outcome = float | str  # a finished run's metric value, DIVERGED, or why it is missing
Kind = Literal["arm", "main", "interaction", "simple"]


@dataclass(frozen=True)
class ContrastData:
    """One contrast's paired data over the seeds where neither side is missing.

    a, b: (n_paired,) the two sides (arm, baseline) per seed, NaN where that side
    diverged; diverged_a, diverged_b: (n_paired,) bool. Metric differences a - b exist
    on the seeds where neither diverged (`both_done`).
    """

    name: str  # the arm (or effect) label, `Contrast.arm` in the report
    reference: str  # what it is compared with, `Contrast.baseline`
    kind: Kind
    seeds: tuple[int, ...]  # paired seeds, in the study's seed order
    a: np.ndarray = field(repr=False)
    b: np.ndarray = field(repr=False)
    diverged_a: np.ndarray = field(repr=False)
    diverged_b: np.ndarray = field(repr=False)
    missing: tuple[tuple[int, str], ...]  # (seed, why) for seeds left out of this contrast
    resolution: float | None  # grid of a - b (1 / n_val for accuracy), None for loss
    sides_known: bool = True  # False when built from differences alone (b = 0)

    def __post_init__(self) -> None:
        n = len(self.seeds)
        for name in ("a", "b", "diverged_a", "diverged_b"):
            if np.shape(getattr(self, name)) != (n,):
                raise ValueError(f"{name} must have shape ({n},) like seeds")
        done = ~(self.diverged_a | self.diverged_b)
        if not (np.all(np.isfinite(self.a[done])) and np.all(np.isfinite(self.b[done]))):
            raise ValueError(f"{self.name}: a finished side must have a finite value")

    @property
    def both_done(self) -> np.ndarray:
        """(n_paired,) bool: seeds where both sides finished, so a - b exists."""
        return np.asarray(~(self.diverged_a | self.diverged_b), dtype=bool)

    @property
    def diffs(self) -> np.ndarray:
        """(n,) metric differences a - b over the both-done seeds, in seed order."""
        ok = self.both_done
        return np.asarray(self.a[ok] - self.b[ok], dtype=np.float64)

    @property
    def any_divergence(self) -> bool:
        return bool(self.diverged_a.any() or self.diverged_b.any())

    @classmethod
    def from_diffs(cls, diffs: object, *, name: str, reference: str, kind: Kind = "arm",
                   resolution: float | None = None) -> ContrastData:
        """A contrast known only by its differences: (n,), finite. b = 0 and
        sides_known = False: the pairing cannot be measured from differences alone."""
        d = np.asarray(diffs, dtype=np.float64)
        if d.ndim != 1 or d.size == 0 or not np.all(np.isfinite(d)):
            raise ValueError(f"{name}: diffs must be a non-empty finite 1-D array (n,)")
        none = np.zeros(d.size, dtype=bool)
        return cls(name=name, reference=reference, kind=kind, seeds=tuple(range(d.size)),
                   a=d, b=np.zeros(d.size), diverged_a=none, diverged_b=none.copy(),
                   missing=(), resolution=resolution, sides_known=False)


def _state(outcome: Outcome | None) -> tuple[float, str]:
    """(value, state) with state 'done', DIVERGED or the reason the seed is missing."""
    if outcome is None:
        return math.nan, "missing"
    if isinstance(outcome, str):
        return math.nan, outcome
    value = float(outcome)
    return (value, "done") if math.isfinite(value) else (math.nan, "not finite")


def _combine(cells: Sequence[Mapping[int, Outcome]], seeds: Sequence[int],
             weights: Sequence[float], labels: Sequence[str]
             ) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """One side as a weighted sum of cells per seed.

    Returns value (n,), diverged (n,) bool and {seed: why} for seeds missing in a cell.
    A side diverged when any of its cells did (its value is then NaN).
    """
    value = np.zeros(len(seeds))
    diverged = np.zeros(len(seeds), dtype=bool)
    missing: dict[int, str] = {}
    for cell, w, label in zip(cells, weights, labels, strict=True):
        for i, s in enumerate(seeds):
            v, st = _state(cell.get(s))
            if st == "done":
                value[i] += w * v
            elif st == DIVERGED:
                diverged[i] = True
            else:
                missing.setdefault(s, f"{label} {st}")
    value[diverged] = np.nan
    return value, diverged, missing


def _build(name: str, reference: str, kind: Kind, seeds: Sequence[int],
           side_a: tuple[np.ndarray, np.ndarray, dict[int, str]],
           side_b: tuple[np.ndarray, np.ndarray, dict[int, str]],
           resolution: float | None) -> ContrastData:
    (va, da, ma), (vb, db, mb) = side_a, side_b
    gone = {**mb, **ma}
    keep = np.array([s not in gone for s in seeds], dtype=bool)
    missing = tuple((s, "; ".join(w for w in (ma.get(s), mb.get(s)) if w)) for s in seeds
                    if s in gone)
    return ContrastData(name=name, reference=reference, kind=kind,
                        seeds=tuple(s for s, k in zip(seeds, keep, strict=True) if k),
                        a=va[keep], b=vb[keep], diverged_a=da[keep], diverged_b=db[keep],
                        missing=missing, resolution=resolution)


def pair(arm: Mapping[int, Outcome], baseline: Mapping[int, Outcome], seeds: Sequence[int],
         *, name: str, reference: str, resolution: float | None,
         kind: Kind = "arm") -> ContrastData:
    """Pair one arm with its baseline over `seeds` (the study's order).

    arm, baseline: seed -> metric value, DIVERGED, or a reason it is missing ("failed",
    "pending"); an absent seed is "missing". Seeds missing on either side are left out
    of this contrast only, and listed with the reason.
    """
    return _build(name, reference, kind, seeds,
                  _combine([arm], seeds, [1.0], [name]),
                  _combine([baseline], seeds, [1.0], [reference]), resolution)


def factorial(cells: Mapping[tuple[str, str], Mapping[int, Outcome]], seeds: Sequence[int],
              *, factor_a: str, factor_b: str, levels_a: tuple[str, str],
              levels_b: tuple[str, str], resolution: float | None
              ) -> tuple[ContrastData, ContrastData, ContrastData]:
    """Main effects and interaction of a paired 2x2 factorial, per seed.

    cells: (level of A, level of B) -> outcomes; levels_*: (baseline level, other).
    main A = mean of the A-other cells - mean of the A-baseline cells (grid h/2);
    interaction = (effect of A at B-other) - (effect of A at B-baseline) (grid h), its
    sides being those two simple effects. A side with a diverged cell is diverged (the
    worst outcome); an interaction has no "worst", so a seed with any diverged cell is
    left out of it and listed.
    """
    a0, a1 = levels_a
    b0, b1 = levels_b
    c = {key: cells[key] for key in ((a0, b0), (a0, b1), (a1, b0), (a1, b1))}
    lab = {key: f"{factor_a}={key[0]},{factor_b}={key[1]}" for key in c}

    def side(keys: Sequence[tuple[str, str]], weights: Sequence[float]
             ) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        return _combine([c[k] for k in keys], seeds, weights, [lab[k] for k in keys])

    everything = side(list(c), [0.0] * 4)  # any missing cell costs every effect the seed
    half = None if resolution is None else resolution / 2

    def with_all_missing(s: tuple[np.ndarray, np.ndarray, dict[int, str]]
                         ) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        return s[0], s[1], {**everything[2], **s[2]}

    main_a = _build(f"{factor_a}={a1} (main effect)", f"{factor_a}={a0}", "main", seeds,
                    with_all_missing(side([(a1, b0), (a1, b1)], [0.5, 0.5])),
                    with_all_missing(side([(a0, b0), (a0, b1)], [0.5, 0.5])), half)
    main_b = _build(f"{factor_b}={b1} (main effect)", f"{factor_b}={b0}", "main", seeds,
                    with_all_missing(side([(a0, b1), (a1, b1)], [0.5, 0.5])),
                    with_all_missing(side([(a0, b0), (a1, b0)], [0.5, 0.5])), half)
    at_b1 = side([(a1, b1), (a0, b1)], [1.0, -1.0])
    at_b0 = side([(a1, b0), (a0, b0)], [1.0, -1.0])
    unstable = {s: "a cell diverged (an interaction has no worst outcome)"
                for i, s in enumerate(seeds) if at_b1[1][i] or at_b0[1][i]}
    inter = _build(f"{factor_a} x {factor_b} (interaction)", "additive effects",
                   "interaction", seeds,
                   (at_b1[0], np.zeros(len(seeds), bool), {**everything[2], **unstable}),
                   (at_b0[0], np.zeros(len(seeds), bool), at_b0[2]), resolution)
    return main_a, main_b, inter


def simple_effects(cells: Mapping[tuple[str, str], Mapping[int, Outcome]],
                   seeds: Sequence[int], *, factor_a: str, factor_b: str,
                   levels_a: tuple[str, str], levels_b: tuple[str, str],
                   resolution: float | None) -> tuple[ContrastData, ContrastData]:
    """The effect of A (baseline level -> other) at each level of B, as two contrasts.

    Report these instead of (or beside) the main effect of A when the interaction is
    not shown negligible: a main effect averages two effects that may differ.
    """
    a0, a1 = levels_a

    def at(lb: str) -> ContrastData:
        return pair(cells[(a1, lb)], cells[(a0, lb)], seeds,
                    name=f"{factor_a}={a1} at {factor_b}={lb}",
                    reference=f"{factor_a}={a0} at {factor_b}={lb}", resolution=resolution,
                    kind="simple")

    return at(levels_b[0]), at(levels_b[1])
