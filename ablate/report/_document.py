"""The report as a format-free document: verdicts, paragraphs, tables, figures.

`build` turns an `Analysis` (the decision object) and its plots into a `Document`;
`_render` writes the same document as Markdown and as HTML, so the two files cannot
say different things.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ablate.analysis import Analysis
from ablate.engine import layers_text, optimizer_text
from ablate.report._anatomy import ANATOMY_TITLE, anatomy_paragraphs, anatomy_table
from ablate.report._figures import Plot
from ablate.report._format import estimate, fmt_float, fmt_p, p_clause, plural, seed_list, units
from ablate.report._text import (
    answer_paragraph,
    budget_sentence,
    divergence_sentence,
    effect_sentence,
    estimand_sentence,
    floor_sentence,
    headline,
    interval_text,
    methods_paragraph,
    missing_sentence,
    optimism_sentence,
    pairing_sentence,
    power_sentence,
    sequential_sentence,
    why_sentence,
)
from ablate.stats import MAX_SEEDS, Contrast, Friedman, grid_label

__all__ = [
    "Document", "Section", "Table", "Verdict", "build", "floor_warnings", "outlier_flag",
    "rank_sentences", "unstable_title", "verdicts", "warning_list", "why",
]


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

    name: str  # the contrast's name (`Contrast.arm`), or the excluded arm's
    contrast: str  # "dropout=off vs dropout=on"
    decision: str
    sentence: str  # the effect, with interval, p and seeds
    why: str  # the decision, from the numbers that made it


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
    warnings: tuple[str, ...] = ()  # everything a reader must not miss (a section too)

    def before_warnings(self, new: list[Section]) -> Document:
        """The document with `new` sections placed before the warnings section."""
        if not new:
            return self
        sections = list(self.sections)
        at = next((i for i, s in enumerate(sections) if s.title.startswith("Warnings")),
                  len(sections))
        sections[at:at] = new
        return replace(self, sections=tuple(sections))


def why(a: Analysis, c: Contrast) -> str:
    """The verdict's reason for one contrast (fixed or sequential)."""
    verdict = None
    if a.sequential is not None:
        verdict = next(v for v in a.sequential.verdicts if v.arm == c.arm)
    return why_sentence(c, units(a), a.family_of(c).size, verdict=verdict,
                        result=a.sequential, undiverged=a.undiverged.get(c.arm))


def verdicts(a: Analysis) -> tuple[Verdict, ...]:
    """One verdict per decided contrast, then one per arm left out."""
    sequential = a.sequential is not None
    return tuple(
        Verdict(c.arm, f"{c.arm} vs {c.baseline}", c.decision,
                effect_sentence(c, a.effects[c.arm], units(a), sequential=sequential,
                                family=a.family_of(c).size),
                why(a, c))
        for c in a.contrasts) + tuple(
        Verdict(arm, arm, "excluded", f"{arm}: no finished run, so it is in no contrast.",
                _lost_reason(a, arm))
        for arm in a.lost)


def build(a: Analysis, plots: Sequence[Plot]) -> Document:
    by_name = {p.name: p for p in plots}
    sections = [_estimand_section(a), _contrast_section(a, by_name)]
    if a.sequential is not None:
        sections.append(_sequential_section(a, by_name))
    sections += [_pairing_section(a), _arm_section(a, by_name)]
    if a.friedman is not None:
        sections.append(_rank_section(a, a.friedman, by_name))
    if a.sequential is None:
        sections.append(_power_section(a))
    training = _pick(by_name, "learning_curves", "grad_norms")
    if training:  # runs trained elsewhere have no per-epoch history here
        sections.append(Section("Training", plots=training))
    warnings = tuple(warning_list(a))
    sections.append(Section(
        "Warnings, failed and diverged runs",
        paragraphs=(() if warnings else ("No warnings.",)), bullets=warnings,
        tables=(_failure_table(a),) if a.failures else ()))
    if a.anatomy is not None:
        header, rows = anatomy_table(a.anatomy)
        sections.append(Section(ANATOMY_TITLE, paragraphs=anatomy_paragraphs(a.anatomy),
                                tables=(Table(header, rows),) if rows else ()))
    sections.append(_design_section(a))
    return Document(
        title=f"Ablation report: {a.study.name}", question=a.study.question,
        headline=headline(a), verdicts=verdicts(a), lead_plot=by_name.get("forest"),
        answer=answer_paragraph(a), sections=tuple(sections), warnings=warnings)


