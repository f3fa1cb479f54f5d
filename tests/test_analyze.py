"""`ablate analyze`: the verdict for runs trained anywhere is `ablate report`'s verdict.

One real study (3 arms x 8 seeds, trained by ablate on the committed MNIST subset) is
exported as `ablate runs --format csv`, logged to a local MLflow store (MLflow's own
client) and to TensorBoard (PyTorch's SummaryWriter); each is read back with `ablate
analyze` and must give the contrasts, intervals and decisions `ablate report` gives on
the run directory, exactly (==: every value survives the round trip bit for bit, and the
same code decides). Then the documented answers to bad input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import ablate
from ablate.cli import app
from ablate.options import AnalyzeOptions
from ablate.stats import (
    FIRST_LOOK,
    LAST_LOOK,
    ContrastData,
    SequentialDesign,
    sequential_verdicts,
)
from tests.study_harness import TINY_STUDY, SubsetCliRunner

STUDY = (TINY_STUDY.replace("seeds = 2", "seeds = 8").replace("epochs = 6", "epochs = 2")
         .replace('levels.low = { dropout = 0.1 }\n', ""))
RESOLUTION = "0.0025"  # 1/400: the study's validation split
# What must agree: every number and word of a decision (power is Monte Carlo keyed by
# the study's name; compared where the names agree).
KEYS = ("arm", "baseline", "metric", "kind", "n", "n_paired", "seeds", "mean_diff",
        "sd_diff", "ci_low", "ci_high", "ci90_low", "ci90_high", "interval", "exact",
        "p_value", "p_holm", "p_better", "p_worse", "p_equivalent", "p_better_holm",
        "p_worse_holm", "p_equivalent_holm", "wins", "ties", "rope", "alpha",
        "resolution", "decision", "reason", "diffs", "decision_if_diverged_dropped")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("analyze")
    (root / "tiny.toml").write_text(STUDY)
    result = SubsetCliRunner().invoke(app, ["study", str(root / "tiny.toml"), "--out",
                                            str(root)])
    assert result.exit_code == 0, result.output  # it writes its report.json at the end
    return root / "tiny"


def contrasts(report_json: Path) -> dict[str, dict[str, Any]]:
    data = json.loads(report_json.read_text())
    return {c["arm"]: c for c in data["contrasts"]}


def same_verdict(ours: Path, theirs: Path, keys: tuple[str, ...] = KEYS) -> None:
    a, b = contrasts(ours), contrasts(theirs)
    assert set(a) == set(b) and len(a) == 2
    for name in a:
        for k in keys:
            assert a[name][k] == b[name][k], (name, k, a[name][k], b[name][k])


def test_csv_export_gives_the_report_verdict(run_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    csv = runner.invoke(app, ["runs", str(run_dir), "--format", "csv"])
    assert csv.exit_code == 0
    table = tmp_path / "runs.csv"
    table.write_text(csv.output)
    # The settings in a TOML analysis file; the name makes the power streams agree too.
    (tmp_path / "analysis.toml").write_text(
        'source = "runs.csv"\nname = "tiny"\narm = "arm"\nseed = "seed"\n'
        'metric = "crossfit_val_accuracy"\nstatus = "status"\nbaseline = "dropout=on"\n'
        f"rope = 0.01\nresolution = {RESOLUTION}\n")
    result = runner.invoke(app, ["analyze", "--config", str(tmp_path / "analysis.toml"),
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    same_verdict(tmp_path / "out" / "report.json", run_dir / "report.json",
                 KEYS + ("power", "pairing", "divergence", "missing"))
    # The same through the command line's own options, and through the Python API.
    result = runner.invoke(app, ["analyze", str(table), "--arm", "arm", "--seed", "seed",
                                 "--metric", "crossfit_val_accuracy", "--baseline",
                                 "dropout=on", "--rope", "0.01", "--resolution", RESOLUTION,
                                 "--status", "status"])
    assert result.exit_code == 0, result.output
    same_verdict(tmp_path / "report.json", run_dir / "report.json")  # beside the table
    verdict = ablate.analyze(table, arm="arm", metric="crossfit_val_accuracy",
                             baseline="dropout=on", rope=0.01, status="status",
                             resolution=float(RESOLUTION), power=False)
    own = ablate.analyse(run_dir)
    assert sorted((c.arm, c.decision, c.ci_low, c.ci_high) for c in verdict.contrasts) == \
        sorted((c.arm, c.decision, c.ci_low, c.ci_high) for c in own.contrasts)


def test_mlflow_round_trip_gives_the_report_verdict(run_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    runner = CliRunner()
    store = tmp_path / "mlruns"
    logged = runner.invoke(app, ["publish", str(run_dir), "--to", f"mlflow={store}"])
    assert logged.exit_code == 0, logged.output
    result = runner.invoke(app, ["analyze", str(store), "--arm", "ablate.arm", "--seed",
                                 "seed", "--metric", "crossfit_val_accuracy", "--baseline",
                                 "dropout=on", "--rope", "0.01", "--resolution", RESOLUTION,
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    same_verdict(tmp_path / "out" / "report.json", run_dir / "report.json")


def test_tensorboard_round_trip_gives_the_report_verdict(run_dir: Path, tmp_path: Path
                                                         ) -> None:
    pytest.importorskip("tensorboard")
    runner = CliRunner()
    logs = tmp_path / "tb"
    logged = runner.invoke(app, ["publish", str(run_dir), "--to", f"tensorboard={logs}"])
    assert logged.exit_code == 0, logged.output
    result = runner.invoke(app, ["analyze", str(logs / "tiny"), "--arm", "arm", "--seed",
                                 "seed", "--metric", "crossfit_val_accuracy", "--baseline",
                                 "dropout=on", "--status", "status", "--rope", "0.01",
                                 "--resolution", RESOLUTION, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    same_verdict(tmp_path / "out" / "report.json", run_dir / "report.json")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "runs.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "args", "message"), [
    ("arm,seed,acc\nb,0,0.9\na,0,0.8\n", ["--metric", "accuracy"],
     "error: {p}: no field 'accuracy' for the metric; fields: acc, arm, seed"),
    ("arm,seed,acc\nb,0,0.9\na,0,0.8\nb,0,0.7\n", [],
     "error: {p}: line 4: arm 'b' seed 0 appears twice (also {p}: line 2); keep one run "
     "per arm and seed"),
    ("arm,seed,acc\nb,0,0.9\na,0,high\n", [],
     "error: {p}: line 3: acc = 'high' is not a number; the metric must be numeric (empty "
     "for a run without a value, nan for a diverged one)"),
    ("arm,seed,acc\nb,0,0.9\nb,1,0.8\n", [],
     "error: {p}: every run is in one arm ('b' of arm); a comparison needs at least two arms"),
    ("arm,seed,acc\nb,0,0.9\na,0,0.8\n", ["--baseline", "c"],
     "error: {p}: no arm named 'c'; --baseline must be one of: b, a"),
])
def test_malformed_tables_are_one_line_exit_2(tmp_path: Path, text: str, args: list[str],
                                              message: str) -> None:
    path = write(tmp_path, text)
    base = ["analyze", str(path), "--arm", "arm", "--metric", "acc", "--baseline", "b"]
    result = CliRunner().invoke(app, base + args)
    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert said == message.format(p=path)


def test_unpaired_seeds(tmp_path: Path) -> None:
    # Seeds on one side only are left out of that contrast and listed; arms with no
    # seed in common are one line and exit 2.
    path = write(tmp_path, "arm,seed,acc\n" + "".join(
        f"b,{s},{0.9 + 0.01 * (s % 3)}\na,{s},{0.92 + 0.01 * (s % 2)}\n" for s in range(7))
        + "b,7,0.95\n")
    report = ablate.analyze(path, arm="arm", metric="acc", baseline="b", resolution=0.01,
                            power=False)
    c = report.contrasts[0]
    assert c.n == 7 and c.missing == ((7, "a missing"),)
    apart = write(tmp_path, "arm,seed,acc\nb,0,0.9\nb,1,0.8\na,2,0.7\na,3,0.6\n")
    result = CliRunner().invoke(app, ["analyze", str(apart), "--arm", "arm", "--metric",
                                      "acc", "--baseline", "b"])
    assert result.exit_code == 2
    assert " ".join(result.output.split()) == (
        f"error: {apart}: arm 'a' and the baseline 'b' share no seed, so no contrast pairs "
        "them; the paired report needs runs of both on the same seeds (the unpaired test "
        "is ablate.stats.two_sample)")


def test_tracker_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mlruns" / "0").mkdir(parents=True)
    (tmp_path / "mlruns" / "0" / "meta.yaml").write_text("name: Default\n")
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    result = CliRunner().invoke(app, ["analyze", str(tmp_path / "mlruns"), "--arm", "arm",
                                      "--metric", "acc", "--baseline", "b"])
    assert result.exit_code == 2
    assert result.output.strip() == ("error: reading an MLflow store needs mlflow, which is "
                                     "not installed: pip install 'ablate[mlflow]'")


def test_next_reads_the_sequential_design(tmp_path: Path) -> None:
    # 8 seeds per arm, a clear improvement: settled at the first look that can say so.
    rows = ["arm,seed,acc"]
    for s in range(8):
        rows += [f"base,{s},{0.9 + 0.001 * (s % 3)}", f"new,{s},{0.95 + 0.001 * (s % 2)}"]
    path = write(tmp_path, "\n".join(rows) + "\n")
    args = ["analyze", str(path), "--arm", "arm", "--metric", "acc", "--baseline", "base",
            "--rope", "0.002", "--resolution", "0.001", "--next"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    # The oracle: the stats' own group-sequential verdicts on the same differences.
    diffs = [0.05 + 0.001 * (s % 2) - 0.001 * (s % 3) for s in range(8)]
    design = SequentialDesign(min_seeds=FIRST_LOOK, max_seeds=LAST_LOOK, step=2, rope=0.002)
    want = sequential_verdicts(design, [ContrastData.from_diffs(
        diffs, name="new", reference="base", resolution=0.001)], range(8))
    v = want.verdicts[0]
    assert v.decision == "better" and v.settled
    assert lines[0] == f"new vs base: better (settled at {v.settled_at} seeds)"
    assert lines[-1] == f"stop: {want.why}."
    # Too few seeds yet: the first look is at 6.
    few = write(tmp_path, "arm,seed,acc\n" + "".join(f"base,{s},0.9\nnew,{s},0.91\n"
                                                     for s in range(3)))
    result = CliRunner().invoke(app, [args[0], str(few), *args[2:]])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == (
        "next look at 6 seeds per arm: add 3 seeds to every arm (first look at 6 seeds).")


def test_option_defaults_match_the_statistics() -> None:
    # options.py imports nothing of ablate; its sequential defaults must be stats'.
    assert AnalyzeOptions().min_seeds == FIRST_LOOK
    assert AnalyzeOptions().max_seeds == LAST_LOOK
