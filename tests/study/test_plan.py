"""Planning: what the config hash covers, and how runs are cut into cohorts."""

import io
import pickle
from pathlib import Path

import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from ablate.api import run_study
from ablate.cli import app
from ablate.design import load_study
from ablate.engine import replica_bytes
from ablate.errors import UserError
from ablate.store import Store
from ablate.study import (
    Plan,
    StudyOptions,
    cohorts_per_gpu,
    plan_study,
    queue_plan,
    study_device,
)
from ablate.study._plan import (
    ASSUMED_GPU_BYTES,
    CUDA_MEMORY_SHARE,
    MAX_COHORT,
    chunks,
    cohort_limit,
    data_settings,
)

STUDY = load_study("studies/dropout.toml")
CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # a device name; no GPU needed


def test_the_config_hash_names_the_device_type_and_the_matmul_precision() -> None:
    """A study resumed on another kind of device must not pair CPU-trained seeds with
    GPU-trained ones: the hash of the same config differs between device types, not
    between two GPUs of one type."""
    config = STUDY.baseline.config
    cpu, cuda = data_settings(STUDY, None, CPU), data_settings(STUDY, None, CUDA)
    assert cpu["device_type"] == "cpu" and cuda["device_type"] == "cuda"
    assert cpu["matmul_precision"] == cuda["matmul_precision"] == "ieee"
    assert config.digest(**cpu) != config.digest(**cuda)
    assert config.digest(**cuda) == config.digest(**data_settings(STUDY, None,
                                                                  torch.device("cuda:1")))


def test_cohorts_are_as_few_and_as_even_as_the_limit_allows() -> None:
    assert chunks(list(range(20)), 32) == [list(range(20))]
    assert [len(c) for c in chunks(list(range(20)), 16)] == [10, 10]
    assert [len(c) for c in chunks(list(range(33)), 16)] == [11, 11, 11]
    assert chunks([], 16) == []
    assert sum(chunks(list(range(7)), 1), []) == list(range(7))