def warning_list(a: Analysis) -> list[str]:
    """Everything a reader must not miss, each one sentence."""
    out = []
    if a.estimand.fallback:
        out.append(estimand_sentence(a))
    if budget := budget_sentence(a):
        out.append(budget)
    out += floor_warnings(a)
    out += outlier_warnings(a)
    for c in a.contrasts:
        out += [s for s in (missing_sentence(c),
                            divergence_sentence(c, sequential=a.sequential is not None))
                if s]
    out += [f"Arm {arm} has no finished run ({_lost_reason(a, arm)}): it is left out of "
            "every contrast." for arm in a.lost]
    if a.sequential is not None and any(c.decision == "interaction" for c in a.contrasts):
        out.append("The interaction was decided, but a sequential study's looks were "
                   "designed for the three effects only, so no simple effect is decided; "
                   "read the main effects as averages of effects that differ.")
    if a.study.design == "factorial" and a.factorial is None:
        out.append("This factorial is not analysed as a 2x2 (it is not 2x2, or a cell has no "
                   "finished run), so each arm is compared with the baseline arm.")
    return out


def outlier_warnings(a: Analysis) -> list[str]:
    """Seeds far from their arm's bulk (they decide nothing; the reader should see them)."""
    out = []
    for arm, o in a.outliers.items():
        if o.seeds:
            where = (f"see its epoch curves in the section '{unstable_title(arm)}'"
                     if arm in a.unstable else "see its training curve")
            out.append(f"{outlier_flag(a, arm)}; {where}.")
    return out


def outlier_flag(a: Analysis, arm: str) -> str:
    """'dropout=on: seed 7 (91.20%) far from the arm's other seeds (median ...): an
    unstable seed the verdict includes' (no full stop)."""
    u = units(a)
    o = a.outliers[arm]
    listed = ", ".join(f"seed {s} ({u.level(v)})" for s, v in
                       zip(o.seeds, o.values, strict=True))
    return (f"{arm}: {listed} far from the arm's other seeds (median {u.level(o.median)}; "
            f"generalized ESD test at {o.alpha:g}): an unstable seed the verdict includes")


def unstable_title(arm: str) -> str:
    """The title of an arm's section of flagged seeds and their epoch curves."""
    return f"Seeds far from the bulk: {arm}"


def floor_warnings(a: Analysis) -> list[str]:
    """What the floor of exact tests ruled out in a fixed design (a 2x2's simple effects
    are part of its one family)."""
    if a.sequential is not None:
        return []
    n = min(c.n for c in a.contrasts)
    floor = floor_sentence(n, a.family.size, a.family.alpha)
    return [floor] if floor else []


def _lost_reason(a: Analysis, arm: str) -> str:
    statuses = [f.status for f in a.failures if f.arm == arm]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))
    return f"its runs: {counts}"


def _pick(by_name: dict[str, Plot], *names: str) -> tuple[Plot, ...]:
    return tuple(by_name[n] for n in names if n in by_name)


