"""How `ablate study` runs a study: its options, the CLI's flags and the API's keyword
arguments, with their defaults stated once, here (the CLI imports this module at start,
so it imports nothing heavy)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["AnalyzeOptions", "Executors", "StudyOptions"]

Executors = Literal["in-process", "ray"]


@dataclass(frozen=True)
class StudyOptions:
    # a study writes to <out>/<study name>/; None: to runs/<study name> followed by the
    # overrides that change what a run is (runs/dropout-epochs3-subset10000), so a quick
    # look never mixes its runs into the study's own (seeds only add runs: not named)
    out: Path | None = None
    seeds: int | None = None  # seeds 0..N-1 instead of the file's
    until_decided: bool = False  # add seeds in rounds until every verdict is settled
    max_seeds: int | None = None  # with until_decided: the most seeds per arm (default 30)
    epochs: int | None = None  # epochs instead of the file's
    threads: int | None = None  # torch intra-op threads instead of the file's (default 1)
    subset: int | None = None  # first N training images of a fixed stratified order
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    dry_run: bool = False  # show the plan, train nothing
    fresh: bool = False  # forget earlier runs of this study first
    wait: bool = False  # wait for another driver of the same run directory to finish
    report: bool = True  # write report.{md,html,json} at the end
    executor: Executors = "in-process"  # where cohorts train
    ray_address: str | None = None  # None: a local Ray instance; "auto" or HOST:PORT: join
    cpus_per_cohort: float = 1.0  # Ray resources per cohort task
    gpus_per_cohort: float = 0.0  # fractions let cohorts share a GPU
    log: tuple[str, ...] = ()  # trackers to publish to at the end: "mlflow[=URI]",
    # "tensorboard[=DIR]" (ablate.publish); one that cannot be reached is a warning
    anatomy: bool = False  # after the study: one arm's runs varying one stream at a time
    anatomy_arm: str | None = None  # the arm (default: the first with dropout, or the baseline)
    anatomy_seeds: int | None = None  # runs per stream (default: the study's seeds)

    def __post_init__(self) -> None:
        if self.out is not None:
            object.__setattr__(self, "out", Path(self.out))  # a notebook passes a str
        if isinstance(self.log, str):  # a notebook passes log="mlflow"
            object.__setattr__(self, "log", (self.log,))


@dataclass(frozen=True)
class AnalyzeOptions:
    """What `ablate analyze` (and `ablate.analyze`) needs besides the source: which fields
    are what, and the verdict's settings. Also readable from a TOML analysis file
    (`ablate.analysis.read_analysis_file`), whose keys are these names."""

    arm: tuple[str, ...] = ()  # the arm field, or several factor fields
    seed: str = "seed"  # the seed field
    metric: str = ""  # the metric field
    baseline: str = ""  # the baseline arm (its name, as built from the arm fields)
    status: str | None = None  # a field of done / diverged / failed (MLflow: the run's own)
    rope: float = 0.0  # region of practical equivalence, metric units (0: no equivalence)
    alpha: float = 0.05  # the family-wise error rate of every claim type
    resolution: float | None = None  # the metric's grid (1/N for an accuracy on N images)
    lower_is_better: bool = False  # a loss, say
    experiment: str | None = None  # MLflow: the experiment (default: the only one with runs)
    name: str | None = None  # the report's study name (default: from the source)
    question: str | None = None  # the question the report answers
    out: Path | None = None  # where report.* go (default: beside the table)
    next: bool = False  # read the runs as a group-sequential study's looks
    max_seeds: int = 30  # with next: the last look (seeds per arm)
    min_seeds: int = 6  # with next: the first look
    step: int = 2  # with next: seeds added per round
    power: bool = True  # simulate the power of the verdict (about a second per contrast)

    def __post_init__(self) -> None:
        if isinstance(self.arm, str):  # a notebook passes arm="optimizer"
            object.__setattr__(self, "arm", (self.arm,))
        if self.out is not None:
            object.__setattr__(self, "out", Path(self.out))
