"""Execute a plan: hand cohorts to an executor and record each result as it lands.

The boundary to an executor is narrow: `CohortTask`s in (picklable: a resolved config
and seeds), `(task, CohortResult | error)` out, in any order, plus progress events and
each cohort's saved training state as training hands it on. So an executor on other
machines (Ray, `_ray.py`) needs nothing else, and the driver stays the only writer of
the store and of the saved states (`_resume`), which it removes once a cohort's runs are
stored. The in-process executor is the default.
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from ablate.data import Mnist
from ablate.design import Study
from ablate.engine import (
    CohortResult,
    DeviceData,
    Epoch,
    SavedState,
    StateMismatch,
    crossfit,
    prepare_data,
    train_cohort,
)
from ablate.errors import Interrupted, UserError
from ablate.metric import METRICS
from ablate.store import Store
from ablate.study._plan import CohortTask, Plan, Replica, train_images
from ablate.study._resume import SAVE_EVERY, CohortStates, kept_text

__all__ = [
    "CohortEvents", "CohortOutcome", "Executed", "Executor", "InProcessExecutor",
    "TrainingEvents", "check_subset", "execute", "load_data",
]


class CohortEvents(Protocol):
    """What an executor tells the driver while it works (any thread, any order)."""

    def started(self, task: CohortTask) -> None:
        """The task began training (again, after a retry: its progress restarts)."""

    def advanced(self, task: CohortTask, steps: int) -> None:
        """`steps` more optimizer steps of the task are done."""

    def epoch(self, task: CohortTask, record: Epoch) -> None:
        """The task finished an epoch; `record` has each replica's metrics."""


class TrainingEvents(CohortEvents, Protocol):
    """What an executor tells the driver: progress, and each saved training state."""

    def saved(self, task: CohortTask, saved: SavedState) -> None:
        """The task's training state as of `saved.epoch` epochs (`saved.steps` more steps)."""


CohortOutcome = CohortResult | Exception  # an exception: the cohort failed, with this error


class Executor(Protocol):
    def run(self, tasks: Sequence[CohortTask], progress: TrainingEvents
            ) -> Iterator[tuple[CohortTask, CohortOutcome]]:
        """Train every task (from `task.resume` where set); yield each with its result (or
        its error) as it lands."""
        ...


class InProcessExecutor:
    """Trains cohorts one after another in this process, with the data loaded once."""

    def __init__(self, data: DeviceData) -> None:
        self.data = data

    def run(self, tasks: Sequence[CohortTask], progress: TrainingEvents
            ) -> Iterator[tuple[CohortTask, CohortOutcome]]:
        for task in tasks:
            progress.started(task)
            try:
                result: CohortOutcome = train_cohort(
                    [r.config for r in task.replicas], [r.seed for r in task.replicas],
                    self.data, select_on=task.select_on,
                    on_step=lambda k, t=task: progress.advanced(t, k),  # type: ignore[misc]
                    on_epoch=lambda e, t=task: progress.epoch(t, e),  # type: ignore[misc]
                    resume=None if task.resume is None else task.resume.data,
                    on_state=lambda s, t=task: progress.saved(t, s),  # type: ignore[misc]
                    save_every=SAVE_EVERY)
            except Exception as exc:  # a runtime failure: the driver records it
                result = exc
            yield task, result


@dataclass(frozen=True)
class Executed:
    trained: int  # runs recorded done or diverged
    failed: int  # runs whose cohort failed


