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
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from ablate.cli import app
from ablate.faults import ENV
from ablate.store import DB_NAME
from tests.study_harness import TINY_STUDY

ROOT = Path(__file__).parents[2]
ARMS = ["dropout=on", "dropout=off", "dropout=high", "dropout=low"]


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


EPOCHS = "3"  # the faults land at chosen points (ablate.faults), so cohorts may be short


def _start(study_file: Path, out: Path, *extra: str, fault: str | None = None
           ) -> subprocess.Popen:
    """`ablate study` in its own process; `fault` (ABLATE_FAULT) makes it kill, interrupt
    or hold itself at a chosen point, so no test waits for a moment to come by."""
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if fault is not None:
        env[ENV] = fault
    return subprocess.Popen(
        [sys.executable, "-m", "tests.study_harness", "study", str(study_file), "--out", str(out),
         "--epochs", EPOCHS, "--no-report", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**env, "PYTHONUNBUFFERED": "1"})


def _temporaries(run_dir: Path) -> list[Path]:
    return sorted(run_dir.rglob(".*.tmp"))


def _checkpoints_complete(run_dir: Path, runs: list[tuple[str, int]]) -> None:
    for (arm, seed) in runs:  # every run marked done has its complete checkpoint
        side = json.loads((run_dir / "checkpoints" / arm / f"seed-{seed}.json").read_text())
        weights = (run_dir / "checkpoints" / arm / f"seed-{seed}.safetensors").read_bytes()
        assert hashlib.sha256(weights).hexdigest() == side["weights_sha256"]


# The cohorts train in study order (w128, w96, w64, w32), two seeds each; checkpoint 3
# is the first of the second cohort.
@pytest.mark.parametrize(("fault", "done", "left"), [
    ("checkpoint@3=kill", 2, ["width=w96/.seed-0.safetensors."]),  # inside a weights write
    ("checkpoint-sidecar@1=kill", 0, ["width=w128/.seed-0.json."]),  # inside its sidecar's
    ("cohort-recorded@1=kill", 2, []),  # between two cohorts
])
def test_kill_9_then_rerun_completes_with_nothing_lost_or_duplicated(
        cli: CliRunner, unpacked_file: Path, tmp_path: Path, fault: str, done: int,
        left: list[str]) -> None:
    study_file = unpacked_file
    out = tmp_path / "runs"
    run_dir = out / "tiny"
    proc = _start(study_file, out, fault=fault)
    proc.communicate(timeout=600)
    assert proc.returncode == -signal.SIGKILL
    killed = _rows(run_dir)
    done_before = {(a, s): t for a, s, st, t in killed if st == "done"}
    assert len(done_before) == done
    assert any(st == "running" for _, _, st, _ in killed) == bool(left)
    _checkpoints_complete(run_dir, list(done_before))
    names = [str(p.relative_to(run_dir / "checkpoints")) for p in _temporaries(run_dir)]
    assert len(names) == len(left) and all(n.startswith(w) for n, w in zip(names, left,
                                                                           strict=True))

    result = cli.invoke(app, ["study", str(study_file), "--out", str(out), "--epochs", EPOCHS,
                              "--no-report"])
    assert result.exit_code == 0, result.output
    assert (f"removed {len(left)} temporary file" in result.output) == bool(left)
    rows = _rows(run_dir)
    assert len(rows) == 8 and {st for _, _, st, _ in rows} == {"done"}
    assert {(a, s): t for a, s, _, t in rows if (a, s) in done_before} == done_before
    assert set(_epoch_counts(run_dir).values()) == {int(EPOCHS)}  # no epoch recorded twice
    _checkpoints_complete(run_dir, [(a, s) for a, s, _, _ in rows])
    assert not _temporaries(run_dir)  # the killed writer's file is gone, its write redone


@pytest.mark.parametrize(("fault", "done"), [
    ("cohort-recorded@1=interrupt", 2),  # between two cohorts
    ("checkpoint@3=interrupt", 2),  # inside a checkpoint write: its temporary file goes
])
def test_ctrl_c_stops_cleanly_and_a_rerun_resumes(cli: CliRunner, unpacked_file: Path,
                                                  tmp_path: Path, fault: str, done: int
                                                  ) -> None:
    study_file = unpacked_file
    out = tmp_path / "runs"
    run_dir = out / "tiny"
    proc = _start(study_file, out, fault=fault)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 130
    assert b"interrupted" in output and b"Traceback" not in output
    statuses = [st for _, _, st, _ in _rows(run_dir)]
    assert "running" not in statuses and statuses.count("done") == done
    assert "pending" in statuses and not _temporaries(run_dir)
    result = cli.invoke(app, ["study", str(study_file), "--out", str(out), "--epochs", EPOCHS,
                              "--no-report"])
    assert result.exit_code == 0
    assert {st for _, _, st, _ in _rows(run_dir)} == {"done"}


