"""One configuration per run directory: its name, the driver's refusal to mix, and the
analysis's refusal to pair runs trained differently (for directories never checked).

The studies train on the committed MNIST subset (tests/study_harness.py), one epoch and
one or two seeds: the refusals come before any training, so only the first study costs.
"""

import io
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

import ablate
from ablate.analysis import analyse_run_dir
from ablate.cli import app
from ablate.errors import UserError
from ablate.options import StudyOptions
from ablate.store import DB_NAME
from ablate.study._directory import run_dir

ROOT = Path(__file__).parents[2]
LEGACY_RUN = ROOT / "tests" / "data" / "legacy_run"


def _rows(run_dir: Path) -> list[tuple]:
    with sqlite3.connect(run_dir / DB_NAME) as db:
        return db.execute("SELECT arm, seed, status, started, config_hash FROM runs "
                          "ORDER BY arm, seed").fetchall()


def test_the_default_directory_names_the_overrides_that_change_a_run() -> None:
    assert run_dir("dropout", StudyOptions()) == Path("runs/dropout")
    assert run_dir("dropout", StudyOptions(seeds=4, until_decided=True)) == Path("runs/dropout")
    assert (run_dir("dropout", StudyOptions(seeds=4, epochs=3, subset=10_000))
            == Path("runs/dropout-epochs3-subset10000"))
    assert run_dir("dropout", StudyOptions(threads=2)) == Path("runs/dropout-threads2")
    assert run_dir("dropout", StudyOptions(out="x", epochs=3)) == Path("x/dropout")


def test_the_readmes_python_example_never_touches_the_studys_own_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ablate.run_study("studies/dropout.toml", seeds=4, epochs=3, subset=10_000)` after
    `make study`: its runs go to their own directory (a dry run here, to stay quick)."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "studies", tmp_path / "studies")
    said = io.StringIO()
    done = ablate.run_study("studies/dropout.toml", seeds=4, epochs=3, subset=10_000,
                            dry_run=True, console=Console(file=said, width=200))
    assert done.run_dir == Path("runs/dropout-epochs3-subset10000")
    assert "into runs/dropout-epochs3-subset10000/" in said.getvalue()
    assert not (tmp_path / "runs").exists()


def test_a_rerun_with_other_settings_stops_before_training(cli: CliRunner, study_file: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "runs"
    base = ["study", str(study_file), "--out", str(out), "--no-report"]
    assert cli.invoke(app, [*base, "--seeds", "1", "--epochs", "1"]).exit_code == 0
    rows = _rows(out / "tiny")
    for extra, message in [
        (["--epochs", "2"], "holds runs with epochs=1; this run asks epochs=2"),
        (["--epochs", "2", "--subset", "800"],
         "holds runs with epochs=1, subset=None; this run asks epochs=2, subset=800"),
        (["--epochs", "1", "--threads", "2"], "holds runs with threads=1; this run asks "
                                              "threads=2"),
        (["--epochs", "2", "--dry-run"], "this run asks epochs=2"),
    ]:
        result = cli.invoke(app, [*base, "--seeds", "1", *extra])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], result.output
        assert "another --out" in lines[0] and "--fresh" in lines[0]
        assert _rows(out / "tiny") == rows  # nothing trained, nothing queued
    more = cli.invoke(app, [*base, "--seeds", "2", "--epochs", "1"])  # adding seeds is fine
    assert more.exit_code == 0, more.output
    after = _rows(out / "tiny")
    assert [r for r in after if r[1] == 0] == rows and len(after) == 8
    fresh = cli.invoke(app, [*base, "--seeds", "1", "--epochs", "2", "--fresh"])
    assert fresh.exit_code == 0, fresh.output
    assert len(_rows(out / "tiny")) == 4


def test_the_api_says_it_in_its_own_words(cli: CliRunner, study_file: Path,
                                          tmp_path: Path) -> None:
    out = tmp_path / "runs"
    assert cli.invoke(app, ["study", str(study_file), "--out", str(out), "--no-report",
                            "--seeds", "1", "--epochs", "1"]).exit_code == 0
    with pytest.raises(UserError, match=r"asks epochs=2: use another out=\.\.\., "
                                        r"fresh=True to replace them"):
        ablate.run_study(study_file, out=out, seeds=1, epochs=2, dry_run=True,
                         console=Console(quiet=True))


def test_a_directory_trained_before_threads_were_pinned_says_so(cli: CliRunner,
                                                                 tmp_path: Path) -> None:
    """The legacy run directory's configs have no thread count: a rerun into it stops,
    saying the count is unknown; its report is untouched (test_report checks it)."""
    (tmp_path / "legacy").mkdir()
    shutil.copy(LEGACY_RUN / "runs.sqlite", tmp_path / "legacy" / DB_NAME)
    result = cli.invoke(app, ["study", str(LEGACY_RUN / "legacy.toml"), "--out",
                              str(tmp_path), "--dry-run"])
    assert result.exit_code == 2, result.output
    assert "holds runs with threads=unknown (unknown: not recorded" in result.output
    assert "this run asks threads=1" in result.output


def test_the_analysis_refuses_to_pair_runs_trained_differently(cli: CliRunner,
                                                               study_file: Path,
                                                               tmp_path: Path) -> None:
    """A directory mixed by an earlier ablate (one run's stored config says 2 epochs, the
    rest 1): the report names the field and the two runs instead of pairing them."""
    out = tmp_path / "runs"
    assert cli.invoke(app, ["study", str(study_file), "--out", str(out), "--no-report",
                            "--seeds", "2", "--epochs", "1"]).exit_code == 0
    analyse_run_dir(out / "tiny", power=False)  # alike: it reports
    with sqlite3.connect(out / "tiny" / DB_NAME) as db:
        (text,) = db.execute("SELECT config FROM runs WHERE arm = 'dropout=off' AND seed = 1"
                             ).fetchone()
        db.execute("UPDATE runs SET config = ? WHERE arm = 'dropout=off' AND seed = 1",
                   (json.dumps({**json.loads(text), "epochs": 2}),))
    with pytest.raises(UserError) as info:
        analyse_run_dir(out / "tiny", power=False)
    text = str(info.value)
    assert "epochs is 1 in dropout=high seed 0 but 2 in dropout=off seed 1" in text
    assert "\n" not in text
