"""The epoch curves beside an outlier flag, on synthetic stores (`make_store`) whose
per-epoch curves are planted, so the departure epoch and every number of the caption are
known by hand: the figure file, its section in report.md and report.html, report.json's
added keys, and the reports that must not have them (no flag; no epoch rows)."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ablate.report._figures import arm_colours
from tests.report.test_report import ONE_AT_A_TIME, make_store, read_json, write_report

EPOCHS = 8
STUDY = ONE_AT_A_TIME.format(seeds=10).replace("epochs = 3", f"epochs = {EPOCHS}")
ON = {s: 0.9700 + 0.0005 * d for s, d in enumerate((0, 2, -2, 1, -1, 3, -3, 0, 1, -1))}
# dropout=off: seeds 0..8 finish near 97.5%, seed 6 far below (the planted bad seed), seed
# 9 diverges after epoch 3 (its final score is never used).
OFF = {0: 0.9750, 1: 0.9760, 2: 0.9740, 3: 0.9755, 4: 0.9745, 5: 0.9765, 6: 0.9300,
       7: 0.9735, 8: 0.9750, 9: 0.9750}
BAD, DIVERGED = 6, 9


def rising(final: float) -> list[float]:
    """A bulk seed's validation accuracy: 0.25 points a epoch up to its final score."""
    return [final - 0.0025 * (EPOCHS - e) for e in range(1, EPOCHS + 1)]


# The bulk (seeds 0-5, 7, 8) at epoch e spans [0.9735, 0.9765] - 0.0025 (8 - e). Seed 6
# starts inside it (epoch 1: 0.9575 in [0.9560, 0.9590]), dips out at epoch 2 (0.9400 <
# 0.9585), is back inside at epochs 3 and 4 (0.9625 in [0.9610, 0.9640], 0.9650 in
# [0.9635, 0.9665]) and falls below it from epoch 5 (0.9500 < 0.9660) to the end: it
# departs from epoch 5 of 8, in the second half of training (a late departure; the
# epoch-2 dip does not count, it came back).
PLANTED = [0.9575, 0.9400, 0.9625, 0.9650, 0.9500, 0.9400, 0.9350, 0.9300]
DEPARTS = 5
CURVES = {**{("dropout=on", s): rising(v) for s, v in ON.items()},
          **{("dropout=off", s): rising(v) for s, v in OFF.items()},
          ("dropout=off", BAD): PLANTED,
          ("dropout=off", DIVERGED): rising(OFF[DIVERGED])[:3] + [float("nan")] * 5}
FIGURE = "report_files/unstable_2_dropout_off.png"  # dropout=off is the study's 2nd arm


def planted(tmp: Path, scores: dict[str, dict[int, float]], curves: Any = CURVES) -> Path:
    run_dir = make_store(tmp, STUDY, scores, {("dropout=off", DIVERGED): "diverged"},
                         curves=curves)
    write_report(run_dir, power=False)
    return run_dir


@pytest.fixture(scope="module")
def flagged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    run_dir = planted(tmp_path_factory.mktemp("unstable"), {"dropout=on": ON, "dropout=off": OFF})
    return run_dir, read_json(run_dir / "report.json")


def test_the_bad_seed_is_flagged_and_its_departure_epoch_is_the_hand_computed_one(
        flagged: tuple[Path, dict[str, Any]]) -> None:
    _, report = flagged
    off, on = report["outliers"]["dropout=off"], report["outliers"]["dropout=on"]
    assert off["seeds"] == [BAD] and on["seeds"] == []
    assert off["departs_from_epoch"] == [DEPARTS] and off["departure"] == ["late"]
    assert off["figure"] == FIGURE and off["curve"] == "val_accuracy"
    assert off["epochs"] == EPOCHS
    # the schema's keys stay, and an arm without a flag gains none
    assert set(on) == {"seeds", "values", "median", "alpha", "method"}
    assert FIGURE in [f["file"] for f in report["figures"]]


