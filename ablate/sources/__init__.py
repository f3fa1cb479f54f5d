"""Runs trained anywhere, read into one validated table (`RunTable`: arm, seed, status,
the metric's value) for `ablate analyze`: a table file (CSV, JSON lines, Parquet), a
pandas DataFrame, an MLflow tracking store or TensorBoard event folders.

`read_source` tells the kind from the source itself; every kind's records go through
the same checks (`_table.build`), so a mistake reads the same whatever the source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablate.errors import UserError
from ablate.sources._files import TABLE_SUFFIXES, read_dataframe, read_table
from ablate.sources._mlflow import is_store, quiet_mlflow, read_mlflow, tracking_uri
from ablate.sources._table import STATUSES, Columns, Record, RunTable, SourceRun, build
from ablate.sources._tensorboard import is_event_dir, read_tensorboard

__all__ = [
    "STATUSES", "TABLE_SUFFIXES", "Columns", "Record", "RunTable", "SourceRun", "build",
    "describe_source", "quiet_mlflow", "read_source", "tracking_uri",
]


def describe_source(source: Any) -> str:
    """'table', 'mlflow', 'tensorboard' or 'dataframe': how `read_source` reads it."""
    if not isinstance(source, str | Path):
        return "dataframe"
    text = str(source)
    if Path(text).is_file() and Path(text).suffix.lower() in TABLE_SUFFIXES:
        return "table"
    if is_store(text):
        return "mlflow"
    if is_event_dir(text):
        return "tensorboard"
    if Path(text).is_dir():
        raise UserError(f"{text}: a folder with neither TensorBoard event files nor an MLflow "
                        "store (experiment folders with meta.yaml) in it")
    if not Path(text).exists():
        raise UserError(f"{text}: no such file or folder")
    raise UserError(f"{text}: unknown table format {Path(text).suffix!r}; expected one of "
                    f"{', '.join(TABLE_SUFFIXES)}, an MLflow store or a TensorBoard folder")


def read_source(source: Any, columns: Columns, *, experiment: str | None = None,
                resolution: float | None = None) -> RunTable:
    """Read and validate every run of `source` (a path, a tracking URI or a DataFrame).

    columns: which fields are the arm, seed, metric and status. For MLflow the status
    defaults to the run's own status. experiment: which MLflow experiment (default:
    the only one with runs). resolution: the metric's grid, checked here (float32
    values snapped). Raises `UserError` (one line) for anything the user can fix.
    """
    kind = describe_source(source)
    if experiment is not None and kind != "mlflow":
        raise UserError("--experiment goes with an MLflow store")
    if kind == "dataframe":
        records, where = read_dataframe(source), "the DataFrame"
    elif kind == "table":
        records, where = read_table(Path(source)), str(source)
    elif kind == "mlflow":
        records, where = read_mlflow(str(source), experiment), tracking_uri(str(source))
        if columns.status is None:
            columns = Columns(columns.arm, columns.seed, columns.metric, "status")
    else:
        records, where = read_tensorboard(str(source)), str(source)
    return build(records, columns, source=where, kind=kind,  # type: ignore[arg-type]
                 resolution=resolution, skip_unlabelled=kind in ("mlflow", "tensorboard"))
