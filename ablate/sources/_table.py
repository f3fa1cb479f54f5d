"""Runs from anywhere -> one typed, validated table: arm, seed, status, metric value.

Every source (`_files`: CSV, JSON lines, Parquet; `_mlflow`; `_tensorboard`) reads its
runs into plain records (field name -> value, with where each came from); `build` is
the one place they are checked and typed, so every source fails the same way on the
same mistake, in one line that says how to fix it:

- a named field (arm, seed, metric, status) that no run has;
- a seed that is not an integer, an arm value that is empty;
- a duplicate (arm, seed);
- a metric value that is not a number (empty or missing is a run without a value; NaN
  or +-inf is a diverged run, as `ablate runs` marks one);
- a status outside `done`, `diverged`, `failed`, `pending`, `running`;
- a value off the stated grid (`resolution`), after float32 values (TensorBoard
  scalars) are snapped onto it;
- fewer than two arms.

A run's status: the status field's value where one is named (a tracker's own run
status is mapped to these words by its reader), else `done`; a non-finite value makes
a run `diverged` and a missing one leaves it without an outcome, whatever the status
says.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ablate.errors import UserError, suggest

__all__ = ["PREFIXES", "STATUSES", "Columns", "Record", "RunTable", "SourceRun", "build"]

STATUSES = ("done", "diverged", "failed", "pending", "running")  # as `ablate runs` says
PREFIXES = ("params", "tags", "metrics", "hparams", "path")  # a tracker's field groups
Kind = Literal["table", "mlflow", "tensorboard", "dataframe"]
_FLOAT32_RTOL = 2.0**-23  # a float32 holds a value to half an ulp: 2^-24 relative


@dataclass(frozen=True)
class Record:
    """One run as a source read it: field name -> value, and where it came from."""

    fields: Mapping[str, object]
    where: str  # "row 5", "run 1f2e... (name)", "tb/arm=a/seed=3"
    float32: frozenset[str] = frozenset()  # fields stored in float32 (TensorBoard)


@dataclass(frozen=True)
class Columns:
    """Which fields say what. arm: one field, or several (factor columns) from which an
    arm's name is built as 'f1=v1,f2=v2'."""

    arm: tuple[str, ...]
    seed: str
    metric: str
    status: str | None = None

    def __post_init__(self) -> None:
        if not self.arm:
            raise UserError("name the arm column: --arm COL (or several for factors)")


@dataclass(frozen=True)
class SourceRun:
    """One run: its arm, seed, status and value of the compared metric."""

    arm: str
    levels: tuple[tuple[str, str], ...]  # ((field, value), ...) the arm is made of
    seed: int
    status: str  # one of STATUSES
    value: float | None  # the metric; None without one (NaN never: that is diverged)
    where: str
    error: str | None = None  # why it has no outcome, when it has none


@dataclass(frozen=True)
class RunTable:
    """Every run of a source, validated: the input of `ablate analyze`."""

    source: str  # the path or URI it was read from
    kind: Kind
    columns: Columns
    arms: tuple[str, ...]  # in order of first appearance
    runs: tuple[SourceRun, ...]
    skipped: tuple[str, ...] = ()  # tracker runs without the arm and seed fields (a
    # parent or report run): where each is
    snapped: int = 0  # float32 values snapped onto the grid

    @property
    def metric(self) -> str:
        return self.columns.metric

    def arm_levels(self, arm: str) -> tuple[tuple[str, str], ...]:
        return next(r.levels for r in self.runs if r.arm == arm)

    def seeds(self, arm: str) -> tuple[int, ...]:
        return tuple(r.seed for r in self.runs if r.arm == arm)


def _resolve(name: str, keys: Sequence[str], source: str, what: str) -> str:
    """The field `name` refers to: itself, else the one `prefix.name` that exists."""
    if name in keys:
        return name
    found = [f"{p}.{name}" for p in PREFIXES if f"{p}.{name}" in keys]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise UserError(f"{source}: {what} {name!r} is ambiguous: {', '.join(found)}; name "
                        "one of them")
    shown = sorted(keys)
    listed = ", ".join(shown[:30]) + (f", ... ({len(shown)} in all)" if len(shown) > 30 else "")
    raise UserError(f"{source}: no field {name!r} for the {what}{suggest(name, shown)}; "
                    f"fields: {listed}")


def _text(v: object) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    s = str(v).strip()
    return s or None


def _seed(v: object, where: str, field: str) -> int:
    if isinstance(v, bool):
        raise UserError(f"{where}: seed {field} = {v!r} is not an integer")
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, float | np.floating) and math.isfinite(v) and float(v).is_integer():
        return int(v)
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            pass
        try:
            f = float(v)
        except ValueError:
            f = math.nan
        if math.isfinite(f) and f.is_integer():
            return int(f)
    shown = "missing" if v is None or v == "" else repr(v)
    raise UserError(f"{where}: seed {field} is {shown}, not an integer; every run needs "
                    "its seed")


