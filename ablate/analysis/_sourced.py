"""A run trained outside ablate, as the analysis sees it: what `ablate.store.Run` says of
a run, for the fields the analysis reads (arm, seed, status, error, the metric's value),
the rest unknown (None)."""

from __future__ import annotations

from dataclasses import dataclass

from ablate.store import Run

__all__ = ["AnyRun", "SourcedRun", "metric_value"]


@dataclass(frozen=True)
class SourcedRun:
    arm: str
    seed: int
    status: str  # done | diverged | failed | pending | running
    error: str | None  # why it has no value, when it has none
    metric: str  # the metric's name
    value: float | None  # its value (None: none; a diverged run never has one)
    where: str = ""  # where the source has it ("runs.csv: line 5")
    seconds: float | None = None  # not known for runs trained elsewhere
    test_accuracy: float | None = None


AnyRun = Run | SourcedRun  # what the analysis reads runs as


def metric_value(run: AnyRun, name: str) -> float | None:
    """The run's value of metric `name` (a store run: its column of that name)."""
    if isinstance(run, SourcedRun):
        return run.value if name == run.metric else None
    value = getattr(run, name)
    return None if value is None else float(value)
