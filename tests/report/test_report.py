"""`ablate report`: numbers against SciPy, words against the decision, files against a browser.

No training here: each study's store is written directly with synthetic per-seed scores
drawn from a seeded numpy Generator (including failed, diverged and unfinished runs),
so the expected numbers are known and every test is deterministic.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.stats as st

from ablate.errors import UserError
from ablate.report import DECISION_COLOURS, write_report
from ablate.store import Store
from ablate.study import StudyRecord, parse_study

ONE_AT_A_TIME = """
name = "synthetic_dropout"
question = "Does dropout change validation accuracy?"
seeds = {seeds}
metric = "val_accuracy"
rope = 0.002
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


def make_store(run_dir: Path, source: str, scores: Mapping[str, Mapping[int, float]],
               broken: Mapping[tuple[str, int], str] | None = None, seed: int = 0,
               legacy: bool = False) -> Path:
    """Write a finished study's store with the given final metric per (arm, seed).

    broken: (arm, seed) -> "failed" | "diverged" | "pending"; those runs get no usable
    metric (a diverged run keeps a finite val_accuracy on purpose: it must still be
    left out). Per-epoch curves end at the final score. legacy: describe the study the
    way stores written before the study record did (a key-value `meta` table).
    """
    broken = broken or {}
    study = parse_study(source, "studies/synthetic.toml")
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
    accuracy = study.metric.name == "val_accuracy"
    for arm in study.arms:
        n_layers = len(arm.config.layers) + 1
        for s in study.seeds:
            store.queue(arm.name, s, "hash", arm.config.to_dict())
            status = broken.get((arm.name, s), "done")
            if status == "pending":
                continue
            if status == "failed":
                store.mark(arm.name, [s], "failed", error="RuntimeError: out of memory")
                continue
            final = scores[arm.name][s]
            epochs = []
            for e in range(1, EPOCHS + 1):
                shrink = (EPOCHS - e) / EPOCHS  # 0 at the last epoch
                val_acc = final - 0.02 * shrink if accuracy else 0.9 + 0.05 * rng.random()
                val_loss = (0.1 + 0.1 * shrink if accuracy else final + 0.1 * shrink)
                if status == "diverged" and e > 1:
                    val_loss = val_acc = math.nan
                epochs.append({
                    "epoch": e, "train_loss": 0.3 / e + 0.01 * rng.random(),
                    "train_accuracy": 0.9 + 0.02 * e, "val_loss": val_loss,
                    "val_accuracy": val_acc, "seconds": 1.0,
                    "grad_norms": [2.0 / (layer + 1) / e * (1 + 0.1 * rng.random())
                                   for layer in range(n_layers)],
                    "weight_norms": [10.0] * n_layers})
            metrics = {"train_loss": 0.1, "val_loss": final if not accuracy else 0.1,
                       "val_accuracy": final if accuracy else 0.95,
                       "test_loss": 0.1, "test_accuracy": 0.96 + 0.001 * rng.random()}
            if status == "diverged":
                metrics.update(val_loss=math.nan, val_accuracy=0.098)
            store.finish(arm.name, s, status=status, seconds=2.0, epochs=epochs,
                         best_epoch=EPOCHS, metrics=metrics, checkpoint=None)
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
BROKEN = {("dropout=off", 3): "failed", ("dropout=on", 7): "diverged",
          ("dropout=off", 9): "pending"}


@pytest.fixture(scope="module")
def worse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """Dropout off lowers accuracy by ~0.5 points on every seed; three runs are broken."""
    scores = draw({"dropout=on": 0.0, "dropout=off": -0.005}, range(10), base=0.97,
                  sd_seed=0.002, sd_noise=0.0006, seed=1)
    run_dir = make_store(tmp_path_factory.mktemp("worse"), ONE_AT_A_TIME.format(seeds=10),
                         scores, BROKEN)
    write_report(run_dir)
    return run_dir, scores, read_json(run_dir / "report.json")


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """val_loss, lower is better: momentum clearly better, adam equivalent to sgd."""
    scores = draw({"optimizer=sgd": 0.0, "optimizer=momentum": -0.03, "optimizer=adam": 0.0005},
                  range(10), base=0.08, sd_seed=0.004, sd_noise=0.001, seed=2, grid=1e-6)
    run_dir = make_store(tmp_path_factory.mktemp("three"), THREE_LEVELS, scores)
    write_report(run_dir)
    return run_dir, scores, read_json(run_dir / "report.json")