def _value(v: object, where: str, field: str) -> float | None:
    """The metric value: a float (NaN for non-finite), or None when missing."""
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if isinstance(v, bool):
        raise UserError(f"{where}: {field} = {v!r} is not a number")
    if isinstance(v, int | float | np.integer | np.floating):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())  # also "nan", "inf", "-inf"
        except ValueError:
            pass
    raise UserError(f"{where}: {field} = {v!r} is not a number; the metric must be numeric "
                    "(empty for a run without a value, nan for a diverged one)")


def _on_grid(value: float, resolution: float, float32: bool, where: str, field: str
             ) -> tuple[float, bool]:
    """The value on the grid k * resolution (float32 values snapped to the nearest
    point when within their rounding), or a UserError naming it."""
    k = round(value / resolution)
    per = 1.0 / resolution  # k / 400 is the float nearest 0.94; 376 * 0.0025 is not
    exact = k / round(per) if abs(per - round(per)) < 1e-9 * per else k * resolution
    off = abs(value / resolution - k)
    if float32 and abs(value - exact) <= 2 * _FLOAT32_RTOL * max(abs(value), abs(exact)):
        return exact, exact != value
    if off <= 1e-6:  # stats' GRID_TOL: already on the grid as float64 arithmetic puts it
        return value, False
    raise UserError(f"{where}: {field} = {value!r} is not on the grid of resolution "
                    f"{resolution:g} (it is {off:.3g} steps off); pass the metric's true "
                    "--resolution (1/N for an accuracy over N images) or leave it out")


def build(records: Sequence[Record], columns: Columns, *, source: str, kind: Kind,
          resolution: float | None = None, skip_unlabelled: bool = False) -> RunTable:
    """Check and type the records (module docstring). skip_unlabelled: a tracker's
    runs with neither the arm nor the seed fields are not runs of the study (a parent
    or report run) and are listed in `skipped`; otherwise every record must have them."""
    if not records:
        raise UserError(f"{source}: no runs found")
    keys = sorted({k for r in records for k in r.fields})
    arm_fields = tuple(_resolve(a, keys, source, "arm") for a in columns.arm)
    seed_field = _resolve(columns.seed, keys, source, "seed")
    metric_field = _resolve(columns.metric, keys, source, "metric")
    status_field = None if columns.status is None else \
        _resolve(columns.status, keys, source, "status")
    if resolution is not None and not (resolution > 0 and math.isfinite(resolution)):
        raise UserError(f"--resolution must be a positive number, got {resolution}")
    runs: list[SourceRun] = []
    seen: dict[tuple[str, int], str] = {}
    skipped: list[str] = []
    snapped = 0
    for rec in records:
        f = rec.fields
        label = [f.get(a) for a in arm_fields]
        if skip_unlabelled and all(_text(v) is None for v in label) and \
                _text(f.get(seed_field)) is None:
            skipped.append(rec.where)
            continue
        texts = [_text(v) for v in label]
        for a, t in zip(arm_fields, texts, strict=True):
            if t is None:
                raise UserError(f"{rec.where}: the arm field {a!r} is empty; every run "
                                "needs its arm")
        levels = tuple((a.split(".", 1)[1] if a.split(".", 1)[0] in PREFIXES else a, t)
                       for a, t in zip(arm_fields, texts, strict=True) if t is not None)
        arm = levels[0][1] if len(levels) == 1 else ",".join(f"{k}={v}" for k, v in levels)
        seed = _seed(f.get(seed_field), rec.where, seed_field)
        if (arm, seed) in seen:
            raise UserError(f"{rec.where}: arm {arm!r} seed {seed} appears twice (also "
                            f"{seen[arm, seed]}); keep one run per arm and seed")
        seen[arm, seed] = rec.where
        value = _value(f.get(metric_field), rec.where, metric_field)
        status = "done"
        if status_field is not None:
            raw = _text(f.get(status_field))
            if raw is None or raw.lower() not in STATUSES:
                raise UserError(f"{rec.where}: status {status_field} = {raw!r}; expected one "
                                f"of {', '.join(STATUSES)}")
            status = raw.lower()
        error = None
        if value is not None and not math.isfinite(value):
            status, value = ("failed", None) if status == "failed" else ("diverged", None)
        elif status == "diverged":
            value = None
        elif status != "done":
            value = None
            error = f"status {status}"
        elif value is None:
            error = f"no {metric_field} value"
        if value is not None and resolution is not None:
            value, moved = _on_grid(value, resolution, metric_field in rec.float32,
                                    rec.where, metric_field)
            snapped += moved
        runs.append(SourceRun(arm, levels, seed, status, value, rec.where, error))
    if not runs:
        raise UserError(f"{source}: none of its {len(records)} runs has the arm and seed "
                        f"fields ({', '.join(arm_fields)}; {seed_field})")
    arms = tuple(dict.fromkeys(r.arm for r in runs))
    if len(arms) < 2:
        raise UserError(f"{source}: every run is in one arm ({arms[0]!r} of "
                        f"{', '.join(arm_fields)}); a comparison needs at least two arms")
    return RunTable(source, kind, Columns(arm_fields, seed_field, metric_field, status_field),
                    arms, tuple(runs), tuple(skipped), snapped)
