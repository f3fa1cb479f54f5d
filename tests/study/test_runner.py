"""The study driver end to end: store, resume, kill -9, Ctrl-C, the runs listing, CLI errors.

Every test drives the real CLI (in-process, or in a real subprocess for the signals)
on the committed MNIST subset; see tests/study_harness.py.
"""

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from ablate.cli import app
from ablate.store import DB_NAME
from tests.study_harness import TINY_STUDY, SubsetCliRunner

ROOT = Path(__file__).parents[2]
ARMS = ["dropout=on", "dropout=off", "dropout=high", "dropout=low"]


@pytest.fixture
def study_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_STUDY)
    return path


@pytest.fixture
def cli() -> CliRunner:
    return SubsetCliRunner()


def _rows(run_dir: Path) -> list[tuple]:
    with sqlite3.connect(run_dir / DB_NAME) as db:
        return db.execute("SELECT arm, seed, status, started FROM runs ORDER BY arm, seed"
                          ).fetchall()


def _epoch_counts(run_dir: Path) -> dict[tuple[str, int], int]:
    with sqlite3.connect(run_dir / DB_NAME) as db:
        rows = db.execute("SELECT arm, seed, COUNT(*) FROM epochs GROUP BY arm, seed").fetchall()
    return {(a, s): n for a, s, n in rows}


