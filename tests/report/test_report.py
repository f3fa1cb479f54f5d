"""`ablate report`: numbers against independent oracles, each sentence against the
numbers beside it, files against a browser.

No training here: each study's store is written directly with synthetic per-seed scores
drawn from a seeded numpy Generator (including failed, diverged and unfinished runs),
so the expected numbers are known and every test is deterministic. The oracles are
brute-force enumerations of sign patterns and subsets, SciPy, and hand arithmetic; the
sequential path is checked against `ablate.stats.sequential_verdicts` fed directly
from the drawn scores (what is under test there is the report's plumbing: seeds, grid,
metric and what it prints).

Time: the power simulation costs about a second per contrast, so only the fixtures
whose tests read power compute it (`worse`, `three`); the rest pass power=False.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.stats as st

from ablate.analysis import Analysis, analyse_run_dir
from ablate.design import StudyRecord, parse_study
from ablate.errors import UserError
from ablate.metric import METRICS
from ablate.report import DECISION_COLOURS, write_report_files
from ablate.store import Store

ONE_AT_A_TIME = """
name = "synthetic_dropout"
question = "Does dropout change validation accuracy?"
seeds = {seeds}
metric = "val_accuracy"
rope = 0.002
estimand = "mean"  # these tests check the mean's oracles; test_median_report the default
validation = 10000

[base]
layers = [32, 16, 8]
batch_norm = "after"
dropout = 0.5
epochs = 3

[factors.dropout]
baseline = "on"
levels.on = {{}}
levels.off = {{ dropout = 0.0 }}
"""

THREE_LEVELS = """
name = "synthetic_optimizer"
question = "Which optimizer gives the lowest validation loss?"
seeds = 10
metric = "val_loss"
rope = 0.01
estimand = "mean"
validation = 10000

[base]
layers = [32, 16]
optimizer = "sgd"
epochs = 3

[factors.optimizer]
baseline = "sgd"
levels.sgd = {}
levels.momentum = { optimizer = "momentum" }
levels.adam = { optimizer = "adam" }
"""

FACTORIAL = """
name = "synthetic_factorial"
question = "Do dropout and batch norm matter, and do they interact?"
seeds = 8
metric = "val_accuracy"
rope = 0.002
estimand = "mean"  # these tests check the mean's oracles; test_median_report the default
validation = 10000
design = "factorial"

[base]
layers = [32, 16]
batch_norm = "after"
dropout = 0.5
epochs = 3

[factors.dropout]
baseline = "on"
levels.on = {}
levels.off = { dropout = 0.0 }

