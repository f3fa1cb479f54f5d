"""The report's per-image section: where each contrast's difference lives (per digit,
in the confusion matrix, on which images) and what more seeds buy (seed ensembles),
rendered from `Analysis.where`; its figures, its section and its report.json part.

Figures follow `_figures`: matplotlib's object API on Agg, a title that states the
finding, accuracy in % and differences in points. The confusion difference uses a
diverging map centred at 0 (red: the arm makes that mistake more often, blue: less).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from ablate.analysis import Analysis, Where, WhereContrast
from ablate.report._document import Document, Section, Table
from ablate.report._figures import Plot, png, put_title
from ablate.report._format import DECISION_COLOURS

__all__ = ["WHERE_FIGURES", "where_json", "where_plots", "seeds_section", "where_section",
           "with_where"]

WHERE_FIGURES = frozenset({"digits", "confusion", "flips"})
RERUN = ("These runs were trained before ablate stored per-image predictions; rerun the "
         "study (`ablate study FILE --fresh`) to see where the differences live and what "
         "more seeds buy.")


def _grid(n: int, width: float, height: float) -> tuple[Figure, list[Any]]:
    cols = min(2, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(width * cols, height * rows + 0.7), layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel())
    for ax in axes[n:]:
        ax.axis("off")
    return fig, axes[:n]


def _digits(w: Where) -> Plot:
    fig, axes = _grid(len(w.contrasts), 4.6, 3.8)
    found = []
    for ax, c in zip(axes, w.contrasts, strict=True):
        d = np.array([x.difference for x in c.digits]) * 100
        lo = np.array([x.low for x in c.digits]) * 100
        hi = np.array([x.high for x in c.digits]) * 100
        y = np.array([x.digit for x in c.digits])
        colour = [DECISION_COLOURS["better"] if lo_ > 0 else DECISION_COLOURS["worse"]
                  if hi_ < 0 else DECISION_COLOURS["inconclusive"] for lo_, hi_ in zip(lo, hi,
                                                                                   strict=True)]
        finite_lo, finite_hi = np.where(np.isfinite(lo), lo, d), np.where(np.isfinite(hi), hi, d)
        ax.hlines(y, finite_lo, finite_hi, colors=colour, lw=2.2)
        ax.scatter(d, y, color=colour, s=36, zorder=3)
        ax.axvline(0, color="black", lw=1)
        ax.set_yticks(y, [str(v) for v in y])
        ax.invert_yaxis()
        ax.set_ylabel("true digit")
        ax.set_xlabel(f"{c.arm} − {c.baseline}, accuracy points")
        ax.set_title(f"{c.arm} vs {c.baseline} ({len(c.seeds)} seeds)", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        up = [str(x.digit) for x in c.digits if x.low > 0]
        down = [str(x.digit) for x in c.digits if x.high < 0]
        found.append(f"{c.arm}: up on {', '.join(up) or 'none'}, down on "
                     f"{', '.join(down) or 'none'}")
    title = ("Per-digit test accuracy difference, mean over paired seeds with 95% "
             "per-digit intervals (green above 0, red below, grey: includes 0)")
    put_title(fig, title)
    return Plot("digits", f"{title}. {'; '.join(found)}", "Per-digit accuracy difference "
                "with a paired sign-flip interval per digit, one panel per contrast",
                png(fig))


def _confusion(w: Where) -> Plot:
    fig, axes = _grid(len(w.contrasts), 4.6, 4.2)
    off = [np.where(np.eye(10, dtype=bool), 0.0, c.confusion) * 100 for c in w.contrasts]
    vmax = max(0.05, max(float(np.abs(o).max()) for o in off))
    found = []
    image = None
    for ax, c, o in zip(axes, w.contrasts, off, strict=True):
        shown = np.ma.masked_array(o, mask=np.eye(10, dtype=bool))
        image = ax.imshow(shown, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -vmax, vmax))
        ax.set_facecolor("#dddddd")  # the diagonal: see the per-digit figure
        for i in range(10):
            for j in range(10):
                if i != j and abs(o[i, j]) >= vmax / 3:
                    ax.text(j, i, f"{o[i, j]:+.1f}", ha="center", va="center", fontsize=6.5,
                            color="white" if abs(o[i, j]) >= 0.7 * vmax else "black")
        ax.set_xticks(range(10))
        ax.set_yticks(range(10))
        ax.set_xlabel("predicted digit")
        ax.set_ylabel("true digit")
        ax.set_title(f"{c.arm} − {c.baseline}", fontsize=10)
        top = np.unravel_index(np.argmax(o), o.shape)
        low = np.unravel_index(np.argmin(o), o.shape)
        found.append(f"{c.arm} adds most {top[0]}→{top[1]} ({o[top]:+.2f}), removes most "
                     f"{low[0]}→{low[1]} ({o[low]:+.2f})")
    if image is not None:
        bar = fig.colorbar(image, ax=axes, shrink=0.8)
        bar.set_label("points of the true digit's images\nred: the arm confuses more, "
                      "blue: less")
    title = ("Which confusions each arm adds (red) or removes (blue): difference of the "
             "mean test confusion matrices, rows the true digit")
    put_title(fig, title)
    return Plot("confusion", f"{title}. {'; '.join(found)}", "Heat map of the difference "
                "of the arms' mean confusion matrices, diagonal greyed out", png(fig))


def _flips(w: Where) -> Plot | None:
    shown = [c for c in w.contrasts if c.pixels is not None and c.flips]
    if not shown:
        return None
    cols = max(len(c.flips) for c in shown)
    fig = Figure(figsize=(1.25 * cols + 0.4, 1.9 * len(shown) + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(shown), cols, squeeze=False))
    for r, c in enumerate(shown):
        assert c.pixels is not None
        for k in range(cols):
            ax = axes[r, k]
            ax.set_xticks([])
            ax.set_yticks([])
            if k >= len(c.flips):
                ax.axis("off")
                continue
            f = c.flips[k]
            ax.imshow(c.pixels[k], cmap="gray_r", vmin=0, vmax=255)
            n = len(c.seeds)
            ax.set_title(f"#{f.image}: a {f.label}\nbase {f.baseline_right}/{n} "
                         f"→ arm {f.arm_right}/{n}", fontsize=8.5,
                         color=DECISION_COLOURS["better" if f.arm_right > f.baseline_right
                                                else "worse" if f.arm_right < f.baseline_right
                                                else "inconclusive"])
            if k == 0:
                ax.set_ylabel(f"{c.arm}\nvs {c.baseline}", fontsize=8)
    title = ("Test images most often flipped between right and wrong: seeds right in the "
             "baseline → in the arm (green: the arm gets it right more often)")
    put_title(fig, title, size=10)
    return Plot("flips", title, "Gallery of the test images on which the two arms most "
                "often disagree about being right", png(fig))


def where_plots(a: Analysis) -> list[Plot]:
    """The section's figures (none for runs without predictions)."""
    w = a.where
    if w is None or not w.contrasts:
        return []
    flips = _flips(w)
    return [_digits(w), _confusion(w), *([flips] if flips else [])]


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%" if math.isfinite(x) else "n/a"