def _line_with(proc: subprocess.Popen, text: bytes) -> None:
    """Read `proc`'s output until a line holds `text` (fail if it ends first)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if text in line:
            return
    raise AssertionError(f"{text!r} never came (exit {proc.wait()})")


def _wait_for(path: Path, proc: subprocess.Popen) -> None:
    """Until `path` exists: the process under test has reached its held point."""
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"it ended (exit {proc.returncode}) before its held point: "
                                 f"{proc.communicate()[0]!r}")
        time.sleep(0.05)


def test_two_drivers_on_one_directory_never_train_a_run_twice(unpacked_file: Path,
                                                               tmp_path: Path) -> None:
    """A second `ablate study` on a directory in use stops with one line naming the first;
    with --wait it starts when the first is done, and then finds nothing to train. The
    first is held after its first cohort (ablate.faults) until the others have spoken."""
    study_file = unpacked_file
    out = tmp_path / "runs"
    run_dir = out / "tiny"
    go = tmp_path / "go"
    first = _start(study_file, out, fault=f"cohort-recorded@1=wait:{go}")
    try:
        _wait_for(tmp_path / "go.reached", first)
        refused = subprocess.run(
            [sys.executable, "-m", "tests.study_harness", "study", str(study_file), "--out",
             str(out), "--epochs", EPOCHS, "--no-report"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
            env={k: v for k, v in os.environ.items() if k != ENV})
        assert refused.returncode == 2, refused.stderr
        assert f"pid {first.pid}" in refused.stderr and "--wait" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        waiter = _start(study_file, out, "--wait")
        _line_with(waiter, b"waiting")  # it found the directory in use, and waits
    finally:
        go.touch()  # the first goes on
    first_output, _ = first.communicate(timeout=600)
    assert first.returncode == 0, first_output
    finished = _rows(run_dir)
    assert {st for *_, st, _ in finished} == {"done"}
    waited, _ = waiter.communicate(timeout=600)
    assert waiter.returncode == 0, waited
    assert b"Nothing to do" in waited
    assert _rows(run_dir) == finished  # same started times: nothing trained twice


def _stored_numbers(run_dir: Path) -> list[tuple]:
    with sqlite3.connect(run_dir / DB_NAME) as db:
        rows = db.execute("SELECT arm, seed, config_hash, val_accuracy, test_loss, checkpoint "
                          "FROM runs ORDER BY arm, seed").fetchall()
    return [(*r[:5], hashlib.sha256((run_dir / r[5]).read_bytes()).hexdigest()) for r in rows]


def test_a_study_gives_the_same_runs_whatever_the_process_thread_count(
        cli: CliRunner, study_file: Path, tmp_path: Path) -> None:
    """In process with 2 torch threads by default, and in a process started with
    OMP_NUM_THREADS=1: the same config hashes, metrics and checkpoint bytes. (Narrow
    layers with batch norm: there the CPU's sums differ between 1 and 2 threads, so this
    fails without the pin.)"""
    study_file.write_text(TINY_STUDY.replace("layers = [128]", "layers = [32, 16]\n"
                                             "batch_norm = \"after\"")
                          .replace("batch_size = 100", "batch_size = 64"))
    args = ["--seeds", "1", "--epochs", "2", "--no-report"]
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert cli.invoke(app, ["study", str(study_file), "--out", str(tmp_path / "two"),
                                *args]).exit_code == 0
    finally:
        torch.set_num_threads(saved)
    one = subprocess.run(
        [sys.executable, "-m", "tests.study_harness", "study", str(study_file), "--out",
         str(tmp_path / "one"), *args], cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**{k: v for k, v in os.environ.items() if k != ENV}, "OMP_NUM_THREADS": "1"})
    assert one.returncode == 0, one.stdout + one.stderr
    assert _stored_numbers(tmp_path / "two" / "tiny") == _stored_numbers(tmp_path / "one" / "tiny")