def test_cohort_limit_is_fixed_on_the_cpu_and_memory_aware_on_a_gpu() -> None:
    config = STUDY.baseline.config
    per_replica = replica_bytes(config)
    assert cohort_limit(config, "cpu", None) == MAX_COHORT["cpu"] >= 60  # 6 levels x 10
    assert cohort_limit(config, "cuda", 10**12) == MAX_COHORT["cuda"]
    # half of the free memory, in whole replicas; never fewer than one
    assert cohort_limit(config, "cuda", 40 * per_replica) == 20
    assert cohort_limit(config, "cuda", per_replica // 10) == 1


def test_cohorts_sharing_a_gpu_share_its_memory() -> None:
    """On Ray, --gpus-per-cohort 0.25 runs four cohorts on one GPU at once: each plans for
    a quarter of the share one cohort alone would get."""
    config = STUDY.baseline.config
    per_replica = replica_bytes(config)
    assert [cohorts_per_gpu(g) for g in (0.0, 0.25, 0.3, 0.5, 1.0, 2.0)] == [1, 4, 3, 2, 1, 1]
    assert cohort_limit(config, "cuda", 40 * per_replica, cohorts_per_gpu=4) == 5
    assert cohort_limit(config, "cuda", 40 * per_replica, cohorts_per_gpu=2) == 10
    assert cohort_limit(config, "cuda", 4 * per_replica, cohorts_per_gpu=4) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_a_driver_without_a_gpu_plans_a_gpu_study(tmp_path: Path) -> None:
    """A Ray driver on a CPU machine plans for its workers' GPUs without touching CUDA:
    the assumed memory, divided among the cohorts that share a GPU."""
    store = Store(tmp_path / "store")
    try:
        plan = plan_study(STUDY, store, None, CUDA, per_gpu=64)
    finally:
        store.close()
    share = int(CUDA_MEMORY_SHARE * ASSUMED_GPU_BYTES) // 64
    limit = share // replica_bytes(STUDY.baseline.config)
    assert 1 < limit < 20 and plan.runs == 20
    assert max(len(t.replicas) for t in plan.cohorts) <= limit
    assert len(plan.cohorts) == -(-20 // limit)  # as few as the limit allows


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_a_dry_run_of_a_ray_gpu_study_on_a_cpu_driver(tmp_path: Path) -> None:
    """The plan, the record and the message work; the estimate says why there is none."""
    out = io.StringIO()
    done = run_study("studies/dropout.toml", console=Console(file=out, width=200),
                     out=tmp_path, executor="ray", device="cuda", gpus_per_cohort=0.25,
                     dry_run=True)
    assert done.planned == 20 and done.trained == 0
    assert "no time estimate" in out.getvalue() and "on cuda" in out.getvalue()


def test_a_ray_gpu_study_must_declare_gpus() -> None:
    """Ray shows a task no GPU it did not ask for: --device cuda with --gpus-per-cohort 0
    would fail on every worker, so it is refused up front, saying what to pass."""
    with pytest.raises(UserError, match="--gpus-per-cohort > 0"):
        study_device(StudyOptions(executor="ray", device="cuda", gpus_per_cohort=0.0))
    with pytest.raises(UserError, match="0 or more"):
        study_device(StudyOptions(executor="ray", gpus_per_cohort=-1.0))
    result = CliRunner().invoke(app, ["study", "studies/dropout.toml", "--executor", "ray",
                                      "--device", "cuda:1", "--dry-run"])
    assert result.exit_code == 2 and "--gpus-per-cohort" in result.output, result.output


def _plan(path: str, tmp_path: Path, device: torch.device = CPU, seeds: int = 10) -> Plan:
    store = Store(tmp_path / "store")
    try:
        return plan_study(load_study(path).with_overrides(seeds=seeds), store, None, device)
    finally:
        store.close()


def test_arms_that_share_shapes_are_packed_into_one_cohort(tmp_path: Path) -> None:
    """The dropout study is one cohort of 20 replicas, arms in study order, seeds in order;
    the init study (initializer differs) one of 50; arms whose shapes or batch-norm
    placement differ are never packed together."""
    (task,) = _plan("studies/dropout.toml", tmp_path).cohorts
    assert [(r.arm, r.seed) for r in task.replicas] == (
        [("dropout=on", s) for s in range(10)] + [("dropout=off", s) for s in range(10)])
    assert task.arms == {"dropout=on": list(range(10)), "dropout=off": list(range(10))}
    assert task.select_on.name == "val_accuracy"
    assert [len(t.replicas) for t in _plan("studies/init.toml", tmp_path).cohorts] == [50]
    for path in ("studies/depth.toml", "studies/batchnorm.toml", "studies/optimizer.toml"):
        for t in _plan(path, tmp_path).cohorts:
            assert len(t.arms) == 1 and len(t.replicas) == 10


def test_a_packed_group_larger_than_the_limit_is_cut_evenly(tmp_path: Path) -> None:
    plan = _plan("studies/activation.toml", tmp_path, seeds=15)  # 6 arms x 15 = 90 > 64
    assert [len(t.replicas) for t in plan.cohorts] == [45, 45]
    assert plan.runs == 90 and plan.total_steps == 2 * plan.steps(plan.cohorts[0])


def test_a_cohort_task_pickles(tmp_path: Path) -> None:
    """Executors on other processes or machines (Ray) receive tasks by pickling."""
    task = _plan("studies/dropout.toml", tmp_path).cohorts[0]
    assert pickle.loads(pickle.dumps(task)) == task
    r = pickle.loads(pickle.dumps(task.replicas[0]))
    assert r == task.replicas[0] and (r.arm, r.seed, r.config) == (
        "dropout=on", 0, load_study("studies/dropout.toml").arms[0].config)


def test_finished_runs_are_not_planned_again(tmp_path: Path) -> None:
    study = load_study("studies/dropout.toml").with_overrides(seeds=3)
    store = Store(tmp_path / "store")
    try:
        plan = plan_study(study, store, None, CPU)
        queue_plan(store, plan)
        (task,) = plan.cohorts
        for r in task.replicas:
            if r.seed != 1:
                store.finish(r.arm, r.seed, status="done", seconds=1.0, epochs=[],
                             best_epoch=1, metrics={}, checkpoint=None)
        again = plan_study(study, store, None, CPU)
        queue_plan(store, again)
        assert again.skipped == 4 and [(r.arm, r.seed) for r in again.cohorts[0].replicas] == [
            ("dropout=on", 1), ("dropout=off", 1)]
        for r in again.cohorts[0].replicas:
            store.finish(r.arm, r.seed, status="done", seconds=1.0, epochs=[], best_epoch=1,
                         metrics={}, checkpoint=None)
        assert plan_study(study, store, None, CPU).cohorts == ()  # nothing left: no cohort
    finally:
        store.close()
