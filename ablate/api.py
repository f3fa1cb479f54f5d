"""The public Python API: what the CLI does, for notebooks and scripts.

    import ablate
    study = ablate.load_study("studies/dropout.toml")
    done = ablate.run_study("studies/dropout.toml", seeds=3, epochs=2, subset=5000)
    runs = ablate.read_runs(done.run_dir)          # plain objects; runs.to_pandas()
    report = ablate.write_report(done.run_dir)      # report.{md,html,json} + decisions
    for c in report.contrasts:
        print(c.arm, c.decision, c.mean_diff, c.ci_low, c.ci_high)

    # Runs trained anywhere: a table, a DataFrame, an MLflow store, a TensorBoard folder.
    verdict = ablate.analyze("runs.csv", arm="optimizer", metric="val_acc",
                             baseline="sgd", rope=0.002, resolution=1e-4)

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

from ablate.analysis import Analysis, analyse_run_dir, analyse_source, sequential_source
from ablate.design import Study, load_study, read_record
from ablate.errors import UserError
from ablate.options import AnalyzeOptions
from ablate.report import answer_paragraph, headline, write_report_files
from ablate.stats import Contrast
from ablate.store import Run, Store
from ablate.study import Runtime, StudyOptions, StudyRun
from ablate.study import run_study as _run_study

__all__ = ["AnalyzeOptions", "Report", "Runs", "Runtime", "Study", "StudyOptions", "StudyRun",
           "analyse", "analyze", "analyze_next", "load_study", "read_runs", "run_study",
           "write_analysis", "write_report"]


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


def _analyze_options(options: AnalyzeOptions | None, values: dict[str, Any]) -> AnalyzeOptions:
    from dataclasses import replace

    return replace(options or AnalyzeOptions(), **values)


def analyze(source: Any, options: AnalyzeOptions | None = None, **option_values: Any
            ) -> Report:
    """The verdict for runs trained anywhere, computed without writing any file.

    source: a table file (CSV, TSV, JSON lines, Parquet), a pandas DataFrame (one row
    per run), an MLflow store (an mlruns/ folder, a *.db file or a tracking URI) or a
    TensorBoard folder. Options as an `AnalyzeOptions` or its keyword arguments
    (`arm="optimizer", metric="val_acc", baseline="sgd", rope=0.002`). The same
    analysis, sentences and report.json as `ablate report` (`ablate analyze`).
    """
    opts = _analyze_options(options, option_values)
    a = analyse_source(source, opts)
    return _report(a, _out_dir(source, opts), ())


def write_analysis(source: Any, options: AnalyzeOptions | None = None, *,
                   source_text: str = "", **option_values: Any) -> Report:
    """`ablate analyze`: write report.{md,html,json} for runs trained anywhere into
    `options.out` (default: beside a table file, else the current folder)."""
    opts = _analyze_options(options, option_values)
    a = analyse_source(source, opts, source_text)
    out = _out_dir(source, opts)
    out.mkdir(parents=True, exist_ok=True)
    return _report(a, out, tuple(write_report_files(a, out)))


def analyze_next(source: Any, options: AnalyzeOptions | None = None, **option_values: Any
                 ) -> str:
    """`ablate analyze --next`: the runs read as the looks of a group-sequential design;
    one line per contrast (settled or not) and what to do next."""
    opts = _analyze_options(options, option_values)
    result, have = sequential_source(source, opts)
    lines = [f"{v.arm} vs {v.baseline}: {v.decision}"
             + (f" (settled at {v.settled_at} seeds)" if v.settled else " (not settled)")
             for v in result.verdicts]
    if result.stop:
        lines.append(f"stop: {result.why}.")
    elif result.next_seeds is not None:
        lines.append(f"next look at {result.next_seeds} seeds per arm: add "
                     f"{result.next_seeds - have} seeds to every arm ({result.why}).")
    return "\n".join(lines)


def _out_dir(source: Any, options: AnalyzeOptions) -> Path:
    if options.out is not None:
        return options.out
    if isinstance(source, str | Path) and Path(source).is_file() and \
            Path(source).suffix.lower() not in (".db", ".sqlite"):
        return Path(source).parent
    return Path(".")


def _report(a: Analysis, run_dir: Path, paths: tuple[Path, ...]) -> Report:
    return Report(run_dir, headline(a), answer_paragraph(a), a.contrasts, paths)


def _dataframe(rows: list[dict[str, Any]], columns: list[str]) -> "pandas.DataFrame":
    try:
        import pandas
    except ImportError:
        raise UserError("to_pandas() needs pandas: pip install pandas") from None
    return pandas.DataFrame(rows, columns=columns)
