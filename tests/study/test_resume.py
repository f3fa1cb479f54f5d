"""Resume inside a cohort, end to end: a study interrupted (Ctrl-C, or SIGKILL, inside a
state write too) and rerun stores exactly what an uninterrupted study stores.

The oracle is the uninterrupted study in another run directory: every stored number
(each run's row and epochs, wall times and start times aside) and every checkpoint file
(weights and sidecar, byte for byte) must be equal. Interrupts land at injected points
(the k-th state write), never at a time, so every test is deterministic.
"""

import hashlib
import io
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from ablate.cli import app
from ablate.design import load_study
from ablate.metric import METRICS
from ablate.store import DB_NAME, STATES_DIR, Store
from ablate.study import CohortTask, Plan, Replica, StudyProgress, _resume, plan_study
from ablate.study._plan import Resume
from ablate.study._resume import CohortStates
from tests.study_harness import TINY_STUDY, SubsetCliRunner

ROOT = Path(__file__).parents[2]
EPOCHS = "4"
# Two arms of different widths: two cohorts (of 2 seeds), trained one after the other,
# with batch norm and dropout, Adam; 16 steps an epoch on the committed subset.
STUDY = TINY_STUDY.split("[base]")[0] + """
[base]
layers = [64]
dropout = 0.3
batch_norm = "after"
optimizer = { name = "adam" }
batch_size = 100
epochs = 6

[factors.width]
levels.w64 = {}
levels.w32 = { layers = [32] }
"""


@pytest.fixture(scope="module")
def study_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("study") / "tiny.toml"
    path.write_text(STUDY)
    return path


def _args(study_file: Path, out: Path, *extra: str) -> list[str]:
    return ["study", str(study_file), "--out", str(out), "--epochs", EPOCHS, "--no-report",
            *extra]


def stored(run_dir: Path) -> dict[str, object]:
    """Every number a study stores, and every checkpoint file's bytes (by sha256)."""
    with sqlite3.connect(run_dir / DB_NAME) as db:
        runs = _rows(db, "SELECT * FROM runs ORDER BY arm, seed", ("started", "seconds"))
        epochs = _rows(db, "SELECT * FROM epochs ORDER BY arm, seed, epoch", ("seconds",))
    files = {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted((run_dir / "checkpoints").rglob("*")) if p.is_file()}
    return {"runs": runs, "epochs": epochs, "checkpoints": files}


def _rows(db: sqlite3.Connection, sql: str, leave_out: tuple[str, ...]) -> list[dict]:
    """Every row as column -> value, but the wall-time columns."""
    cur = db.execute(sql)
    names = [d[0] for d in cur.description]
    return [{k: v for k, v in zip(names, row, strict=True) if k not in leave_out}
            for row in cur.fetchall()]


