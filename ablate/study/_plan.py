"""Plan a study: every (arm, seed) still to run, grouped into cohorts.

A cohort is (arm, seeds still to run). Queuing happens here too: a changed config, and
a run left `running` or `failed` by an earlier driver, go back to pending.
"""

import math
from dataclasses import dataclass

import torch

from ablate.data import EXPECTED_SHA256
from ablate.engine import (
    MATMUL_PRECISION,
    RunConfig,
    free_memory,
    matmul_flops,
    parameter_count,
    replica_bytes,
)
from ablate.metric import Metric
from ablate.store import Store
from ablate.study._spec import Arm, Study

# Replicas per cohort at most, by device type. On the CPU the matmuls already run near
# peak at 10 replicas, so larger cohorts save little and lose resumability (a killed run
# loses its whole cohort); 32 fits the dropout study's two arms x 10 seeds. A GPU needs
# many replicas to fill it; its limit is also bounded by free memory (`cohort_limit`).
MAX_COHORT = {"cpu": 32, "cuda": 256}
# The share of a GPU's free memory that one cohort may plan to use.
CUDA_MEMORY_SHARE = 0.5


@dataclass(frozen=True)
class CohortTask:
    arm: Arm
    seeds: tuple[int, ...]
    select_on: Metric  # the validation metric that picks each run's kept epoch


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


def data_settings(study: Study, subset: int | None, device: torch.device) -> dict[str, object]:
    """What, besides the run config, decides a run's result (part of its config hash): the
    data, the kind of device (a GPU's rounding differs from a CPU's, so a study resumed on
    another kind of device trains its runs again rather than mix the two) and the float32
    matmul precision training pins."""
    return {"validation": study.validation, "subset": subset,
            "data_sha256": EXPECTED_SHA256, "device_type": device.type,
            "matmul_precision": MATMUL_PRECISION}


def cohort_limit(config: RunConfig, device_type: str, free: int | None) -> int:
    """The most replicas of `config` one cohort trains on a device of `device_type` with
    `free` bytes of memory (None: not bounded, the CPU): `MAX_COHORT` of its type, and what
    fits in `CUDA_MEMORY_SHARE` of the free memory (at least 1)."""
    limit = MAX_COHORT.get(device_type, MAX_COHORT["cpu"])
    if free is not None:
        limit = min(limit, max(1, int(CUDA_MEMORY_SHARE * free) // replica_bytes(config)))
    return limit


def chunks(items: list[int], limit: int) -> list[list[int]]:
    """`items` cut into the fewest pieces of at most `limit`, as equal in size as can be."""
    if not items:
        return []
    pieces = math.ceil(len(items) / limit)
    size = math.ceil(len(items) / pieces)
    return [items[i:i + size] for i in range(0, len(items), size)]


def train_images(study: Study, subset: int | None) -> int:
    n = 60_000 - study.validation
    return min(n, subset) if subset is not None else n


def select_metric(study: Study) -> Metric:
    """Runs keep the epoch best on the validation version of the study's metric."""
    return study.metric.selection


def plan_study(study: Study, store: Store, subset: int | None, device: torch.device, *,
               dry_run: bool = False) -> Plan:
    """Every (arm, seed) not yet finished with its current config on this kind of device,
    grouped by arm into cohorts of at most `cohort_limit`. Unless `dry_run`, they are
    queued in the store: a changed config, and a run left `running` or `failed` by an
    earlier driver, go back to pending."""
    settings = data_settings(study, subset, device)
    free = free_memory(device)
    cohorts, skipped = [], 0
    for arm in study.arms:
        config_hash = arm.config.digest(**settings)
        todo = [s for s in study.seeds if not store.is_finished(arm.name, s, config_hash)]
        skipped += len(study.seeds) - len(todo)
        if not dry_run:
            for s in todo:
                store.queue(arm.name, s, config_hash, {**arm.config.to_dict(), **settings})
        for seeds in chunks(todo, cohort_limit(arm.config, device.type, free)):
            cohorts.append(CohortTask(arm, tuple(seeds), select_metric(study)))
    return Plan(tuple(cohorts), skipped, train_images(study, subset))


def estimate_seconds(plan: Plan, device: torch.device) -> float:
    """A rough estimate: 6 FLOPs per parameter per training image (forward and backward)
    at 40% of a quick measurement of this device's fp32 matmul rate."""
    rate = 0.4 * matmul_flops(device)
    flops = sum(6 * parameter_count(t.arm.config) * len(t.seeds) * plan.train_images
                * t.arm.config.epochs for t in plan.cohorts)
    return flops / rate