def _pts(x: float) -> str:
    if not math.isfinite(x):
        return "+inf" if x > 0 else "-inf"
    v = 100 * x
    return f"{0.0 if abs(v) < 0.005 else v:+.2f}"  # never "-0.00"


def where_section(a: Analysis, by_name: dict[str, Plot]) -> Section | None:
    """'Where the difference lives': per-digit tables, the figures, seed ensembles."""
    w = a.where
    if w is None:
        return None
    if not w.available:
        return Section("Where the difference lives", paragraphs=(RERUN,))
    paragraphs = [
        "On the test set, scored by each run's kept weights (never selected on), image by "
        "image. Per digit: the mean over paired seeds of the arm's accuracy on that digit "
        "minus the baseline's, with an exact sign-flip interval on the digit's per-seed "
        f"differences. The intervals are {w.confidence:.0%} per digit, not family-wise "
        "over the ten digits: they say where to look, not ten separate claims."]
    if any(not math.isfinite(d.low) for c in w.contrasts for d in c.digits):
        paragraphs.append("With fewer than 6 paired seeds no 95% sign-flip interval is "
                          "finite (2^n sign patterns are too few), so the per-digit "
                          "intervals here are unbounded: read the means only.")
    if w.missing:
        paragraphs.append(f"{len(w.missing)} finished runs have no stored predictions "
                          "(trained before they were stored) and are left out; rerun "
                          "them to include them.")
    tables = []
    for c in w.contrasts:
        tables.append(Table(
            ("digit", "images", c.baseline, c.arm, "difference (points)", "95% CI"),
            tuple((str(d.digit), str(d.images), _pct(d.baseline), _pct(d.arm),
                   _pts(d.difference), f"[{_pts(d.low)}, {_pts(d.high)}]")
                  for d in c.digits),
            caption=f"{c.arm} vs {c.baseline}: per-digit test accuracy over "
                    f"{len(c.seeds)} paired seeds; {c.flipped_images} test images are "
                    "right in one arm and wrong in the other on at least one seed.",
            marks=tuple("better" if d.low > 0 else "worse" if d.high < 0 else ""
                        for d in c.digits)))
        if c.flips and c.pixels is None:
            tables.append(Table(
                ("test image", "label", f"{c.baseline} right", f"{c.arm} right",
                 "usual guesses"),
                tuple((str(f.image), str(f.label), f"{f.baseline_right}/{len(c.seeds)}",
                       f"{f.arm_right}/{len(c.seeds)}", f"{f.baseline_guess} → {f.arm_guess}")
                      for f in c.flips),
                caption="The images most often flipped (MNIST is not in the cache here, "
                        "so they are listed, not shown)."))
    reach = [c for c in w.contrasts if c.reach is not None]
    if reach:
        paragraphs.append(
            "Reach to new images: the per-digit figures and the verdict speak of these "
            "images. Beside the interval that holds the test images fixed (one-way, over "
            "seeds: the verdict's kind), the two-way interval (seeds x images, from the "
            "paired per-image correctness) is for the difference on new seeds and new "
            "images like these; its image share is the part of its variance that more "
            "seeds never shrink. Both are on the test set at 95%, each called against the "
            "ROPE on its own (no multiplicity); where they disagree, a claim about these "
            "images does not carry to new ones.")
        tables.append(Table(
            ("contrast", "difference (points)", "these images, 95% CI", "call",
             "new images, 95% CI", "call", "image share"),
            tuple((f"{c.arm} vs {c.baseline}", _pts(r.mean_diff),
                   f"[{_pts(r.one_way_low)}, {_pts(r.one_way_high)}]", r.call_one_way,
                   f"[{_pts(r.low)}, {_pts(r.high)}]", r.call_two_way,
                   f"{100 * r.image_share + 0.0:.0f}%" if math.isfinite(r.image_share)
                   else "n/a")
                  for c in reach if (r := c.reach) is not None),
            caption="Test set, kept weights; 'disagree' rows are marked.",
            marks=tuple("inconclusive" if c.reach is not None and c.reach.disagree else ""
                        for c in reach)))
    plots = tuple(by_name[n] for n in ("digits", "confusion", "flips") if n in by_name)
    return Section("Where the difference lives", paragraphs=tuple(paragraphs),
                   tables=tuple(tables), plots=plots)


