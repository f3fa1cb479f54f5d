"""Studies on a real local Ray cluster: same numbers as in-process, faults survived.

Marked `ray`: without Ray installed these are skipped with a reason in the summary
(unless ABLATE_REQUIRE_RAY=1, which CI sets). One 2-CPU local cluster serves the whole
module, so Ray's start-up is paid once and no other test pays it.
"""

import hashlib
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ablate.data import Mnist
from ablate.design import StudyRecord, parse_study
from ablate.engine import Epoch
from ablate.errors import UserError
from ablate.store import Store
from ablate.study import (
    CohortTask,
    InProcessExecutor,
    execute,
    load_data,
    plan_study,
    queue_plan,
)
from ablate.study._ray import DataMismatch, RayExecutor, RayOptions, verify_data
from tests.study_harness import TINY_STUDY, load_subset

pytestmark = pytest.mark.ray
if os.environ.get("ABLATE_REQUIRE_RAY") == "1":
    import ray  # CI: a missing Ray is an error, not a skip
else:
    ray = pytest.importorskip("ray", reason="Ray is not installed, so the Ray executor is "
                              "untested here: pip install 'ablate[ray]'")

EPOCHS = 20  # long enough (a few seconds a cohort) for a kill to land mid-cohort
NARROW_STUDY = TINY_STUDY.replace("layers = [128]", 'layers = [32, 16]\nbatch_norm = "after"')


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


class Quiet:
    """A `Progress` that records what it is told (and may act on it)."""

    def __init__(self) -> None:
        self.starts: list[CohortTask] = []
        self.epochs: list[tuple[CohortTask, int]] = []

    def started(self, task: CohortTask) -> None:
        self.starts.append(task)

    def advanced(self, task: CohortTask, steps: int) -> None:
        pass

    def epoch(self, task: CohortTask, record: Epoch) -> None:
        self.epochs.append((task, record.epoch))


def _study(tmp_path: Path, name: str, executor_for: object, progress: Quiet) -> Path:
    """Train the tiny study (2 arms used, 2 seeds, EPOCHS epochs) into tmp_path/name: two
    cohorts, since the second arm's batch size differs (else both would pack into one).
    Its narrow layers with batch norm are shapes at which the CPU's float32 sums differ
    between 1 and 2 threads (so the thread pin is tested too)."""
    study = parse_study(NARROW_STUDY, "tiny.toml").with_overrides(epochs=EPOCHS)
    on, off = study.arms[:2]
    off = replace(off, config=replace(off.config, batch_size=50))
    study = replace(study, arms=(on, off))
    mnist = load_subset()
    store = Store(tmp_path / name)
    store.acquire()
    try:
        store.write_record(StudyRecord(study, "tiny.toml", TINY_STUDY).to_json())
        plan = plan_study(study, store, None, torch.device("cpu"))
        queue_plan(store, plan)
        executor = executor_for(study, mnist)  # type: ignore[operator]
        done = execute(study, store, plan, executor, mnist.checksums(), progress)
        assert done.trained + done.failed == 4
    finally:
        store.close()
    return tmp_path / name


def _in_process(study: object, mnist: Mnist) -> InProcessExecutor:
    return InProcessExecutor(load_data(study, None, torch.device("cpu"), mnist))  # type: ignore[arg-type]


def _ray(retries: int) -> object:
    def make(study: object, mnist: Mnist) -> RayExecutor:
        return RayExecutor(mnist, mnist.checksums(), validation=study.validation,  # type: ignore[attr-defined]
                           subset=None, device="cpu", options=RayOptions(max_retries=retries))
    return make