def _estimand_section(a: Analysis) -> Section:
    u = units(a)
    paragraphs = [estimand_sentence(a)]
    tables = []
    if a.optimism:
        paragraphs.append(optimism_sentence(a.optimism, u, a.estimand.metric.quantity))
        tables.append(Table(
            ("arm", "seeds", "mean optimism", "sd", "smallest", "largest"),
            tuple((o.arm, str(o.n), u.signed(o.mean), u.number(o.sd), u.signed(o.low),
                   u.signed(o.high)) for o in a.optimism),
            caption=f"Per seed: val_{a.estimand.metric.quantity} minus the cross-fitted "
            f"value{' (points)' if u.accuracy else ', sign-flipped for a loss'}; positive: "
            "the best-epoch figure flatters the arm."))
    return Section("What is compared", paragraphs=tuple(paragraphs), tables=tuple(tables))


def _contrast_section(a: Analysis, by_name: dict[str, Plot]) -> Section:
    """The method and the contrasts' numbers (each verdict's reason is in the box)."""
    return Section("Contrasts", paragraphs=(methods_paragraph(a),),
                   tables=(_contrast_table(a),),
                   plots=_pick(by_name, "slopes", "interaction"))


def _contrast_table(a: Analysis) -> Table:
    u = units(a)
    unit = " (points)" if u.accuracy else ""
    cs = a.contrasts

    def wins(c: Contrast) -> str:
        return f"{c.wins}/{c.n}" + (f" ({c.ties} ties)" if c.ties else "")

    def ci(lo: float, hi: float) -> str:
        return f"[{u.signed(lo)}, {u.signed(hi)}]"

    of = "median over seeds of the joint outcome (arm − reference, a diverged run " \
        "below every finished one)" if a.study.estimand == "median" else \
        "mean over seeds of (arm − reference)"
    caption = (f"Δ = {of} in {u.name}; n = seeds where "
               f"both sides finished; wins = seeds where the arm did better; ROPE "
               f"{u.rope(a.family.rope)}.")
    if a.sequential is not None:
        settled = {v.arm: v.settled_at for v in a.sequential.verdicts}
        looked = tuple((f"{c.arm} vs {c.baseline}", str(c.n), u.signed(estimate(c)),
                        ci(c.ci_low, c.ci_high), wins(c),
                        "-" if settled[c.arm] is None else str(settled[c.arm]), c.decision)
                       for c in cs)
        return Table(("contrast", "n", f"Δ{unit}", f"95% repeated CI{unit}", "wins",
                      "settled at (seeds per arm)", "decision"), looked,
                     caption=caption + " Sequential study: no fixed-sample p value is shown.",
                     marks=tuple(c.decision for c in cs))
    rows = tuple(
        (f"{c.arm} vs {c.baseline}", str(c.n), u.signed(estimate(c)), ci(c.ci_low, c.ci_high),
         ci(c.ci90_low, c.ci90_high), wins(c), fmt_p(c.p_holm),
         " / ".join(fmt_p(p) for p in (c.p_better_holm, c.p_worse_holm,
                                        c.p_equivalent_holm)), c.decision)
        for c in cs)
    return Table(
        ("contrast", "n", f"Δ{unit}", f"95% CI{unit}", f"90% CI{unit}", "wins",
         "Holm p (Δ = 0)", "adjusted p: better / worse / equivalent", "decision"), rows,
        caption=caption + " Claims: better or worse at a step-down-adjusted p ≤ "
        f"{a.family.alpha / 2:g} (the min-p step-down over the shared seeds' joint sign "
        f"flips), equivalent at a Holm-adjusted TOST p ≤ {a.family.alpha:g}.",
        marks=tuple(c.decision for c in cs))


def _sequential_section(a: Analysis, by_name: dict[str, Plot]) -> Section:
    res = a.sequential
    assert res is not None
    u = units(a)
    tables = []
    for v in res.verdicts:
        tables.append(Table(
            ("seeds per arm", "paired seeds", f"Δ{' (points)' if u.accuracy else ''}",
             "95% repeated CI", "decision as of this look"),
            tuple((str(look.n), str(look.n_paired), u.signed(
                look.median_diff if res.design.estimand == "median" else look.mean_diff),
                   interval_text(look.ci_low, look.ci_high, u), look.decision)
                  for look in v.path),
            caption=f"{v.arm} vs {v.baseline}: {v.reason}",
            marks=tuple(look.decision for look in v.path)))
    return Section("Sequential path", paragraphs=(sequential_sentence(res),),
                   tables=tuple(tables), plots=_pick(by_name, "sequential_path"))


