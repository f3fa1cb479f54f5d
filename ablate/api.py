"""The public Python API: what the CLI does, for notebooks and scripts.

    import ablate
    study = ablate.load_study("studies/dropout.toml")
    done = ablate.run_study("studies/dropout.toml", seeds=3, epochs=2, subset=5000)
    runs = ablate.read_runs(done.run_dir)          # plain objects; runs.to_pandas()
    report = ablate.write_report(done.run_dir)      # report.{md,html,json} + decisions
    for c in report.contrasts:
        print(c.arm, c.decision, c.mean_diff, c.ci_low, c.ci_high)

Every CLI command is one call here (`ablate.cli` is a thin layer over this module);
options and defaults are the CLI's (`StudyOptions`).
"""

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

if TYPE_CHECKING:
    import pandas

from ablate.analysis import Analysis, analyse_run_dir
from ablate.design import Study, load_study, read_record
from ablate.errors import UserError
from ablate.report import answer_paragraph, headline, write_report_files
from ablate.stats import Contrast
from ablate.store import Run, Store
from ablate.study import Runtime, StudyOptions, StudyRun
from ablate.study import run_study as _run_study

__all__ = ["Report", "Runs", "Runtime", "Study", "StudyOptions", "StudyRun", "analyse",
           "load_study", "read_runs", "run_study", "write_report"]


def run_study(path: Path | str, options: StudyOptions | None = None, *,
              console: Console | None = None, runtime: Runtime | None = None,
              **option_values: Any) -> StudyRun:
    """Run a study file to the end, exactly as `ablate study` does.

    Options as a `StudyOptions` or as its keyword arguments (`seeds=3, epochs=2`).
    Raises `UserError` for mistakes the user can fix (bad file, bad option).
    """
    return _run_study(path, options or StudyOptions(**option_values), console or Console(),
                      runtime or Runtime())


class Runs(tuple[Run, ...]):
    """Every run of a study (`ablate runs`), as plain `Run` objects; `study` is the
    study they are runs of (None for a store without a readable record)."""

    study: Study | None = None

    def to_pandas(self) -> "pandas.DataFrame":
        """One row per run, the columns of `Run` (needs pandas: pip install pandas)."""
        return _dataframe([r.to_dict() for r in self], list(Run.__dataclass_fields__))


def read_runs(run_dir: Path | str) -> Runs:
    """Every run of the study in `run_dir` with its status and final metrics."""
    store = Store.open_existing(Path(run_dir))
    try:
        runs = Runs(store.runs())
        with contextlib.suppress(UserError):  # a store too old to name its study
            runs.study = read_record(store).study
        return runs
    finally:
        store.close()


@dataclass(frozen=True)
class Report:
    """A study's verdict: the contrasts' decisions and the words the report uses."""

    run_dir: Path
    headline: str  # e.g. "dropout=off vs dropout=on: better"
    answer: str  # the study's question answered in one paragraph
    contrasts: tuple[Contrast, ...]  # one decision each (see `ablate.stats.Contrast`)
    paths: tuple[Path, ...] = ()  # report.md, .html, .json when written

    def to_pandas(self) -> "pandas.DataFrame":
        """One row per contrast, the keys of report.json's `contrasts` (needs pandas)."""
        rows = [c.to_dict() for c in self.contrasts]
        return _dataframe(rows, list(rows[0]) if rows else [])


def analyse(run_dir: Path | str) -> Report:
    """The verdict of the study in `run_dir`, computed without writing any file."""
    return _report(analyse_run_dir(Path(run_dir)), Path(run_dir), ())


def write_report(run_dir: Path | str) -> Report:
    """Write RUN_DIR/report.{md,html,json} (`ablate report`) and return the verdict."""
    analysis = analyse_run_dir(Path(run_dir))
    return _report(analysis, Path(run_dir), tuple(write_report_files(analysis, Path(run_dir))))


def _report(a: Analysis, run_dir: Path, paths: tuple[Path, ...]) -> Report:
    return Report(run_dir, headline(a), answer_paragraph(a), a.contrasts, paths)


def _dataframe(rows: list[dict[str, Any]], columns: list[str]) -> "pandas.DataFrame":
    try:
        import pandas
    except ImportError:
        raise UserError("to_pandas() needs pandas: pip install pandas") from None
    return pandas.DataFrame(rows, columns=columns)
