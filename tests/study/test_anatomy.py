"""Anatomy runs: each varies only its own stream, they train as one cohort, and the
shares they give are the streams' variances over their sum.

Oracles: the engine's own draws observed (initial weights, minibatch orders recorded
as `torch.randperm` returns them, dropout keys), the same run trained alone, and
float64 NumPy / SciPy for the statistics.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.stats as st
import torch

from ablate.cli import app
from ablate.data import load_npz
from ablate.design import AnatomyPlan, SpecError, parse_study
from ablate.engine import (
    CohortMLP,
    DeviceData,
    cohort_key,
    prepare_data,
    run_config_from_dict,
    train_cohort,
)
from ablate.metric import METRICS
from ablate.report import anatomy_markdown
from ablate.stats import anatomy
from ablate.stats._anatomy import variance_interval
from ablate.stats._power import power_for
from ablate.store import Store, read_anatomy
from ablate.study._anatomy import (
    anatomy_arm,
    anatomy_configs,
    train_anatomy,
    write_anatomy,
)
from tests.data_fixtures import SUBSET
from tests.study_harness import SubsetCliRunner

STUDY = """
name = "tiny-anatomy"
question = "q"
seeds = 3
validation = 300
metric = "crossfit_val_accuracy"
rope = 0.002
[base]
layers = [16, 8]
dropout = 0.5
epochs = 1
batch_size = 100
[factors.dropout]
baseline = "on"
levels.on = {}
levels.off = { dropout = 0.0 }
"""


@pytest.fixture(scope="module")
def data() -> DeviceData:
    # 400 training images and 300 validation images: one cohort trains in well under a
    # second, and every metric is still a real MNIST accuracy.
    return prepare_data(load_npz(SUBSET), validation=300, subset=400, device="cpu")


def test_each_group_varies_only_its_stream(monkeypatch: pytest.MonkeyPatch,
                                           data: DeviceData) -> None:
    study = parse_study(STUDY)
    config = study.arms[0].run_config
    plan = anatomy_configs(config, 3)
    assert [k for k, _, _ in plan] == ["init"] * 3 + ["order"] * 3 + ["mask"] * 3 + ["all"] * 3
    assert len({cohort_key(c) for _, _, c in plan}) == 1  # one packed cohort
    configs, seeds = [c for _, _, c in plan], [s for _, s, _ in plan]
    model = CohortMLP(configs, seeds)
    weights = model.dense[0].weight.detach()  # (12, 784, 16)
    keys = model.dropouts[0].keys  # (12,) the mask stream of each replica, layer 0
    orders: list[torch.Tensor] = []
    real = torch.randperm

    def spy(n: int, *, generator: torch.Generator) -> torch.Tensor:
        perm = real(n, generator=generator)
        orders.append(perm)
        return perm

    monkeypatch.setattr(torch, "randperm", spy)
    train_cohort(configs, seeds, data, select_on=METRICS["val_accuracy"])
    first = orders[:len(plan)]  # epoch 1: one order per replica, in replica order

    def same(values: list[object], idx: range) -> bool:
        return all(torch.equal(values[idx[0]], values[j])  # type: ignore[arg-type]
                   for j in idx[1:])

    w, k, o = list(weights), list(keys), first
    init, order, mask = range(0, 3), range(3, 6), range(6, 9)
    # Varying init: weights differ, order and masks are the reference's.
    assert not same(w, init) and same(o, init) and len({k[j] for j in init}) == 1
    # Varying order: identical initial weights and masks, different minibatch orders.
    assert same(w, order) and not same(o, order) and len({k[j] for j in order}) == 1
    # Varying masks: identical weights and orders, different dropout keys.
    assert same(w, mask) and same(o, mask) and len({k[j] for j in mask}) == 3
    # Every group's seed-0 run is the reference run itself.
    assert all(torch.equal(w[0], w[j]) and torch.equal(o[0], o[j]) and k[0] == k[j]
               for j in (3, 6, 9))


def test_train_anatomy_on_the_subset(data: DeviceData, tmp_path: object) -> None:
    study = parse_study(STUDY)
    arm = anatomy_arm(study, None)
    assert arm == "dropout=on"  # the first arm that uses dropout
    result = train_anatomy(study, arm, 3, data)
    assert [r.stream for r in result.runs].count("mask") == 3 and len(result.runs) == 12
    name = "crossfit_val_accuracy"
    by = {(r.stream, r.seed): r.metrics[name] for r in result.runs}
    # The reference run (every stream at seed 0) appears once per group, bitwise equal.
    assert by[("init", 0)] == by[("order", 0)] == by[("mask", 0)] == by[("all", 0)]
    # "all" at seed 2 is the arm's own run of seed 2, trained alone.
    alone = train_cohort(study.arms[0].run_config, [2], data,
                         select_on=METRICS["val_accuracy"])
    assert result.runs[-1].metrics["val_accuracy"] == alone.replicas[0].metrics["val_accuracy"]
    a = result.anatomy
    assert a is not None
    var = {s.stream: s.var for s in a.sources}
    for s in a.sources:
        values = np.array([by[(s.stream, i)] for i in range(3)])
        assert s.var == pytest.approx(values.var(ddof=1), rel=1e-12)
        assert s.share == pytest.approx(s.var / sum(var.values()), rel=1e-12)
    assert sum(s.share for s in a.sources) == pytest.approx(1.0, abs=1e-12)
    assert a.dominant == max(var, key=lambda k: var[k])
    path = write_anatomy(tmp_path, result)  # type: ignore[arg-type]
    stored = read_anatomy(path.parent)
    assert stored is not None and stored["arm"] == arm and len(stored["runs"]) == 12


def test_anatomy_statistics_against_scipy() -> None:
    rng = np.random.default_rng(0)
    values = {"init": rng.normal(0.98, 0.0024, 16), "order": rng.normal(0.98, 0.0008, 16),
              "mask": rng.normal(0.98, 0.001, 16)}
    every = rng.normal(0.98, 0.0022, 16)
    a = anatomy(values, arm="x", metric="test_accuracy", rope=0.002,
                rng=np.random.default_rng(1), all_streams=every, resolution=1e-4,
                simulations=200, images=10_000)
    assert [s.stream for s in a.sources] == sorted(values, key=lambda k: -values[k].var(ddof=1))
    ss = 15 * values["init"].var(ddof=1)
    lo, hi = variance_interval(values["init"])
    assert (lo, hi) == pytest.approx((ss / st.chi2.ppf(0.975, 15), ss / st.chi2.ppf(0.025, 15)),
                                     rel=1e-12)
    total = sum(v.var(ddof=1) for v in values.values())
    assert a.additivity == pytest.approx(total / every.var(ddof=1), rel=1e-12)
    for s in a.sources:
        assert 0.0 <= s.share_ci[0] <= s.share <= s.share_ci[1] <= 1.0
    # Removing the dominant stream's variance can only lower the seeds needed.
    assert a.seeds_paired is not None and a.seeds_unpaired is not None
    assert a.seeds_paired <= a.seeds_unpaired
    assert "Initialization is the largest source" in a.advice
    assert math.isfinite(a.to_dict()["additivity"])
    # One run's accuracy on 10,000 images: binomial sd at the all-streams mean accuracy.
    acc = every.mean()
    assert a.image_sd == pytest.approx(math.sqrt(acc * (1 - acc) / 10_000), rel=1e-12)


def test_anatomy_plans_with_the_studys_estimand() -> None:
    # The advice's seed counts are the verdict's own power for the study's estimand (its
    # own simulation draws: within that power's 2-Monte-Carlo-SE range of seeds): the
    # sign test (median) needs more seeds than the sign-flip test (mean) at normal spread.
    rng = np.random.default_rng(2)
    values = {"init": rng.normal(0.98, 0.0024, 12), "order": rng.normal(0.98, 0.0008, 12)}
    every = rng.normal(0.98, 0.0022, 12)
    need: dict[str, int] = {}
    for estimand in ("median", "mean"):
        a = anatomy(values, arm="x", metric="test_accuracy", rope=0.002,
                    rng=np.random.default_rng(1), all_streams=every, resolution=1e-4,
                    simulations=200, estimand=estimand)
        pw = power_for(math.sqrt(2.0 * every.var(ddof=1)), 12, rope=0.002, alpha=0.05, m=1,
                       resolution=1e-4, rng=np.random.default_rng(1), simulations=200,
                       test=estimand)
        assert pw is not None and a.seeds_unpaired is not None
        lo, hi = pw.seeds_better_range
        assert lo <= a.seeds_unpaired <= hi
        need[estimand] = a.seeds_unpaired
    assert need["median"] > need["mean"]


CLI_STUDY = STUDY.replace('name = "tiny-anatomy"', 'name = "cli-anatomy"')


def test_study_anatomy_from_the_cli(tmp_path: Path) -> None:
    study_file = tmp_path / "s.toml"
    study_file.write_text(CLI_STUDY, encoding="utf-8")
    out = tmp_path / "runs"
    args = ["study", str(study_file), "--out", str(out), "--subset", "300", "--seeds", "2",
            "--anatomy"]
    alone = SubsetCliRunner().invoke(app, [*args[:-1], "--no-report", "--arm", "x"])
    assert alone.exit_code == 2 and "--arm and --anatomy-seeds go with --anatomy" in \
        alone.output
    bad = SubsetCliRunner().invoke(app, [*args, "--no-report", "--arm", "nope"])
    assert bad.exit_code == 2 and "--arm 'nope' is not an arm" in bad.output
    run_dir = out / "cli-anatomy"
    store = Store(run_dir)
    try:
        assert store.runs() == []  # refused before anything trained
    finally:
        store.close()
    result = SubsetCliRunner().invoke(app, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert ("Anatomy of dropout=on's spread: 8 runs (2 per stream, the others at seed 0; 1 "
            "epoch on 300 training images) in one cohort") in " ".join(result.output.split())
    assert "Image sampling alone (another 300 images like these)" in result.output
    assert "in one cohort" in result.output and "s on cpu" in result.output
    stored = read_anatomy(run_dir)
    assert stored is not None and {r["stream"] for r in stored["runs"]} == {
        "init", "order", "mask", "all"}
    arm_config = parse_study(CLI_STUDY).arms[0].run_config.to_dict()
    assert stored["config"] == json.loads(json.dumps(arm_config))  # as JSON keeps it
    # The verdict's store holds the study's runs only: 2 arms x 2 seeds.
    store = Store(run_dir)
    try:
        runs = store.runs()
    finally:
        store.close()
    assert sorted((r.arm, r.seed) for r in runs) == [
        ("dropout=off", 0), ("dropout=off", 1), ("dropout=on", 0), ("dropout=on", 1)]
    text = anatomy_markdown(stored)
    assert text.startswith("## Anatomy of the spread") and "not part of any verdict" in text
    # The report (written after the anatomy) shows it and carries it in report.json.
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    assert report["anatomy"] == stored
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "Anatomy of the spread" in md and stored["anatomy"]["advice"] in md
    # --fresh forgets the runs, and the anatomy made beside them.
    again = SubsetCliRunner().invoke(app, [*args[:-1], "--no-report", "--fresh"])
    assert again.exit_code == 0, again.output
    assert read_anatomy(run_dir) is None


def test_stream_seeds_leave_study_configs_and_their_hashes_alone() -> None:
    config = parse_study(STUDY).arms[0].run_config
    assert "streams" not in config.to_dict()  # hashes of stored runs are unchanged
    assert config.stream_seed("init", 7) == config.stream_seed("mask", 7) == 7
    (_, _, varied), = [p for p in anatomy_configs(config, 2) if p[:2] == ("order", 1)]
    assert (varied.stream_seed("init", 1), varied.stream_seed("order", 1),
            varied.stream_seed("mask", 1)) == (0, 1, 0)
    assert run_config_from_dict(varied.to_dict()) == varied
    assert run_config_from_dict(config.to_dict()) == config
    assert varied.digest() != config.digest()


def test_the_study_key() -> None:
    def with_key(line: str) -> str:
        return STUDY.replace('rope = 0.002\n', f'rope = 0.002\n{line}\n')

    assert parse_study(STUDY).anatomy is None
    assert parse_study(with_key("anatomy = false")).anatomy is None
    assert parse_study(with_key("anatomy = true")).anatomy == AnatomyPlan()
    plan = parse_study(with_key('anatomy = { arm = "dropout=off", seeds = 4 }')).anatomy
    assert plan == AnatomyPlan(arm="dropout=off", seeds=4)
    with pytest.raises(SpecError, match=r"anatomy.arm: expected one of dropout=on, "
                                        r"dropout=off, got 'dropout'"):
        parse_study(with_key('anatomy = { arm = "dropout" }'))
    with pytest.raises(SpecError, match=r"anatomy.seeds: expected an integer >= 2"):
        parse_study(with_key("anatomy = { seeds = 1 }"))
    with pytest.raises(SpecError, match=r"anatomy.runs: unknown key"):
        parse_study(with_key("anatomy = { runs = 4 }"))
