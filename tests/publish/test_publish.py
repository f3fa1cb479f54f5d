"""`ablate publish` / `ablate study --log`: a study in a real MLflow store (MLflow's own
client, a local file store) and in real TensorBoard event files (PyTorch's
SummaryWriter), read back with the trackers' own readers and with `ablate.sources`.

No mocks: what is checked is what the trackers themselves return. Values must come
back exactly (==): MLflow stores float64, and the final metrics go to TensorBoard as
double-precision tensors.
"""

from __future__ import annotations

import math
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ablate.cli import app
from ablate.metric import RUN_METRICS
from ablate.publish import parse_target, publish, run_folder
from ablate.sources import Columns, read_source, tracking_uri
from ablate.store import Store
from tests.report.test_report import THREE_LEVELS, make_store, write_report
from tests.study_harness import TINY_STUDY, SubsetCliRunner

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")

ARMS = ("optimizer=sgd", "optimizer=momentum", "optimizer=adam")
BROKEN = {("optimizer=adam", 3): "diverged", ("optimizer=sgd", 4): "failed"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(3)
    scores = {a: {s: float(rng.normal(0.3, 0.01)) for s in range(10)} for a in ARMS}
    d = make_store(tmp_path_factory.mktemp("pub") / "run", THREE_LEVELS, scores, BROKEN)
    write_report(d, power=False)
    return d


def stored(run_dir: Path) -> dict[tuple[str, int], object]:
    store = Store.open_existing(run_dir)
    try:
        return {(r.arm, r.seed): r for r in store.runs()}
    finally:
        store.close()


def test_mlflow_runs_metrics_history_artifacts(run_dir: Path, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from ablate.sources import quiet_mlflow

    store = tmp_path / "mlruns"
    lines = publish(run_dir, [parse_target(f"mlflow={store}")], say=lambda _: None)
    assert "30 runs added" in lines[0] and "with its report" in lines[0]
    uri = tracking_uri(str(store))
    with quiet_mlflow(uri):
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name("synthetic_optimizer")
        runs = client.search_runs([exp.experiment_id], max_results=100)
        parent = [r for r in runs if r.data.tags.get("ablate.kind") == "study"]
        children = [r for r in runs if r.data.tags.get("ablate.kind") == "run"]
        assert len(parent) == 1 and len(children) == 30
        names = {f.path for f in client.list_artifacts(parent[0].info.run_id, "report")}
        assert {"report/report.md", "report/report.html", "report/report.json"} <= names
        by = {(r.data.tags["ablate.arm"], int(r.data.params["seed"])): r for r in children}
        truth = stored(run_dir)
        for key, r in by.items():
            run = truth[key]
            assert r.data.tags["mlflow.parentRunId"] == parent[0].info.run_id
            assert r.data.tags["ablate.status"] == run.status  # type: ignore[attr-defined]
            assert r.info.status == ("FAILED" if run.status == "failed" else "FINISHED")  # type: ignore[attr-defined]
            assert r.data.params["optimizer"] == key[0].split("=")[1]
            assert "config.epochs" in r.data.params
            for m in RUN_METRICS:
                want = getattr(run, m)
                if run.status == "done" and want is not None:  # type: ignore[attr-defined]
                    assert r.data.metrics[m] == want
            if run.status == "diverged":  # type: ignore[attr-defined]
                assert math.isnan(r.data.metrics["crossfit_val_loss"])
        history = client.get_metric_history(by["optimizer=adam", 0].info.run_id,
                                            "epoch/train_loss")
        assert [h.step for h in sorted(history, key=lambda h: h.step)] == [1, 2, 3]
    # Again: nothing new, nothing duplicated.
    again = publish(run_dir, [parse_target(f"mlflow={store}")], say=lambda _: None)
    assert "0 runs added, 0 replaced, 30 already there" in again[0]
    # Read back through ablate's own source reader: exactly the stored values.
    table = read_source(store, Columns(("ablate.arm",), "seed", "crossfit_val_loss"))
    assert len(table.skipped) == 1  # the study's parent run
    for r in table.runs:
        run = truth[r.arm, r.seed]
        assert r.status == run.status  # type: ignore[attr-defined]
        assert r.value == (run.crossfit_val_loss if run.status == "done" else None)  # type: ignore[attr-defined]


def test_tensorboard_scalars_hparams_exact(run_dir: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing import event_accumulator as ea

    root = tmp_path / "tb"
    publish(run_dir, [parse_target(f"tensorboard={root}")], say=lambda _: None)
    folder = run_folder(root, "synthetic_optimizer", "optimizer=adam", 0)
    acc = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    assert [s.step for s in acc.Scalars("epoch/train_loss")] == [1, 2, 3]
    truth = stored(run_dir)
    table = read_source(root / "synthetic_optimizer",
                        Columns(("arm",), "seed", "crossfit_val_loss", "status"))
    assert len(table.runs) == 30 and table.snapped == 0
    for r in table.runs:
        run = truth[r.arm, r.seed]
        assert r.status == run.status  # type: ignore[attr-defined]
        assert r.value == (run.crossfit_val_loss if run.status == "done" else None)  # type: ignore[attr-defined]
    # Factor levels are HParams: the arm can be built from them too.
    by_factor = read_source(root, Columns(("optimizer",), "seed", "crossfit_val_loss"))
    assert set(by_factor.arms) == {"sgd", "momentum", "adam"}
    # Publishing again replaces the event files instead of adding to them.
    publish(run_dir, [parse_target(f"tensorboard={root}")], say=lambda _: None)
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1


def test_float32_scalars_snap_to_the_grid(tmp_path: Path) -> None:
    # Someone else's TensorBoard logs: old-style float32 scalars of accuracies on 1/400.
    from torch.utils.tensorboard import SummaryWriter

    values = {("a", 0): 0.9475, ("a", 1): 0.9325, ("b", 0): 0.9400, ("b", 1): 0.9125}
    for (arm, seed), v in values.items():
        with SummaryWriter(str(tmp_path / arm / str(seed))) as w:
            w.add_scalar("val/acc", v, 5)
    cols = Columns(("path.0",), "path.1", "val/acc")
    t = read_source(tmp_path, cols, resolution=1 / 400)
    assert {(r.arm, r.seed): r.value for r in t.runs} == {
        k: round(v * 400) / 400 for k, v in values.items()}
    assert t.snapped >= 1  # 0.9475 is not a float32 number
    raw = read_source(tmp_path, cols)  # without a grid the float32 values stay as read
    assert {(r.arm, r.seed): r.value for r in raw.runs} != values


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_study_stores_everything_when_the_tracker_is_unreachable(tmp_path: Path) -> None:
    study = tmp_path / "tiny.toml"
    study.write_text(TINY_STUDY.replace("epochs = 6", "epochs = 1"))
    uri = f"http://127.0.0.1:{_closed_port()}"
    result = SubsetCliRunner().invoke(app, ["study", str(study), "--out", str(tmp_path),
                                            "--log", f"mlflow={uri}"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # the console wraps long lines
    assert f"warning: not logged: the MLflow server at {uri} does not answer" in said
    assert "Nothing is lost" in said and f"--to mlflow={uri}` logs it" in said
    runs = stored(tmp_path / "tiny")
    assert len(runs) == 8 and all(r.status == "done" for r in runs.values())  # type: ignore[attr-defined]
    assert (tmp_path / "tiny" / "report.json").is_file()


def test_tracker_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    study = tmp_path / "tiny.toml"
    study.write_text(TINY_STUDY)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    result = SubsetCliRunner().invoke(app, ["study", str(study), "--out", str(tmp_path),
                                            "--log", "mlflow"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        "error: --log mlflow needs mlflow, which is not installed: "
        "pip install 'ablate[mlflow]'")
    assert not (tmp_path / "tiny").exists()  # refused before anything trained
    bad = CliRunner().invoke(app, ["publish", str(tmp_path), "--to", "wandb"])
    assert bad.exit_code == 2 and "unknown tracker 'wandb'" in bad.output
