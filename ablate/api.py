"""The public Python API: what the CLI does, for notebooks and scripts.

    import ablate
    study = ablate.load_study("studies/dropout.toml")
    done = ablate.run_study("studies/dropout.toml", seeds=6, epochs=2, subset=5000)
    runs = ablate.read_runs(done.run_dir)          # plain objects; runs.to_pandas()
    report = ablate.write_report(done.run_dir)      # report.{md,html,json} + decisions
    for c in report.contrasts:
        print(c.arm, c.decision, c.mean_diff, c.ci_low, c.ci_high)

    # Runs trained anywhere: a table, a DataFrame, an MLflow store, a TensorBoard folder.
    verdict = ablate.analyze("runs.csv", arm="optimizer", metric="val_acc",
                             baseline="sgd", rope=0.002, resolution=1e-4)

Every CLI command is one call here (`ablate.cli` is a thin layer over this module);
options and defaults are the CLI's (`StudyOptions`). Every path argument takes a `str`
or a `Path`. A mistake the user can fix raises `UserError` in the API's words
(`wait=True`, not `--wait`). In a notebook `Report` and `Runs` show as HTML, and a
study's progress is one display that updates in place.
"""

import contextlib
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from rich.console import Console

if TYPE_CHECKING:
    import pandas

from ablate import design
from ablate.analysis import Analysis, analyse_run_dir, analyse_source, sequential_source
from ablate.design import Study, read_record
from ablate.errors import UserError, speaking_cli
from ablate.options import AnalyzeOptions
from ablate.predictions import PredictionSet
from ablate.report import (
    FILES_DIR,
    answer_paragraph,
    headline,
    notebook_html,
    run_columns,
    runs_html,
    write_report_files,
)
from ablate.stats import Contrast
from ablate.store import Run, Store
from ablate.study import Runtime, StudyOptions, StudyRun
from ablate.study import run_study as _run_study

__all__ = ["AnalyzeOptions", "PredictionSet", "Report", "Runs", "Runtime", "Study",
           "StudyOptions", "StudyRun", "analyse", "analyze", "analyze_next", "load_study",
           "read_predictions", "read_runs", "run_study", "write_analysis", "write_report"]

P = ParamSpec("P")
R = TypeVar("R")


def _in_api_words(fn: Callable[P, R]) -> Callable[P, R]:
    """Raise a `UserError` from `fn` in the API's words (`wait=True`, not `--wait`)."""
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            if speaking_cli():  # the CLI calls the API: its flags are the right words
                raise
            raise exc.in_api_words() from None
    return wrapper


@_in_api_words
def load_study(path: Path | str) -> Study:
    """Parse and validate a study file into its typed `Study`."""
    return design.load_study(path)


@_in_api_words
def run_study(path: Path | str, options: StudyOptions | None = None, *,
              console: Console | None = None, runtime: Runtime | None = None,
              **option_values: Any) -> StudyRun:
    """Run a study file to the end, exactly as `ablate study` does.

    Options as a `StudyOptions` or as its keyword arguments (`seeds=6, epochs=2,
    out="scratch"`). Raises `UserError` for mistakes the user can fix (bad file, bad
    option). In a notebook the progress is one display that updates in place.
    """
    return _run_study(path, options or StudyOptions(**option_values), console or Console(),
                      runtime or Runtime())


class Runs(tuple[Run, ...]):
    """Every run of a study (`ablate runs`), as plain `Run` objects; `study` is the
    study they are runs of (None for a store without a readable record)."""

    study: Study | None = None

    @_in_api_words
    def to_pandas(self) -> "pandas.DataFrame":
        """One row per run, the columns of `Run` (needs pandas: pip install pandas)."""
        return _dataframe([r.to_dict() for r in self], list(Run.__dataclass_fields__))

    def _counts(self) -> str:
        statuses = [r.status for r in self]
        return ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))

    def __repr__(self) -> str:
        of = f" of {self.study.name!r}" if self.study is not None else ""
        counts = f": {self._counts()}" if self else ""
        return f"<Runs: {len(self)} runs{of}{counts}>"

    def _repr_html_(self) -> str:
        """The table `ablate runs` prints, for a notebook."""
        of = f" of {self.study.name}" if self.study is not None else ""
        return runs_html(self, run_columns(self.study),
                         f"{len(self)} runs{of}" + (f" ({self._counts()})" if self else ""))


@_in_api_words
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


@_in_api_words
def read_predictions(run_dir: Path | str) -> PredictionSet:
    """Every finished run's per-image predictions (its kept weights on validation halves
    A and B and on the test set). `.to_pandas()` has one row per (run, split, image) with
    columns arm, seed, split (val_a, val_b, test), image, label, predicted, p_true;
    `.columns()` is the same as NumPy arrays; `.get(arm, seed)` one run's arrays (and the
    test set's class probabilities); `.missing` the finished runs that have none (trained
    before predictions were stored: rerun them)."""
    store = Store.open_existing(Path(run_dir))
    try:
        return store.prediction_set()
    finally:
        store.close()


@dataclass(frozen=True, repr=False)
class Report:
    """A study's verdict: the contrasts' decisions and the words the report uses."""

    run_dir: Path
    headline: str  # e.g. "dropout=off vs dropout=on: better"
    answer: str  # the study's question answered in one paragraph
    contrasts: tuple[Contrast, ...]  # one decision each (see `ablate.stats.Contrast`)
    paths: tuple[Path, ...] = ()  # report.md, .html, .json when written
    html: str = field(default="", compare=False)  # the notebook view (`_repr_html_`)

    @property
    def html_path(self) -> Path | None:
        """report.html, when written."""
        return next((p for p in self.paths if p.suffix == ".html"), None)

    def __repr__(self) -> str:
        where = f"; {self.html_path}" if self.html_path is not None else ""
        return f"<Report {self.run_dir.name}: {self.headline}{where}>"

    def _repr_html_(self) -> str:
        """The verdict box of report.html, the forest plot and the answer."""
        return self.html

    @_in_api_words
    def to_pandas(self) -> "pandas.DataFrame":
        """One row per contrast, the keys of report.json's `contrasts`, nested ones
        flattened (`pairing.correlation`, `divergence.p_value`, `power.power_better`...;
        needs pandas)."""
        rows = [_flatten(c.to_dict()) for c in self.contrasts]
        columns = list(dict.fromkeys(k for row in rows for k in row))
        return _dataframe(rows, columns)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested dict as one level, keys joined by '.' (as `pandas.json_normalize`): a
    nested dict becomes its keys' columns, other values (lists too) stay as they are."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


@_in_api_words
def analyse(run_dir: Path | str) -> Report:
    """The verdict of the study in `run_dir`, computed without writing any file."""
    return _report(analyse_run_dir(Path(run_dir)), Path(run_dir), ())


@_in_api_words
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
    page = next((p for p in paths if p.suffix == ".html"), None)
    forest = run_dir / FILES_DIR / "forest.png"  # written with report.md
    view = notebook_html(a, forest_png=forest.read_bytes() if page and forest.is_file()
                         else None, report_html=page)
    return Report(run_dir, headline(a), answer_paragraph(a), a.contrasts, paths, view)


def _dataframe(rows: list[dict[str, Any]], columns: list[str]) -> "pandas.DataFrame":
    try:
        import pandas
    except ImportError:
        raise UserError("to_pandas() needs pandas: pip install pandas") from None
    return pandas.DataFrame(rows, columns=columns)