[factors.bn]
baseline = "after"
levels.after = {}
levels.off = { batch_norm = "off" }
"""

EPOCHS = 3
PROVENANCE = {"python": "3.11.7", "torch": "2.4.0", "numpy": "2.0.0", "ablate": "0.1.0",
              "device": "cpu", "device_name": "x86_64", "threads": 2}


def write_report(run_dir: Path, *, power: bool = True) -> Analysis:
    """Analyse a run directory and write its report files, as `ablate report` does."""
    analysis = analyse_run_dir(run_dir, power=power)
    write_report_files(analysis, run_dir)
    return analysis


def make_store(run_dir: Path, source: str, scores: Mapping[str, Mapping[int, float]],
               broken: Mapping[tuple[str, int], str] | None = None, seed: int = 0,
               legacy: bool = False, optimism: Mapping[str, float] | None = None,
               crossfit: bool = True, seeds: Sequence[int] | None = None,
               curves: Mapping[tuple[str, int], Sequence[float]] | None = None) -> Path:
    """Write a finished study's store with the given compared metric per (arm, seed).

    scores are the cross-fitted values; the best-epoch validation value is the score
    plus the arm's `optimism` (improvement units, default 0) plus noise, so selection
    optimism is known. broken: (arm, seed) -> "failed" | "diverged" | "pending"; those
    runs get no usable metric (a diverged run keeps a finite val_accuracy on purpose:
    it must still be treated as diverged). Per-epoch curves end at the final score.
    legacy: describe the study the way stores written before the study record did (a
    key-value `meta` table). crossfit=False: a store written before the cross-fit
    existed: val_* is the score, the cross-fitted columns are NULL, and the record asks
    for val_* as such stores did. seeds: the seeds run (default: the study's; a
    sequential study's later rounds use 0..max-1 in order). curves: (arm, seed) -> the
    run's per-epoch value of the compared quantity on validation (val_accuracy or
    val_loss; NaN: not logged, as after divergence), one per epoch, in place of the
    default curve; every run has as many epochs as the curves given (default EPOCHS).
    """
    broken = broken or {}
    study = parse_study(source, "studies/synthetic.toml")
    if not crossfit:
        study = replace(study, metric=METRICS[f"val_{study.metric.quantity}"])
    rng = np.random.default_rng(seed)
    store = Store(run_dir)
    checksums = {"x_train": "ab" * 32, "y_train": "cd" * 32}
    if legacy:
        _write_legacy_meta(store, study_file="studies/synthetic.toml", study_source=source,
                           name=study.name, question=study.question,
                           metric=study.metric.name, rope=study.rope,
                           validation=study.validation, subset=None, seeds=list(study.seeds),
                           arms=[a.name for a in study.arms], baseline=study.baseline.name,
                           device="cpu", provenance=PROVENANCE, data_sha256=checksums)
    else:
        store.write_record(StudyRecord(study, "studies/synthetic.toml", source, None, "cpu",
                                       PROVENANCE, checksums).to_json())
    accuracy = study.metric.quantity == "accuracy"
    sign = 1.0 if accuracy else -1.0
    curves = curves or {}
    n_epochs = max((len(c) for c in curves.values()), default=EPOCHS)
    for arm in study.arms:
        n_layers = len(arm.config.layers) + 1
        for s in study.seeds if seeds is None else seeds:
            store.queue(arm.name, s, "hash", arm.config.to_dict())
            status = broken.get((arm.name, s), "done")
            if status == "pending":
                continue
            if status == "failed":
                store.mark(arm.name, [s], "failed", error="RuntimeError: out of memory")
                continue
            final = scores[arm.name][s]
            epochs = []
            for e in range(1, n_epochs + 1):
                shrink = (n_epochs - e) / n_epochs  # 0 at the last epoch
                val_acc = final - 0.02 * shrink if accuracy else 0.9 + 0.05 * rng.random()
                val_loss = (0.1 + 0.1 * shrink if accuracy else final + 0.1 * shrink)
                if (arm.name, s) in curves:
                    planted = float(curves[arm.name, s][e - 1])
                    val_acc, val_loss = (planted, val_loss) if accuracy else (val_acc, planted)
                    if not math.isfinite(planted):
                        val_loss = val_acc = math.nan
                elif status == "diverged" and e > 1:
                    val_loss = val_acc = math.nan
                epochs.append({
                    "epoch": e, "train_loss": 0.3 / e + 0.01 * rng.random(),
                    "train_accuracy": 0.9 + 0.02 * e, "val_loss": val_loss,
                    "val_accuracy": val_acc, "seconds": 1.0,
                    "grad_norms": [2.0 / (layer + 1) / e * (1 + 0.1 * rng.random())
                                   for layer in range(n_layers)],
                    "weight_norms": [10.0] * n_layers})
            quantity = "accuracy" if accuracy else "loss"
            best = final
            if crossfit:  # optimism on the grid: whole images (accuracy)
                best = final + sign * round(((optimism or {}).get(arm.name, 0.0)
                                             + 2e-4 * rng.random()) * 1e4) / 1e4
            metrics = {"train_loss": 0.1, "val_loss": 0.1, "val_accuracy": 0.95,
                       "test_loss": 0.1, "test_accuracy": 0.96 + 0.001 * rng.random(),
                       f"val_{quantity}": best}
            if crossfit:
                metrics[f"crossfit_val_{quantity}"] = final
            if status == "diverged":
                metrics = {**metrics, "val_loss": math.nan, "val_accuracy": 0.098,
                           f"crossfit_val_{quantity}": math.nan}
            store.finish(arm.name, s, status=status, seconds=2.0, epochs=epochs,
                         best_epoch=n_epochs, metrics=metrics, checkpoint=None)
    store.close()
    return run_dir


def _write_legacy_meta(store: Store, **values: object) -> None:
    """The meta table exactly as the version before the study record wrote it."""
    with store.transaction() as db:
        db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                       [(k, json.dumps(v)) for k, v in values.items()])


def draw(arms_effects: Mapping[str, float], seeds: range, *, base: float, sd_seed: float,
         sd_noise: float, seed: int, grid: float = 1e-4) -> dict[str, dict[int, float]]:
    """Per-seed scores: a shared seed effect plus each arm's shift and its own noise.

    Values are rounded to `grid` (accuracy on 10,000 images moves in steps of 1e-4).
    """
    rng = np.random.default_rng(seed)
    seed_effect = base + rng.normal(0, sd_seed, len(seeds))  # (n_seeds,)
    out = {}
    for arm, shift in arms_effects.items():
        noise = rng.normal(0, sd_noise, len(seeds))
        vals = np.round((seed_effect + shift + noise) / grid) * grid
        out[arm] = {s: float(v) for s, v in zip(seeds, vals, strict=True)}
    return out


def read_json(path: Path) -> dict[str, Any]:
    def no_nan(name: str) -> None:
        raise AssertionError(f"report.json is not strict JSON: {name}")

    return json.loads(path.read_text(), parse_constant=no_nan)


# -- fixtures: each study written and reported once per module ------------------------
# The arm that is worse also diverges once (counted as its worst outcome, it agrees with
# the verdict); a failed and an unfinished run cost their contrast only those seeds.
BROKEN = {("dropout=off", 3): "failed", ("dropout=off", 7): "diverged",
          ("dropout=on", 9): "pending"}
OPTIMISM = {"dropout=on": 0.0010, "dropout=off": 0.0025}  # best-epoch minus cross-fitted
SEQUENTIAL = ONE_AT_A_TIME.format(seeds="{ min = 6, max = 14, step = 2 }")


@pytest.fixture(scope="module")
def worse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """Dropout off lowers accuracy by ~0.5 points on every seed; three runs are broken."""
    scores = draw({"dropout=on": 0.0, "dropout=off": -0.005}, range(10), base=0.97,
                  sd_seed=0.002, sd_noise=0.0006, seed=1)
    run_dir = make_store(tmp_path_factory.mktemp("worse"), ONE_AT_A_TIME.format(seeds=10),
                         scores, BROKEN, optimism=OPTIMISM)
    write_report(run_dir)
    return run_dir, scores, read_json(run_dir / "report.json")


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """val_loss, lower is better: momentum clearly better, adam equivalent to sgd; one
    adam run failed (seed 4)."""
    scores = draw({"optimizer=sgd": 0.0, "optimizer=momentum": -0.03, "optimizer=adam": 0.0005},
                  range(10), base=0.08, sd_seed=0.004, sd_noise=0.001, seed=2, grid=1e-6)
    run_dir = make_store(tmp_path_factory.mktemp("three"), THREE_LEVELS, scores,
                         {("optimizer=adam", 4): "failed"})
    write_report(run_dir)
    return run_dir, scores, read_json(run_dir / "report.json")


@pytest.fixture(scope="module")
def factorial(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """bn off costs ~1 point; turning dropout off costs 0.4 points with bn after but
    gains 0.2 with bn off: an interaction of +0.6 points."""
    shifts = {"dropout=on,bn=after": 0.0, "dropout=on,bn=off": -0.010,
              "dropout=off,bn=after": -0.004, "dropout=off,bn=off": -0.008}
    scores = draw(shifts, range(8), base=0.97, sd_seed=0.002, sd_noise=0.0004, seed=3)
    run_dir = make_store(tmp_path_factory.mktemp("factorial"), FACTORIAL, scores)
    write_report(run_dir, power=False)  # power is not under test here
    return run_dir, scores, read_json(run_dir / "report.json")


@pytest.fixture(scope="module")
def sequential(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """Seeds 6 to 14 in rounds of 2; 12 seeds run; dropout off gains ~0.4 points."""
    scores = draw({"dropout=on": 0.0, "dropout=off": 0.004}, range(14), base=0.97,
                  sd_seed=0.002, sd_noise=0.0015, seed=7)
    run_dir = make_store(tmp_path_factory.mktemp("sequential"), SEQUENTIAL, scores,
                         seeds=range(12))
    write_report(run_dir)  # a sequential report computes no power
    return run_dir, scores, read_json(run_dir / "report.json")


# -- independent oracles -----------------------------------------------------------------
def values(scores: Mapping[str, Mapping[int, float]], arm: str, seeds: Sequence[int]
           ) -> np.ndarray:
    return np.array([scores[arm][s] for s in seeds])


def flips(n: int) -> np.ndarray:
    """All 2^n sign vectors, (2^n, n)."""
    return np.array(list(itertools.product((1.0, -1.0), repeat=n)))


def sign_flip_brute(d: np.ndarray) -> float:
    """Two-sided sign-flip p of Δ = 0 by enumerating all 2^n sign vectors."""
    obs = abs(d.sum())
    return float(np.mean(np.abs(flips(d.size) @ d) >= obs - 1e-12))


def one_sided_brute(y: np.ndarray, upper: bool) -> float:
    """P(flipped sum >= observed) (upper) or <= observed, over all 2^n sign vectors."""
    sums = flips(y.size) @ y
    return float(np.mean(sums >= y.sum() - 1e-12 if upper else sums <= y.sum() + 1e-12))


def rank_brute(u: np.ndarray, delta: float, upper: bool) -> float:
    """Signed-rank p with +-inf for divergence (ties at the top), by enumeration."""
    z = u[~np.isnan(u)] - delta
    z = z[np.abs(z) > 1e-12]
    ranks = st.rankdata(np.abs(z))
    return one_sided_brute(np.sign(z) * ranks, upper)


def hartigan(d: np.ndarray, confidence: float) -> tuple[float, float]:
    """The sign-flip interval as order statistics of the 2^n - 1 nonempty subset means:
    the k-th smallest and k-th largest, k = floor((1 - confidence) / 2 * 2^n)."""
    means = sorted(float(np.mean(sub)) for r in range(1, d.size + 1)
                   for sub in itertools.combinations(d.tolist(), r))
    k = math.floor((1 - confidence) / 2 * 2**d.size)
    return (-math.inf, math.inf) if k == 0 else (means[k - 1], means[-k])


def holm_by_hand(p: list[float]) -> list[float]:
    order = sorted(range(len(p)), key=p.__getitem__)
    out, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out


def points(x: float) -> str:
    return f"{x * 100:.2f}"


# -- files -----------------------------------------------------------------------------
def test_writes_three_files_with_the_required_keys(worse: tuple[Path, dict, dict]) -> None:
    run_dir, _, report = worse
    for name in ("report.md", "report.html", "report.json"):
        assert (run_dir / name).stat().st_size > 1000, name
    for c in report["contrasts"]:
        for key in ("arm", "baseline", "metric", "n", "mean_diff", "ci_low", "ci_high",
                    "p_value", "p_holm", "decision"):
            assert key in c, key
    assert report["study"]["interval"] == "exact sign-flip inversion (grid 1/10000)"
    assert report["study"]["multiplicity"] == "joint step-down"
    assert report["study"]["metric"] == "crossfit_val_accuracy"
    for key in ("design", "arms", "friedman", "warnings", "failed", "diverged",
                "seeds_needed", "answer", "selection_optimism", "sequential"):
        assert key in report, key
    md = (run_dir / "report.md").read_text()
    for png in re.findall(r"\]\((report_files/[^)]+\.png)\)", md):
        assert (run_dir / png).stat().st_size > 5000, png
    assert len(re.findall(r"\]\(report_files/", md)) == 5  # forest, slopes, dist, curves, grads
    assert sorted(p.name for p in (run_dir / "report_files").iterdir()) == sorted(
        f"{f['name']}.png" for f in report["figures"])
    assert "BCa" not in md and "bootstrap" not in md


def test_a_store_from_before_the_study_record_reports_the_same(
        worse: tuple[Path, dict, dict], tmp_path: Path) -> None:
    """Run directories written by the previous layout (a key-value meta table and the
    study file's text) still report, and to the same numbers and words."""
    _, scores, report = worse
    old = make_store(tmp_path / "old", ONE_AT_A_TIME.format(seeds=10), scores, BROKEN,
                     legacy=True, optimism=OPTIMISM)
    write_report(old)
    assert read_json(old / "report.json") == report
    assert (old / "report.md").read_text() == (worse[0] / "report.md").read_text()


def test_report_is_deterministic(worse: tuple[Path, dict, dict], tmp_path: Path) -> None:
    run_dir, _, _ = worse
    copy = shutil.copytree(run_dir, tmp_path / "copy")
    write_report(copy)
    for name in ("report.json", "report.md", "report.html"):
        assert (copy / name).read_bytes() == (run_dir / name).read_bytes(), name


# -- numbers against oracles -------------------------------------------------------------
def test_contrast_numbers_match_independent_oracles(worse: tuple[Path, dict, dict]) -> None:
    _, scores, report = worse
    (c,) = report["contrasts"]
    both = [0, 1, 2, 4, 5, 6, 8]  # 3 failed (arm), 7 diverged (arm), 9 pending (baseline)
    d = values(scores, "dropout=off", both) - values(scores, "dropout=on", both)
    assert (c["n"], c["n_paired"], c["seeds"]) == (7, 8, both)
    assert c["missing"] == [[3, "dropout=off failed"], [9, "dropout=on pending"]]
    assert c["diffs"] == pytest.approx(d.tolist(), abs=1e-12)
    assert c["mean_diff"] == pytest.approx(d.mean(), abs=1e-12)
    assert c["d_z"] == pytest.approx(d.mean() / d.std(ddof=1), rel=1e-9)
    assert c["p_t"] == pytest.approx(st.ttest_1samp(d, 0.0).pvalue, rel=1e-9)
    assert c["p_wilcoxon"] == pytest.approx(st.wilcoxon(d).pvalue, rel=1e-9)
    assert c["p_value"] == pytest.approx(sign_flip_brute(d), abs=1e-12)
    assert c["p_holm"] == c["p_value"]  # a family of one
    # Seed 7 diverged in the arm, so the contrast is decided on the joint outcome per
    # seed (the arm's divergence is -inf): 'worse' rejects Δ >= -ROPE by the exact
    # signed-rank test, and the intervals invert that test (its lower end is -inf:
    # a diverged run bounds nothing from below).
    u = np.array([*d[:6], -math.inf, d[6]])  # paired seeds 0..8 without 3
    assert c["estimand"] == "pseudo-median of the joint outcome (diverged = worst)"
    assert c["p_worse"] == pytest.approx(rank_brute(u, -0.002, upper=False), abs=1e-12)
    assert c["p_worse_holm"] == c["p_worse"] and c["decision"] == "worse"
    assert c["divergence"]["arm_seeds"] == [7] and c["divergence"]["baseline_seeds"] == []
    assert "dropout=off on seed 7" in c["divergence_sentence"]
    assert "joint outcome per seed" in c["divergence_sentence"]
    assert c["ci_low"] is None and c["ci90_low"] is None
    half = c["resolution"] / 2
    for hi, a in ((c["ci_high"], 0.025), (c["ci90_high"], 0.05)):
        assert rank_brute(u, hi, upper=False) > a  # the end is not rejected ...
        assert rank_brute(u, hi + half, upper=False) <= a  # ... the next shift is
    assert c["wins"] == int((d > 0).sum())


def test_arm_table_numbers_match_numpy_and_scipy(worse: tuple[Path, dict, dict]) -> None:
    """Each arm over its own finished seeds: a seed lost elsewhere is not lost here."""
    _, scores, report = worse
    own = {"dropout=on": [0, 1, 2, 3, 4, 5, 6, 7, 8], "dropout=off": [0, 1, 2, 4, 5, 6, 8, 9]}
    for row in report["arms"]:
        x = values(scores, row["arm"], own[row["arm"]])
        assert row["n"] == x.size
        assert row["mean"] == pytest.approx(x.mean(), abs=1e-12)
        assert row["sd"] == pytest.approx(x.std(ddof=1), rel=1e-9)
        assert row["median"] == pytest.approx(np.median(x), abs=1e-12)
        low, high = st.t.interval(0.95, x.size - 1, loc=x.mean(), scale=st.sem(x))
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), rel=1e-9)
    off = next(r for r in report["arms"] if r["arm"] == "dropout=off")
    assert off["divergence_rate"] == pytest.approx(1 / 9)  # 8 done, 1 diverged


