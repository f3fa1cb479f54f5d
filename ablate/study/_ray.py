"""Cohorts as Ray tasks: one study on every machine and GPU of a Ray cluster.

`RayExecutor` submits every cohort of a plan as a Ray task with declared resources
(`cpus_per_cohort`, fractional `gpus_per_cohort`, so several cohorts can share a GPU)
and yields each result the moment it lands, in any order; the driver records it (the
driver stays the store's only writer). Without an address it starts a local Ray
instance sized to this machine; with one (`auto` or HOST:PORT) it joins that cluster.

- Data: MNIST goes into the object store once; each task checks the arrays it received
  against the driver's sha256s before training, so a worker with different data fails
  loudly instead of training on it.
- Faults: a worker process that dies mid-cohort (OOM killer, SIGKILL, a lost node) is
  retried by Ray up to `max_retries` times, from the last training state the cohort
  reported (the progress actor keeps it), and recorded once, when a result lands; a
  cohort that keeps failing comes back as its error (recorded `failed`) and the rest
  of the study goes on. An exception raised by training itself is not retried (it
  would repeat). A killed driver takes its tasks with it; rerunning resumes.
- Progress: tasks report steps and epochs to a small actor that the driver polls, so
  the progress bar and ETA cover every worker; each saved training state goes the same
  way, and the driver writes it (a cohort resumes on any worker, or in process).
- Same seed, same device type: the same numbers as the in-process executor (bitwise on
  the CPU; a test proves it), because a task runs the same `train_cohort` on the same
  data, which trains at the configs' torch thread count (`RunConfig.threads`) whatever
  the worker's default (a task sets its default to its CPU share).

Ray is an optional extra (`pip install 'ablate[ray]'`); nothing imports it unless this
executor is used.
"""

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ablate.data import Mnist
from ablate.engine import (
    CohortResult,
    Epoch,
    SavedState,
    prepare_data,
    resolve_device,
    train_cohort,
)
from ablate.errors import UserError
from ablate.study._execute import CohortOutcome, TrainingEvents
from ablate.study._plan import CohortTask
from ablate.study._resume import SAVE_EVERY

__all__ = ["DataMismatch", "RayExecutor", "RayOptions", "verify_data"]

INSTALL = "pip install 'ablate[ray]'"
POLL_S = 0.5  # how often the driver collects progress while waiting for results


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: start a local instance; "auto" or HOST:PORT: join
    cpus_per_cohort: float = 1.0  # Ray resources each cohort task declares
    gpus_per_cohort: float = 0.0  # fractions share a GPU (0.5: two cohorts per GPU)
    max_retries: int = 2  # retries after a worker process dies (not after an exception)


class DataMismatch(RuntimeError):
    """A worker received MNIST arrays that differ from the driver's."""


def verify_data(mnist: Mnist, checksums: dict[str, str]) -> None:
    """Raise `DataMismatch` unless every array's sha256 is the driver's."""
    got = mnist.checksums()
    bad = [name for name, want in checksums.items() if got.get(name) != want]
    if bad:
        raise DataMismatch(f"this worker's MNIST differs from the driver's ({', '.join(bad)}); "
                           "every worker must train on the same data")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError(f"--executor ray needs Ray, which is not installed: {INSTALL}",
                        api=f"executor='ray' needs Ray, which is not installed: {INSTALL}"
                        ) from None
    return ray


@dataclass(frozen=True)
class _Job:
    """Everything a cohort task needs besides the (shared) data."""

    task: CohortTask
    key: int  # the task's index in the plan: names its progress events
    checksums: dict[str, str]
    validation: int
    subset: int | None
    device: str  # "auto" | "cpu" | "cuda" | "cuda:N", resolved on the worker
    threads: int


def _train(job: _Job, mnist: Mnist, reporter: Any) -> CohortResult:
    """Runs on a worker: check the data, split it as the study says, train the cohort."""
    import torch

    torch.set_num_threads(job.threads)
    verify_data(mnist, job.checksums)
    device = resolve_device(job.device)
    data = prepare_data(mnist, job.validation, job.subset, device)
    reporter.started.remote(job.key, os.getpid())
    import ray

    latest: SavedState | None = ray.get(reporter.latest.remote(job.key))  # set on a retry
    resume = job.task.resume.data if job.task.resume is not None else None
    replicas = job.task.replicas
    return train_cohort([r.config for r in replicas], [r.seed for r in replicas], data,
                        select_on=job.task.select_on,
                        on_step=lambda k: reporter.advanced.remote(job.key, k),
                        on_epoch=lambda e: reporter.epoch.remote(job.key, e),
                        resume=latest.data if latest is not None else resume,
                        on_state=lambda s: reporter.saved.remote(job.key, s),
                        save_every=SAVE_EVERY)


