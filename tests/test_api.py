"""The public Python API, as a notebook uses it, on the committed MNIST subset."""

import json
import sys
from pathlib import Path

import pytest
from rich.console import Console

import ablate
from ablate.errors import UserError
from tests.study_harness import SUBSET_RUNTIME, TINY_STUDY


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> ablate.StudyRun:
    root = tmp_path_factory.mktemp("api")
    study_file = root / "tiny.toml"
    study_file.write_text(TINY_STUDY)
    return ablate.run_study(study_file, out=root / "runs", epochs=2,
                            console=Console(quiet=True), runtime=SUBSET_RUNTIME)


def test_every_public_name_resolves() -> None:
    for name in ablate.__all__:
        assert getattr(ablate, name) is not None, name
    with pytest.raises(AttributeError):
        ablate.no_such_name  # noqa: B018


def test_run_study_trains_every_run_with_the_cli_options(finished: ablate.StudyRun) -> None:
    study = ablate.load_study(finished.run_dir.parent.parent / "tiny.toml")
    assert finished.planned == len(study.arms) * len(study.seeds) == 8
    assert (finished.trained, finished.failed, finished.exit_code) == (8, 0, 0)
    runs = ablate.read_runs(finished.run_dir)
    assert len(runs) == 8 and {r.status for r in runs} == {"done"}
    assert {r.epochs for r in runs} == {2}  # epochs=2 applied, as --epochs 2 would


def test_a_rerun_trains_nothing(finished: ablate.StudyRun) -> None:
    again = ablate.run_study(finished.run_dir.parent.parent / "tiny.toml",
                             out=finished.run_dir.parent, epochs=2, report=False,
                             console=Console(quiet=True), runtime=SUBSET_RUNTIME)
    assert (again.planned, again.trained, again.failed) == (8, 0, 0)


def test_runs_to_pandas_has_one_row_per_run(finished: ablate.StudyRun) -> None:
    runs = ablate.read_runs(finished.run_dir)
    frame = runs.to_pandas()
    assert list(frame.columns)[:3] == ["arm", "seed", "config_hash"]
    assert frame.shape[0] == len(runs)
    for row, run in zip(frame.itertuples(index=False), runs, strict=True):
        assert (row.arm, row.seed, row.test_accuracy) == (run.arm, run.seed, run.test_accuracy)


def test_the_report_objects_match_report_json(finished: ablate.StudyRun) -> None:
    analysed = ablate.analyse(finished.run_dir)
    written = ablate.write_report(finished.run_dir)
    assert [p.name for p in written.paths] == ["report.md", "report.html", "report.json"]
    assert analysed.paths == ()
    on_disk = json.loads((finished.run_dir / "report.json").read_text())
    assert written.headline == on_disk["headline"] and written.answer == on_disk["answer"]
    for c, d in zip(written.contrasts, on_disk["contrasts"], strict=True):
        mine = c.to_dict()  # strict JSON: an unbounded interval end is null on disk too
        for key in ("arm", "decision", "mean_diff", "ci_low", "ci_high", "p_holm"):
            assert mine[key] == d[key], key
    frame = written.to_pandas()
    assert list(frame["arm"]) == [c.arm for c in written.contrasts]
    assert list(frame["decision"]) == [c.decision for c in analysed.contrasts]


def test_to_pandas_without_pandas_names_the_install(finished: ablate.StudyRun,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now fails
    with pytest.raises(UserError, match="pip install pandas"):
        ablate.read_runs(finished.run_dir).to_pandas()


def test_user_mistakes_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such study file"):
        ablate.run_study(tmp_path / "missing.toml")
    with pytest.raises(UserError, match="no runs.sqlite"):
        ablate.read_runs(tmp_path)
