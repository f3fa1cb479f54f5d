"""Execute a plan: hand each cohort to an executor and record its result.

The boundary to an executor is narrow: a `CohortTask` in, a `CohortResult` out, so an
executor on another machine (Ray, say) needs nothing else. The in-process executor is
the default. The driver is the store's only writer.
"""

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ablate.data import Mnist
from ablate.engine import CohortResult, DeviceData, prepare_data, provenance, train_cohort
from ablate.errors import UserError
from ablate.metric import METRICS
from ablate.stats import crossfit
from ablate.store import Store
from ablate.study._plan import CohortTask, Plan, Replica, train_images
from ablate.study._spec import Study


class Executor(Protocol):
    def run(self, task: CohortTask, on_step: Callable[[int], None]) -> CohortResult: ...


class InProcessExecutor:
    """Trains cohorts in this process on one device, with the data loaded once."""

    def __init__(self, data: DeviceData) -> None:
        self.data = data

    def run(self, task: CohortTask, on_step: Callable[[int], None]) -> CohortResult:
        return train_cohort([r.config for r in task.replicas], [r.seed for r in task.replicas],
                            self.data, select_on=task.select_on, on_step=on_step)


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
    of failed runs. Ctrl-C puts the cohort's runs not yet recorded back to pending and
    re-raises."""
    failed = 0
    info = provenance(device)
    for task in plan.cohorts:
        _mark(store, task.replicas, "running", device=str(device))
        recorded: list[Replica] = []
        try:
            result = executor.run(task, on_step)
            _record(study, store, task, result, info, checksums, recorded)
        except KeyboardInterrupt:
            _mark(store, task.replicas[len(recorded):], "pending")
            raise
        except Exception as exc:  # a runtime failure: record it, go on with the rest
            rest = task.replicas[len(recorded):]
            _mark(store, rest, "failed", error=f"{type(exc).__name__}: {exc}")
            failed += len(rest)
            continue
        if on_cohort is not None:
            on_cohort(task, result)
    return failed


def _mark(store: Store, replicas: Sequence[Replica], status: str, **fields: str) -> None:
    """Set the status of these runs, one store call per arm."""
    by_arm: dict[str, list[int]] = {}
    for r in replicas:
        by_arm.setdefault(r.arm, []).append(r.seed)
    for arm, seeds in by_arm.items():
        store.mark(arm, seeds, status, **fields)


def _record(study: Study, store: Store, task: CohortTask, result: CohortResult,
            info: dict[str, object], checksums: dict[str, str], recorded: list[Replica]
            ) -> None:
    """Store every replica's result (result.replicas[i] is task.replicas[i]'s), appending
    each to `recorded` once it is stored."""
    S = len(task.replicas)
    share = result.seconds / S
    crossfits = _crossfit(result)
    for s, (replica, rep) in enumerate(zip(task.replicas, result.replicas, strict=True)):
        epochs = [{"epoch": e.epoch, "train_loss": float(e.train_loss[s]),
                   "train_accuracy": float(e.train_accuracy[s]),
                   "val_loss": float(e.val_loss[s]), "val_accuracy": float(e.val_accuracy[s]),
                   "val_loss_a": float(e.val_loss_halves[s, 0]),
                   "val_accuracy_a": float(e.val_accuracy_halves[s, 0]),
                   "val_loss_b": float(e.val_loss_halves[s, 1]),
                   "val_accuracy_b": float(e.val_accuracy_halves[s, 1]),
                   "seconds": e.seconds / S,
                   "grad_norms": e.grad_norms[s].tolist(),
                   "weight_norms": e.weight_norms[s].tolist()} for e in result.history]
        metrics = {**rep.metrics, **{name: float(v[s]) for name, v in crossfits.items()}}
        checkpoint = None
        if rep.status == "done":
            sidecar = {
                "study": study.name, "question": study.question, "arm": replica.arm,
                "seed": rep.seed, "config": replica.config.to_dict(),
                "best_epoch": rep.best_epoch, "metrics": metrics,
                "data_sha256": checksums, "versions": info,
            }
            checkpoint = store.write_checkpoint(replica.arm, rep.seed, rep.state, sidecar)
        store.finish(replica.arm, rep.seed, status=rep.status, seconds=share, epochs=epochs,
                     best_epoch=rep.best_epoch, metrics=metrics, checkpoint=checkpoint)
        recorded.append(replica)


def _crossfit(result: CohortResult) -> dict[str, np.ndarray]:
    """The cross-fitted validation metrics of every replica: name -> (S,), NaN if diverged."""
    n_a, n_b = result.val_half_sizes
    out = {}
    for quantity in ("accuracy", "loss"):
        halves = np.stack([getattr(e, f"val_{quantity}_halves") for e in result.history],
                          axis=-1)  # (S, 2, epochs) of half means
        fit = crossfit(halves[:, 0] * n_a, halves[:, 1] * n_b, n_a, n_b,
                       higher_is_better=METRICS[f"crossfit_val_{quantity}"].higher_is_better)
        dead = np.array([r.status != "done" for r in result.replicas])
        out[f"crossfit_val_{quantity}"] = np.where(dead, np.nan, fit.value)
    return out


def check_subset(study: Study, subset: int | None) -> None:
    """`--subset N` must leave at least one training image and not exceed the split."""
    if subset is not None and not 0 < subset <= train_images(study, None):
        raise UserError(f"--subset must be between 1 and {train_images(study, None)}, "
                        f"got {subset}")


def load_data(study: Study, subset: int | None, device: torch.device, mnist: Mnist
              ) -> tuple[DeviceData, dict[str, str]]:
    """MNIST split as the study says and moved to `device`, with its checksums."""
    check_subset(study, subset)
    return prepare_data(mnist, study.validation, subset, device), mnist.checksums()
