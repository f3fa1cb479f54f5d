"""A study's design as typed, frozen values: the question, the arms, the seeds, the metric.

`Study` is what a study file resolves to (`_spec` parses TOML into it) and what the
study record stores with the runs (`_record`), so the report is built from the same
object that was trained, never from re-parsing a file.
"""

from dataclasses import dataclass, replace

from ablate.engine import RunConfig
from ablate.errors import UserError, suggest
from ablate.metric import Metric
from ablate.stats import FIRST_LOOK, LAST_LOOK, SequentialDesign

__all__ = ["AnatomyPlan", "Arm", "Factor", "Study"]


@dataclass(frozen=True)
class Arm:
    name: str  # e.g. "dropout=off"
    levels: tuple[tuple[str, str], ...]  # ((factor, level), ...)
    config: RunConfig | None  # None: runs ablate did not train (`ablate analyze`)

    @property
    def run_config(self) -> RunConfig:
        """The config ablate trains this arm with (a study file's arms always have one)."""
        if self.config is None:
            raise ValueError(f"arm {self.name!r} has no run config: its runs were trained "
                             "outside ablate")
        return self.config


@dataclass(frozen=True)
class Factor:
    name: str
    levels: tuple[str, ...]
    baseline: str


@dataclass(frozen=True)
class Sequential:
    """Seeds added in rounds until every verdict is settled (`seeds = { min, max }`).

    Looks happen at min, min + step, ..., max paired seeds (fixed in advance, so the
    error rates hold however often the study looks); each round trains `step` more
    seeds of every arm.
    """

    min: int  # seeds before the first look (6: the fewest an exact test can decide on)
    max: int  # the most seeds any arm gets
    step: int = 2  # seeds added per round

    def looks(self) -> tuple[int, ...]:
        """The seed counts at which the study looks: min, min + step, ..., max (the
        design's own looks, `ablate.stats.SequentialDesign`)."""
        return SequentialDesign(min_seeds=self.min, max_seeds=self.max, step=self.step).looks


@dataclass(frozen=True)
class AnatomyPlan:
    """`anatomy = true` or `anatomy = { arm = "...", seeds = N }`: after the study, one
    arm's runs varying one random stream at a time (`ablate study --anatomy`)."""

    arm: str | None = None  # None: the first arm with dropout, else the baseline
    seeds: int | None = None  # runs per stream; None: the study's seeds


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
    sequential: Sequential | None = None  # None: a fixed design on `seeds`
    anatomy: AnatomyPlan | None = None  # the study key `anatomy`; not part of the record
    estimand: str = "median"  # what the verdict is about (`ablate.stats.ESTIMANDS`): the
    # median (sign test, any shape of seed noise) or the mean (sign-flip, symmetric noise)

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

    def with_overrides(self, *, seeds: int | None = None, epochs: int | None = None,
                       until_decided: bool = False, max_seeds: int | None = None,
                       threads: int | None = None) -> "Study":
        """The same study with `--seeds N` (seeds 0..N-1), `--epochs N`, `--threads N`, or
        `--until-decided [--max-seeds N]` applied. Until decided, the first look is at the
        file's `seeds.min`, else at `--seeds N`, else at 6 seeds (the fewest on which an
        exact paired test can decide at 0.05); the last at `--max-seeds`, the file's
        `seeds.max`, else 30."""
        study = self
        if seeds is not None:
            if seeds < 1:
                raise UserError(f"--seeds must be at least 1, got {seeds}",
                                api=f"seeds must be at least 1, got {seeds}")
            study = replace(study, seeds=tuple(range(seeds)), sequential=None)
        if max_seeds is not None and not (until_decided or study.sequential):
            raise UserError("--max-seeds goes with --until-decided (or seeds = { min, max } "
                            "in the study file)",
                            api="max_seeds goes with until_decided=True (or seeds = { min, "
                            "max } in the study file)")
        if until_decided or (max_seeds is not None and study.sequential):
            was = self.sequential
            low = was.min if was else (seeds if seeds is not None else FIRST_LOOK)
            high = max_seeds or (was.max if was else LAST_LOOK)
            if high < low:
                raise UserError(f"--max-seeds must be at least the {low} seeds of the first "
                                f"look, got {high}", api=f"max_seeds must be at least the "
                                f"{low} seeds of the first look, got {high}")
            study = replace(study, seeds=tuple(range(low)),
                            sequential=replace(was, min=low, max=high) if was
                            else Sequential(low, high))
        if epochs is not None:
            if epochs < 1:
                raise UserError(f"--epochs must be at least 1, got {epochs}",
                                api=f"epochs must be at least 1, got {epochs}")
            arms = tuple(replace(a, config=replace(a.run_config, epochs=epochs))
                         for a in study.arms)
            study = replace(study, arms=arms)
        if threads is not None:
            if threads < 1:
                raise UserError(f"--threads must be at least 1, got {threads}",
                                api=f"threads must be at least 1, got {threads}")
            arms = tuple(replace(a, config=replace(a.run_config, threads=threads))
                         for a in study.arms)
            study = replace(study, arms=arms)
        return study