def seeds_section(a: Analysis) -> Section | None:
    """'What more seeds buy': each arm's seed ensemble against its mean single run."""
    w = a.where
    if w is None or not w.ensembles:
        return None
    return Section(
        "What more seeds buy",
        paragraphs=("Averaging an arm's seeds' class probabilities (a seed ensemble, then "
                    "the most probable digit) against the arm's mean single run, on the "
                    "test set; the last column adds one seed at a time, in seed order.",),
        tables=(Table(
            ("arm", "seeds", "single run (mean ± sd)", "seed ensemble", "gain (points)",
             "ensemble of 1, 2, ... seeds"),
            tuple((e.arm, str(e.seeds),
                   f"{_pct(e.single)} ± {100 * e.single_sd:.2f}" if math.isfinite(e.single_sd)
                   else _pct(e.single), _pct(e.ensemble), _pts(e.gain),
                   ", ".join(f"{100 * v:.2f}" for v in e.by_size))
                  for e in w.ensembles),
            caption="A seed ensemble is one model made of all the seeds; the gain is what "
                    "training more seeds buys if they are used together, not a verdict."),))


def where_json(a: Analysis) -> dict[str, Any] | None:
    """report.json's "where": None for runs analysed from elsewhere; `available` false
    (with the rerun note) for runs trained before predictions were stored."""
    w = a.where
    if w is None:
        return None
    return {
        "available": w.available, "note": None if w.available else RERUN,
        "split": w.split, "confidence": w.confidence, "family_wise": False,
        "runs_without_predictions": [{"arm": arm, "seed": s} for arm, s in w.missing],
        "contrasts": [_contrast_json(c) for c in w.contrasts],
        "ensembles": [{"arm": e.arm, "seeds": e.seeds, "single_mean": e.single,
                       "single_sd": e.single_sd, "ensemble": e.ensemble, "gain": e.gain,
                       "ensemble_by_seeds": list(e.by_size)} for e in w.ensembles],
    }


def _contrast_json(c: WhereContrast) -> dict[str, Any]:
    return {
        "arm": c.arm, "baseline": c.baseline, "seeds": list(c.seeds),
        "digits": [{"digit": d.digit, "images": d.images, "arm": d.arm,
                    "baseline": d.baseline, "difference": d.difference,
                    "ci": [d.low, d.high]} for d in c.digits],
        "confusion_difference": c.confusion.tolist(),
        "flipped_images": c.flipped_images,
        "reach": None if c.reach is None else c.reach.to_dict(),
        "most_flipped": [{"image": f.image, "label": f.label, "flips": f.flips,
                          "arm_right": f.arm_right, "baseline_right": f.baseline_right,
                          "arm_guess": f.arm_guess, "baseline_guess": f.baseline_guess}
                         for f in c.flips],
    }


def with_where(doc: Document, a: Analysis, plots: list[Plot]) -> Document:
    """The document with the section placed before the warnings (after training)."""
    new = [s for s in (where_section(a, {p.name: p for p in plots}), seeds_section(a)) if s]
    return doc.before_warnings(new)
