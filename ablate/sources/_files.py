"""Tables of runs, one row per run: CSV, JSON lines, Parquet, or a pandas DataFrame.

CSV is read as text (the standard library's reader), so an empty cell stays "missing"
and `nan` stays "not a number": the two mean different things (a run without a value,
a diverged run) and a parser that turned both into NaN would lose that. JSON lines
keep JSON's types (`NaN` and `Infinity` as Python's json reads them). Parquet needs
pyarrow (an optional extra); its nulls are missing values, its NaNs NaN.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from ablate.errors import UserError
from ablate.extras import need
from ablate.sources._table import Record

__all__ = ["TABLE_SUFFIXES", "read_dataframe", "read_table"]

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".parquet", ".pq")


def _csv(path: Path) -> list[Record]:
    delimiter = "\t" if path.suffix == ".tsv" else ","
    with path.open(newline="", encoding="utf-8-sig") as fh:  # -sig: a BOM from Excel
        reader = csv.DictReader(fh, delimiter=delimiter)
        if not reader.fieldnames:
            raise UserError(f"{path}: empty file; expected a header row of column names")
        out = []
        for i, row in enumerate(reader, start=2):  # line 1 is the header
            if None in row:  # more cells than the header has names
                raise UserError(f"{path}: line {i} has {len(reader.fieldnames) + len(row[None])}"
                                f" cells but the header names {len(reader.fieldnames)}")
            out.append(Record({k: v for k, v in row.items()}, f"{path}: line {i}"))
    return out


def _jsonl(path: Path) -> list[Record]:
    out = []
    with path.open(encoding="utf-8") as fh:
        text = fh.read()
    if path.suffix == ".json" and text.lstrip().startswith("["):  # `ablate runs --format json`
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: not valid JSON ({exc})") from None
        if not all(isinstance(r, dict) for r in rows):
            raise UserError(f"{path}: expected a JSON array of objects, one per run")
        return [Record(r, f"{path}: run {i}") for i, r in enumerate(rows, start=1)]
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: line {i} is not valid JSON ({exc.msg}); expected one "
                            "JSON object per line") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}: line {i} is not a JSON object")
        out.append(Record(row, f"{path}: line {i}"))
    return out


def _parquet(path: Path) -> list[Record]:
    pq = need("pyarrow.parquet", "parquet", "reading Parquet")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow's ArrowInvalid and friends: not a Parquet file
        raise UserError(f"{path}: not a readable Parquet file ({exc})") from None
    rows: list[dict[str, Any]] = table.to_pylist()
    return [Record(r, f"{path}: row {i}") for i, r in enumerate(rows, start=1)]


def read_table(path: Path) -> list[Record]:
    """The rows of a CSV / TSV, JSON lines (or a JSON array) or Parquet file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return _csv(path)
    if suffix in (".jsonl", ".ndjson", ".json"):
        return _jsonl(path)
    if suffix in (".parquet", ".pq"):
        return _parquet(path)
    raise UserError(f"{path}: unknown table format {suffix!r}; expected one of "
                    f"{', '.join(TABLE_SUFFIXES)} (or an MLflow store or TensorBoard folder)")


def read_dataframe(frame: Any) -> list[Record]:
    """The rows of a pandas DataFrame. pandas has no "missing" apart from NaN in a float
    column, so a NaN metric there is a diverged run, as everywhere: leave out the row of
    a run without a value, or say so in a status column."""
    if not hasattr(frame, "to_dict") or not hasattr(frame, "columns"):
        raise UserError(f"expected a pandas DataFrame, a table file, an MLflow store or a "
                        f"TensorBoard folder, got {type(frame).__name__}")
    rows = frame.to_dict(orient="records")
    out = []
    for i, row in enumerate(rows):
        out.append(Record({str(k): v for k, v in row.items()}, f"row {i}"))
    return out