def test_study_stores_every_run_and_a_rerun_does_no_work(cli: CliRunner, study_file: Path,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "runs"
    first = cli.invoke(app, ["study", str(study_file), "--out", str(out)])
    assert first.exit_code == 0, first.output
    run_dir = out / "tiny"
    rows = _rows(run_dir)
    assert [(a, s, st) for a, s, st, _ in rows] == [
        (arm, seed, "done") for arm in sorted(ARMS) for seed in (0, 1)]
    assert set(_epoch_counts(run_dir).values()) == {6}
    for arm, seed, *_ in rows:  # a checkpoint and its sidecar per run, sha256 recorded
        side = json.loads((run_dir / "checkpoints" / arm / f"seed-{seed}.json").read_text())
        weights = load_file(run_dir / "checkpoints" / arm / f"seed-{seed}.safetensors")
        assert side["arm"] == arm and side["seed"] == seed and len(side["weights_sha256"]) == 64
        assert weights["dense0.weight"].shape == (784, 128)
    _check_crossfit(run_dir, validation=400)
    report = json.loads((run_dir / "report.json").read_text())
    assert {c["arm"] for c in report["contrasts"]} == set(ARMS) - {"dropout=on"}
    second = cli.invoke(app, ["study", str(study_file), "--out", str(out), "--no-report"])
    assert second.exit_code == 0 and "Nothing to do" in second.output
    assert _rows(run_dir) == rows  # same started times: nothing retrained


def _check_crossfit(run_dir: Path, validation: int) -> None:
    """The stored cross-fitted accuracy, recomputed from the stored per-half epoch
    accuracies by a plain loop: the epoch first best on one half, scored on the other."""
    with sqlite3.connect(run_dir / DB_NAME) as db:
        runs = db.execute("SELECT arm, seed, crossfit_val_accuracy FROM runs"
                          ).fetchall()
        for arm, seed, stored in runs:
            rows = db.execute("SELECT val_accuracy_a, val_accuracy_b FROM epochs WHERE arm = ? "
                              "AND seed = ? ORDER BY epoch", (arm, seed)).fetchall()
            n_b = validation // 2
            n_a = validation - n_b
            e_a = max(range(len(rows)), key=lambda e: (rows[e][0], -e))
            e_b = max(range(len(rows)), key=lambda e: (rows[e][1], -e))
            expected = (rows[e_a][1] * n_b + rows[e_b][0] * n_a) / validation
            assert stored == pytest.approx(expected, abs=1e-12)
            assert abs(stored * validation - round(stored * validation)) < 1e-9  # on the grid


def test_a_changed_arm_reruns_and_the_others_do_not(cli: CliRunner, study_file: Path,
                                                    tmp_path: Path) -> None:
    out = tmp_path / "runs"
    study = ["study", str(study_file), "--out", str(out), "--no-report"]
    assert cli.invoke(app, study).exit_code == 0
    before = {(a, s): t for a, s, _, t in _rows(out / "tiny")}
    study_file.write_text(TINY_STUDY.replace("levels.high = { dropout = 0.6 }",
                                             "levels.high = { dropout = 0.7 }"))
    result = cli.invoke(app, study)
    assert result.exit_code == 0, result.output
    after = {(a, s): t for a, s, _, t in _rows(out / "tiny")}
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {("dropout=high", 0), ("dropout=high", 1)}


def test_runs_json_has_the_contract_keys(cli: CliRunner, study_file: Path,
                                         tmp_path: Path) -> None:
    out = tmp_path / "runs"
    assert cli.invoke(app, ["study", str(study_file), "--out", str(out), "--seeds", "1",
                          "--no-report"]
                      ).exit_code == 0
    result = cli.invoke(app, ["runs", str(out / "tiny"), "--format", "json"])
    runs = json.loads(result.output)
    assert len(runs) == 4
    for run in runs:
        assert {"arm", "seed", "status", "epochs", "seconds", "val_accuracy", "val_loss",
                "test_accuracy", "test_loss", "train_loss"} <= set(run)
        assert run["status"] == "done" and 0 < run["val_accuracy"] <= 1
    csv = cli.invoke(app, ["runs", str(out / "tiny"), "--format", "csv"]).output
    assert csv.splitlines()[0].startswith("arm,seed,status") and len(csv.splitlines()) == 5


def test_dry_run_trains_nothing_and_writes_nothing(cli: CliRunner, study_file: Path,
                                                   tmp_path: Path) -> None:
    result = cli.invoke(app, ["study", str(study_file), "--out", str(tmp_path / "runs"),
                              "--dry-run"])
    # the four dropout arms share their shapes: one packed cohort of 2 seeds x 4 arms
    assert result.exit_code == 0 and "8 runs to train in 1 cohort " in result.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["study", "missing.toml"], "no such study file"),
    (["study", "STUDY", "--device", "cuda:7"], "--device cuda:7"),
    (["study", "STUDY", "--device", "tpu"], "--device"),
    (["study", "STUDY", "--seeds", "0"], "--seeds must be at least 1"),
    (["runs", "nowhere"], "no runs.sqlite here"),
    (["summary", "STUDY", "--arm", "dropout=of"], "did you mean 'dropout=off'"),
])
def test_user_errors_are_one_line_and_exit_2(cli: CliRunner, study_file: Path, args: list[str],
                                             message: str) -> None:
    args = [str(study_file) if a == "STUDY" else a for a in args]
    result = cli.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


# Arms of different widths cannot share a cohort, so this study trains as four cohorts
# one after another: a signal can land after one has been recorded and while the next
# trains (the tiny dropout study packs its four arms into one cohort).
UNPACKED_STUDY = TINY_STUDY.split("[factors.dropout]")[0] + """
[factors.width]
levels.w128 = {}
levels.w96 = { layers = [96] }
levels.w64 = { layers = [64] }
levels.w32 = { layers = [32] }
"""


@pytest.fixture
def unpacked_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(UNPACKED_STUDY)
    return path


