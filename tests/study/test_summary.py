"""What `ablate study` prints before and after training: the dry run's reach (can these
seeds decide?), and at the end each verdict in one line, its caveats, the report and
what to do next; `ablate report` while a study trains. The real CLI on the committed
MNIST subset (tests/study_harness.py)."""

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import ablate
from ablate.analysis import analyse_run_dir, family_size, reach
from ablate.cli import app
from ablate.design import StudyRecord, parse_study
from ablate.errors import UserError
from ablate.store import Store
from ablate.study import plan_study, queue_plan
from tests.study_harness import TINY_STUDY, SubsetCliRunner

FACTORIAL = """
name = "two"
question = "q"
seeds = 4
design = "factorial"
[base]
layers = [32]
epochs = 1
[factors.dropout]
baseline = "on"
levels.on = { dropout = 0.3 }
levels.off = { dropout = 0.0 }
[factors.bn]
baseline = "off"
levels.off = {}
levels.after = { batch_norm = "after" }
"""


def _fewest(level: float) -> int:
    """The smallest n with 1/2^n <= level, from the logarithm (an oracle for the loop)."""
    return math.ceil(math.log2(1 / level) - 1e-12)


@pytest.mark.parametrize(("seeds", "decides"), [(3, False), (5, False), (6, True), (10, True)])
def test_the_dry_run_says_whether_its_seeds_can_decide(study_file: Path, tmp_path: Path,
                                                       seeds: int, decides: bool) -> None:
    """Three contrasts at alpha 0.05: 'better'/'worse' (the joint step-down) need
    1/2^n <= 0.025, so 6 seeds where the contrasts' seeds agree, 1/2^n <= 0.05/6 (Holm's
    bound) whatever the others show, so 7; 'equivalent' (Holm) 1/2^n <= 0.05/3, so 6."""
    result = SubsetCliRunner().invoke(app, ["study", str(study_file), "--seeds", str(seeds),
                                            "--dry-run", "--out", str(tmp_path / "runs")],
                                      env={"COLUMNS": "1000"})
    assert result.exit_code == 0, result.output
    directional, any_, equivalent = _fewest(0.025), _fewest(0.05 / 6), _fewest(0.05 / 3)
    assert (directional, any_, equivalent) == (6, 7, 6)
    line = next(s for s in result.output.splitlines() if s.startswith("Reach: "))
    assert (f"'better' or 'worse' needs at least {directional} seeds (where the contrasts' "
            f"seeds agree in sign; {any_} whatever the others show)") in line
    assert f"'equivalent' at least {equivalent} over 3 contrasts" in line
    if decides:
        assert "every claim is possible" in line
        assert "Use at least" not in result.output
    else:
        assert f"1/2^{seeds} = {2.0 ** -seeds:.3g}" in line
        assert ("no claim is possible" in line) is (seeds < equivalent)
        assert f"Use at least {max(directional, equivalent)} seeds per arm" in result.output
    assert not (tmp_path / "runs").exists()  # a dry run leaves nothing behind


def test_the_family_is_the_contrasts_decided_together() -> None:
    tiny = parse_study(TINY_STUDY, "tiny.toml")
    two = parse_study(FACTORIAL, "two.toml")
    assert family_size(tiny) == 3 and family_size(two) == 5  # a 2x2: A, B, A x B, 2 simple
    r = reach(two)
    assert (r.seeds, r.directional, r.equivalent, r.can_claim_direction) == (4, 6, 7, False)
    one = parse_study(TINY_STUDY.replace('levels.high = { dropout = 0.6 }\n', '')
                      .replace('levels.low = { dropout = 0.1 }\n', ''), "one.toml")
    assert (family_size(one), reach(one).directional, reach(one).equivalent) == (1, 6, 5)


def test_the_end_of_a_study_prints_each_verdict_and_what_next(study_file: Path,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "runs"
    result = SubsetCliRunner().invoke(app, ["study", str(study_file), "--out", str(out),
                                            "--epochs", "3"], env={"COLUMNS": "1000"})
    assert result.exit_code == 0, result.output
    run_dir = out / "tiny"
    report = json.loads((run_dir / "report.json").read_text())
    lines = result.output.splitlines()
    assert f"Verdict: {report['headline']}" in lines
    for c in report["contrasts"]:  # one line each, with its decision
        mine = [s for s in lines if s.startswith(f"  {c['arm']} vs {c['baseline']}: ")]
        assert len(mine) == 1 and mine[0].split(": ", 1)[1].startswith(f"{c['decision']}, ")
        # The estimate shown is the estimand's (the median by default), in points.
        assert f"{c['decision']}, median {100 * c['median_diff']:+.2f} points" in mine[0]
    assert any(s.startswith("With 2 paired seeds no one-sided exact p") for s in lines)
    assert f"Report: {run_dir / 'report.html'} (and report.md, report.json)" in lines
    assert any(s.startswith("Next: ") and f"`ablate serve {run_dir}`" in s for s in lines)
    assert not any(s.startswith("wrote ") for s in lines)
    # Where MNIST came from (here: the committed subset's file).
    assert any(s.startswith("MNIST: ") and s.endswith("mnist_subset.npz") for s in lines)


def _training_store(run_dir: Path, *, live: bool) -> Store:
    """A store as a driver leaves it mid-study: every run queued and marked running, the
    lease held (live) or released (a driver that was killed leaves runs 'running')."""
    study = parse_study(TINY_STUDY, "tiny.toml")
    store = Store(run_dir)
    store.acquire()
    store.write_record(StudyRecord(study=study, study_file="tiny.toml", source=TINY_STUDY,
                                   subset=None, device="cpu", provenance={},
                                   data_sha256=None).to_json())
    queue_plan(store, plan_study(study, store, None, torch.device("cpu")))
    for arm in study.arms:
        store.mark(arm.name, list(study.seeds), "running")
    if not live:
        store.close()
    return store


def test_report_while_a_study_trains_says_so(tmp_path: Path) -> None:
    store = _training_store(tmp_path, live=True)
    try:
        with pytest.raises(UserError) as cli_words:
            analyse_run_dir(tmp_path)
        message = str(cli_words.value)
        assert message.startswith("the baseline arm dropout=on has no finished run yet: the "
                                  "study is still training (8 running, 0 pending)")
        assert "dropout=off" not in message  # the baseline, not a list of every arm
        assert "still training (8 running, 0 pending)" in message
        assert "failed" not in message
        assert "`ablate runs RUN_DIR`" in message
        with pytest.raises(UserError) as api_words:
            ablate.analyse(str(tmp_path))
        assert "ablate.read_runs(run_dir)" in str(api_words.value)
        assert "`ablate runs" not in str(api_words.value)
        result = CliRunner().invoke(app, ["report", str(tmp_path)])
        assert result.exit_code == 2 and "still training" in result.output
    finally:
        store.close()


def test_report_after_a_killed_driver_says_it_was_interrupted(tmp_path: Path) -> None:
    _training_store(tmp_path, live=False)
    with pytest.raises(UserError, match=r"interrupted with 8 runs unfinished \(rerun it"):
        ablate.analyse(tmp_path)