def _stored(run_dir: Path) -> dict[tuple[str, int], tuple]:
    """Per run: status, metrics, epochs stored and the checkpoint's sha256."""
    store = Store(run_dir)
    out = {}
    for r in store.runs():
        ckpt = (hashlib.sha256((run_dir / r.checkpoint).read_bytes()).hexdigest()
                if r.checkpoint else None)
        out[r.arm, r.seed] = (r.status, r.val_accuracy, r.crossfit_val_accuracy, r.test_loss,
                              len(store.epochs(r.arm)) // 2, ckpt)
    store.close()
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The in-process runs, trained in a process whose default is 2 torch threads (the
    Ray workers' is 1): the runs' configs pin the count, so the numbers must not care."""
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        return _stored(_study(tmp_path_factory.mktemp("ref"), "in-process", _in_process,
                              Quiet()))
    finally:
        torch.set_num_threads(saved)


def test_ray_gives_the_in_process_numbers_bit_for_bit(cluster: None, tmp_path: Path,
                                                      reference: dict) -> None:
    got = _stored(_study(tmp_path, "ray", _ray(2), Quiet()))
    assert got == reference
    assert {v[0] for v in got.values()} == {"done"}


class Killer(Quiet):
    """Kills the worker of the first cohort to report an epoch, with SIGKILL, there."""

    def __init__(self, executor_box: list) -> None:
        super().__init__()
        self.box, self.killed = executor_box, 0

    def epoch(self, task: CohortTask, record: Epoch) -> None:
        super().epoch(task, record)
        executor = self.box[0]
        if not self.killed and record.epoch == 1:
            os.kill(executor.worker_pids[task], signal.SIGKILL)
            self.killed = 1


def _killing(retries: int, box: list) -> object:
    make = _ray(retries)

    def wrapped(study: object, mnist: Mnist) -> object:
        box.append(make(study, mnist))
        return box[0]
    return wrapped


def test_a_worker_killed_mid_cohort_is_retried_and_nothing_is_lost_or_duplicated(
        cluster: None, tmp_path: Path, reference: dict) -> None:
    box: list = []
    progress = Killer(box)
    got = _stored(_study(tmp_path, "killed", _killing(2, box), progress))
    assert progress.killed == 1
    assert len(progress.starts) == 3  # two cohorts, one of them started twice
    assert got == reference  # every run recorded once, with the in-process numbers


def test_a_cohort_that_keeps_dying_is_failed_and_the_rest_completes(
        cluster: None, tmp_path: Path, reference: dict) -> None:
    box: list = []
    got = _stored(_study(tmp_path, "no-retries", _killing(0, box), Killer(box)))
    failed = {k: v for k, v in got.items() if v[0] == "failed"}
    assert len(failed) == 2 and all(v[-1] is None for v in failed.values())
    assert {k: v for k, v in got.items() if k not in failed} == {
        k: v for k, v in reference.items() if k not in failed}
    store = Store(tmp_path / "no-retries")
    errors = {r.error for r in store.runs() if r.status == "failed"}
    store.close()
    assert len(errors) == 1 and "Worker" in errors.pop()  # Ray's reason, recorded


def test_a_worker_with_other_data_refuses_to_train() -> None:
    mnist = load_subset()
    checksums = mnist.checksums()
    verify_data(mnist, checksums)
    x = mnist.x_train.copy()
    x[0, 0, 0] ^= 1
    other = Mnist(x, mnist.y_train, mnist.x_test, mnist.y_test)
    with pytest.raises(DataMismatch, match="x_train"):
        verify_data(other, checksums)


def test_without_ray_the_error_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails
    mnist = load_subset()
    with pytest.raises(UserError, match=r"pip install 'ablate\[ray\]'"):
        RayExecutor(mnist, mnist.checksums(), validation=400, subset=None, device="cpu",
                    options=RayOptions())


def test_help_names_the_install_command_whole() -> None:
    """Rich markup would eat `[ray]` from the help text; it must reach the user whole."""
    from typer.testing import CliRunner

    from ablate.cli import app

    result = CliRunner().invoke(app, ["study", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "ablate[ray]" in result.output


@pytest.mark.parametrize("device, gpus, expected", [
    ("auto", 0.0, "cpu"), ("auto", 0.5, "cuda"), ("cpu", 0.0, "cpu"), ("cuda", 1.0, "cuda")])
def test_the_device_type_hashed_is_the_one_ray_workers_train_on(device: str, gpus: float,
                                                                 expected: str) -> None:
    """The driver may have no GPU: with Ray, `--device auto` means the GPU the cohorts
    declare, so GPU-trained runs are never hashed (and resumed) as CPU runs."""
    from ablate.study import StudyOptions, study_device

    options = StudyOptions(executor="ray", device=device, gpus_per_cohort=gpus)
    assert study_device(options).type == expected
