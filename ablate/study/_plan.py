"""Plan a study: every (arm, seed) still to run, grouped into cohorts.

A cohort is (arm, seeds still to run). Queuing happens here too: a changed config, and
a run left `running` or `failed` by an earlier driver, go back to pending.
"""

import math
from dataclasses import dataclass

import torch

from ablate.data import EXPECTED_SHA256
from ablate.engine import matmul_flops, parameter_count
from ablate.metric import Metric
from ablate.store import Store
from ablate.study._design import Arm, Study

MAX_COHORT = 16  # replicas per cohort; bounds memory at 16 copies of the model


@dataclass(frozen=True)
class CohortTask:
    arm: Arm
    seeds: tuple[int, ...]
    select_on: Metric  # the validation metric that picks each run's kept epoch

    @property
    def runs(self) -> tuple[tuple[str, int], ...]:
        """(arm, seed) of each replica, in replica order."""
        return tuple((self.arm.name, s) for s in self.seeds)

    @property
    def label(self) -> str:
        """For progress lines: 'dropout=off, seeds 0-9'."""
        return f"{self.arm.name}, {_seed_range(self.seeds)}"


@dataclass(frozen=True)
class Plan:
    cohorts: tuple[CohortTask, ...]
    skipped: int  # runs already finished with the same config
    train_images: int

    def steps(self, task: CohortTask) -> int:
        return task.arm.config.epochs * math.ceil(self.train_images / task.arm.config.batch_size)

    @property
    def total_steps(self) -> int:
        return sum(self.steps(t) for t in self.cohorts)

    @property
    def runs(self) -> int:
        return sum(len(t.seeds) for t in self.cohorts)


def _seed_range(seeds: tuple[int, ...]) -> str:
    if len(seeds) > 2 and list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    return ("seed " if len(seeds) == 1 else "seeds ") + ",".join(map(str, seeds))


def data_settings(study: Study, subset: int | None) -> dict[str, object]:
    """What, besides the run config, decides a run's result (part of its config hash)."""
    return {"validation": study.validation, "subset": subset,
            "data_sha256": EXPECTED_SHA256}


def train_images(study: Study, subset: int | None) -> int:
    n = 60_000 - study.validation
    return min(n, subset) if subset is not None else n


def select_metric(study: Study) -> Metric:
    """Runs keep the epoch best on the validation version of the study's metric."""
    return study.metric.selection


def plan_study(study: Study, store: Store, subset: int | None, *, dry_run: bool = False
               ) -> Plan:
    """Every (arm, seed) not yet finished with its current config, grouped by arm into
    cohorts. Unless `dry_run`, they are queued in the store: a changed config, and a run
    left `running` or `failed` by an earlier driver, go back to pending."""
    settings = data_settings(study, subset)
    cohorts, skipped = [], 0
    for arm in study.arms:
        config_hash = arm.config.digest(**settings)
        todo = [s for s in study.seeds if not store.is_finished(arm.name, s, config_hash)]
        skipped += len(study.seeds) - len(todo)
        if not dry_run:
            for s in todo:
                store.queue(arm.name, s, config_hash, {**arm.config.to_dict(), **settings})
        for i in range(0, len(todo), MAX_COHORT):
            cohorts.append(CohortTask(arm, tuple(todo[i:i + MAX_COHORT]), select_metric(study)))
    return Plan(tuple(cohorts), skipped, train_images(study, subset))


def estimate_seconds(plan: Plan, device: torch.device) -> float:
    """A rough estimate: 6 FLOPs per parameter per training image (forward and backward)
    at 40% of a quick measurement of this device's fp32 matmul rate."""
    rate = 0.4 * matmul_flops(device)
    flops = sum(6 * parameter_count(t.arm.config) * len(t.seeds) * plan.train_images
                * t.arm.config.epochs for t in plan.cohorts)
    return flops / rate