def test_the_caption_names_the_seed_its_distance_from_the_median_and_the_departure(
        flagged: tuple[Path, dict[str, Any]]) -> None:
    _, report = flagged
    caption = report["outliers"]["dropout=off"]["caption"]
    # median of the 9 finished seeds (seed 9 diverged) is 0.9750; 0.9300 is 4.50 below
    finished = [v for s, v in OFF.items() if s != DIVERGED]
    assert float(np.median(finished)) == pytest.approx(0.9750)
    assert caption.startswith("dropout=off: seed 6 (93.00%) is 4.50 points below the "
                              "arm's median (97.50%)")
    assert f"at epoch {DEPARTS} of {EPOCHS} and stays outside it" in caption
    assert "a late departure" in caption
    assert "seed 9 after epoch 3" in caption  # the diverged run, drawn to where it stopped
    for seed in set(OFF) - {BAD, DIVERGED}:
        assert f"seed {seed} (" not in caption


def test_the_figure_is_written_and_shown_beside_the_flag(
        flagged: tuple[Path, dict[str, Any]]) -> None:
    run_dir, report = flagged
    path = run_dir / FIGURE
    assert path.is_file()
    with Image.open(io.BytesIO(path.read_bytes())) as img:
        rgb = np.asarray(img.convert("RGB"), dtype=np.float64)
    colour = arm_colours(["dropout=on", "dropout=off"])["dropout=off"]
    target = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float64)
    assert (np.abs(rgb - target).sum(axis=2) < 24).sum() > 500  # the highlighted seed
    md = (run_dir / "report.md").read_text()
    section = md.split("## Seeds far from the bulk: dropout=off\n", 1)[1].split("\n## ", 1)[0]
    assert section.lstrip().startswith("dropout=off: seed 6 (93.00%) far from the arm's "
                                       "other seeds")
    assert f"]({FIGURE})" in section
    assert report["outliers"]["dropout=off"]["caption"] in section
    assert "## Seeds far from the bulk: dropout=on" not in md
    html = (run_dir / "report.html").read_text()
    assert "Seeds far from the bulk: dropout=off" in html and "seed 6 (93.00%) is 4.50" in html
    warning = next(w for w in report["warnings"] if w.startswith("dropout=off: seed 6"))
    assert "'Seeds far from the bulk: dropout=off'" in warning


def test_a_study_without_flags_draws_no_curve_figure(tmp_path: Path) -> None:
    stale = tmp_path / FIGURE  # left by an earlier report that had the flag
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    run_dir = planted(tmp_path, {"dropout=on": ON, "dropout=off": {**OFF, BAD: 0.9750}},
                      {**CURVES, ("dropout=off", BAD): rising(0.9750)})
    report = read_json(run_dir / "report.json")
    assert all(o["seeds"] == [] for o in report["outliers"].values())
    assert all(set(o) == {"seeds", "values", "median", "alpha", "method"}
               for o in report["outliers"].values())
    assert not list((run_dir / "report_files").glob("unstable_*.png"))
    assert not any("unstable" in f["file"] for f in report["figures"])
    assert "Seeds far from the bulk" not in (run_dir / "report.md").read_text()


def test_a_directory_without_epoch_rows_keeps_the_flag_and_omits_the_figure(
        tmp_path: Path) -> None:
    run_dir = make_store(tmp_path, STUDY, {"dropout=on": ON, "dropout=off": OFF},
                         {("dropout=off", DIVERGED): "diverged"}, curves=CURVES)
    with sqlite3.connect(run_dir / "runs.sqlite") as db:  # as runs stored without them
        db.execute("DELETE FROM epochs")
    write_report(run_dir, power=False)
    report = json.loads((run_dir / "report.json").read_text())
    off = report["outliers"]["dropout=off"]
    assert off["seeds"] == [BAD]
    assert set(off) == {"seeds", "values", "median", "alpha", "method"}
    assert not (run_dir / FIGURE).exists()
    assert any(w.startswith("dropout=off: seed 6") for w in report["warnings"])
    assert "Seeds far from the bulk" not in (run_dir / "report.md").read_text()