def _pairing_section(a: Analysis) -> Section:
    u = units(a)
    rows = []
    for c in a.contrasts:
        p = c.pairing
        if p is None:
            continue
        lo, hi = p.correlation_ci
        r = fmt_float(p.correlation) + (f" ({lo:.2f} to {hi:.2f})" if math.isfinite(lo) else "")
        rows.append((f"{c.arm} vs {c.baseline}", str(p.n), r, u.variance(p.var_paired),
                     u.variance(p.var_unpaired), fmt_float(p.ratio)))
    return Section(
        "Pairing by seed, measured",
        paragraphs=(("Every arm trains on the same seeds (the same initial weights and data "
                     "order where the arms allow), so each contrast is paired by seed. "
                     if a.record.origin is None else
                     "The runs were trained outside ablate; each contrast is paired by the "
                     "seed numbers the source gives (what a seed fixes there is not known "
                     "here). ") + "What "
                    "that bought is measured here, not assumed: the correlation of the "
                    "paired sides and the variance of the paired differences against what "
                    "independent runs would give."
                    + (" In a sequential study these are descriptive numbers over the seeds "
                       "the looks used; the correlation's interval is fixed-sample."
                       if a.sequential else ""),),
        tables=(Table(("contrast", "seeds", "r (approx. 95% CI)", "var paired",
                       "var unpaired", "ratio"), tuple(rows),
                      caption="ratio = var unpaired / var paired: a paired study with n "
                      "seeds is as precise as an unpaired one with about ratio x n seeds "
                      "per arm."),),
        bullets=tuple(f"{c.arm} vs {c.baseline}: {pairing_sentence(c.pairing, u)}"
                      for c in a.contrasts))


def _arm_section(a: Analysis, by_name: dict[str, Plot]) -> Section:
    u = units(a)

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
         fmt_float(s.divergence_rate), str(s.n), spread(s.mean, s.sd, u.accuracy),
         u.level(s.median).rstrip("%"),
         f"[{u.level(s.ci_low).rstrip('%')}, {u.level(s.ci_high).rstrip('%')}]",
         spread(s.test_mean, s.test_sd, True))
        for s in a.arms)
    sequential = (" In a sequential study these per-arm intervals are fixed-sample: "
                  "descriptive only, not adjusted for the looks." if a.sequential else "")
    return Section("Arms", paragraphs=(
        f"Each arm over its own finished seeds (n); a diverged run has no {u.name} and is "
        "counted in the divergence rate (diverged / (done + diverged)). 95% CI: t interval "
        "of the arm's mean, descriptive. Test accuracy is reported, never used to choose "
        f"anything.{sequential}",),
        tables=(Table(("arm", "runs done / diverged / failed", "divergence rate", "n",
                       f"mean ± sd{unit}", f"median{unit}", f"95% CI{unit}",
                       "test accuracy (%)"), rows,
                      caption=f"{u.name.capitalize()} per arm (baseline first)."),),
        plots=_pick(by_name, "distributions"))