class _Reporter:
    """A Ray actor collecting progress events from every task until the driver drains."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, Any]] = []
        self.states: dict[int, SavedState] = {}  # each cohort's latest, for a retry

    def started(self, key: int, pid: int) -> None:
        self.events.append(("started", key, pid))

    def advanced(self, key: int, steps: int) -> None:
        self.events.append(("advanced", key, steps))

    def epoch(self, key: int, record: Epoch) -> None:
        self.events.append(("epoch", key, record))

    def saved(self, key: int, saved: SavedState) -> None:
        self.events = [e for e in self.events if e[:2] != ("saved", key)]  # the latest only
        self.events.append(("saved", key, saved))
        self.states[key] = saved

    def latest(self, key: int) -> SavedState | None:
        return self.states.get(key)

    def forget(self, key: int) -> None:
        self.states.pop(key, None)

    def drain(self) -> list[tuple[str, int, Any]]:
        out, self.events = self.events, []
        return out


class RayExecutor:
    """Trains a plan's cohorts as Ray tasks (see the module doc)."""

    def __init__(self, mnist: Mnist, checksums: dict[str, str], *, validation: int,
                 subset: int | None, device: str, options: RayOptions) -> None:
        self.ray = _import_ray()
        self.mnist, self.checksums = mnist, checksums
        self.validation, self.subset, self.device = validation, subset, device
        self.options = options
        self.worker_pids: dict[CohortTask, int] = {}  # pid of each task's latest attempt

    def _connect(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        quiet = {"include_dashboard": False, "log_to_driver": False,
                 "configure_logging": True, "logging_level": "ERROR"}
        try:
            if self.options.address is None:
                ray.init(num_cpus=os.cpu_count(), **quiet)
            else:
                ray.init(address=self.options.address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.options.address or "a local Ray instance"
            raise UserError(f"--executor ray: cannot start or join {where} ({exc}); check "
                            "--ray-address (HOST:PORT of the head node, or auto)",
                            api=f"executor='ray': cannot start or join {where} ({exc}); "
                            "check ray_address ('HOST:PORT' of the head node, or 'auto')"
                            ) from None

    def run(self, tasks: Sequence[CohortTask], progress: TrainingEvents
            ) -> Iterator[tuple[CohortTask, CohortOutcome]]:
        ray = self.ray
        self._connect()
        data = ray.put(self.mnist)  # once; workers on this node share it without copies
        reporter = ray.remote(num_cpus=0)(_Reporter).remote()
        ray.get(reporter.drain.remote())  # the actor is up before any task reports to it
        train = ray.remote(_train)
        threads = max(1, int(self.options.cpus_per_cohort))
        refs = {}
        for key, task in enumerate(tasks):
            job = _Job(task, key, self.checksums, self.validation, self.subset, self.device,
                       threads)
            ref = train.options(num_cpus=self.options.cpus_per_cohort,
                                num_gpus=self.options.gpus_per_cohort,
                                max_retries=self.options.max_retries,
                                retry_exceptions=False).remote(job, data, reporter)
            refs[ref] = (key, task)
        try:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=POLL_S)
                self._relay(ray.get(reporter.drain.remote()), tasks, progress)
                for ref in ready:
                    key, task = refs.pop(ref)
                    reporter.forget.remote(key)
                    self._relay(ray.get(reporter.drain.remote()), tasks, progress)
                    yield task, self._outcome(ref)
        finally:
            for ref in refs:  # the driver is leaving (Ctrl-C, an error): stop the rest
                ray.cancel(ref, force=True)
            ray.kill(reporter)

    def _relay(self, events: list[tuple[str, int, Any]], tasks: Sequence[CohortTask],
               progress: TrainingEvents) -> None:
        for kind, key, value in events:
            if kind == "started":
                self.worker_pids[tasks[key]] = value
                progress.started(tasks[key])
            elif kind == "advanced":
                progress.advanced(tasks[key], value)
            elif kind == "saved":
                progress.saved(tasks[key], value)
            else:
                progress.epoch(tasks[key], value)

    def _outcome(self, ref: Any) -> CohortOutcome:
        ray = self.ray
        try:
            result: CohortResult = ray.get(ref)
            return result
        except ray.exceptions.RayTaskError as exc:  # training raised: its own error
            cause = exc.cause if isinstance(exc.cause, Exception) else exc
            return cause
        except ray.exceptions.RayError as exc:  # worker died too often, node lost, ...
            return RuntimeError(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