def test_selection_optimism_equals_the_hand_computed_difference(
        worse: tuple[Path, dict, dict]) -> None:
    run_dir, _, report = worse
    store = Store.open_existing(run_dir)
    runs = store.runs()
    store.close()
    rows = {o["arm"]: o for o in report["selection_optimism"]}
    for arm in ("dropout=on", "dropout=off"):
        diff = np.array([r.val_accuracy - r.crossfit_val_accuracy for r in runs
                         if r.arm == arm and r.status == "done"])  # type: ignore[operator]
        o = rows[arm]
        assert o["n"] == diff.size
        assert o["mean"] == pytest.approx(diff.mean(), abs=1e-12)
        assert o["sd"] == pytest.approx(diff.std(ddof=1), rel=1e-9)
        assert (o["low"], o["high"]) == pytest.approx((diff.min(), diff.max()), abs=1e-12)
        assert o["mean"] > OPTIMISM[arm] - 1e-12  # drawn as OPTIMISM + [0, 2 images)
    md = (run_dir / "report.md").read_text()
    sentence = next(line for line in md.splitlines() if line.startswith("Selection optimism"))
    on, off = rows["dropout=on"]["mean"], rows["dropout=off"]["mean"]
    assert f"dropout=on +{points(on)}" in sentence and f"dropout=off +{points(off)}" in sentence
    assert f"by up to {points(off - on)} points (dropout=off minus dropout=on)" in sentence


