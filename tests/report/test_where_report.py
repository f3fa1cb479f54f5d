"""The per-image report sections on a real study (the committed MNIST subset): report.json's
numbers agree with the stored predictions read through the public API, and the figures
render in headless Chromium (the confusion difference's diverging map shows both its
red and its blue end, the gallery its digits)."""

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

import ablate
from tests.data_fixtures import SUBSET
from tests.study_harness import SUBSET_RUNTIME, dropout_study

STUDY = dropout_study("where", "Where does turning dropout off change the digits?",
                      seeds=6, width=64, dropout=0.5)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("where")
    (root / "cache").mkdir()
    shutil.copy(SUBSET, root / "cache" / "mnist.npz")  # the gallery's images come from here
    (root / "where.toml").write_text(STUDY)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ABLATE_DATA_DIR", str(root / "cache"))
        ablate.run_study(root / "where.toml", runtime=SUBSET_RUNTIME, out=str(root / "runs"))
    return root / "runs" / "where"


def test_report_json_agrees_with_the_stored_predictions(run_dir: Path) -> None:
    pd = pytest.importorskip("pandas")
    where = json.loads((run_dir / "report.json").read_text())["where"]
    assert where["available"] and where["split"] == "test" and not where["family_wise"]
    df = ablate.read_predictions(run_dir).to_pandas()
    test = df[df.split == "test"].assign(correct=lambda t: t.predicted == t.label)
    per = test.groupby(["arm", "seed", "label"])["correct"].mean().unstack("label")
    (c,) = where["contrasts"]
    assert (c["arm"], c["baseline"]) == ("dropout=off", "dropout=on")
    diff = (per.loc["dropout=off"] - per.loc["dropout=on"]).mean()
    for d in c["digits"]:
        assert d["difference"] == pytest.approx(diff[d["digit"]], abs=1e-12)
        assert d["ci"][0] <= d["difference"] <= d["ci"][1]
    runs = {(r.arm, r.seed): r for r in ablate.read_runs(run_dir)}
    for e in where["ensembles"]:
        single = [runs[(e["arm"], s)].test_accuracy for s in range(6)]
        assert e["single_mean"] == pytest.approx(np.mean(single), abs=1e-12)
        assert len(e["ensemble_by_seeds"]) == 6
        assert e["ensemble_by_seeds"][0] == pytest.approx(single[0], abs=1e-12)
    reach = c["reach"]
    off = np.mean([runs[("dropout=off", s)].test_accuracy for s in range(6)])
    on = np.mean([runs[("dropout=on", s)].test_accuracy for s in range(6)])
    assert reach["mean_diff"] == pytest.approx(off - on, abs=1e-12)
    assert reach["rope"] == 0.01 and 0 <= reach["image_share"] <= 1
    assert reach["low"] < reach["mean_diff"] < reach["high"]
    names = {f["name"] for f in json.loads((run_dir / "report.json").read_text())["figures"]}
    assert {"digits", "confusion", "flips"} <= names
    md = (run_dir / "report.md").read_text()
    assert "## Where the difference lives" in md and "## What more seeds buy" in md
    assert "not family-wise" in md and "Reach to new images" in md
    assert isinstance(pd.DataFrame, type)


@pytest.mark.browser
def test_the_where_figures_render_in_headless_chromium(run_dir: Path, tmp_path: Path,
                                                       chromium: str) -> None:
    from PIL import Image

    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             f"--screenshot={shot}", "--window-size=1200,12000",
             (run_dir / "report.html").resolve().as_uri()],
            check=True, capture_output=True, timeout=120)
    with Image.open(shot) as img:
        rgb = np.asarray(img.convert("RGB"), dtype=np.float64)
    # RdBu_r's two ends (#67001f deep red, #053061 deep blue) are the colour bar's; cells
    # in both halves of the map: reddish (r >> b) and bluish (b >> r) pixels
    def near(colour: tuple[int, int, int]) -> np.ndarray:
        return np.abs(rgb - np.array(colour)).sum(axis=2) < 40
    assert near((103, 0, 31)).sum() > 100 and near((5, 48, 97)).sum() > 100
    reddish = (rgb[..., 0] - rgb[..., 2] > 60) & (rgb[..., 1] < 200)
    bluish = (rgb[..., 2] - rgb[..., 0] > 60) & (rgb[..., 1] < 220)
    assert reddish.sum() > 1000 and bluish.sum() > 1000
    # the gallery below the map: its digits are near-black strokes on white
    bar_rows = np.where(near((103, 0, 31)).any(axis=1))[0]
    below = rgb[bar_rows.max() + 200:]
    assert (below.sum(axis=2) < 100).sum() > 2000
    # keep the picture for a person to look at (pytest's tmp_path is kept for a while)
    Image.fromarray(rgb[max(0, bar_rows.min() - 1500):bar_rows.max() + 900].astype(np.uint8)
                    ).save(tmp_path / "where.png")
