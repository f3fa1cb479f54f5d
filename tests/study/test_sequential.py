"""`ablate study` until decided: rounds of seeds, stopping where the report's own
sequential verdicts say every contrast is settled, and resuming like any study.

Real training on the committed MNIST subset (tests/study_harness.py); the decisions
come from the same `ablate.report.sequential_state` the report is built from.
"""

import json
from pathlib import Path

from typer.testing import CliRunner

from ablate.analysis import sequential_state
from ablate.api import read_runs
from ablate.cli import app
from tests.study_harness import SubsetCliRunner

STUDY = """
name = "seq"
question = "Does a useful learning rate beat a useless one?"
seeds = {{ min = 6, max = {max} }}
validation = 400
rope = {rope}

[base]
layers = [32]
optimizer = {{ name = "sgd", lr = 0.1 }}
batch_size = 100
epochs = 1

[factors.lr]
baseline = "useful"
levels.useful = {{}}
levels.other = {{ optimizer = {{ name = "sgd", lr = {lr} }} }}
"""


def _seeds_per_arm(run_dir: Path) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for r in read_runs(run_dir):
        assert r.status == "done"
        out.setdefault(r.arm, []).append(r.seed)
    return {a: sorted(s) for a, s in out.items()}


def _study(tmp_path: Path, *, max: int, rope: float, lr: float) -> Path:
    path = tmp_path / "seq.toml"
    path.write_text(STUDY.format(max=max, rope=rope, lr=lr))
    return path


def test_a_clear_effect_stops_before_max_and_a_rerun_trains_nothing(tmp_path: Path) -> None:
    cli: CliRunner = SubsetCliRunner()
    study = _study(tmp_path, max=16, rope=0.01, lr=0.0001)  # lr 1e-4: barely learns
    out = tmp_path / "runs"
    first = cli.invoke(app, ["study", str(study), "--out", str(out)])
    assert first.exit_code == 0, first.output
    run_dir = out / "seq"
    state = sequential_state(run_dir)
    assert state is not None and state.stop
    n = state.looks_done[-1]
    assert n < 16, "a 60-point effect settles at an early look"
    assert _seeds_per_arm(run_dir) == {"lr=useful": list(range(n)), "lr=other": list(range(n))}
    assert f"stopped at {n} seeds per arm" in " ".join(first.output.split())
    report = json.loads((run_dir / "report.json").read_text())
    assert report["contrasts"][0]["decision"] == "worse"
    assert report["sequential"]["stop"] is True
    assert report["sequential"]["looks_done"] == list(state.looks_done)

    again = cli.invoke(app, ["study", str(study), "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "training" not in again.output  # every look's runs are already there
    assert _seeds_per_arm(run_dir)["lr=other"] == list(range(n))
    assert json.loads((run_dir / "report.json").read_text())["contrasts"] == report["contrasts"]


def test_an_unsettled_contrast_adds_rounds_up_to_max_seeds(tmp_path: Path) -> None:
    """Two near-identical arms and a ROPE far below the seed noise: neither a difference
    nor equivalence can be claimed, so the study runs every round up to --max-seeds."""
    cli: CliRunner = SubsetCliRunner()
    study = _study(tmp_path, max=30, rope=0.00001, lr=0.099)
    out = tmp_path / "runs"
    result = cli.invoke(app, ["study", str(study), "--out", str(out), "--max-seeds", "9"])
    assert result.exit_code == 0, result.output
    run_dir = out / "seq"
    assert _seeds_per_arm(run_dir)["lr=other"] == list(range(9))
    state = sequential_state(run_dir)
    assert state is not None and state.stop and state.looks_done == (6, 8, 9)
    assert " ".join(result.output.split()).count("adding seeds up to") == 2  # 6, 8, 9
    decisions = [c["decision"] for c in json.loads((run_dir / "report.json").read_text()
                                                   )["contrasts"]]
    assert decisions == ["inconclusive"]


def test_until_decided_makes_a_fixed_study_sequential_from_six_seeds(tmp_path: Path) -> None:
    cli: CliRunner = SubsetCliRunner()
    path = tmp_path / "fixed.toml"
    path.write_text(STUDY.format(max=16, rope=0.01, lr=0.0001).replace(
        "seeds = { min = 6, max = 16 }", "seeds = 10"))
    out = tmp_path / "runs"
    result = cli.invoke(app, ["study", str(path), "--out", str(out), "--until-decided",
                              "--max-seeds", "10"])
    assert result.exit_code == 0, result.output
    state = sequential_state(out / "seq")
    assert state is not None and state.looks_done[0] == 6 and state.stop
    assert len(_seeds_per_arm(out / "seq")["lr=useful"]) == state.looks_done[-1] <= 10
