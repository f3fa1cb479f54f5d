"""Anatomy of the spread: extra runs of one arm that vary one random stream at a time.

For each stream (initialization, data order and, when the arm uses dropout, dropout
masks) the arm is trained from seeds 0..n-1 of that stream with the other streams held
at the reference seed (`RunConfig.streams`), plus n runs that vary every stream (the
arm as a study trains it). All of them train as one packed cohort (their configs share
a `cohort_key`: only the stream seeds differ per replica). `ablate.stats.anatomy` turns
the study metric of each group into the streams' shares of the seed-to-seed variance.

The runs never enter the verdict: they are not in the store's runs table (whose arms
are the study's), only in `anatomy.json` beside it (`ablate.store.ANATOMY_FILE`: each
run's stream seeds and metrics, and the anatomy), which the report may show.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ablate.design import Study
from ablate.engine import STREAMS, DeviceData, Epoch, RunConfig, StreamSeeds, train_cohort
from ablate.errors import UserError
from ablate.files import jsonable
from ablate.metric import METRICS
from ablate.stats import Anatomy, anatomy, stream
from ablate.store import write_anatomy as store_anatomy
from ablate.study._execute import _crossfit

__all__ = ["AnatomyRun", "AnatomyStudy", "anatomy_arm", "anatomy_configs", "train_anatomy",
           "write_anatomy"]

REFERENCE_SEED = 0  # the seed of every stream that is held fixed


@dataclass(frozen=True)
class AnatomyRun:
    """One extra run: which stream it varies ("all": every stream) and its metrics."""

    stream: str  # init | order | mask | all
    seed: int  # the varied stream's seed
    streams: StreamSeeds  # the seed of each stream
    status: str  # done | diverged
    metrics: dict[str, float]


@dataclass(frozen=True)
class AnatomyStudy:
    """What `--anatomy` trained and found."""

    arm: str
    seeds: int  # runs per stream
    reference: int
    runs: tuple[AnatomyRun, ...]
    seconds: float  # wall time of the cohort
    device: str
    config: RunConfig  # the arm's config as trained (before the stream seeds)
    train_images: int  # images trained on (a --subset shows here)
    anatomy: Anatomy | None  # None when a stream had fewer than 2 finished runs

    def to_dict(self) -> dict[str, Any]:
        return {"arm": self.arm, "seeds": self.seeds, "reference": self.reference,
                "runs": [jsonable({"stream": r.stream, "seed": r.seed,
                                   "streams": dataclasses.asdict(r.streams), "status": r.status,
                                   "metrics": r.metrics}) for r in self.runs],
                "seconds": self.seconds, "device": self.device,
                "epochs": self.config.epochs, "train_images": self.train_images,
                "config": self.config.to_dict(),
                "anatomy": None if self.anatomy is None else self.anatomy.to_dict()}


def anatomy_arm(study: Study, name: str | None) -> str:
    """The arm to dissect: `name`, or the first arm that uses dropout, or the baseline."""
    names = [a.name for a in study.arms]
    if name is not None:
        if name not in names:
            raise UserError(f"--arm {name!r} is not an arm of {study.name}; arms: "
                            f"{', '.join(names)}",
                            api=f"anatomy_arm={name!r} is not an arm of {study.name}; "
                                f"arms: {', '.join(names)}")
        return name
    for a in study.arms:
        if a.config is not None and any(layer.dropout > 0 for layer in a.config.layers):
            return a.name
    return study.baseline.name


def anatomy_configs(config: RunConfig, seeds: int, reference: int = REFERENCE_SEED
                    ) -> list[tuple[str, int, RunConfig]]:
    """(stream, seed, config) of every extra run: per stream, seeds 0..n-1 of it with
    the others at `reference`; then "all", every stream from the seed. The mask stream
    only when the arm uses dropout (without it no mask is drawn)."""
    varied = [s for s in STREAMS if s != "mask"
              or any(layer.dropout > 0 for layer in config.layers)]
    out = []
    for k in (*varied, "all"):
        for s in range(seeds):
            fixed = {name: (s if k in (name, "all") else reference) for name in STREAMS}
            out.append((k, s, replace(config, streams=StreamSeeds(**fixed))))
    return out


def train_anatomy(study: Study, arm: str, seeds: int, data: DeviceData, *,
                  on_epoch: Callable[[Epoch], None] | None = None,
                  reference: int = REFERENCE_SEED) -> AnatomyStudy:
    """Train the anatomy runs of `arm` (n = `seeds` per stream) as one cohort."""
    if seeds < 2:
        raise UserError(f"--anatomy-seeds must be at least 2 (a variance needs two runs), "
                        f"got {seeds}", api=f"anatomy_seeds must be at least 2, got {seeds}")
    config = next(a for a in study.arms if a.name == arm).run_config
    plan = anatomy_configs(config, seeds, reference)
    metric = study.metric
    select_on = METRICS[f"val_{metric.quantity}"]
    start = time.perf_counter()
    result = train_cohort([c for _, _, c in plan], [s for _, s, _ in plan], data,
                          select_on=select_on, on_epoch=on_epoch)
    seconds = time.perf_counter() - start
    fits = _crossfit(result)
    runs = tuple(
        AnatomyRun(stream=k, seed=s, streams=c.streams or StreamSeeds(s, s, s),
                   status=rep.status,
                   metrics={**rep.metrics, **{n: float(v[i]) for n, v in fits.items()}})
        for i, ((k, s, c), rep) in enumerate(zip(plan, result.replicas, strict=True)))
    return AnatomyStudy(arm=arm, seeds=seeds, reference=reference, runs=runs,
                        seconds=seconds, device=str(result.provenance["device"]),
                        config=config, train_images=len(data.y_train),
                        anatomy=_anatomy(study, arm, runs))


def _anatomy(study: Study, arm: str, runs: Sequence[AnatomyRun]) -> Anatomy | None:
    name = study.metric.name
    groups: dict[str, list[float]] = {}
    for r in runs:
        v = r.metrics.get(name)
        if r.status == "done" and v is not None and np.isfinite(v):
            groups.setdefault(r.stream, []).append(v)
    every = groups.pop("all", [])
    if len(every) < 2 or not groups or any(len(v) < 2 for v in groups.values()):
        return None
    accuracy = study.metric.quantity == "accuracy" and study.validation > 0
    return anatomy(groups, arm=arm, metric=name, rope=study.rope,
                   rng=stream(study.name, arm, "anatomy"), all_streams=every,
                   resolution=1.0 / study.validation if accuracy else None,
                   images=study.validation if accuracy else None, estimand=study.estimand)


def write_anatomy(run_dir: Path, result: AnatomyStudy) -> Path:
    """Write `anatomy.json` beside the store (`ablate.store.write_anatomy`)."""
    return store_anatomy(run_dir, result.to_dict())
