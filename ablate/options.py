"""How `ablate study` runs a study: its options, the CLI's flags and the API's keyword
arguments, with their defaults stated once, here (the CLI imports this module at start,
so it imports nothing heavy)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["Executors", "StudyOptions"]

Executors = Literal["in-process", "ray"]


@dataclass(frozen=True)
class StudyOptions:
    out: Path = Path("runs")  # a study writes to <out>/<study name>/
    seeds: int | None = None  # seeds 0..N-1 instead of the file's
    until_decided: bool = False  # add seeds in rounds until every verdict is settled
    max_seeds: int | None = None  # with until_decided: the most seeds per arm (default 30)
    epochs: int | None = None  # epochs instead of the file's
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))  # a notebook passes a str
        if isinstance(self.log, str):  # a notebook passes log="mlflow"
            object.__setattr__(self, "log", (self.log,))