@pytest.fixture(scope="module")
def factorial(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    shifts = {"dropout=on,bn=after": 0.0, "dropout=on,bn=off": -0.010,
              "dropout=off,bn=after": -0.004, "dropout=off,bn=off": -0.011}
    scores = draw(shifts, range(8), base=0.97, sd_seed=0.002, sd_noise=0.0008, seed=3)
    run_dir = make_store(tmp_path_factory.mktemp("factorial"), FACTORIAL, scores)
    write_report(run_dir)
    return run_dir, scores, read_json(run_dir / "report.json")


def complete(scores: Mapping[str, Mapping[int, float]],
             drop: frozenset[int] | set[int] = frozenset()) -> dict[str, np.ndarray]:
    """The oracle's own pairing: every arm's scores on the seeds not dropped."""
    seeds = sorted(set.intersection(*(set(v) for v in scores.values())) - set(drop))
    return {arm: np.array([v[s] for s in seeds]) for arm, v in scores.items()}


def sign_flip_brute(d: np.ndarray) -> float:
    """Two-sided sign-flip p by enumerating all 2^n sign vectors (independent oracle)."""
    obs = abs(d.sum())
    hits = sum(abs(np.dot(signs, d)) >= obs - 1e-12
               for signs in itertools.product((1.0, -1.0), repeat=d.size))
    return hits / 2**d.size


def holm_by_hand(p: list[float]) -> list[float]:
    order = sorted(range(len(p)), key=p.__getitem__)
    out, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out


# -- files -----------------------------------------------------------------------------
def test_writes_three_files_with_the_required_keys(worse: tuple[Path, dict, dict]) -> None:
    run_dir, _, report = worse
    for name in ("report.md", "report.html", "report.json"):
        assert (run_dir / name).stat().st_size > 1000, name
    for c in report["contrasts"]:
        for key in ("arm", "baseline", "metric", "n", "mean_diff", "ci_low", "ci_high",
                    "p_value", "p_holm", "decision"):
            assert key in c, key
    for key in ("design", "arms", "friedman", "warnings", "failed", "diverged",
                "seeds_needed", "answer"):
        assert key in report, key
    md = (run_dir / "report.md").read_text()
    for png in re.findall(r"\]\((report_files/[^)]+\.png)\)", md):
        assert (run_dir / png).stat().st_size > 5000, png
    assert len(re.findall(r"\]\(report_files/", md)) == 5  # forest, slopes, dist, curves, grads
    assert sorted(p.name for p in (run_dir / "report_files").iterdir()) == sorted(
        f"{f['name']}.png" for f in report["figures"])


def test_a_store_from_before_the_study_record_reports_the_same(
        worse: tuple[Path, dict, dict], tmp_path: Path) -> None:
    """Run directories written by the previous layout (a key-value meta table and the
    study file's text) still report, and to the same numbers and words."""
    _, scores, report = worse
    old = make_store(tmp_path / "old", ONE_AT_A_TIME.format(seeds=10), scores, BROKEN,
                     legacy=True)
    write_report(old)
    assert read_json(old / "report.json") == report
    assert (old / "report.md").read_text() == (worse[0] / "report.md").read_text()


def test_report_is_deterministic(worse: tuple[Path, dict, dict], tmp_path: Path) -> None:
    run_dir, _, _ = worse
    copy = shutil.copytree(run_dir, tmp_path / "copy")
    write_report(copy)
    for name in ("report.json", "report.md", "report.html"):
        assert (copy / name).read_bytes() == (run_dir / name).read_bytes(), name


# -- numbers against SciPy -------------------------------------------------------------
def test_contrast_numbers_match_scipy(worse: tuple[Path, dict, dict]) -> None:
    _, scores, report = worse
    paired = complete(scores, drop={3, 7, 9})
    d = paired["dropout=off"] - paired["dropout=on"]
    (c,) = report["contrasts"]
    assert c["n"] == d.size == 7
    # Means and sds of the same 7 floats: only summation order can differ (~1e-16).
    assert c["mean_diff"] == pytest.approx(d.mean(), abs=1e-12)
    assert c["d_z"] == pytest.approx(d.mean() / d.std(ddof=1), rel=1e-9)
    assert c["p_t"] == pytest.approx(st.ttest_rel(paired["dropout=off"],
                                                  paired["dropout=on"]).pvalue, rel=1e-9)
    assert c["p_wilcoxon"] == pytest.approx(st.wilcoxon(d).pvalue, rel=1e-9)
    assert c["p_value"] == pytest.approx(sign_flip_brute(d), abs=1e-12)  # exact: 2^7 cases
    assert c["p_holm"] == c["p_value"]  # a family of one
    assert c["wins"] == int((d > 0).sum())
    # An independent BCa bootstrap (other seed): two runs of 9,999 resamples differ at the
    # 2.5% / 97.5% quantiles by about 0.05 standard errors; 0.3 SE leaves room for that.
    se = d.std(ddof=1) / math.sqrt(d.size)
    ref = st.bootstrap((d,), np.mean, method="BCa", n_resamples=9999,
                       rng=np.random.default_rng(12345)).confidence_interval
    assert c["ci_low"] == pytest.approx(ref.low, abs=0.3 * se)
    assert c["ci_high"] == pytest.approx(ref.high, abs=0.3 * se)
    assert c["ci_low"] < c["mean_diff"] < c["ci_high"]


def test_arm_table_numbers_match_numpy_and_scipy(worse: tuple[Path, dict, dict]) -> None:
    _, scores, report = worse
    paired = complete(scores, drop={3, 7, 9})
    for row in report["arms"]:
        x = paired[row["arm"]]
        assert row["n"] == x.size
        assert row["mean"] == pytest.approx(x.mean(), abs=1e-12)
        assert row["sd"] == pytest.approx(x.std(ddof=1), rel=1e-9)
        assert row["median"] == pytest.approx(np.median(x), abs=1e-12)
        low, high = st.t.interval(0.95, x.size - 1, loc=x.mean(), scale=st.sem(x))
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), rel=1e-9)


