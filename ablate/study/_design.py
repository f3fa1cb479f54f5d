"""A study's design as typed, frozen values: the question, the arms, the seeds, the metric.

`Study` is what a study file resolves to (`_spec` parses TOML into it) and what the
study record stores with the runs (`_record`), so the report is built from the same
object that was trained, never from re-parsing a file.
"""

import difflib
from dataclasses import dataclass, replace

from ablate.engine import RunConfig
from ablate.errors import UserError
from ablate.metric import Metric

__all__ = ["Arm", "Factor", "Study", "suggest"]


@dataclass(frozen=True)
class Arm:
    name: str  # e.g. "dropout=off"
    levels: tuple[tuple[str, str], ...]  # ((factor, level), ...)
    config: RunConfig


@dataclass(frozen=True)
class Factor:
    name: str
    levels: tuple[str, ...]
    baseline: str


@dataclass(frozen=True)
class Study:
    name: str
    question: str
    seeds: tuple[int, ...]
    metric: Metric  # what arms are compared on
    rope: float  # region of practical equivalence, in metric units
    validation: int  # images held out of the 60,000 for validation (0: train on all)
    design: str  # "one_at_a_time" | "factorial"
    factors: tuple[Factor, ...]
    arms: tuple[Arm, ...]  # arms[0] is the baseline
    source: str  # the file it came from

    @property
    def baseline(self) -> Arm:
        return self.arms[0]

    @property
    def higher_is_better(self) -> bool:
        return self.metric.higher_is_better

    def arm(self, name: str) -> Arm:
        for arm in self.arms:
            if arm.name == name:
                return arm
        names = [a.name for a in self.arms]
        raise UserError(f"{self.source}: no arm named {name!r}{suggest(name, names)}; "
                        f"arms: {', '.join(names)}")

    def with_overrides(self, *, seeds: int | None = None, epochs: int | None = None) -> "Study":
        """The same study with `--seeds N` (seeds 0..N-1) or `--epochs N` applied."""
        study = self
        if seeds is not None:
            if seeds < 1:
                raise UserError(f"--seeds must be at least 1, got {seeds}")
            study = replace(study, seeds=tuple(range(seeds)))
        if epochs is not None:
            if epochs < 1:
                raise UserError(f"--epochs must be at least 1, got {epochs}")
            arms = tuple(replace(a, config=replace(a.config, epochs=epochs)) for a in study.arms)
            study = replace(study, arms=arms)
        return study


def suggest(key: str, allowed: tuple[str, ...] | list[str]) -> str:
    """'; did you mean ...?' for a close match of `key` in `allowed`, else ''."""
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
