"""`ablate report RUN_DIR`: the study's verdict as report.md, report.html and report.json.

Pipeline, each step in its own module:
store -> `_analysis` (the one decision object) -> `_figures` (figures from that
object) -> `_document` (words and tables from it) -> `_render` (Markdown +
self-contained HTML); report.json is the same object as strict JSON. Nothing here
draws fresh randomness: the power simulation is keyed by the study's and contrasts'
names, so running the report twice writes identical files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ablate.analysis import LAST_EPOCHS, SHARE, SLOPE_SE, Analysis
from ablate.files import atomic_write, jsonable
from ablate.report import _figures as plots
from ablate.report._document import Document, Verdict, build
from ablate.report._format import units
from ablate.report._render import FILES_DIR, html, markdown
from ablate.report._text import (
    MULTIPLICITY_WORDS,
    divergence_sentence,
    estimand_method,
    headline,
    pairing_sentence,
    power_sentence,
    sequential_sentence,
)
from ablate.report._unstable import UNSTABLE_PREFIX, unstable_json, unstable_plots, with_unstable
from ablate.report._where import WHERE_FIGURES, where_json, where_plots, with_where
from ablate.stats import TARGET_POWER, Contrast, Outcome

__all__ = ["FIGURE_NAMES", "SCHEMA", "make_plots", "report_json", "write_report_files"]

SCHEMA = 3  # bump when report.json's keys change meaning (3: the joint step-down and
# divergence as an outcome: study.multiplicity_description, family_size, joint_exact,
# joint_mc_se; per contrast estimand, divergence.arm_seeds / baseline_seeds; p_*_holm
# hold the claims' family-adjusted p under study.multiplicity; outliers per arm)
FIGURE_NAMES = frozenset({"forest", "slopes", "distributions", "learning_curves", "grad_norms",
                          "interaction", "critical_difference", "sequential_path"}
                         ) | WHERE_FIGURES


def write_report_files(a: Analysis, run_dir: Path) -> list[Path]:
    """Render an analysis as report.md, report.html and report.json in `run_dir`.

    Returns the three paths (md, html, json). PNGs for the Markdown go to
    RUN_DIR/report_files/.
    """
    run_dir = Path(run_dir)
    figures = make_plots(a)
    doc = with_where(with_unstable(build(a, figures), a, figures), a, figures)

    files = run_dir / FILES_DIR
    files.mkdir(exist_ok=True)
    for p in figures:
        atomic_write(files / f"{p.name}.png", p.png)
    for stale in FIGURE_NAMES - {p.name for p in figures}:
        # A figure an earlier report drew but this one does not (e.g. an arm now left
        # out): remove it so report_files/ matches report.md.
        (files / f"{stale}.png").unlink(missing_ok=True)
    drawn = {f"{p.name}.png" for p in figures}
    for old in sorted(files.glob(f"{UNSTABLE_PREFIX}*.png")):  # one per flagged arm
        if old.name not in drawn:
            old.unlink(missing_ok=True)
    paths = [run_dir / "report.md", run_dir / "report.html", run_dir / "report.json"]
    atomic_write(paths[0], markdown(doc).encode())
    atomic_write(paths[1], html(doc).encode())
    text = json.dumps(report_json(a, doc), indent=2, allow_nan=False, ensure_ascii=False)
    atomic_write(paths[2], (text + "\n").encode())
    return paths


def _finished(outcomes: Mapping[int, Outcome]) -> np.ndarray:
    """(n,) the finished runs' values, in seed order."""
    return np.array([o for o in outcomes.values() if not isinstance(o, str)], dtype=np.float64)


def make_plots(a: Analysis) -> list[plots.Plot]:
    """Every figure the analysis supports; the forest plot first."""
    u = units(a)
    colours = plots.arm_colours([arm.name for arm in a.study.arms])
    sequential = a.sequential is not None
    interval = "95% repeated CI" if sequential else "95% CI"
    out = [plots.forest(a.contrasts, u, f"Verdict: {headline(a)}", interval=interval)]
    if a.factorial is None:
        pairs = {}
        for c in a.family.contrasts:
            data, done = a.pairs[c.arm], a.pairs[c.arm].both_done
            pairs[c.arm] = (data.b[done], data.a[done])
        out.append(plots.slopes(pairs, a.study.baseline.name, colours, u,
                                {c.arm: c.decision for c in a.family.contrasts}))
    finished = {arm: _finished(v) for arm, v in a.outcomes.items()}
    if any(v.size for v in finished.values()):  # every run diverged: nothing to draw
        out.append(plots.distributions(finished, colours, u))
    if any(c.epochs.size for c in a.curves.values()):  # runs trained elsewhere have none
        out += [plots.learning_curves(a.curves, colours, u), plots.grad_norms(a.curves, colours)]
    if a.factorial is not None:
        f = a.factorial
        summaries = {s.arm: s for s in a.arms}
        cells = {key: summaries[arm] for key, arm in f.cells.items()}
        inter = next(c for c in a.family.contrasts if c.kind == "interaction")
        out.append(plots.interaction(cells, f, colours, u, inter, interval=interval))
    if a.friedman is not None:
        out.append(plots.cd_diagram(a.friedman, colours,
                                    {c.arm: c.decision for c in a.family.contrasts}))
    if a.sequential is not None:
        out.append(plots.sequential_path(a.sequential, a.study.rope, u))
    return out + unstable_plots(a) + where_plots(a)


