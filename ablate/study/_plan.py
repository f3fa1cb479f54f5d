"""Plan a study: every (arm, seed) still to run, packed into cohorts.

A cohort is a tuple of replicas, each an (arm, seed, config) still to run. Replicas whose
configs share an engine `cohort_key` (same shapes, batch-norm settings, optimizer kind,
epochs and batch size) train in one cohort even when their arms differ (dropout rate,
learning rate, initializer, activation, ...): the dropout study is one cohort of 20.
`plan_study` only reads the store; `queue_plan` writes the plan into it (a changed
config, and a run left `running` or `failed` by an earlier driver, go back to pending).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import torch

from ablate.data import EXPECTED_SHA256, TRAIN_IMAGES
from ablate.design import Study
from ablate.engine import (
    MATMUL_PRECISION,
    RunConfig,
    cohort_key,
    free_memory,
    matmul_flops,
    parameter_count,
    replica_bytes,
    visible,
)
from ablate.metric import Metric
from ablate.store import Store

__all__ = [
    "CUDA_MEMORY_SHARE", "MAX_COHORT", "CohortTask", "Plan", "Replica", "Resume", "chunks",
    "cohort_limit", "data_settings", "estimate_seconds", "plan_study", "queue_plan",
    "seed_range", "select_metric", "train_images",
]

T = TypeVar("T")

# Replicas per cohort at most, by device type. On the CPU the matmuls run near peak from
# about 10 replicas on, so larger cohorts save only per-cohort overhead, and a killed
# driver loses its cohort in flight; 64 packs one factor's levels x 10 seeds of every
# shipped study (the activation study: 60 replicas, ~1.7 GB for its model). A GPU needs
# many replicas to fill it; its limit is also bounded by free memory (`cohort_limit`).
MAX_COHORT = {"cpu": 64, "cuda": 256}
# The share of a GPU's free memory that the cohorts training on it at once may plan to use
# (on Ray, `--gpus-per-cohort 0.25` puts four cohorts on one GPU: each plans for an eighth).
CUDA_MEMORY_SHARE = 0.5
# The GPU memory planned for when this process sees no GPU (a Ray driver on a CPU machine
# planning for its workers' GPUs): 16 GiB, the smallest of the common datacenter cards.
ASSUMED_GPU_BYTES = 16 * 2**30


@dataclass(frozen=True)
class Replica:
    """One run of a cohort: arm `arm`'s config trained from `seed`."""

    arm: str
    seed: int
    config: RunConfig
    config_hash: str = ""  # the config with the data settings (`data_settings`), hashed


@dataclass(frozen=True)
class Resume:
    """A cohort's saved training state (`ablate.study._resume`), which it continues from."""

    epoch: int  # epochs complete
    steps: int  # steps done of the epoch after them
    data: bytes = field(repr=False)  # the state, as `ablate.engine.encode_state` wrote it


@dataclass(frozen=True)
class CohortTask:
    """What an executor trains as one batched model; result i is replicas[i]'s."""

    replicas: tuple[Replica, ...]  # configs sharing one `cohort_key`
    select_on: Metric  # the validation metric that picks each run's kept epoch
    # where an interrupted earlier training of this cohort stopped (not part of its identity)
    resume: Resume | None = field(default=None, compare=False, repr=False)

    @property
    def epochs(self) -> int:
        """Epochs every replica trains (they share a cohort key)."""
        return self.replicas[0].config.epochs

    @property
    def arms(self) -> dict[str, list[int]]:
        """arm -> its seeds in this cohort, arms in order of first appearance."""
        out: dict[str, list[int]] = {}
        for r in self.replicas:
            out.setdefault(r.arm, []).append(r.seed)
        return out

    @property
    def label(self) -> str:
        """For progress lines: 'dropout=on, seeds 0-9; dropout=off, seeds 0-9'."""
        return "; ".join(f"{arm}, {seed_range(seeds)}" for arm, seeds in self.arms.items())


@dataclass(frozen=True)
class Plan:
    cohorts: tuple[CohortTask, ...]
    skipped: int  # runs already finished with the same config
    train_images: int
    settings: dict[str, object]  # what besides a run's config its hash covers

    def steps(self, task: CohortTask) -> int:
        config = task.replicas[0].config  # one cohort: one step count
        return config.epochs * math.ceil(self.train_images / config.batch_size)

    @property
    def total_steps(self) -> int:
        return sum(self.steps(t) for t in self.cohorts)

    @property
    def runs(self) -> int:
        return sum(len(t.replicas) for t in self.cohorts)


def seed_range(seeds: Sequence[int]) -> str:
    """'seeds 0-9', 'seeds 0,2', 'seed 3'."""
    if len(seeds) > 2 and list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    return ("seed " if len(seeds) == 1 else "seeds ") + ",".join(map(str, seeds))


