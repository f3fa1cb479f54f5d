"""The public Python API, as a notebook uses it, on the committed MNIST subset."""

import json
import re
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

import ablate
from ablate.cli import app
from ablate.errors import UserError
from ablate.store import Store
from tests.study_harness import SUBSET_RUNTIME, TINY_STUDY, SubsetCliRunner


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


def test_every_path_argument_takes_a_str(finished: ablate.StudyRun, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = str(finished.run_dir)
    assert len(ablate.read_runs(run_dir)) == 8
    assert ablate.analyse(run_dir).headline == ablate.write_report(run_dir).headline
    study_file = str(finished.run_dir.parent.parent / "tiny.toml")
    assert ablate.load_study(study_file).name == "tiny"
    monkeypatch.chdir(tmp_path)
    dry = ablate.run_study(study_file, out="scratch", dry_run=True, console=Console(quiet=True),
                           runtime=SUBSET_RUNTIME)
    assert dry.run_dir == Path("scratch") / "tiny"


def test_dir_lists_the_api_and_the_version_is_the_installed_one() -> None:
    from importlib.metadata import version

    names = dir(ablate)
    assert set(ablate.__all__) <= set(names) and "__version__" in names
    assert "importlib" not in names and "Any" not in names
    assert ablate.__version__ == version("ablate")
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"ablate {ablate.__version__}"


def test_runs_and_report_have_a_short_repr_and_html(finished: ablate.StudyRun) -> None:
    runs = ablate.read_runs(finished.run_dir)
    assert repr(runs) == "<Runs: 8 runs of 'tiny': 8 done>"
    html = runs._repr_html_()
    assert html.count("<tr>") == 1 + 8 and "cross-fit val accuracy" in html
    for r in runs:
        assert f"{r.test_accuracy * 100:.2f}%" in html  # type: ignore[operator]
    written = ablate.write_report(finished.run_dir)
    assert repr(written) == (f"<Report tiny: {written.headline}; "
                             f"{finished.run_dir / 'report.html'}>")
    assert len(repr(written)) < 200
    view = written._repr_html_()
    assert written.headline in view and 'src="data:image/png;base64,' in view
    for c in written.contrasts:
        assert c.decision.upper() in view and f"{c.arm} vs {c.baseline}" in view
    analysed = ablate.analyse(finished.run_dir)  # nothing written: no plot, no link
    assert "data:image/png" not in analysed._repr_html_()
    assert repr(analysed) == f"<Report tiny: {analysed.headline}>"


def test_report_to_pandas_flattens_the_nested_fields(finished: ablate.StudyRun) -> None:
    report = ablate.analyse(finished.run_dir)
    frame = report.to_pandas()
    for row, c in zip(frame.to_dict("records"), report.contrasts, strict=True):
        nested = c.to_dict()
        assert not any(isinstance(v, dict) for v in row.values())
        for group in ("pairing", "divergence", "power"):
            if isinstance(nested[group], dict):
                for key, value in nested[group].items():
                    if not isinstance(value, dict):
                        got = row[f"{group}.{key}"]
                        missing = value is None or value != value  # pandas: None -> NaN
                        assert got == value or (missing and (got is None or got != got)), \
                            (group, key, got, value)
        assert row["arm"] == c.arm and row["decision"] == c.decision
    assert "pairing.correlation" in frame.columns and "divergence.p_value" in frame.columns


def test_a_user_error_in_the_api_names_the_parameter_not_the_flag(
        finished: ablate.StudyRun, tmp_path: Path) -> None:
    study_file = finished.run_dir.parent.parent / "tiny.toml"
    with pytest.raises(UserError) as exc:
        ablate.run_study(study_file, out=tmp_path, seeds=0)
    assert str(exc.value) == "seeds must be at least 1, got 0"
    with pytest.raises(UserError) as exc:
        ablate.run_study(study_file, out=tmp_path, device="gpu")
    assert str(exc.value).startswith("device='gpu' is not a device")
    # Another driver holds the run directory: the API says wait=True, the CLI --wait.
    store = Store(tmp_path / "tiny")
    store.acquire()
    try:
        with pytest.raises(UserError) as exc:
            ablate.run_study(study_file, out=tmp_path, console=Console(quiet=True),
                             runtime=SUBSET_RUNTIME)
        assert "rerun with wait=True to start" in str(exc.value)
        assert "--wait" not in str(exc.value)
        result = SubsetCliRunner().invoke(app, ["study", str(study_file), "--out",
                                                str(tmp_path)], env={"COLUMNS": "1000"})
        assert result.exit_code == 2 and "rerun with --wait to start" in result.output
    finally:
        store.close()


@pytest.mark.parametrize("command", [[], ["study"], ["runs"], ["report"], ["serve"], ["check"],
                                     ["export"], ["summary"], ["data", "fetch"]])
def test_help_shows_no_type_for_a_flag(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "--help" in result.output
    if command == ["study"]:
        assert "<int>" in result.output  # options that take a value still show it
        assert re.search(r"--dry-run\s+Show the plan", result.output)
