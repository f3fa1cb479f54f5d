"""Plan a study into cohorts and execute them; the driver is the store's only writer.

A cohort is (arm, seeds still to run). The boundary to an executor is narrow: a
`CohortTask` in, a `CohortResult` out, so an executor on another machine (Ray, say)
needs nothing else. The in-process executor is the default.
"""

import math
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ablate import data as mnist_data
from ablate.errors import UserError
from ablate.model import parameter_count
from ablate.spec import Arm, Study
from ablate.store import Store
from ablate.train import CohortResult, DeviceData, prepare_data, train_cohort

MAX_COHORT = 16  # replicas per cohort; bounds memory at 16 copies of the model


@dataclass(frozen=True)
class CohortTask:
    arm: Arm
    seeds: tuple[int, ...]
    select_on: str  # validation metric that picks each run's kept epoch


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


class Executor(Protocol):
    def run(self, task: CohortTask, on_step: Callable[[int], None]) -> CohortResult: ...


class InProcessExecutor:
    """Trains cohorts in this process on one device, with the data loaded once."""

    def __init__(self, data: DeviceData) -> None:
        self.data = data

    def run(self, task: CohortTask, on_step: Callable[[int], None]) -> CohortResult:
        return train_cohort(task.arm.config, list(task.seeds), self.data,
                            select_on=task.select_on, on_step=on_step)


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present, else the CPU; anything else must exist here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N"
                        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA GPU is visible here; use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) here")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"--device {name}: only cpu and cuda are supported")
    return device


def data_settings(study: Study, subset: int | None) -> dict[str, object]:
    """What, besides the run config, decides a run's result (part of its config hash)."""
    return {"validation": study.validation, "subset": subset,
            "data_sha256": mnist_data.EXPECTED_SHA256}


def train_images(study: Study, subset: int | None) -> int:
    n = 60_000 - study.validation
    return min(n, subset) if subset is not None else n


def select_metric(study: Study) -> str:
    """Runs keep the epoch best on the validation version of the study's metric."""
    return "val_loss" if study.metric.endswith("loss") else "val_accuracy"


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


def matmul_flops(device: torch.device, n: int = 1024, repeats: int = 5) -> float:
    """Median fp32 matmul FLOP/s of an n x n product on `device`."""
    a = torch.randn(n, n, device=device)
    times = []
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        a @ a
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / sorted(times[1:])[repeats // 2]


def provenance(device: torch.device) -> dict[str, object]:
    return {
        "python": platform.python_version(), "torch": torch.__version__,
        "numpy": np.__version__, "ablate": version("ablate"),
        "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else platform.processor() or platform.machine()),
        "threads": torch.get_num_threads(),
    }


def reset_run_dir(run_dir: Path) -> None:
    """`--fresh`: forget every earlier run of this study."""
    if run_dir.exists():
        (run_dir / "runs.sqlite").unlink(missing_ok=True)
        for suffix in ("-wal", "-shm"):
            (run_dir / f"runs.sqlite{suffix}").unlink(missing_ok=True)
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)


def execute(study: Study, store: Store, plan: Plan, executor: Executor, device: torch.device,
            checksums: dict[str, str], on_step: Callable[[int], None],
            on_cohort: Callable[[CohortTask, CohortResult], None] | None = None) -> int:
    """Run every cohort of `plan`, recording each result as it lands. Returns the number
    of failed runs. Ctrl-C puts the cohort in flight back to pending and re-raises."""
    failed = 0
    info = provenance(device)
    for task in plan.cohorts:
        seeds = list(task.seeds)
        store.mark(task.arm.name, seeds, "running", device=str(device))
        try:
            result = executor.run(task, on_step)
        except KeyboardInterrupt:
            store.mark(task.arm.name, seeds, "pending")
            raise
        except Exception as exc:  # a runtime failure: record it, go on with the rest
            store.mark(task.arm.name, seeds, "failed", error=f"{type(exc).__name__}: {exc}")
            failed += len(seeds)
            continue
        _record(study, store, task, result, info, checksums)
        if on_cohort is not None:
            on_cohort(task, result)
    return failed


def _record(study: Study, store: Store, task: CohortTask, result: CohortResult,
            info: dict[str, object], checksums: dict[str, str]) -> None:
    share = result.seconds / len(task.seeds)
    for s, rep in enumerate(result.replicas):
        epochs = [{"epoch": e.epoch, "train_loss": float(e.train_loss[s]),
                   "train_accuracy": float(e.train_accuracy[s]),
                   "val_loss": float(e.val_loss[s]), "val_accuracy": float(e.val_accuracy[s]),
                   "seconds": e.seconds / len(task.seeds),
                   "grad_norms": e.grad_norms[s].tolist(),
                   "weight_norms": e.weight_norms[s].tolist()} for e in result.history]
        checkpoint = None
        if rep.status == "done":
            sidecar = {
                "study": study.name, "question": study.question, "arm": task.arm.name,
                "seed": rep.seed, "config": task.arm.config.to_dict(),
                "best_epoch": rep.best_epoch, "metrics": rep.metrics,
                "data_sha256": checksums, "versions": info,
            }
            checkpoint = store.write_checkpoint(task.arm.name, rep.seed, rep.state, sidecar)
        store.finish(task.arm.name, rep.seed, status=rep.status, seconds=share, epochs=epochs,
                     best_epoch=rep.best_epoch, metrics=rep.metrics, checkpoint=checkpoint)


def load_data(study: Study, subset: int | None, device: torch.device, *, progress: bool
              ) -> tuple[DeviceData, dict[str, str]]:
    """MNIST from the cache (fetched on first use), split and moved to `device`."""
    if subset is not None and not 0 < subset <= train_images(study, None):
        raise UserError(f"--subset must be between 1 and {train_images(study, None)}, "
                        f"got {subset}")
    mnist = mnist_data.load(progress=progress)
    return prepare_data(mnist, study.validation, subset, device), mnist.checksums()