def _contrast_json(a: Analysis, c: Contrast, verdict: Verdict) -> dict[str, Any]:
    """One contrast: the decision object's numbers, its family and its sentences."""
    u = units(a)
    data = a.pairs[c.arm]
    return {
        **c.to_dict(), "family": "simple effects" if a.family_of(c) is a.simple else "effects",
        "diffs": data.diffs, "sentence": verdict.sentence, "why": verdict.why,
        "pairing_sentence": pairing_sentence(c.pairing, u),
        "power_sentence": power_sentence(c, u) or None,
        "divergence_sentence": divergence_sentence(
            c, sequential=a.sequential is not None) or None,
        "decision_if_diverged_dropped": a.undiverged.get(c.arm),
    }


def report_json(a: Analysis, doc: Document) -> dict[str, Any]:
    """report.json: the decision object in metric units (fractions), strict JSON."""
    r = a.record
    fam = a.family
    est = a.estimand
    verdict = {v.name: v for v in doc.verdicts}  # the decided contrasts, then lost arms
    contrasts = [_contrast_json(a, c, verdict[c.arm]) for c in a.contrasts]
    by_status: dict[str, list[dict[str, Any]]] = {"failed": [], "diverged": [],
                                                  "unfinished": []}
    for f in a.failures:
        key = f.status if f.status in ("failed", "diverged") else "unfinished"
        by_status[key].append(f.to_dict())
    powered = [c for c in a.contrasts if c.power is not None]
    curves = unstable_json(a)
    return dict(jsonable({
        "schema": SCHEMA,
        "study": {"name": a.study.name, "question": a.study.question,
                  "metric": est.metric.name, "metric_description": est.metric.description,
                  "selection_free": est.metric.selection_free,
                  "higher_is_better": a.higher_is_better, "rope": fam.rope,
                  "alpha": fam.alpha, "interval": fam.interval,
                  "multiplicity": fam.multiplicity,
                  "multiplicity_description": MULTIPLICITY_WORDS.get(fam.multiplicity,
                                                                     fam.multiplicity),
                  "estimand": a.study.estimand,
                  "estimand_description": estimand_method(a.study.estimand),
                  "family_size": fam.size, "joint_exact": fam.joint_exact,
                  "joint_mc_se": fam.joint_mc_se,
                  "design": "fixed" if a.sequential is None else "sequential"},
        "estimand": {"metric": est.metric.name, "study_metric": a.study.metric.name,
                     "resolution": est.resolution, "optimistic": est.optimistic,
                     "runs_without_crossfit": est.fallback},
        "answer": doc.answer,
        "headline": doc.headline,
        "design": {
            "design": a.study.design,
            "analysis": "factorial_2x2" if a.factorial else "contrasts_vs_baseline",
            "factors": [{"name": f.name, "levels": f.levels, "baseline": f.baseline}
                        for f in a.study.factors],
            "arms": [{"name": arm.name, "levels": dict(arm.levels),
                      "config": None if arm.config is None else arm.config.to_dict()}
                     for arm in a.study.arms],
            "baseline": a.study.baseline.name,
            "seeds_planned": a.study.seeds,
            "seeds_analysed": a.seeds,
            "validation": a.study.validation,
            "subset": r.subset,
            "device": r.device,
            "provenance": r.provenance,
            "data_sha256": r.data_sha256,
            "training_seconds": round(a.training_seconds, 3),
            "study_file": r.study_file,
        },
        "arms": [s.to_dict() for s in a.arms],
        # per arm; a flagged arm with epoch rows adds its curves' figure, the series
        # drawn and each flagged seed's departure epoch (`_unstable.unstable_json`)
        "outliers": {arm: {"seeds": list(o.seeds), "values": list(o.values),
                           "median": o.median, "alpha": o.alpha,
                           "method": "generalized ESD (Rosner 1983)",
                           **curves.get(arm, {})}
                     for arm, o in a.outliers.items()},
        "selection_optimism": [o.to_dict() for o in a.optimism],
        "outcomes": {arm: {str(s): o for s, o in per.items()}
                     for arm, per in a.outcomes.items()},
        "contrasts": contrasts,
        "friedman": None if a.friedman is None else {
            k: getattr(a.friedman, k) for k in a.friedman.__dataclass_fields__},
        "sequential": None if a.sequential is None else {
            **a.sequential.to_dict(), "sentence": sequential_sentence(a.sequential)},
        "warnings": list(doc.warnings),
        "convergence": {"rule": {"last_epochs": LAST_EPOCHS, "slope_se": SLOPE_SE,
                                 "share": SHARE},
                        "arms": [c.to_dict() for c in a.convergence]},
        "where": where_json(a),
        "failed": by_status["failed"],
        "diverged": by_status["diverged"],
        "unfinished": by_status["unfinished"],
        "excluded_arms": a.lost,
        # anatomy.json as stored, only where `--anatomy` ran (older reports keep their keys)
        **({} if a.anatomy is None else {"anatomy": dict(a.anatomy)}),
        "seeds_needed": None if not powered else {
            "power": TARGET_POWER, "rope": fam.rope,
            "effect": {c.arm: c.power.effect for c in powered if c.power},
            "effect_rule": {c.arm: c.power.effect_rule for c in powered if c.power},
            "per_contrast": {c.arm: c.power.seeds_better for c in powered if c.power},
            "equivalent": {c.arm: c.power.seeds_equivalent for c in powered if c.power},
            "mde": {c.arm: c.power.mde for c in powered if c.power},
            "max": max((c.power.seeds_better for c in powered
                        if c.power and c.power.seeds_better is not None), default=None),
        },
        "figures": [{"name": p.name, "title": p.title, "file": f"{FILES_DIR}/{p.name}.png"}
                    for p in ([doc.lead_plot] if doc.lead_plot else [])
                    + [p for s in doc.sections for p in s.plots]],
    }))