def test_pairing_numbers_are_those_of_the_paired_outcomes(
        worse: tuple[Path, dict, dict]) -> None:
    _, scores, report = worse
    (c,) = report["contrasts"]
    both = c["seeds"]
    a, b = values(scores, "dropout=off", both), values(scores, "dropout=on", both)
    p = c["pairing"]
    assert p["correlation"] == pytest.approx(np.corrcoef(a, b)[0, 1], rel=1e-9)
    assert p["var_paired"] == pytest.approx(np.var(a - b, ddof=1), rel=1e-9)
    assert p["var_unpaired"] == pytest.approx(np.var(a, ddof=1) + np.var(b, ddof=1), rel=1e-9)
    ratio = p["var_unpaired"] / p["var_paired"]
    assert p["ratio"] == pytest.approx(ratio, rel=1e-12)
    sentence = c["pairing_sentence"]
    assert f"r = {p['correlation']:.2f}" in sentence
    assert f"a ratio of {ratio:.2f}" in sentence
    if ratio > 1:
        assert f"about {ratio * len(both):.0f} unpaired seeds per arm" in sentence
    else:
        assert "bought no precision" in sentence
    lo, hi = p["correlation_ci"]
    assert ("not distinguishable from no correlation" in sentence) == (lo <= 0 <= hi)


def test_power_sentences_state_the_power_of_the_verdict(worse: tuple[Path, dict, dict]) -> None:
    _, _, report = worse
    (c,) = report["contrasts"]
    pw = c["power"]
    d = np.array(c["diffs"])
    n = d.size
    assert pw["sd"] == pytest.approx(d.std(ddof=1), rel=1e-9)
    assert pw["sd_upper"] == pytest.approx(
        d.std(ddof=1) * math.sqrt((n - 1) / st.chi2.ppf(0.2, n - 1)), rel=1e-9)
    assert pw["effect"] == pytest.approx(2 * 0.002) and pw["effect_rule"] == "2 x ROPE"
    sentence = c["power_sentence"]
    assert (f"says 'better' with probability {pw['power_better']:.2f} at a true improvement "
            f"of {points(pw['effect'])} points") in sentence
    assert f"would need {pw['seeds_better']} seed" in sentence
    assert (f"says 'equivalent' with probability {pw['power_equivalent']:.2f} at no "
            f"difference and would need {pw['seeds_equivalent']} seed") in sentence
    assert f"80% upper bound, {points(pw['sd_upper'])} points" in sentence
    block = report["seeds_needed"]
    assert block["per_contrast"] == {c["arm"]: pw["seeds_better"]}
    assert block["equivalent"] == {c["arm"]: pw["seeds_equivalent"]}
    assert block["effect"] == {c["arm"]: pytest.approx(0.004)}