def rank_sentences(fr: Friedman, decisions: dict[str, str]) -> list[str]:
    """Each arm's rank gap to the baseline against the CD, beside its paired verdict."""
    assert fr.baseline is not None
    base = fr.avg_ranks[fr.arms.index(fr.baseline)]
    out = []
    for arm, rank in zip(fr.arms, fr.avg_ranks, strict=True):
        if arm == fr.baseline:
            continue
        gap = rank - base
        side = "better" if gap < 0 else "worse"
        if abs(gap) >= fr.cd:
            rank_says = (f"ranks {side} than the baseline by {abs(gap):.2f} ≥ CD {fr.cd:.2f}: "
                         "the rank test separates them")
        else:
            rank_says = (f"its rank gap to the baseline, {abs(gap):.2f}, is below the CD "
                         f"{fr.cd:.2f}: the rank test does not separate them")
        verdict = decisions[arm]
        note = ""
        if abs(gap) >= fr.cd and verdict in ("better", "worse") and verdict != side:
            note = (" The two disagree in direction: ranks count only each seed's order, "
                    "the paired test also how far apart the arms are; the verdict is the "
                    "paired one.")
        elif abs(gap) < fr.cd and verdict in ("better", "worse"):
            note = (" The paired test, which uses the size of each seed's difference, is "
                    "the more powerful of the two.")
        out.append(f"{arm}: {rank_says}; paired verdict: {verdict}.{note}")
    return out


def _rank_section(a: Analysis, fr: Friedman, by_name: dict[str, Plot]) -> Section:
    decisions = {c.arm: c.decision for c in a.family.contrasts}
    return Section(
        "More than two arms: ranks against the baseline",
        paragraphs=(
            f"Friedman test with seeds as blocks, over the {fr.n} seeds where every arm has "
            f"an outcome (a diverged run ranks last): χ² = {fr.statistic:.3f}, "
            f"{p_clause(fr.p_value)} over {len(fr.arms)} arms. The design compares each arm "
            f"with the baseline, so the critical difference is {fr.method}'s against the "
            f"baseline at alpha {fr.alpha:g}: CD = {fr.cd:.3f} (q = {fr.q_alpha:.3f}). Ranks "
            "are a summary beside the verdicts; they ignore the ROPE and the size of each "
            "difference, and decide nothing.",),
        bullets=tuple(rank_sentences(fr, decisions)),
        tables=(Table(("arm", "average rank (1 = best)"),
                      tuple((arm, f"{r:.2f}") for arm, r in sorted(
                          zip(fr.arms, fr.avg_ranks, strict=True), key=lambda t: t[1]))),),
        plots=_pick(by_name, "critical_difference"))


def _power_section(a: Analysis) -> Section:
    u = units(a)
    rows = []
    for c in a.contrasts:
        pw = c.power
        if pw is None:
            continue

        def need(k: int | None) -> str:
            return f"> {MAX_SEEDS}" if k is None else str(k)

        rows.append((f"{c.arm} vs {c.baseline}", u.number(pw.sd), u.number(pw.sd_upper),
                     f"{u.amount(pw.effect)} ({pw.effect_rule})", str(pw.n),
                     f"{pw.power_better:.2f}", need(pw.seeds_better),
                     f"{pw.power_equivalent:.2f}", need(pw.seeds_equivalent),
                     u.amount(pw.mde)))
    sentences = tuple(f"{c.arm} vs {c.baseline}: {s}" for c in a.contrasts
                      if (s := power_sentence(c, u)))
    return Section(
        "Power of the verdict",
        paragraphs=("The probability that this decision rule says 'better' at a stated true "
                    "effect (the design effect in the table: 2 x ROPE, or half the planning "
                    "sd when the ROPE is 0) and 'equivalent' at no difference, simulated with "
                    "the sd's one-sided 80% upper confidence bound, so that a lucky small sd "
                    "does not promise power." if rows else
                    "No power: too few seeds to estimate a spread.",),
        tables=(Table(("contrast", "sd", "sd 80% upper bound", "design effect", "seeds used",
                       "P(better)", "seeds for P(better) ≥ 0.8", "P(equivalent) at 0",
                       "seeds for P(equivalent) ≥ 0.8", "MDE with seeds used"),
                      tuple(rows)),) if rows else (),
        bullets=sentences)


