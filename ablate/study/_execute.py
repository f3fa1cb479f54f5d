"""Execute a plan: hand each cohort to an executor and record its result.

The boundary to an executor is narrow: a `CohortTask` in, a `CohortResult` out, so an
executor on another machine (Ray, say) needs nothing else. The in-process executor is
the default. The driver is the store's only writer.
"""

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from ablate.data import Mnist
from ablate.engine import CohortResult, DeviceData, prepare_data, provenance, train_cohort
from ablate.errors import UserError
from ablate.metric import METRICS
from ablate.stats import crossfit
from ablate.store import Store
from ablate.study._design import Study
from ablate.study._plan import CohortTask, Plan, train_images


class Executor(Protocol):
    def run(self, task: CohortTask, on_step: Callable[[int], None]) -> CohortResult: ...


class InProcessExecutor:
    """Trains cohorts in this process on one device, with the data loaded once."""

    def __init__(self, data: DeviceData) -> None:
        self.data = data

    def run(self, task: CohortTask, on_step: Callable[[int], None]) -> CohortResult:
        return train_cohort(task.arm.config, list(task.seeds), self.data,
                            select_on=task.select_on, on_step=on_step)


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
    crossfits = _crossfit(result)
    for s, rep in enumerate(result.replicas):
        epochs = [{"epoch": e.epoch, "train_loss": float(e.train_loss[s]),
                   "train_accuracy": float(e.train_accuracy[s]),
                   "val_loss": float(e.val_loss[s]), "val_accuracy": float(e.val_accuracy[s]),
                   "val_loss_a": float(e.val_loss_halves[s, 0]),
                   "val_accuracy_a": float(e.val_accuracy_halves[s, 0]),
                   "val_loss_b": float(e.val_loss_halves[s, 1]),
                   "val_accuracy_b": float(e.val_accuracy_halves[s, 1]),
                   "seconds": e.seconds / len(task.seeds),
                   "grad_norms": e.grad_norms[s].tolist(),
                   "weight_norms": e.weight_norms[s].tolist()} for e in result.history]
        metrics = {**rep.metrics, **{name: float(v[s]) for name, v in crossfits.items()}}
        checkpoint = None
        if rep.status == "done":
            sidecar = {
                "study": study.name, "question": study.question, "arm": task.arm.name,
                "seed": rep.seed, "config": task.arm.config.to_dict(),
                "best_epoch": rep.best_epoch, "metrics": metrics,
                "data_sha256": checksums, "versions": info,
            }
            checkpoint = store.write_checkpoint(task.arm.name, rep.seed, rep.state, sidecar)
        store.finish(task.arm.name, rep.seed, status=rep.status, seconds=share, epochs=epochs,
                     best_epoch=rep.best_epoch, metrics=metrics, checkpoint=checkpoint)


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