def test_three_levels_friedman_and_holm_match_scipy(three: tuple[Path, dict, dict]) -> None:
    _, scores, report = three
    base = "optimizer=sgd"
    raw = []
    for c in report["contrasts"]:
        seeds = c["seeds"]
        d = values(scores, c["arm"], seeds) - values(scores, base, seeds)
        assert c["mean_diff"] == pytest.approx(d.mean(), abs=1e-12)
        assert c["p_value"] == pytest.approx(sign_flip_brute(d), abs=1e-12)
        raw.append(c["p_value"])
    assert [c["p_holm"] for c in report["contrasts"]] == pytest.approx(holm_by_hand(raw))
    # The rank summary uses the seeds where every arm has an outcome (not seed 4).
    blocks = [s for s in range(10) if s != 4]
    table = np.stack([values(scores, a, blocks) for a in
                      ("optimizer=sgd", "optimizer=momentum", "optimizer=adam")], axis=1)
    fr = report["friedman"]
    ref = st.friedmanchisquare(*table.T)
    assert fr["n"] == 9
    assert fr["statistic"] == pytest.approx(ref.statistic, rel=1e-9)
    assert fr["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    # Lower loss is better: rank 1 goes to the smallest loss within each seed.
    assert fr["avg_ranks"] == pytest.approx(st.rankdata(table, axis=1).mean(axis=0).tolist())
    # A versus-baseline design: Bonferroni-Dunn, k - 1 = 2 comparisons with the control.
    assert (fr["method"], fr["baseline"]) == ("Bonferroni-Dunn", base)
    assert fr["q_alpha"] == pytest.approx(st.norm.isf(0.05 / 4), rel=1e-12)
    assert fr["cd"] == pytest.approx(fr["q_alpha"] * math.sqrt(3 * 4 / (6 * 9)), rel=1e-12)


def test_a_seed_lost_in_one_arm_costs_only_its_contrasts(three: tuple[Path, dict, dict]
                                                         ) -> None:
    _, _, report = three
    by_arm = {c["arm"]: c for c in report["contrasts"]}
    assert by_arm["optimizer=momentum"]["n"] == 10
    assert by_arm["optimizer=momentum"]["missing"] == []
    assert by_arm["optimizer=adam"]["n"] == 9
    assert by_arm["optimizer=adam"]["missing"] == [[4, "optimizer=adam failed"]]
    assert any("seed 4 (optimizer=adam failed) left out of this contrast only" in w
               for w in report["warnings"])


def test_rank_summary_sits_beside_the_paired_verdicts(three: tuple[Path, dict, dict]) -> None:
    run_dir, _, report = three
    fr = report["friedman"]
    ranks = dict(zip(fr["arms"], fr["avg_ranks"], strict=True))
    md = (run_dir / "report.md").read_text()
    for c in report["contrasts"]:
        gap = ranks[c["arm"]] - ranks["optimizer=sgd"]
        line = next(x for x in md.splitlines() if x.startswith(f"- {c['arm']}: "))
        assert f"paired verdict: {c['decision']}." in line
        if abs(gap) >= fr["cd"]:
            assert f"ranks {'better' if gap < 0 else 'worse'} than the baseline" in line
        else:
            assert "the rank test does not separate them" in line
    assert "not significantly different" not in md and "cliques" not in md
    assert "Bonferroni-Dunn" in next(f["title"] for f in report["figures"]
                                     if f["name"] == "critical_difference")


def test_factorial_main_effects_and_interaction_by_hand(
        factorial: tuple[Path, dict, dict]) -> None:
    _, scores, report = factorial
    a0b0, a0b1, a1b0, a1b1 = (values(scores, f"dropout={a},bn={b}", range(8))
                              for a, b in (("on", "after"), ("on", "off"), ("off", "after"),
                                           ("off", "off")))
    by_arm = {c["arm"]: c for c in report["contrasts"]}
    effects = {
        "dropout=off (main effect)": ((a1b0 + a1b1) - (a0b0 + a0b1)) / 2,
        "bn=off (main effect)": ((a0b1 + a1b1) - (a0b0 + a1b0)) / 2,
        "dropout x bn (interaction)": (a1b1 - a0b1) - (a1b0 - a0b0),
    }
    simple = {"dropout=off at bn=after": a1b0 - a0b0, "dropout=off at bn=off": a1b1 - a0b1}
    assert list(by_arm) == [*effects, *simple]
    for family in (effects, simple):
        for label, d in family.items():
            c = by_arm[label]
            assert c["diffs"] == pytest.approx(d.tolist(), abs=1e-12)
            assert c["mean_diff"] == pytest.approx(d.mean(), abs=1e-12)
            assert c["p_value"] == pytest.approx(sign_flip_brute(d), abs=1e-12)
    # One family of five: the three effects and the two simple effects.
    everything = [*effects, *simple]
    assert [by_arm[k]["p_holm"] for k in everything] == pytest.approx(
        holm_by_hand([by_arm[k]["p_value"] for k in everything]))
    assert [by_arm[k]["family"] for k in by_arm] == ["effects"] * 3 + ["simple effects"] * 2
    assert by_arm["dropout=off (main effect)"]["baseline"] == "dropout=on"
    assert report["design"]["analysis"] == "factorial_2x2"
    assert report["friedman"] is None  # two levels per factor: no omnibus test
    inter = by_arm["dropout x bn (interaction)"]
    assert inter["decision"] == "interaction"  # +0.6 points on every seed
    assert "with bn=off than with bn=after" in inter["sentence"]
    assert ("higher" if inter["mean_diff"] > 0 else "lower") in inter["sentence"]
    assert by_arm["bn=off (main effect)"]["decision"] == "worse"
    assert by_arm["dropout=off at bn=after"]["sentence"].startswith(
        "With bn=after, turning dropout off lowers")


# -- words agree with the numbers beside them -----------------------------------------
def _check_prose(c: dict[str, Any], d: np.ndarray) -> None:
    sentence = c["sentence"]
    verb = "raises" if d.mean() > 0 else "lowers"
    assert verb in sentence and ("lowers" if verb == "raises" else "raises") not in sentence
    side = "higher" if d.mean() > 0 else "lower"
    k = int((d > 0).sum() if d.mean() > 0 else (d < 0).sum())
    assert f"{side} on {k} of {d.size} seeds" in sentence


def test_prose_tables_and_plots_agree_with_the_decision(
        worse: tuple[Path, dict, dict]) -> None:
    run_dir, _, report = worse
    (c,) = report["contrasts"]
    assert c["decision"] == "worse"
    _check_prose(c, np.array(c["diffs"]))
    size = f"{abs(c['mean_diff']) * 100:.2f} points"
    assert c["sentence"].startswith(
        f"Turning dropout off lowers cross-fitted validation accuracy by {size}")
    assert c["ci_low"] is None  # the joint outcome's interval: a diverged seed
    assert f"{points(abs(c['ci_high']))} points" in c["sentence"]
    p = c["p_holm"]
    shown = f"{p:.3f}" if p < 0.01 else f"{p:.2f}"  # 3 decimals below 0.01, else 2
    # One contrast: no family to adjust over, so no "after Holm".
    assert f"p = {shown} for no difference;" in c["sentence"]
    assert "after Holm" not in c["sentence"]
    # The reason names the claim's own Holm p, its level, and where the 95% CI lies.
    assert c["why"].startswith(f"Worse: its step-down-adjusted p = {c['p_worse_holm']:.3f} of "
                               "the joint outcome (diverged = worst) against Δ ≥ -0.20 points "
                               "is at most 0.025")
    assert c["ci_high"] < -0.002 and "lies below -0.20 points" in c["why"]
    assert report["answer"].startswith("Yes, it matters.")
    assert "Verdict: worse." in report["answer"]
    md = (run_dir / "report.md").read_text()
    assert "## Verdict: dropout=off vs dropout=on: worse" in md
    assert "- **WORSE** (dropout=off vs dropout=on)" in md
    row = next(line for line in md.splitlines() if line.startswith("| dropout=off vs"))
    assert row.rstrip(" |").endswith("worse")
    assert f"| -{abs(c['mean_diff']) * 100:.2f} |" in row  # table shows the same Δ
    html = (run_dir / "report.html").read_text()
    red = DECISION_COLOURS["worse"]
    assert f'class="badge" style="background:{red}">WORSE<' in html
    assert html.index("WORSE") < html.index("<h2>Answer</h2>")  # the verdict comes first
    titles = {f["name"]: f["title"] for f in report["figures"]}
    assert titles["forest"] == "Verdict: dropout=off vs dropout=on: worse"


def test_methods_paragraph_names_the_interval_the_multiplicity_and_the_floor(
        worse: tuple[Path, dict, dict]) -> None:
    run_dir, _, _ = worse
    md = (run_dir / "report.md").read_text()
    methods = next(line for line in md.splitlines()
                   if line.startswith("The verdict is about the mean"))
    assert "exact paired sign-flip test, which assumes" in methods
    assert "the default estimand, the median, does not need it" in methods
    assert "exact sign-flip inversion (grid 1/10000)" in methods
    assert ("the min-p step-down over the joint sign flips of the shared seeds "
            "(Westfall-Young" in methods)
    assert "Holm's method on the TOST p values (every joint sign pattern counted)" in methods
    assert "no one-sided exact p is below 1/2^n" in methods
    assert "'better' or 'worse' is possible from 6 seeds" in methods
    assert "'equivalent' from 5." in methods
    assert "decided on its joint outcome per seed" in methods
    assert 2.0**-6 <= 0.025 < 2.0**-5 and 2.0**-5 <= 0.05 < 2.0**-4  # the floor, by hand


def test_three_levels_better_and_equivalent(three: tuple[Path, dict, dict]) -> None:
    run_dir, _, report = three
    by_arm = {c["arm"]: c for c in report["contrasts"]}
    assert by_arm["optimizer=momentum"]["decision"] == "better"  # lower loss is better
    assert by_arm["optimizer=adam"]["decision"] == "equivalent"
    for c in by_arm.values():
        _check_prose(c, np.array(c["diffs"]))
    assert "changing optimizer from sgd to momentum lowers cross-fitted validation loss" in \
        by_arm["optimizer=momentum"]["sentence"].lower()
    assert "points" not in by_arm["optimizer=momentum"]["sentence"]  # loss: no % points
    adam = by_arm["optimizer=adam"]
    assert adam["p_equivalent_holm"] <= 0.05
    assert f"TOST p = {adam['p_equivalent_holm']:.3f}" in adam["why"]
    assert adam["ci90_low"] > -0.01 and adam["ci90_high"] < 0.01
    assert "lies inside ±0.0100: any difference is too small to matter" in adam["why"]
    assert report["answer"].startswith("Of 2 contrasts, 1 better and 1 equivalent.")
    assert (run_dir / "report_files" / "critical_difference.png").is_file()


def test_failed_diverged_and_unfinished_are_listed(worse: tuple[Path, dict, dict]) -> None:
    run_dir, _, report = worse
    assert report["failed"] == [{"arm": "dropout=off", "seed": 3, "status": "failed",
                                 "error": "RuntimeError: out of memory"}]
    assert [(f["arm"], f["seed"]) for f in report["diverged"]] == [("dropout=off", 7)]
    assert [(f["arm"], f["seed"], f["status"]) for f in report["unfinished"]] == [
        ("dropout=on", 9, "pending")]
    on = next(a for a in report["arms"] if a["arm"] == "dropout=on")
    assert (on["done"], on["diverged"], on["failed"], on["unfinished"]) == (9, 0, 0, 1)
    (c,) = report["contrasts"]
    dv = c["divergence"]
    assert (dv["paired"], dv["arm_only"], dv["baseline_only"], dv["both"]) == (8, 1, 0, 0)
    assert dv["p_value"] == pytest.approx(st.binomtest(1, 1).pvalue)
    assert c["divergence_sentence"].startswith(
        "Divergence: dropout=off diverged on 1 and dropout=on on 0 of 8 paired seeds")
    md = (run_dir / "report.md").read_text()
    assert "| dropout=off | 7 | diverged |" in md
    assert "| dropout=off | 3 | failed | RuntimeError: out of memory |" in md
    assert "complete pairs" not in " ".join(report["warnings"])


def test_a_diverged_arm_is_never_better_on_the_seeds_it_survived(tmp_path: Path) -> None:
    """Dropout off gains a point wherever it finishes but diverges on 3 of 10 seeds.
    On complete pairs (7 seeds, all gains) the rule would say 'better'; with divergence
    as the worst outcome it must not."""
    scores = draw({"dropout=on": 0.0, "dropout=off": 0.01}, range(10), base=0.97,
                  sd_seed=0.002, sd_noise=0.0005, seed=8)
    broken = {("dropout=off", s): "diverged" for s in (1, 4, 6)}
    run_dir = make_store(tmp_path, ONE_AT_A_TIME.format(seeds=10), scores, broken)
    write_report(run_dir, power=False)  # power is not under test here
    (c,) = read_json(run_dir / "report.json")["contrasts"]
    survivors = [s for s in range(10) if s not in (1, 4, 6)]
    d = values(scores, "dropout=off", survivors) - values(scores, "dropout=on", survivors)
    assert one_sided_brute(d - 0.002, upper=True) <= 0.025  # complete pairs: 'better'
    assert hartigan(d, 0.95)[0] > 0.002
    assert c["decision"] != "better"
    assert c["decision_if_diverged_dropped"] == "better"
    assert "Had its diverged runs been dropped (complete pairs) instead of counted as the " \
           "worst outcome, the same rule would have said 'better'." in c["why"]
    assert (c["n"], c["n_paired"]) == (7, 10)
    assert c["divergence"]["arm_only"] == 3
    assert c["divergence"]["p_value"] == pytest.approx(st.binomtest(3, 3).pvalue)


def test_below_six_seeds_no_claim_is_possible_and_it_says_why(tmp_path: Path) -> None:
    scores = draw({"dropout=on": 0.0, "dropout=off": -0.01}, range(4), base=0.97,
                  sd_seed=0.002, sd_noise=0.0005, seed=4)
    run_dir = make_store(tmp_path, ONE_AT_A_TIME.format(seeds=4), scores)
    write_report(run_dir, power=False)  # power is not under test here
    report = read_json(run_dir / "report.json")
    (c,) = report["contrasts"]
    assert c["n"] == 4 and c["decision"] == "inconclusive"
    # 1/2^4 = 0.0625 is above every claim's level: even the 95% interval is unbounded.
    assert 2.0**-4 > 0.05 and math.floor(0.025 * 2**4) == 0
    assert (c["ci_low"], c["ci_high"]) == (None, None)  # -inf and inf in strict JSON
    floor = "With 4 paired seeds no one-sided exact p can be below 1/2^4 = 0.0625"
    assert floor in c["why"] and "no claim was possible whatever the data" in c["why"]
    assert any(w.startswith(floor) for w in report["warnings"])
    assert "95% CI unbounded: too few seeds" in c["sentence"]
    assert report["answer"].startswith("Not settled: no claim with these seeds.")


def test_an_arm_with_no_finished_run_is_left_out_but_a_diverging_one_is_not(
        tmp_path: Path) -> None:
    """Every adam run failed: no outcome at all, so no contrast. Every momentum run
    diverged: that is an outcome (the worst), so its contrast stays, never 'better'."""
    scores = draw({"optimizer=sgd": 0.0, "optimizer=momentum": -0.03, "optimizer=adam": 0.0},
                  range(6), base=0.08, sd_seed=0.004, sd_noise=0.001, seed=6, grid=1e-6)
    broken = {**{("optimizer=adam", s): "failed" for s in range(6)},
              **{("optimizer=momentum", s): "diverged" for s in range(6)}}
    run_dir = make_store(tmp_path, THREE_LEVELS.replace("seeds = 10", "seeds = 6"), scores,
                         broken)
    write_report(run_dir, power=False)  # power is not under test here
    report = read_json(run_dir / "report.json")
    (c,) = report["contrasts"]
    # Divergence is an outcome: an arm that diverged on every seed is "worse" (every
    # seed at the bottom of the joint outcome: p = 1/2^6 <= 0.025).
    assert c["arm"] == "optimizer=momentum" and c["decision"] == "worse"
    assert c["p_worse"] == 2.0 ** -6
    assert (c["n"], c["n_paired"], c["divergence"]["arm_only"]) == (0, 6, 6)
    assert report["excluded_arms"] == ["optimizer=adam"]
    assert len(report["diverged"]) == 6 and len(report["failed"]) == 6
    assert report["friedman"] is None  # two arms left: no omnibus test
    assert "no finished run: optimizer=adam" in report["headline"]
    html = (run_dir / "report.html").read_text()
    assert "EXCLUDED" in html[:html.index("<h2>Answer</h2>")]
    momentum = next(s for s in report["arms"] if s["arm"] == "optimizer=momentum")
    assert (momentum["n"], momentum["diverged"], momentum["divergence_rate"]) == (0, 6, 1.0)


def test_no_seed_with_both_sides_is_a_user_error(tmp_path: Path) -> None:
    scores = draw({"dropout=on": 0.0, "dropout=off": 0.0}, range(2), base=0.97,
                  sd_seed=0.002, sd_noise=0.001, seed=5)
    run_dir = make_store(tmp_path, ONE_AT_A_TIME.format(seeds=2), scores,
                         {("dropout=off", 0): "failed", ("dropout=on", 1): "failed"})
    with pytest.raises(UserError, match="no seed has an outcome in both an arm and its "
                                        "baseline"):
        write_report(run_dir)


def test_an_old_store_without_crossfit_reports_on_what_it_has_and_warns(
        tmp_path: Path) -> None:
    scores = draw({"dropout=on": 0.0, "dropout=off": -0.005}, range(8), base=0.97,
                  sd_seed=0.002, sd_noise=0.0006, seed=9)
    run_dir = make_store(tmp_path, ONE_AT_A_TIME.format(seeds=8), scores, crossfit=False)
    write_report(run_dir, power=False)  # power is not under test here
    report = read_json(run_dir / "report.json")
    assert report["study"]["metric"] == "val_accuracy"
    assert report["study"]["selection_free"] is False
    assert report["estimand"]["optimistic"] is True
    assert report["estimand"]["runs_without_crossfit"] == 16
    assert report["selection_optimism"] == []  # nothing selection-free to subtract
    (c,) = report["contrasts"]
    d = values(scores, "dropout=off", range(8)) - values(scores, "dropout=on", range(8))
    assert c["mean_diff"] == pytest.approx(d.mean(), abs=1e-12)
    assert "validation accuracy (optimistic)" in c["sentence"]
    warning = next(w for w in report["warnings"] if "before the cross-fitted metric" in w)
    assert "optimistic" in warning and "`--fresh`" in warning
    md = (run_dir / "report.md").read_text()
    assert "which is optimistic: this store predates the cross-fitted metric" in md


def test_a_monte_carlo_p_value_says_so_with_its_error(tmp_path: Path) -> None:
    """A loss has no grid; beyond 20 seeds its sign patterns are sampled, not counted."""
    scores = draw({"optimizer=sgd": 0.0, "optimizer=momentum": -0.0005,
                   "optimizer=adam": 0.0005}, range(21), base=0.08, sd_seed=0.004,
                  sd_noise=0.001, seed=12, grid=1e-6)
    run_dir = make_store(tmp_path, THREE_LEVELS.replace("seeds = 10", "seeds = 21"), scores)
    write_report(run_dir, power=False)  # power is not under test here
    report = read_json(run_dir / "report.json")
    md = (run_dir / "report.md").read_text()
    for c in report["contrasts"]:
        assert c["exact"] is False and c["interval"].startswith("Monte Carlo sign-flip")
        p = c["p_value"]
        assert c["mc_se"] == pytest.approx(math.sqrt(p * (1 - p) / 200_000), rel=1e-12)
        assert (f"{c['arm']} vs {c['baseline']} (its p of no difference has Monte Carlo "
                f"standard error {c['mc_se']:.2g})") in md


# -- sequential studies -----------------------------------------------------------------
def _oracle(scores: Mapping[str, Mapping[int, float]], run: Sequence[int]) -> Any:
    from ablate.stats import SequentialDesign, pair, sequential_verdicts

    out = {arm: {s: scores[arm][s] for s in run} for arm in scores}
    c = pair(out["dropout=off"], out["dropout=on"], list(run), name="dropout=off",
             reference="dropout=on", resolution=1e-4)
    return sequential_verdicts(SequentialDesign(6, 14, 2, rope=0.002, estimand="mean"), [c],
                               list(run))


def test_a_sequential_store_reports_its_path_and_stops_where_the_design_says(
        sequential: tuple[Path, dict, dict]) -> None:
    run_dir, scores, report = sequential
    res = _oracle(scores, range(12))
    seq = report["sequential"]
    assert seq["stop"] == res.stop and seq["why"] == res.why
    assert seq["looks_done"] == [6, 8, 10, 12] == list(res.looks_done)
    (v,) = res.verdicts
    (sv,) = seq["verdicts"]
    assert (sv["decision"], sv["settled_at"]) == (v.decision, v.settled_at)
    for look, mine in zip(v.path, sv["path"], strict=True):
        assert mine["n"] == look.n and mine["decision"] == look.decision
        assert (mine["ci_low"], mine["ci_high"]) == pytest.approx(
            (None if math.isinf(look.ci_low) else look.ci_low,
             None if math.isinf(look.ci_high) else look.ci_high))
    (c,) = report["contrasts"]
    # Decisions and intervals come from the looks; no fixed-sample inference is shown.
    assert c["decision"] == v.decision
    assert (c["ci_low"], c["ci_high"]) == pytest.approx((v.path[-1].ci_low, v.path[-1].ci_high))
    for key in ("p_value", "p_holm", "p_better_holm", "p_worse_holm", "p_equivalent_holm",
                "ci90_low", "ci90_high", "p_t", "p_wilcoxon", "power"):
        assert c[key] is None, key
    assert report["seeds_needed"] is None
    assert "repeated confidence interval" in report["study"]["interval"]
    assert "Maurer & Bretz" in report["study"]["multiplicity"]
    assert c["why"].startswith(f"{v.decision.capitalize()}: claimed at the look with "
                               f"{v.settled_at} seeds per arm")
    md = (run_dir / "report.md").read_text()
    assert "Holm p (Δ = 0)" not in md and "after Holm" not in md
    assert "| 8 | 8 |" in md  # the path table's row for the look at 8 seeds
    assert (run_dir / "report_files" / "sequential_path.png").stat().st_size > 5000
    assert report["design"]["seeds_analysed"] == list(range(12))


def test_the_driver_state_is_the_report_s(sequential: tuple[Path, dict, dict],
                                          worse: tuple[Path, dict, dict]) -> None:
    from ablate.analysis import analyse_run_dir, sequential_state

    run_dir, _, report = sequential
    state = sequential_state(run_dir)
    assert state is not None
    assert state == analyse_run_dir(run_dir, power=False).sequential
    as_json = json.loads(json.dumps(state.to_dict(), allow_nan=False))
    assert as_json == {k: v for k, v in report["sequential"].items() if k != "sentence"}
    assert sequential_state(worse[0]) is None  # a fixed design


def test_an_unfinished_round_waits_and_the_driver_is_told_what_next(tmp_path: Path) -> None:
    """Seeds 0..9 queued, seed 8 of dropout=off still pending: looks at 6 and 8 seeds
    only (seed 9 waits for seed 8), and the study goes on to 10."""
    from ablate.analysis import sequential_state

    scores = draw({"dropout=on": 0.0, "dropout=off": 0.0}, range(14), base=0.97,
                  sd_seed=0.002, sd_noise=0.003, seed=10)
    run_dir = make_store(tmp_path, SEQUENTIAL, scores, {("dropout=off", 8): "pending"},
                         seeds=range(10))
    state = sequential_state(run_dir)
    assert state is not None and state == _oracle(scores, range(8))
    assert state.looks_done == (6, 8)
    if not state.stop:
        assert state.next_seeds == 10
    write_report(run_dir)
    report = read_json(run_dir / "report.json")
    assert report["design"]["seeds_analysed"] == list(range(8))
    assert ("dropout=off", 8, "pending") in [(f["arm"], f["seed"], f["status"])
                                             for f in report["unfinished"]]


def test_before_the_first_look_the_report_says_so(tmp_path: Path) -> None:
    from ablate.analysis import sequential_state

    scores = draw({"dropout=on": 0.0, "dropout=off": 0.004}, range(14), base=0.97,
                  sd_seed=0.002, sd_noise=0.0015, seed=11)
    run_dir = make_store(tmp_path, SEQUENTIAL, scores, seeds=range(4))
    state = sequential_state(run_dir)
    assert state is not None and (state.looks_done, state.stop, state.next_seeds) == ((), False, 6)
    write_report(run_dir)
    report = read_json(run_dir / "report.json")
    (c,) = report["contrasts"]
    assert c["decision"] == "inconclusive"
    assert c["why"] == "Not settled: no look yet; the first is at 6 seeds per arm."
    assert report["answer"].startswith("Not settled yet.")


def test_a_sequential_factorial_decides_its_three_effects_only(tmp_path: Path) -> None:
    shifts = {"dropout=on,bn=after": 0.0, "dropout=on,bn=off": -0.010,
              "dropout=off,bn=after": -0.004, "dropout=off,bn=off": -0.008}
    scores = draw(shifts, range(10), base=0.97, sd_seed=0.002, sd_noise=0.0004, seed=3)
    source = FACTORIAL.replace("seeds = 8", "seeds = { min = 6, max = 10, step = 2 }")
    run_dir = make_store(tmp_path, source, scores, seeds=range(8))
    write_report(run_dir)
    report = read_json(run_dir / "report.json")
    assert [c["arm"] for c in report["contrasts"]] == [
        "dropout=off (main effect)", "bn=off (main effect)", "dropout x bn (interaction)"]
    assert [v["decision"] for v in report["sequential"]["verdicts"]] == [
        c["decision"] for c in report["contrasts"]]
    assert report["contrasts"][2]["decision"] == "interaction"  # +0.6 points on every seed
    assert any("no simple effect is decided" in w for w in report["warnings"])


# -- the CLI and the HTML -----------------------------------------------------------------
def test_cli_report(worse: tuple[Path, dict, dict], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ablate.cli import app

    run_dir, _, _ = worse
    copy = shutil.copytree(run_dir, tmp_path / "copy")
    result = CliRunner().invoke(app, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    assert "report.html" in result.output
    missing = CliRunner().invoke(app, ["report", str(tmp_path / "nothing")])
    assert missing.exit_code == 2


def test_html_is_self_contained(worse: tuple[Path, dict, dict]) -> None:
    run_dir, _, _ = worse
    html = (run_dir / "report.html").read_text()
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", html, flags=re.I)
    assert refs, "expected inline images"
    assert all(r.startswith("data:image/png;base64,") for r in refs), refs
    assert not re.search(r"https?://", html)
    assert "<script" not in html and "<link" not in html and "@import" not in html


@pytest.mark.browser
def test_html_renders_in_headless_chromium(worse: tuple[Path, dict, dict], tmp_path: Path,
                                           chromium: str) -> None:
    from PIL import Image

    run_dir, _, _ = worse
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             f"--screenshot={shot}", "--window-size=1200,2000",
             (run_dir / "report.html").resolve().as_uri()],
            check=True, capture_output=True, timeout=120)
    with Image.open(shot) as img:
        assert img.size == (1200, 2000)
        rgb = np.asarray(img.convert("RGB"), dtype=np.float64)  # (2000, 1200, 3)
    assert rgb.std() > 20, "the screenshot is blank"
    # The red WORSE badge is on the first screen (top 600 px), where a reader looks first.
    red = np.array([int(DECISION_COLOURS["worse"][i:i + 2], 16) for i in (1, 3, 5)])
    near = np.abs(rgb[:600] - red).sum(axis=2) < 30
    assert near.sum() > 500, "no red verdict badge at the top of the page"
    # ...and the inline figures were decoded: the forest plot's axes add many
    # non-white pixels below the verdict box.
    assert (rgb[600:1400].sum(axis=2) < 600).sum() > 2000


LEGACY_RUN = Path(__file__).parent.parent / "data" / "legacy_run"
VERSION_KEYS = ("schema", "provenance")  # what a newer ablate may write differently


def _without_versions(value: object) -> object:
    if isinstance(value, dict):
        return {k: _without_versions(v) for k, v in value.items() if k not in VERSION_KEYS}
    if isinstance(value, list):
        return [_without_versions(v) for v in value]
    return value


def _without_budget(report: dict[str, Any]) -> dict[str, Any]:
    """report.json less what was added after the legacy run was written: the arms'
    convergence at their budget (a key, a warning and a sentence of the answer) and the
    per-image sections ("where")."""
    out = {k: v for k, v in report.items() if k not in ("convergence", "where")}
    out["warnings"] = [w for w in report["warnings"] if not w.startswith("Budget: ")]
    out["answer"] = re.sub(r" At this budget \([^)]*\) the arms had not converged, so the "
                           r"verdict holds at this budget\.", "", report["answer"])
    return out


def test_an_old_run_directory_reports_as_it_did(tmp_path: Path) -> None:
    """A store written by an earlier version (tests/data/README.md) gives the report.json
    that version wrote, except for version fields and what later versions add (the
    budget caveat: its 3-epoch arms were still improving): every number, decision and
    sentence."""
    shutil.copy(LEGACY_RUN / "runs.sqlite", tmp_path / "runs.sqlite")
    write_report(tmp_path)
    now = json.loads((tmp_path / "report.json").read_text())
    then = json.loads((LEGACY_RUN / "report.json").read_text())
    assert "convergence" not in then
    assert [a["converged"] for a in now["convergence"]["arms"]] == [False, False, False]
    assert sum(w.startswith("Budget: ") for w in now["warnings"]) == 1
    assert _without_budget(now) != now  # the caveat is there, in the answer too
    assert _without_versions(_without_budget(now)) == _without_versions(then)
    # the per-image sections say the runs predate predictions and need a rerun
    assert "where" not in then and now["where"]["available"] is False
    assert "rerun" in now["where"]["note"] and now["where"]["runs_without_predictions"]
    md = (tmp_path / "report.md").read_text()
    assert "## Where the difference lives" in md and "per-image predictions" in md


def test_median_report_names_its_estimand_and_its_numbers_are_the_sign_tests(
        tmp_path: Path) -> None:
    """The default study decides on the median: report.json says so, the interval is the
    order-statistic one and the p values SciPy's exact binomial test, counted by hand
    from the per-seed differences the report carries; the methods say why."""
    import scipy.stats as st

    source = ONE_AT_A_TIME.format(seeds=12).replace(
        'estimand = "mean"  # these tests check the mean\'s oracles; test_median_report the '
        'default\n', "")
    assert "estimand" not in source
    scores = draw({"dropout=on": 0.0, "dropout=off": 0.004}, range(12), base=0.97,
                  sd_seed=0.002, sd_noise=0.0015, seed=4)
    run_dir = make_store(tmp_path, source, scores)
    write_report(run_dir)
    report = read_json(run_dir / "report.json")
    (c,) = report["contrasts"]
    assert report["study"]["estimand"] == "median"
    assert c["estimand"] == "median of the joint outcome (diverged = worst)"
    d = np.sort(np.round(np.array(c["diffs"]) / 1e-4)) * 1e-4
    n = d.size
    k = next(k for k in range(n + 1) if st.binom.sf(k - 1, n, 0.5) <= 0.025)  # 10 of 12
    assert (c["ci_low"], c["ci_high"]) == pytest.approx((d[n - k], d[k - 1]), abs=1e-12)
    above = int(np.sum(d > 0.002 + 1e-12))
    assert c["p_better"] == pytest.approx(
        st.binomtest(above, n, 0.5, alternative="greater").pvalue)
    assert c["median_diff"] == pytest.approx(float(np.median(d)), abs=1e-12)
    md = (run_dir / "report.md").read_text()
    assert "The verdict is about the median of each contrast's per-seed difference" in md
    assert "by a median of" in c["sentence"]