def data_settings(study: Study, subset: int | None, device: torch.device) -> dict[str, object]:
    """What, besides the run config, decides a run's result (part of its config hash): the
    data, the kind of device (a GPU's rounding differs from a CPU's, so a study resumed on
    another kind of device trains its runs again rather than mix the two) and the float32
    matmul precision training pins."""
    return {"validation": study.validation, "subset": subset,
            "data_sha256": EXPECTED_SHA256, "device_type": device.type,
            "matmul_precision": MATMUL_PRECISION}


def cohort_limit(config: RunConfig, device_type: str, free: int | None,
                 cohorts_per_gpu: int = 1) -> int:
    """The most replicas of `config` one cohort trains on a device of `device_type` with
    `free` bytes of memory (None: not bounded, the CPU): `MAX_COHORT` of its type, and what
    fits in its share of `CUDA_MEMORY_SHARE` of the free memory, shared by the
    `cohorts_per_gpu` cohorts that train on one GPU at once (at least 1)."""
    limit = MAX_COHORT.get(device_type, MAX_COHORT["cpu"])
    if free is not None:
        share = int(CUDA_MEMORY_SHARE * free) // max(1, cohorts_per_gpu)
        limit = min(limit, max(1, share // replica_bytes(config)))
    return limit


def cohorts_per_gpu(gpus_per_cohort: float) -> int:
    """How many cohorts Ray runs on one GPU at once when each declares `gpus_per_cohort`
    of one (0.25: four); 1 for whole GPUs and for the in-process executor (0)."""
    if not 0 < gpus_per_cohort < 1:
        return 1
    return max(1, math.floor(1 / gpus_per_cohort + 1e-9))


def planning_memory(device: torch.device) -> int | None:
    """The memory a plan for `device` may use: the free memory of a GPU visible here,
    `ASSUMED_GPU_BYTES` for one that is not (Ray workers' GPUs), None on the CPU."""
    if device.type != "cuda":
        return None
    return free_memory(device) if visible(device) else ASSUMED_GPU_BYTES


def chunks(items: Sequence[T], limit: int) -> list[list[T]]:
    """`items` cut into the fewest pieces of at most `limit`, as equal in size as can be."""
    if not items:
        return []
    pieces = math.ceil(len(items) / limit)
    size = math.ceil(len(items) / pieces)
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def train_images(study: Study, subset: int | None) -> int:
    n = TRAIN_IMAGES - study.validation
    return min(n, subset) if subset is not None else n


def select_metric(study: Study) -> Metric:
    """Runs keep the epoch best on the validation version of the study's metric."""
    return study.metric.selection


def plan_study(study: Study, store: Store, subset: int | None, device: torch.device, *,
               per_gpu: int = 1) -> Plan:
    """Every (arm, seed) not yet finished with its current config on this kind of device,
    packed into cohorts: replicas whose configs share a `cohort_key` together (arms in
    study order, seeds in order), cut evenly into cohorts of at most `cohort_limit`
    (`per_gpu`: cohorts sharing one GPU at once, `cohorts_per_gpu`). Reads the store
    only; `queue_plan` records the plan. Needs no GPU here: a Ray driver plans for its
    workers' GPUs (`planning_memory`)."""
    settings = data_settings(study, subset, device)
    free = planning_memory(device)
    groups: dict[tuple[object, ...], list[Replica]] = {}
    skipped = 0
    for arm in study.arms:
        config_hash = arm.run_config.digest(**settings)
        todo = [s for s in study.seeds if not store.is_finished(arm.name, s, config_hash)]
        skipped += len(study.seeds) - len(todo)
        if todo:
            groups.setdefault(cohort_key(arm.run_config), []).extend(
                Replica(arm.name, s, arm.run_config, config_hash) for s in todo)
    cohorts = tuple(CohortTask(tuple(part), select_metric(study))
                    for replicas in groups.values()
                    for part in chunks(replicas, cohort_limit(replicas[0].config, device.type,
                                                              free, per_gpu)))
    return Plan(cohorts, skipped, train_images(study, subset), settings)


def queue_plan(store: Store, plan: Plan) -> None:
    """Queue every run of `plan` as pending in the store under its config hash."""
    for task in plan.cohorts:
        for r in task.replicas:
            store.queue(r.arm, r.seed, r.config_hash, {**r.config.to_dict(), **plan.settings})


def estimate_seconds(plan: Plan, device: torch.device) -> float | None:
    """A rough estimate: 6 FLOPs per parameter per training image (forward and backward)
    at 40% of a quick measurement of this device's fp32 matmul rate; None when the device
    is not visible here (a Ray driver without the workers' GPU cannot measure it)."""
    if not visible(device):
        return None
    rate = 0.4 * matmul_flops(device)
    flops = sum(6 * parameter_count(r.config) * plan.train_images * r.config.epochs
                for t in plan.cohorts for r in t.replicas)
    return flops / rate