@pytest.fixture(scope="module")
def reference(study_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("reference")
    result = SubsetCliRunner().invoke(app, _args(study_file, out))
    assert result.exit_code == 0, result.output
    got = stored(out / "tiny")
    assert len(got["runs"]) == 4 and {r["status"] for r in got["runs"]} == {"done"}  # type: ignore[index]
    # per run: weights, their JSON sidecar and the per-image predictions
    assert len(got["epochs"]) == 16 and len(got["checkpoints"]) == 12  # type: ignore[arg-type]
    assert sum(p.endswith(".predictions.npz") for p in got["checkpoints"]) == 4  # type: ignore[union-attr]
    return got


def interrupt_at(monkeypatch: pytest.MonkeyPatch, k: int) -> list[Path]:
    """Ctrl-C right after the k-th cohort state is written (the write is complete)."""
    real = CohortStates.write
    written: list[Path] = []

    def write(self: CohortStates, task: object, saved: object) -> None:
        real(self, task, saved)  # type: ignore[arg-type]
        written.append(self.path(task))  # type: ignore[arg-type]
        if len(written) == k:
            raise KeyboardInterrupt

    monkeypatch.setattr(CohortStates, "write", write)
    return written


def _states(run_dir: Path) -> list[str]:
    d = run_dir / STATES_DIR
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def test_ctrl_c_keeps_the_epochs_trained_and_a_rerun_stores_the_same_numbers(
        cli: CliRunner, study_file: Path, tmp_path: Path, reference: dict,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Interrupted after cohort 2's second epoch (cohort 1 stored): the message says so,
    the dry run and the rerun say where they resume, and the rerun trains epochs 3-4."""
    out, run_dir = tmp_path / "runs", tmp_path / "runs" / "tiny"
    written = interrupt_at(monkeypatch, 3 + 2)  # cohort 1 saves 3 states (not its last epoch)
    result = cli.invoke(app, _args(study_file, out))
    assert result.exit_code == 130, result.output
    assert ("interrupted: 2 runs stored; 2 of 4 epochs of cohort 2 kept; rerun the same "
            "command to continue.") in result.output
    assert _states(run_dir) == [written[-1].name]  # cohort 1's state went when it was stored
    monkeypatch.undo()

    dry = cli.invoke(app, _args(study_file, out, "--dry-run"))
    assert "2 runs to train in 1 cohort (resuming cohort 1 at epoch 3/4) (2 already done)" \
        in dry.output, dry.output
    again = cli.invoke(app, _args(study_file, out))
    assert again.exit_code == 0, again.output
    assert "training 2 runs in 1 cohort (resuming cohort 1 at epoch 3/4)" in again.output
    assert stored(run_dir) == reference
    assert _states(run_dir) == []  # removed once the cohort's runs are stored


def test_interrupted_in_the_first_epoch_says_nothing_was_kept(
        cli: CliRunner, study_file: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(CohortStates, "write", stop)  # the first save never lands
    result = cli.invoke(app, _args(study_file, tmp_path / "runs"))
    assert result.exit_code == 130
    assert ("interrupted: cohort 1 had not finished an epoch (nothing of it kept); rerun the "
            "same command to continue.") in result.output


@pytest.mark.parametrize(("mode", "k", "resumes_at"), [
    ("after", 2, 3),  # killed right after cohort 1's second state
    ("torn", 3, 3),   # killed inside cohort 1's third state write: the second survives
    ("torn", 1, None),  # inside the very first write: nothing kept, a fresh start
    ("after", 4, 2),  # after cohort 2's first state, cohort 1 stored
])
def test_kill_9_at_a_state_write_then_a_rerun_stores_the_same_numbers(
        cli: CliRunner, study_file: Path, tmp_path: Path, reference: dict, mode: str, k: int,
        resumes_at: int | None) -> None:
    out, run_dir = tmp_path / "runs", tmp_path / "runs" / "tiny"
    killed = subprocess.run(
        [sys.executable, "-m", "tests.study.resume_harness", mode, str(k),
         *_args(study_file, out)], cwd=ROOT, capture_output=True, timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert killed.returncode == -9, killed.stdout + killed.stderr
    left = _states(run_dir)
    assert len([n for n in left if n.endswith(".tmp")]) == (mode == "torn")
    again = cli.invoke(app, _args(study_file, out))
    assert again.exit_code == 0, again.output
    if resumes_at is None:
        assert "resuming" not in again.output
    else:
        assert f"(resuming cohort 1 at epoch {resumes_at}/4)" in again.output, again.output
    assert stored(run_dir) == reference
    assert _states(run_dir) == []  # the state and the torn write's temporary file are gone


def _cohort_path(study_file: Path, run_dir: Path) -> Path:
    """The state file of the first cohort still to train in `run_dir`."""
    study = load_study(study_file).with_overrides(epochs=int(EPOCHS))
    store = Store(run_dir)
    try:
        plan = plan_study(study, store, None, torch.device("cpu"))
    finally:
        store.close()
    return CohortStates(run_dir).path(plan.cohorts[-1])


def test_a_corrupted_or_foreign_state_is_ignored_with_a_warning_and_the_cohort_restarts(
        cli: CliRunner, study_file: Path, tmp_path: Path, reference: dict,
        monkeypatch: pytest.MonkeyPatch) -> None:
    out, run_dir = tmp_path / "runs", tmp_path / "runs" / "tiny"
    written = interrupt_at(monkeypatch, 2)  # cohort 1, 2 epochs kept
    assert cli.invoke(app, _args(study_file, out)).exit_code == 130
    monkeypatch.undo()
    first = written[-1]
    good = first.read_bytes()
    torn = bytearray(good)
    torn[-100] ^= 0xFF
    first.write_bytes(bytes(torn))
    second = _cohort_path(study_file, run_dir)  # cohort 2's file, holding cohort 1's state
    assert second != first
    second.write_bytes(good)
    stray = run_dir / STATES_DIR / "cohort-0123456789abcdef.state"
    stray.write_bytes(good)
    again = cli.invoke(app, _args(study_file, out))
    assert again.exit_code == 0, again.output
    text = " ".join(again.output.split())
    assert (f"warning: the saved state of cohort 1 ({first.name}) is ignored: incomplete or "
            "altered (its checksum differs); the cohort trains from its first epoch") in text
    assert (f"warning: the saved state of cohort 2 ({second.name}) is ignored: saved by "
            "another cohort") in text
    assert f"a saved cohort state ({stray.name}) fits no cohort still to train" in text
    assert "resuming" not in text
    assert stored(run_dir) == reference  # never mixed: both cohorts trained from the start
    assert _states(run_dir) == []


# ---------------------------------------------------------------- the other executor
@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    if os.environ.get("ABLATE_REQUIRE_RAY") == "1":
        import ray  # CI: a missing Ray is an error, not a skip
    else:
        ray = pytest.importorskip("ray", reason="Ray is not installed, so resuming on it is "
                                  "untested here: pip install 'ablate[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.mark.ray
def test_a_cohort_interrupted_in_process_resumes_on_ray(
        cluster: None, cli: CliRunner, study_file: Path, tmp_path: Path, reference: dict,
        monkeypatch: pytest.MonkeyPatch) -> None:
    out, run_dir = tmp_path / "runs", tmp_path / "runs" / "tiny"
    interrupt_at(monkeypatch, 3 + 1)  # cohort 1 stored, cohort 2 at 1 of 4 epochs
    result = cli.invoke(app, _args(study_file, out))
    assert result.exit_code == 130, result.output
    assert "2 runs stored; 1 of 4 epochs of cohort 2 kept" in result.output
    monkeypatch.undo()
    again = cli.invoke(app, _args(study_file, out, "--executor", "ray"))
    assert again.exit_code == 0, again.output
    assert "(resuming cohort 1 at epoch 2/4)" in again.output
    assert stored(run_dir) == reference
    assert _states(run_dir) == []


@pytest.mark.ray
def test_a_cohort_interrupted_on_ray_resumes_in_process(
        cluster: None, cli: CliRunner, study_file: Path, tmp_path: Path, reference: dict,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """On Ray the driver writes the states its workers report as it polls them (the latest
    of each cohort), so which epoch is kept when the first write is interrupted depends on
    timing; what is stored in the end must not."""
    out, run_dir = tmp_path / "runs", tmp_path / "runs" / "tiny"
    interrupt_at(monkeypatch, 1)
    result = cli.invoke(app, _args(study_file, out, "--executor", "ray"))
    assert result.exit_code == 130, result.output
    kept = re.search(r"interrupted: (\d) of 4 epochs of cohort 1 kept", result.output)
    assert kept is not None, result.output
    monkeypatch.undo()
    again = cli.invoke(app, _args(study_file, out))
    assert again.exit_code == 0, again.output
    assert f"(resuming cohort 1 at epoch {int(kept[1]) + 1}/4)" in again.output
    assert stored(run_dir) == reference
    assert _states(run_dir) == []


def test_the_state_key_names_the_runs_in_order(study_file: Path) -> None:
    """Two cohorts with the same runs in another order, or another config hash, are
    different states."""
    config = load_study(study_file).arms[0].run_config
    a, b = Replica("x", 0, config, "h"), Replica("x", 1, config, "h")
    key, on = _resume.state_key, METRICS["val_accuracy"]
    assert key(CohortTask((a, b), on)) == key(CohortTask((a, b), on))
    assert key(CohortTask((a, b), on)) != key(CohortTask((b, a), on))
    assert key(CohortTask((a, b), on)) != key(CohortTask((a, Replica("x", 1, config, "g")), on))


def test_a_resumed_cohort_shows_its_saved_steps_as_done_not_as_throughput(
        study_file: Path) -> None:
    """50,000 images in batches of 100: 500 steps an epoch; resumed after 3 epochs and 20
    steps of the 4th, the cohort shows epoch 4, step 20, and 1,520 of 2,000 steps done."""
    study = load_study(study_file).with_overrides(epochs=int(EPOCHS))
    task = CohortTask(tuple(Replica(study.arms[0].name, s, study.arms[0].run_config)
                            for s in study.seeds), METRICS["val_accuracy"],
                      resume=Resume(3, 20, b""))
    shown = StudyProgress(Plan((task,), 0, 50_000, {}), Console(file=io.StringIO()),
                          live=False)
    shown.started(task)
    assert shown.done == 3 * 500 + 20 and shown.work == 0
    assert shown.cohorts[task].position == (4, 20)
    shown.advanced(task, 20)
    assert shown.done == 1540 and shown.work == 20


@pytest.mark.ray
def test_a_worker_killed_after_reporting_a_state_is_retried_from_it(
        cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker is killed as the driver writes its first state, which the progress
    actor therefore holds: the retry reports no epoch twice before that state's."""
    from tests.study import test_ray as on_ray

    reference = on_ray._stored(on_ray._study(tmp_path, "in-process", on_ray._in_process,
                                             on_ray.Quiet()))
    box: list = []
    real = CohortStates.write
    killed: list[CohortTask] = []

    def write(self: CohortStates, task: CohortTask, saved: object) -> None:
        real(self, task, saved)  # type: ignore[arg-type]
        if not killed:
            os.kill(box[0].worker_pids[task], signal.SIGKILL)
            killed.append(task)

    monkeypatch.setattr(CohortStates, "write", write)
    progress = on_ray.Quiet()
    got = on_ray._stored(on_ray._study(tmp_path, "killed", on_ray._killing(2, box), progress))
    assert killed and len(progress.starts) == 3  # two cohorts, one of them started twice
    firsts = [e for t, e in progress.epochs if t == killed[0] and e == 1]
    assert firsts == [1]  # epoch 1 was not trained again: the retry resumed
    assert got == reference
