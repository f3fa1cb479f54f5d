"""The report as a format-free document: verdicts, paragraphs, tables, figures.

`build` turns an `Analysis` (the decision object) and its plots into a `Document`;
`report_render` writes the same document as Markdown and as HTML, so the two files
cannot say different things.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from ablate.engine import layers_text, optimizer_text
from ablate.report._analysis import Analysis
from ablate.report._figures import Plot
from ablate.report._text import (
    Units,
    answer_paragraph,
    effect_sentence,
    fmt_float,
    fmt_p,
    headline,
    join,
    p_clause,
    reason_text,
)


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""
    # Per row: a decision whose colour the HTML gives the row's last cell, or "".
    marks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """One line of the headline box."""

    contrast: str  # "dropout=off vs dropout=on"
    decision: str
    sentence: str  # the effect, with interval, p and seeds
    why: str  # the decision in plain words


@dataclass(frozen=True)
class Section:
    title: str
    paragraphs: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()
    plots: tuple[Plot, ...] = ()
    bullets: tuple[str, ...] = ()
    code: str = ""  # preformatted text (the study file)


@dataclass(frozen=True)
class Document:
    title: str
    question: str
    headline: str
    verdicts: tuple[Verdict, ...]
    lead_plot: Plot | None  # the forest plot, right under the verdicts
    answer: str
    sections: tuple[Section, ...] = field(default=())


def build(a: Analysis, u: Units, plots: Sequence[Plot]) -> Document:
    by_name = {p.name: p for p in plots}
    verdicts = tuple(
        Verdict(f"{c.arm} vs {c.baseline}", c.decision, effect_sentence(c, a.effects[c.arm], u),
                reason_text(c, u, len(a.family.contrasts)))
        for c in a.family.contrasts) + tuple(
        Verdict(arm, "excluded", f"{arm}: no completed run, so it is in no contrast.",
                _lost_reason(a, arm))
        for arm in a.lost)
    results = Section(
        "Contrasts", paragraphs=(
            f"Paired by seed: each contrast's per-seed differences (n = {a.family.n}) are "
            f"tested with a two-sided sign-flip permutation test (primary), adjusted over the "
            f"family of {len(a.family.contrasts)} contrast"
            f"{'s' if len(a.family.contrasts) > 1 else ''} with Holm's method at alpha = "
            f"{a.family.alpha:g}; 95% BCa bootstrap intervals. Decision: better/worse when the "
            "Holm p < alpha and the 95% CI lies outside the ROPE; equivalent when the 90% CI "
            "lies inside it; otherwise inconclusive.",),
        tables=(_contrast_table(a, u),),
        plots=tuple(by_name[n] for n in ("slopes", "interaction") if n in by_name))
    sections = [
        results,
        Section("Arms", paragraphs=(
            f"Over the {a.family.n} analysed seeds (complete in every arm). 95% CI: t interval "
            "of the mean. Test accuracy is reported, never used to choose anything.",),
            tables=(_arm_table(a, u),), plots=_pick(by_name, "distributions")),
    ]
    if a.family.friedman is not None:
        fr = a.family.friedman
        sections.append(Section(
            "More than two arms: Friedman and critical difference",
            paragraphs=(
                f"Friedman test with seeds as blocks: χ² = {fr.statistic:.3f}, "
                f"{p_clause(fr.p_value)} over {len(fr.arms)} arms and {fr.n} seeds. Nemenyi "
                f"critical difference of average ranks at alpha {fr.alpha:g}: CD = "
                f"{fr.cd:.3f} (q = {fr.q_alpha:.3f}); two arms differ when their average "
                "ranks differ by at least the CD.",),
            tables=(Table(("arm", "average rank (1 = best)"),
                          tuple((arm, f"{r:.2f}") for arm, r in sorted(
                              zip(fr.arms, fr.avg_ranks, strict=True), key=lambda t: t[1]))),),
            plots=_pick(by_name, "critical_difference")))
    sections.append(Section(
        "Seeds needed", paragraphs=(
            f"From the observed sd of each contrast's differences: the seeds that detect a "
            f"true difference at the ROPE edge ({u.amount(a.family.rope)}) with power 0.8 at "
            f"Holm's strictest level alpha/m, and the minimum detectable effect (MDE) with "
            f"the {a.family.n} seeds used.",),
        tables=(_seeds_table(a, u),)))
    sections.append(Section("Training", plots=_pick(by_name, "learning_curves", "grad_norms")))
    warnings = (*a.family.warnings, *a.notes)
    sections.append(Section(
        "Warnings, failed and diverged runs",
        paragraphs=(() if warnings else ("No warnings.",)),
        bullets=tuple(warnings),
        tables=(_failure_table(a),) if a.failures else (),
    ))
    sections.append(_design_section(a))
    return Document(
        title=f"Ablation report: {a.study.name}", question=a.study.question,
        headline=headline(a), verdicts=verdicts, lead_plot=by_name.get("forest"),
        answer=answer_paragraph(a, u), sections=tuple(sections))


def _lost_reason(a: Analysis, arm: str) -> str:
    statuses = [f.status for f in a.failures if f.arm == arm]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))
    return f"Its runs: {counts}. See the failed and diverged runs below."


def _pick(by_name: dict[str, Plot], *names: str) -> tuple[Plot, ...]:
    return tuple(by_name[n] for n in names if n in by_name)


def _contrast_table(a: Analysis, u: Units) -> Table:
    unit = " (points)" if u.accuracy else ""
    rows = tuple(
        (f"{c.arm} vs {c.baseline}", str(c.n), u.signed(c.mean_diff),
         f"[{u.signed(c.ci_low)}, {u.signed(c.ci_high)}]", fmt_float(c.d_z),
         f"{c.wins}/{c.n}" + (f" ({c.ties} ties)" if c.ties else ""),
         fmt_p(c.p_value), fmt_p(c.p_holm), fmt_p(c.p_wilcoxon), fmt_p(c.p_t), c.test,
         c.decision)
        for c in a.family.contrasts)
    return Table(
        ("contrast", "n", f"Δ{unit}", f"95% CI{unit}", "d_z", "wins", "p (sign-flip)",
         "Holm p", "Wilcoxon p", "t-test p", "test", "decision"),
        rows, caption=f"Δ = mean over seeds of (arm − reference) in {u.name}; wins = seeds "
        f"where the arm did better; ROPE ±{u.amount(a.family.rope)}.",
        marks=tuple(c.decision for c in a.family.contrasts))


def _arm_table(a: Analysis, u: Units) -> Table:
    def spread(mean: float, sd: float, pct: bool) -> str:
        if not math.isfinite(mean):
            return "n/a"
        if pct:
            return f"{mean * 100:.2f} ± {fmt_float(sd * 100)}"
        return f"{mean:.4f} ± {fmt_float(sd, 4)}"

    unit = " (%)" if u.accuracy else ""
    rows = tuple(
        (s.arm, f"{s.done} / {s.diverged} / {s.failed}" + (f" (+{s.unfinished} unfinished)"
                                                             if s.unfinished else ""),
         str(s.n), spread(s.mean, s.sd, u.accuracy), u.level(s.median).rstrip("%"),
         f"[{u.level(s.ci_low).rstrip('%')}, {u.level(s.ci_high).rstrip('%')}]",
         spread(s.test_mean, s.test_sd, True))
        for s in a.arms)
    return Table(("arm", "runs done / diverged / failed", "n", f"mean ± sd{unit}",
                  f"median{unit}", f"95% CI{unit}", "test accuracy (%)"), rows,
                 caption=f"{u.name.capitalize()} per arm (baseline first).")


def _seeds_table(a: Analysis, u: Units) -> Table:
    rows = tuple(
        (f"{c.arm} vs {c.baseline}", u.number(c.sd_diff), str(c.n),
         "unreachable" if c.seeds_needed is None else str(c.seeds_needed), u.amount(c.mde))
        for c in a.family.contrasts)
    return Table(("contrast", "sd of differences", "seeds used", "seeds needed (power 0.8)",
                  "MDE with seeds used"), rows)


def _failure_table(a: Analysis) -> Table:
    rows = tuple((f.arm, str(f.seed), f.status, f.error or "") for f in a.failures)
    return Table(("arm", "seed", "status", "error"), rows,
                 caption="Planned runs not in the analysis; their seeds are dropped from "
                 "every contrast so that all comparisons stay paired.")


def _design_section(a: Analysis) -> Section:
    r = a.record
    prov = r.provenance
    study = a.study
    design = ("2x2 factorial: main effects and interaction" if a.factorial else
              f"{study.design.replace('_', '-')}: each arm against the baseline")
    factors = "; ".join(f"{f.name}: {', '.join(f.levels)} (baseline {f.baseline})"
                        for f in study.factors)
    rows = []
    for arm in study.arms:
        c = arm.config
        rows.append((arm.name, ", ".join(f"{f}={lv}" for f, lv in arm.levels), layers_text(c),
                     optimizer_text(c), str(c.epochs), str(c.batch_size)))
    hours = a.training_seconds / 3600
    budget = (f"{a.training_seconds:.0f} s" if hours < 1 else f"{hours:.2f} h")
    bullets = (
        f"Design: {design}. Factors: {factors}.",
        f"Metric: {study.metric.name}, {study.metric.description} "
        f"({'higher' if study.higher_is_better else 'lower'} is better); ROPE "
        f"±{study.rope:g} (metric units).",
        f"Seeds: {len(study.seeds)} planned ({_seed_list(study.seeds)}), {len(a.seeds)} "
        f"analysed.",
        f"Data: validation {study.validation} images held out of the 60,000; training "
        f"subset: {r.subset or 'all'}.",
        f"Budget: {len(study.arms)} arms x {len(study.seeds)} seeds; training time {budget} "
        f"in total.",
        f"Device: {r.device or prov.get('device', '?')} "
        f"({prov.get('device_name', 'unknown')}, {prov.get('threads', '?')} threads).",
        "Versions: " + ", ".join(f"{k} {prov[k]}" for k in ("python", "torch", "numpy",
                                                            "ablate") if k in prov) + ".",
    )
    checksums = r.data_sha256 or {}
    tables = [Table(("arm", "levels", "layers", "optimizer", "epochs", "batch size"),
                    tuple(rows))]
    if checksums:
        tables.append(Table(("array", "sha256"), tuple((k, v) for k, v in
                                                       sorted(checksums.items()))))
    return Section("Design and provenance", bullets=bullets, tables=tuple(tables),
                   code=r.source)


def _seed_list(seeds: Sequence[int]) -> str:
    s = list(seeds)
    if s == list(range(s[0], s[0] + len(s))) and len(s) > 3:
        return f"{s[0]}..{s[-1]}"
    return join([str(x) for x in s])