def test_three_levels_friedman_and_holm_match_scipy(three: tuple[Path, dict, dict]) -> None:
    _, scores, report = three
    paired = complete(scores)
    base = paired["optimizer=sgd"]
    raw = []
    for c in report["contrasts"]:
        d = paired[c["arm"]] - base
        assert c["mean_diff"] == pytest.approx(d.mean(), abs=1e-12)
        assert c["p_value"] == pytest.approx(sign_flip_brute(d), abs=1e-12)
        assert c["p_t"] == pytest.approx(st.ttest_rel(paired[c["arm"]], base).pvalue,
                                         rel=1e-9)
        raw.append(c["p_value"])
    assert [c["p_holm"] for c in report["contrasts"]] == pytest.approx(holm_by_hand(raw))
    fr = report["friedman"]
    ref = st.friedmanchisquare(*paired.values())
    assert fr["statistic"] == pytest.approx(ref.statistic, rel=1e-9)
    assert fr["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    # Lower loss is better: rank 1 goes to the smallest loss within each seed.
    ranks = st.rankdata(np.stack(list(paired.values()), axis=1), axis=1).mean(axis=0)
    assert fr["avg_ranks"] == pytest.approx(ranks.tolist())


def test_factorial_main_effects_and_interaction_by_hand(
        factorial: tuple[Path, dict, dict]) -> None:
    _, scores, report = factorial
    p = complete(scores)
    a0b0, a0b1 = p["dropout=on,bn=after"], p["dropout=on,bn=off"]
    a1b0, a1b1 = p["dropout=off,bn=after"], p["dropout=off,bn=off"]
    by_arm = {c["arm"]: c for c in report["contrasts"]}
    expected = {
        "dropout=off (main effect)": ((a1b0 + a1b1) - (a0b0 + a0b1)) / 2,
        "bn=off (main effect)": ((a0b1 + a1b1) - (a0b0 + a1b0)) / 2,
        "dropout x bn (interaction)": (a1b1 - a0b1) - (a1b0 - a0b0),
    }
    assert list(by_arm) == list(expected)
    for label, d in expected.items():
        c = by_arm[label]
        assert c["diffs"] == pytest.approx(d.tolist(), abs=1e-12)
        assert c["mean_diff"] == pytest.approx(d.mean(), abs=1e-12)
        assert c["p_value"] == pytest.approx(sign_flip_brute(d), abs=1e-12)
    assert [c["p_holm"] for c in by_arm.values()] == pytest.approx(
        holm_by_hand([c["p_value"] for c in by_arm.values()]))
    assert by_arm["dropout=off (main effect)"]["baseline"] == "dropout=on"
    assert report["design"]["analysis"] == "factorial_2x2"
    assert report["friedman"] is None  # two levels per factor: no omnibus test
    # The shifts drawn: bn off costs ~1 point, the interaction is ~+0.3 points.
    assert by_arm["bn=off (main effect)"]["decision"] == "worse"
    sentence = by_arm["dropout x bn (interaction)"]["sentence"]
    assert "with bn=off than with bn=after" in sentence
    assert ("higher" if by_arm["dropout x bn (interaction)"]["mean_diff"] > 0
            else "lower") in sentence


# -- words agree with the decision -------------------------------------------------------
def _check_prose(c: dict[str, Any], d: np.ndarray, higher_is_better: bool) -> None:
    sentence = c["sentence"]
    if c.get("kind") == "interaction":
        return
    verb = "raises" if d.mean() > 0 else "lowers"
    assert verb in sentence and ("lowers" if verb == "raises" else "raises") not in sentence
    side = "higher" if d.mean() > 0 else "lower"
    k = int((d > 0).sum() if d.mean() > 0 else (d < 0).sum())
    assert f"{side} on {k} of {d.size} seeds" in sentence


def test_prose_tables_and_plots_agree_with_the_decision(
        worse: tuple[Path, dict, dict]) -> None:
    run_dir, scores, report = worse
    (c,) = report["contrasts"]
    assert c["decision"] == "worse"
    paired = complete(scores, drop={3, 7, 9})
    _check_prose(c, paired["dropout=off"] - paired["dropout=on"], True)
    points = f"{abs(c['mean_diff']) * 100:.2f} points"
    assert c["sentence"].startswith(f"Turning dropout off lowers validation accuracy by {points}")
    assert "after Holm" in c["sentence"]
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


def test_three_levels_better_and_equivalent(three: tuple[Path, dict, dict]) -> None:
    run_dir, scores, report = three
    by_arm = {c["arm"]: c for c in report["contrasts"]}
    assert by_arm["optimizer=momentum"]["decision"] == "better"  # lower loss is better
    assert by_arm["optimizer=adam"]["decision"] == "equivalent"
    paired = complete(scores)
    for arm, c in by_arm.items():
        _check_prose(c, paired[arm] - paired["optimizer=sgd"], False)
    assert "changing optimizer from sgd to momentum lowers validation loss" in \
        by_arm["optimizer=momentum"]["sentence"].lower()
    assert "points" not in by_arm["optimizer=momentum"]["sentence"]  # loss: no % points
    assert "too small to matter" in by_arm["optimizer=adam"]["why"]
    assert report["answer"].startswith("Of 2 contrasts, 1 better and 1 equivalent.")
    assert (run_dir / "report_files" / "critical_difference.png").is_file()


def test_failed_diverged_and_unfinished_are_listed_and_excluded(
        worse: tuple[Path, dict, dict]) -> None:
    run_dir, _, report = worse
    assert report["failed"] == [{"arm": "dropout=off", "seed": 3, "status": "failed",
                                 "error": "RuntimeError: out of memory"}]
    assert [(f["arm"], f["seed"]) for f in report["diverged"]] == [("dropout=on", 7)]
    assert [(f["arm"], f["seed"], f["status"]) for f in report["unfinished"]] == [
        ("dropout=off", 9, "pending")]
    assert report["dropped_seeds"] == [3, 7, 9]
    assert report["design"]["seeds_analysed"] == [0, 1, 2, 4, 5, 6, 8]
    assert all(c["n"] == 7 for c in report["contrasts"])
    assert any("complete pairs" in w for w in report["warnings"])
    on = next(a for a in report["arms"] if a["arm"] == "dropout=on")
    assert (on["done"], on["diverged"], on["failed"]) == (9, 1, 0)
    md = (run_dir / "report.md").read_text()
    assert "| dropout=on | 7 | diverged |" in md
    assert "| dropout=off | 3 | failed | RuntimeError: out of memory |" in md


def test_below_six_seeds_gives_intervals_only_and_says_why(tmp_path: Path) -> None:
    scores = draw({"dropout=on": 0.0, "dropout=off": -0.01}, range(4), base=0.97,
                  sd_seed=0.002, sd_noise=0.0005, seed=4)
    run_dir = make_store(tmp_path, ONE_AT_A_TIME.format(seeds=4), scores)
    write_report(run_dir)
    report = read_json(run_dir / "report.json")
    (c,) = report["contrasts"]
    assert c["n"] == 4 and c["decision"] == "inconclusive"
    assert "2/2^4" in c["reason"] and "2/2^4" in c["why"]
    assert "intervals only" in c["why"]
    assert c["ci_high"] < -0.002  # the interval is still reported, and it is clear
    assert any("only n=4 paired seeds" in w for w in report["warnings"])
    assert report["answer"].startswith("Not settled yet.")


def test_an_arm_that_never_finished_is_left_out_and_shown(tmp_path: Path) -> None:
    scores = draw({"optimizer=sgd": 0.0, "optimizer=momentum": -0.03, "optimizer=adam": 0.0},
                  range(6), base=0.08, sd_seed=0.004, sd_noise=0.001, seed=6, grid=1e-6)
    broken = {("optimizer=adam", s): "diverged" for s in range(6)}
    run_dir = make_store(tmp_path, THREE_LEVELS.replace("seeds = 10", "seeds = 6"), scores,
                         broken)
    write_report(run_dir)
    report = read_json(run_dir / "report.json")
    assert [c["arm"] for c in report["contrasts"]] == ["optimizer=momentum"]
    assert report["excluded_arms"] == ["optimizer=adam"]
    assert len(report["diverged"]) == 6 and report["dropped_seeds"] == []
    assert report["friedman"] is None  # two arms left: no omnibus test
    assert "no completed run: optimizer=adam" in report["headline"]
    html = (run_dir / "report.html").read_text()
    assert "EXCLUDED" in html[:html.index("<h2>Answer</h2>")]
    adam = next(s for s in report["arms"] if s["arm"] == "optimizer=adam")
    assert (adam["n"], adam["diverged"], adam["mean"]) == (0, 6, None)


def test_no_complete_pair_is_a_user_error(tmp_path: Path) -> None:
    scores = draw({"dropout=on": 0.0, "dropout=off": 0.0}, range(2), base=0.97,
                  sd_seed=0.002, sd_noise=0.001, seed=5)
    run_dir = make_store(tmp_path, ONE_AT_A_TIME.format(seeds=2), scores,
                         {("dropout=off", 0): "failed", ("dropout=on", 1): "diverged"})
    with pytest.raises(UserError, match="no seed completed in every arm"):
        write_report(run_dir)


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


# -- the HTML in a real browser ----------------------------------------------------------
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
