"""`ablate report RUN_DIR`: the study's verdict as report.md, report.html and report.json.

Pipeline, each step in its own module:
store -> `report_analysis` (pair by seed, decide: the one decision object) ->
`plots` (figures from that object) -> `report_document` (words and tables from it) ->
`report_render` (Markdown + self-contained HTML); report.json is the same object as
strict JSON. Nothing here draws fresh randomness: the bootstrap is seeded by the study
name, so running the report twice writes identical report.json files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ablate.files import atomic_write, jsonable
from ablate.report import _figures as plots
from ablate.report._analysis import Analysis, analyse, load
from ablate.report._document import Document, build
from ablate.report._render import FILES_DIR, html, markdown
from ablate.report._text import Units, headline
from ablate.store import Store

SCHEMA = 1  # bump when report.json's keys change meaning
FIGURE_NAMES = frozenset({"forest", "slopes", "distributions", "learning_curves", "grad_norms",
                          "interaction", "critical_difference"})


def analyse_run_dir(run_dir: Path) -> Analysis:
    """The decision object of a run directory (nothing written). Raises `UserError` when
    there is no store or nothing to compare."""
    store = Store.open_existing(Path(run_dir))
    try:
        data = load(store)
    finally:
        store.close()
    return analyse(data)


def write_report(run_dir: Path) -> tuple[Analysis, list[Path]]:
    """Analyse a run directory and write report.md, report.html, report.json into it.

    Returns the analysis and the three paths (md, html, json). PNGs for the Markdown go
    to RUN_DIR/report_files/. Raises `UserError` when there is no store or nothing to
    compare.
    """
    run_dir = Path(run_dir)
    a = analyse_run_dir(run_dir)
    u = Units.for_metric(a.family.metric, a.higher_is_better)
    figures = make_plots(a, u)
    doc = build(a, u, figures)

    files = run_dir / FILES_DIR
    files.mkdir(exist_ok=True)
    for p in figures:
        atomic_write(files / f"{p.name}.png", p.png)
    for stale in FIGURE_NAMES - {p.name for p in figures}:
        # A figure an earlier report drew but this one does not (e.g. an arm now left
        # out): remove it so report_files/ matches report.md.
        (files / f"{stale}.png").unlink(missing_ok=True)
    paths = [run_dir / "report.md", run_dir / "report.html", run_dir / "report.json"]
    atomic_write(paths[0], markdown(doc).encode())
    atomic_write(paths[1], html(doc).encode())
    text = json.dumps(report_json(a, doc), indent=2, allow_nan=False, ensure_ascii=False)
    atomic_write(paths[2], (text + "\n").encode())
    return a, paths


def make_plots(a: Analysis, u: Units) -> list[plots.Plot]:
    """Every figure the analysis supports; the forest plot first."""
    colours = plots.arm_colours([s.arm for s in a.arms])
    baseline = a.arms[0].arm
    out = [plots.forest(a.family.contrasts, u, f"Verdict: {headline(a)}"),
           plots.slopes(a.scores, baseline, colours, u, decisions=None if a.factorial else {
               c.arm: c.decision for c in a.family.contrasts}),
           plots.distributions(a.scores, colours, u),
           plots.learning_curves(a.curves, colours, u, len(a.seeds)),
           plots.grad_norms(a.curves, colours)]
    if a.factorial is not None:
        fa, fb = (next(f for f in a.study.factors if f.name == n) for n in a.factorial)
        levels = tuple((f.baseline, next(lv for lv in f.levels if lv != f.baseline))
                       for f in (fa, fb))
        arm_of = {tuple(dict(arm.levels)[n] for n in a.factorial): arm.name
                  for arm in a.study.arms}
        cells = {key: a.scores[name] for key, name in arm_of.items()}
        inter = next(c for c in a.family.contrasts if a.effects[c.arm].kind == "interaction")
        out.append(plots.interaction(
            cells, arm_of, a.factorial, levels,  # type: ignore[arg-type]
            colours, u, inter))
    if a.family.friedman is not None:
        out.append(plots.cd_diagram(a.family.friedman, colours))
    return out


def report_json(a: Analysis, doc: Document) -> dict[str, Any]:
    """report.json: the decision object in metric units (fractions), strict JSON."""
    r = a.record
    fam = a.family.to_dict()
    contrasts = []
    for c, v in zip(fam["contrasts"], doc.verdicts, strict=False):  # then the lost arms
        e = a.effects[c["arm"]]
        contrasts.append({**c, "kind": e.kind, "sentence": v.sentence, "why": v.why,
                          "diffs": e.diffs})
    by_status: dict[str, list[dict[str, Any]]] = {"failed": [], "diverged": [],
                                                  "unfinished": []}
    for f in a.failures:
        key = f.status if f.status in ("failed", "diverged") else "unfinished"
        by_status[key].append(f.to_dict())
    return jsonable({
        "schema": SCHEMA,
        "study": {"name": a.study.name, "question": a.study.question,
                  "metric": a.family.metric, "higher_is_better": a.higher_is_better,
                  "rope": a.family.rope, "alpha": a.family.alpha,
                  "correction": a.family.correction},
        "answer": doc.answer,
        "headline": doc.headline,
        "design": {
            "design": a.study.design,
            "analysis": "factorial_2x2" if a.factorial else "contrasts_vs_baseline",
            "factors": [{"name": f.name, "levels": f.levels, "baseline": f.baseline}
                        for f in a.study.factors],
            "arms": [{"name": arm.name, "levels": dict(arm.levels),
                      "config": arm.config.to_dict()} for arm in a.study.arms],
            "baseline": a.study.arms[0].name,
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
        "scores": {arm: {"seeds": a.seeds, "values": v} for arm, v in a.scores.items()},
        "contrasts": contrasts,
        "friedman": fam["friedman"],
        "warnings": [*fam["warnings"], *a.notes],
        "failed": by_status["failed"],
        "diverged": by_status["diverged"],
        "unfinished": by_status["unfinished"],
        "dropped_seeds": a.dropped,
        "excluded_arms": a.lost,
        "seeds_needed": {
            "power": 0.8, "rope": a.family.rope,
            "per_contrast": {c.arm: c.seeds_needed for c in a.family.contrasts},
            "mde": {c.arm: c.mde for c in a.family.contrasts},
            "max": max((c.seeds_needed for c in a.family.contrasts
                        if c.seeds_needed is not None), default=None),
        },
        "figures": [{"name": p.name, "title": p.title, "file": f"{FILES_DIR}/{p.name}.png"}
                    for p in ([doc.lead_plot] if doc.lead_plot else [])
                    + [p for s in doc.sections for p in s.plots]],
    })