def _failure_table(a: Analysis) -> Table:
    rows = tuple((f.arm, str(f.seed), f.status, f.error or "") for f in a.failures)
    return Table(("arm", "seed", "status", "error"), rows,
                 caption="Runs without a metric value. A diverged run is the worst outcome "
                 "of its contrasts; any other is left out of its own arm's contrasts only.")


def _source_section(a: Analysis, origin: Mapping[str, Any]) -> Section:
    """Design and source of runs trained outside ablate (`ablate analyze`)."""
    study = a.study
    design = ("2x2 factorial: main effects and interaction" if a.factorial else
              "each arm against the baseline")
    fields = origin["fields"]
    status = (f"status from {fields['status']}" if fields.get("status") else
              "no status field (a non-finite value is a diverged run)")
    bullets = [
        f"Runs trained outside ablate, read from {origin['source']} ({origin['kind']}): arm "
        f"from {', '.join(fields['arm'])}, seed from {fields['seed']}, metric from "
        f"{fields['metric']}; {status}.",
        f"Design: {design}; baseline {study.baseline.name}.",
        f"Metric compared: {a.estimand.metric.name} "
        f"({'higher' if study.higher_is_better else 'lower'} is better); "
        + (f"its values lie on the grid {grid_label(a.estimand.resolution)}"
           if a.estimand.resolution is not None else
           "no grid stated (--resolution), so the exact tests count over the observed "
           "values")
        + f"; ROPE ±{study.rope:g} (metric units).",
        f"Seeds: {len(study.seeds)} ({seed_list(study.seeds)}).",
    ]
    if origin.get("skipped"):
        bullets.append(f"Left out: {plural(len(origin['skipped']), 'run')} of the source "
                       "without the arm and seed fields (a parent or report run).")
    rows = tuple((arm.name, ", ".join(f"{f}={lv}" for f, lv in arm.levels),
                  str(sum(1 for s in a.outcomes.get(arm.name, {}))))
                 for arm in study.arms)
    return Section("Design and source", bullets=tuple(bullets),
                   tables=(Table(("arm", "levels", "seeds"), rows),), code=a.record.source)


def _design_section(a: Analysis) -> Section:
    r = a.record
    if r.origin is not None:
        return _source_section(a, r.origin)
    prov = r.provenance
    study = a.study
    design = ("2x2 factorial: main effects and interaction" if a.factorial else
              f"{study.design.replace('_', '-')}: each arm against the baseline")
    factors = "; ".join(f"{f.name}: {', '.join(f.levels)} (baseline {f.baseline})"
                        for f in study.factors)
    rows = []
    for arm in study.arms:
        c = arm.run_config
        rows.append((arm.name, ", ".join(f"{f}={lv}" for f, lv in arm.levels), layers_text(c),
                     optimizer_text(c), str(c.epochs), str(c.batch_size)))
    hours = a.training_seconds / 3600
    budget = (f"{a.training_seconds:.0f} s" if hours < 1 else f"{hours:.2f} h")
    if study.sequential is None:
        seeds = (f"Seeds: {len(study.seeds)} planned ({seed_list(study.seeds)}), fixed in "
                 "advance.")
    else:
        s = study.sequential
        seeds = (f"Seeds: sequential, {s.min} to {s.max} per arm in rounds of {s.step}; "
                 f"{len(a.seeds)} used by the looks so far ({seed_list(a.seeds)}).")
    bullets = (
        f"Design: {design}. Factors: {factors}.",
        f"Metric compared: {a.estimand.metric.name}, {a.estimand.metric.description} "
        f"({'higher' if study.higher_is_better else 'lower'} is better)"
        + (f"; the study asked for {study.metric.name}"
           if study.metric != a.estimand.metric else "")
        + f"; ROPE ±{study.rope:g} (metric units).",
        seeds,
        f"Data: validation {study.validation} images held out of the 60,000; training "
        f"subset: {r.subset or 'all'}.",
        f"Budget: {plural(len(study.arms), 'arm')}; training time {budget} in total.",
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