def _start(study_file: Path, out: Path, *extra: str) -> subprocess.Popen:
    # 40 epochs make each cohort take a few seconds, so a signal lands mid-study.
    return subprocess.Popen(
        [sys.executable, "-m", "tests.study_harness", "study", str(study_file), "--out", str(out),
         "--epochs", "40", "--no-report", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_for_first_done(proc: subprocess.Popen, run_dir: Path, limit: float = 300) -> None:
    """Poll the store until one run is done and another is running; fail otherwise."""
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError("the study finished before it could be interrupted")
            try:
                statuses = [st for _, _, st, _ in _rows(run_dir)]
            except sqlite3.OperationalError:  # not created yet, or being created
                statuses = []
            if "done" in statuses and "running" in statuses:
                return
            time.sleep(0.05)
        raise AssertionError("no run finished in time")
    except BaseException:
        proc.kill()
        proc.communicate()
        raise


def test_kill_9_then_rerun_completes_with_nothing_lost_or_duplicated(
        cli: CliRunner, unpacked_file: Path, tmp_path: Path) -> None:
    study_file = unpacked_file
    out = tmp_path / "runs"
    run_dir = out / "tiny"
    proc = _start(study_file, out)
    _wait_for_first_done(proc, run_dir)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)  # reap it and close its pipe
    killed = _rows(run_dir)
    done_before = {(a, s): t for a, s, st, t in killed if st == "done"}
    assert done_before and any(st == "running" for _, _, st, _ in killed)
    for (arm, seed) in done_before:  # every run marked done has its complete checkpoint
        side = json.loads((run_dir / "checkpoints" / arm / f"seed-{seed}.json").read_text())
        weights = (run_dir / "checkpoints" / arm / f"seed-{seed}.safetensors").read_bytes()
        assert hashlib.sha256(weights).hexdigest() == side["weights_sha256"]

    result = cli.invoke(app, ["study", str(study_file), "--out", str(out), "--epochs", "40",
                              "--no-report"])
    assert result.exit_code == 0, result.output
    rows = _rows(run_dir)
    assert len(rows) == 8 and {st for _, _, st, _ in rows} == {"done"}
    assert {(a, s): t for a, s, _, t in rows if (a, s) in done_before} == done_before
    assert set(_epoch_counts(run_dir).values()) == {40}  # no epoch recorded twice
    assert not list(run_dir.glob("checkpoints/*/*.tmp"))  # a write cut short was redone


def test_ctrl_c_stops_cleanly_and_a_rerun_resumes(cli: CliRunner, unpacked_file: Path,
                                                  tmp_path: Path) -> None:
    study_file = unpacked_file
    out = tmp_path / "runs"
    run_dir = out / "tiny"
    proc = _start(study_file, out)
    _wait_for_first_done(proc, run_dir)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert b"interrupted" in output and b"Traceback" not in output
    statuses = {st for _, _, st, _ in _rows(run_dir)}
    assert "running" not in statuses and "done" in statuses and "pending" in statuses
    result = cli.invoke(app, ["study", str(study_file), "--out", str(out), "--epochs", "40",
                              "--no-report"])
    assert result.exit_code == 0
    assert {st for _, _, st, _ in _rows(run_dir)} == {"done"}


def test_two_drivers_on_one_directory_never_train_a_run_twice(unpacked_file: Path,
                                                               tmp_path: Path) -> None:
    """A second `ablate study` on a directory in use stops with one line naming the first;
    with --wait it starts when the first is done, and then finds nothing to train."""
    study_file = unpacked_file
    out = tmp_path / "runs"
    run_dir = out / "tiny"
    first = _start(study_file, out)
    _wait_for_first_done(first, run_dir)
    refused = subprocess.run(
        [sys.executable, "-m", "tests.study_harness", "study", str(study_file), "--out",
         str(out), "--epochs", "40", "--no-report"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2, refused.stderr
    assert f"pid {first.pid}" in refused.stderr and "--wait" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    waiter = _start(study_file, out, "--wait")
    first_output, _ = first.communicate(timeout=600)
    assert first.returncode == 0, first_output
    finished = _rows(run_dir)
    assert {st for *_, st, _ in finished} == {"done"}
    waited, _ = waiter.communicate(timeout=600)
    assert waiter.returncode == 0, waited
    assert b"waiting" in waited and b"Nothing to do" in waited
    assert _rows(run_dir) == finished  # same started times: nothing trained twice
