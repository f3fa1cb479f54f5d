"""Table sources (CSV, JSON lines, JSON arrays, Parquet, DataFrames) and the one
validation every source goes through: each malformed input is one line naming the
problem and how to fix it."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from ablate.errors import UserError
from ablate.sources import Columns, read_source

COLS = Columns(("arm",), "seed", "acc")


def write(tmp_path: Path, text: str, name: str = "runs.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_types_statuses_and_order(tmp_path: Path) -> None:
    path = write(tmp_path, "arm,seed,acc,note\n"
                 "base,0,0.95,x\nbase,1,0.96,\ndrop,0,nan,blew up\ndrop,1,,lost\n"
                 "drop,2.0,0.97,\nbase,2,inf,\n")
    t = read_source(path, COLS)
    assert t.arms == ("base", "drop") and t.kind == "table"
    by = {(r.arm, r.seed): r for r in t.runs}
    assert by["base", 0].value == 0.95 and by["base", 0].status == "done"
    assert by["drop", 0].status == "diverged" and by["drop", 0].value is None
    assert by["base", 2].status == "diverged"  # inf is not finite either
    assert by["drop", 1].status == "done" and by["drop", 1].value is None
    assert by["drop", 1].error == "no acc value"
    assert by["drop", 2].value == 0.97  # seed "2.0" is the integer 2
    assert t.seeds("drop") == (0, 1, 2)


def test_status_column_wins_and_is_checked(tmp_path: Path) -> None:
    path = write(tmp_path, "arm,seed,acc,state\nb,0,0.9,done\nb,1,0.8,failed\n"
                 "a,0,0.7,DIVERGED\na,1,0.5,done\n")
    t = read_source(path, Columns(("arm",), "seed", "acc", "state"))
    by = {(r.arm, r.seed): r for r in t.runs}
    assert by["b", 1].status == "failed" and by["b", 1].value is None
    assert by["a", 0].status == "diverged" and by["a", 0].value is None
    bad = write(tmp_path, "arm,seed,acc,state\nb,0,0.9,ok\na,0,0.9,done\n", "bad.csv")
    with pytest.raises(UserError, match=r"line 2: status state = 'ok'; expected one of done"):
        read_source(bad, Columns(("arm",), "seed", "acc", "state"))


def test_factor_columns_build_arm_names(tmp_path: Path) -> None:
    path = write(tmp_path, "dropout,bn,seed,acc\non,on,0,0.9\noff,on,0,0.8\non,off,0,0.7\n")
    t = read_source(path, Columns(("dropout", "bn"), "seed", "acc"))
    assert t.arms == ("dropout=on,bn=on", "dropout=off,bn=on", "dropout=on,bn=off")
    assert t.arm_levels("dropout=off,bn=on") == (("dropout", "off"), ("bn", "on"))


@pytest.mark.parametrize(("text", "columns", "message"), [
    ("arm,seed,val\nb,0,1\na,0,2\n", COLS,
     r"runs.csv: no field 'acc' for the metric; fields: arm, seed, val"),
    ("arms,seed,acc\nb,0,1\na,0,2\n", COLS,
     r"no field 'arm' for the arm; did you mean 'arms'\?"),
    ("arm,seed,acc\nb,0,0.9\na,0,0.8\nb,0,0.7\n", COLS,
     r"line 4: arm 'b' seed 0 appears twice \(also .*line 2\); keep one run per arm"),
    ("arm,seed,acc\nb,0,0.9\na,0,high\n", COLS,
     r"line 3: acc = 'high' is not a number; the metric must be numeric"),
    ("arm,seed,acc\nb,0,0.9\nb,1,0.8\n", COLS,
     r"every run is in one arm \('b' of arm\); a comparison needs at least two arms"),
    ("arm,seed,acc\nb,x,0.9\na,0,0.8\n", COLS, r"line 2: seed seed is 'x', not an integer"),
    ("arm,seed,acc\nb,0.5,0.9\na,0,0.8\n", COLS, r"seed seed is '0.5', not an integer"),
    ("arm,seed,acc\n,0,0.9\na,0,0.8\n", COLS, r"line 2: the arm field 'arm' is empty"),
    ("arm,seed,acc\nb,0,0.9,7\na,0,0.8\n", COLS, r"line 2 has 4 cells but the header names 3"),
    ("", COLS, r"empty file"),
    ("arm,seed,acc\n", COLS, r"no runs found"),
])
def test_malformed_tables(tmp_path: Path, text: str, columns: Columns, message: str) -> None:
    with pytest.raises(UserError, match=message):
        read_source(write(tmp_path, text), columns)


def test_grid_is_checked(tmp_path: Path) -> None:
    path = write(tmp_path, "arm,seed,acc\nb,0,0.9712\na,0,0.97125\n")
    with pytest.raises(UserError, match=r"line 3: acc = 0.97125 is not on the grid of "
                       r"resolution 0.0001 \(it is 0.5 steps off\)"):
        read_source(path, COLS, resolution=1e-4)
    assert read_source(path, COLS, resolution=1e-5).snapped == 0


def test_json_lines_and_arrays(tmp_path: Path) -> None:
    rows = [{"arm": "b", "seed": 0, "acc": 0.9}, {"arm": "a", "seed": 0, "acc": None},
            {"arm": "a", "seed": 1, "acc": math.nan}]
    lines = write(tmp_path, "\n".join(json.dumps(r) for r in rows) + "\n", "runs.jsonl")
    t = read_source(lines, COLS)
    assert [(r.arm, r.seed, r.status, r.value) for r in t.runs] == [
        ("b", 0, "done", 0.9), ("a", 0, "done", None), ("a", 1, "diverged", None)]
    array = write(tmp_path, json.dumps(rows), "runs.json")
    same = read_source(array, COLS)
    assert [(r.arm, r.seed, r.status, r.value) for r in same.runs] == \
        [(r.arm, r.seed, r.status, r.value) for r in t.runs]
    assert same.runs[1].where.endswith("runs.json: run 2")
    broken = write(tmp_path, '{"arm": "b"}\n{oops\n', "broken.jsonl")
    with pytest.raises(UserError, match=r"line 2 is not valid JSON"):
        read_source(broken, COLS)


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"arm": ["b", "b", "a", "a"], "seed": [0, 1, 0, 1],
                      "acc": [0.9, None, float("nan"), 0.8]})
    path = tmp_path / "runs.parquet"
    pq.write_table(table, path)
    t = read_source(path, COLS)
    assert [(r.status, r.value) for r in t.runs] == [
        ("done", 0.9), ("done", None), ("diverged", None), ("done", 0.8)]


def test_parquet_without_pyarrow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "runs.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # as if not installed
    with pytest.raises(UserError, match=r"reading Parquet needs pyarrow, which is not "
                       r"installed: pip install 'ablate\[parquet\]'"):
        read_source(path, COLS)


def test_dataframe() -> None:
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame({"arm": ["b", "a", "a"], "seed": [0, 0, 1],
                              "acc": [0.9, 0.8, float("nan")]})
    t = read_source(frame, COLS)
    assert t.kind == "dataframe" and [r.status for r in t.runs] == ["done", "done", "diverged"]


def test_unknown_sources(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file or folder"):
        read_source(tmp_path / "nope.csv", COLS)
    (tmp_path / "runs.xlsx").write_bytes(b"")
    with pytest.raises(UserError, match=r"unknown table format '.xlsx'"):
        read_source(tmp_path / "runs.xlsx", COLS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="neither TensorBoard event files nor an MLflow"):
        read_source(tmp_path / "empty", COLS)
    with pytest.raises(UserError, match="expected a pandas DataFrame"):
        read_source(42, COLS)