def execute(study: Study, store: Store, plan: Plan, executor: Executor,
            checksums: dict[str, str], progress: CohortEvents,
            on_cohort: Callable[[CohortTask, CohortOutcome], None] | None = None) -> Executed:
    """Run every cohort of `plan` (each from its saved state where it has one), recording
    each result the moment it lands and then removing its saved state. A failed cohort is
    recorded with its error and the rest go on. Ctrl-C (or any other escape) puts every
    run not yet recorded back to pending, then re-raises; Ctrl-C as `Interrupted`, saying
    what was kept."""
    states = CohortStates(store.dir)
    driver = _Recording(store, progress, states)
    pending = {id(t): t for t in plan.cohorts}
    recorded: list[Replica] = []  # of the cohort being recorded
    trained = failed = 0
    try:
        for task, outcome in executor.run(plan.cohorts, driver):
            recorded.clear()
            if isinstance(outcome, Exception):
                error = f"{type(outcome).__name__}: {outcome}"
                if isinstance(outcome, StateMismatch):  # never again: it trains from scratch
                    states.remove(task)
                    error += " (the saved state is removed; rerun to train it from the start)"
                _mark(store, task.replicas, "failed", error=error)
                failed += len(task.replicas)
            else:
                _record(study, store, task, outcome, checksums, recorded)
                driver.stored.add(id(task))  # a state reported late is not written
                states.remove(task)
            del pending[id(task)]
            if not isinstance(outcome, Exception):
                trained += len(task.replicas)
            if on_cohort is not None:
                on_cohort(task, outcome)
    except BaseException as exc:
        done = {(r.arm, r.seed) for r in recorded}
        # runs recorded: whole cohorts, and those of one cut short in its recording
        stored = trained + (len(recorded) if recorded and id(task) in pending else 0)
        for waiting in pending.values():
            _mark(store, [r for r in waiting.replicas if (r.arm, r.seed) not in done],
                  "pending")
        if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, Interrupted):
            index = {id(t): i for i, t in enumerate(plan.cohorts, 1)}
            raise Interrupted(kept_text(plan, stored, {index[k] for k in pending},
                                        {index[id(t)] for t in driver.began}, states)
                              ) from None
        raise
    return Executed(trained, failed)


class _Recording:
    """The events, for the driver: marks a task's runs running in the store and writes
    its saved states (noting what each holds), then passes progress on."""

    def __init__(self, store: Store, inner: CohortEvents, states: CohortStates) -> None:
        self.store, self.inner, self.states = store, inner, states
        self.began: list[CohortTask] = []  # the tasks that began training
        self.stored: set[int] = set()  # ids of the tasks whose runs are recorded

    def started(self, task: CohortTask) -> None:
        _mark(self.store, task.replicas, "running")
        self.began.append(task)
        self.inner.started(task)

    def saved(self, task: CohortTask, saved: SavedState) -> None:
        if id(task) not in self.stored:
            self.states.write(task, saved)

    def advanced(self, task: CohortTask, steps: int) -> None:
        self.inner.advanced(task, steps)

    def epoch(self, task: CohortTask, record: Epoch) -> None:
        self.inner.epoch(task, record)


def _mark(store: Store, replicas: Sequence[Replica], status: str, **fields: str) -> None:
    """Set the status of these runs, one store call per arm."""
    by_arm: dict[str, list[int]] = {}
    for r in replicas:
        by_arm.setdefault(r.arm, []).append(r.seed)
    for arm, seeds in by_arm.items():
        store.mark(arm, seeds, status, **fields)


def _record(study: Study, store: Store, task: CohortTask, result: CohortResult,
            checksums: dict[str, str], recorded: list[Replica]) -> None:
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
                "data_sha256": checksums, "versions": result.provenance,
            }
            checkpoint = store.write_checkpoint(replica.arm, rep.seed, rep.state, sidecar)
            if rep.predictions is not None:
                store.write_predictions(replica.arm, rep.seed, rep.predictions,
                                        replica.config_hash)
        store.finish(replica.arm, rep.seed, status=rep.status, seconds=share, epochs=epochs,
                     best_epoch=rep.best_epoch, metrics=metrics, checkpoint=checkpoint,
                     device=str(result.provenance["device"]))
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
                        f"got {subset}", api=f"subset must be between 1 and "
                        f"{train_images(study, None)}, got {subset}")


def load_data(study: Study, subset: int | None, device: torch.device, mnist: Mnist
              ) -> DeviceData:
    """MNIST split as the study says and moved to `device`."""
    check_subset(study, subset)
    return prepare_data(mnist, study.validation, subset, device)
