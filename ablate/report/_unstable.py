"""The report's sections on seeds far from their arm's bulk, rendered from
`Analysis.outliers` and `Analysis.unstable`: per flagged arm with epoch rows, the flag,
a figure of every seed's per-epoch validation curve with the flagged seeds highlighted,
a caption built from the numbers, and report.json's additions to `outliers`.

Figures follow `_figures`: matplotlib's object API on Agg, the arm's colour, accuracy
in %, a title (also the caption) that states the finding. Every other seed is light
grey, the band is the range of the bulk (the seeds a departure is measured against), a
diverged run is drawn up to its last finite epoch and marked with an x, and a dotted
line marks each flagged seed's departure epoch. One file per arm,
`report_files/unstable_<arm number>_<arm name>.png`; a directory without epoch rows
gets no figure and no section (its flags stay in the warnings).
"""

from __future__ import annotations

import re
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ablate.analysis import Analysis, SeedCurves
from ablate.report._document import Document, Section, outlier_flag, unstable_title
from ablate.report._figures import Plot, arm_colours, png, put_title
from ablate.report._format import join, plural, seed_list, units
from ablate.report._render import FILES_DIR

__all__ = ["UNSTABLE_PREFIX", "curve_caption", "figure_name", "unstable_json",
           "unstable_plots", "with_unstable"]

UNSTABLE_PREFIX = "unstable_"  # every figure of these sections: report_files/unstable_*.png
_OTHERS = "#9a9a9a"  # every other seed: light, so the flagged ones stand out
_STYLES = ("-", "--", ":", "-.")  # one per flagged seed of an arm (at most a fifth of n)
_SERIES = {"val_accuracy": "validation accuracy", "val_loss": "validation loss",
           "train_accuracy": "training accuracy", "train_loss": "training loss"}


def figure_name(a: Analysis, arm: str) -> str:
    """'unstable_1_dropout_on': the arm's number in the study (unique) and its name."""
    number = [x.name for x in a.study.arms].index(arm) + 1
    return f"{UNSTABLE_PREFIX}{number}_{re.sub(r'[^A-Za-z0-9.-]+', '_', arm).strip('_')}"


def _series(c: SeedCurves) -> str:
    return _SERIES[c.key]


def _departure_clause(c: SeedCurves, k: int | None) -> str:
    if not c.bulk:
        return "no other finished seed to compare its curve with"
    if k is None:
        return (f"its {_series(c)} is not outside the other seeds' range at its last epoch, "
                "so its curve shows no lasting departure")
    when = "an early departure (first" if c.early(k) else "a late departure (second"
    return (f"its {_series(c)} leaves the other seeds' range at epoch {k} of "
            f"{c.epochs.size} and stays outside it through its last epoch: {when} half of "
            "training)")


def curve_caption(a: Analysis, arm: str) -> str:
    """One sentence from the numbers: each flagged seed, how far from the arm's median it
    is on the compared metric, and where its curve departs from the others'."""
    u = units(a)
    o, c = a.outliers[arm], a.unstable[arm]
    parts = []
    for s, v, k in zip(o.seeds, o.values, c.departs, strict=True):
        gap = v - o.median
        side = "below" if gap < 0 else "above"
        parts.append(f"seed {s} ({u.level(v)}) is {u.amount(gap)} {side} the arm's median "
                     f"({u.level(o.median)}) in {u.name}; {_departure_clause(c, k)}")
    diverged = ""
    if c.diverged:
        stops = join([f"seed {s} after epoch {last}" if (last := c.last_epoch(s)) else
                      f"seed {s} in epoch 1 (nothing to draw)" for s in c.diverged])
        diverged = f" Diverged, drawn up to where they stopped and marked x: {stops}."
    return f"{arm}: {'; '.join(parts)}.{diverged}"


def _label(c: SeedCurves) -> str:
    quantity = c.key.split("_", 1)[1]
    return f"{_series(c).capitalize()} " + ("(%)" if quantity == "accuracy" else "(nats)")


def _figure(a: Analysis, arm: str, colour: str) -> Plot:
    c = a.unstable[arm]
    scale = 100.0 if c.key.endswith("accuracy") else 1.0
    x = c.epochs
    fig = Figure(figsize=(9, 4.4), layout="constrained")
    ax = fig.subplots()
    if c.bulk:
        low, high = c.bounds()
        ax.fill_between(x, low * scale, high * scale, color=_OTHERS, alpha=0.2, lw=0,
                        label=f"range of the other {plural(len(c.bulk), 'finished seed')}")
    labelled = False
    for s in c.seeds:
        if s in c.flagged:
            continue
        y = c.curve(s) * scale
        ax.plot(x, y, color=_OTHERS, lw=1, alpha=0.8,
                label=None if labelled else "every other seed")
        labelled = True
        last = c.last_epoch(s)
        if s in c.diverged and last is not None:
            ax.plot([last], [y[last - 1]], marker="x", ms=9, mew=2, color="#555555",
                    ls="none", zorder=4)
            ax.annotate(f"seed {s} diverged", (last, y[last - 1]), xytext=(5, -12),
                        textcoords="offset points", fontsize=8, color="#555555")
    for i, (s, k) in enumerate(zip(c.flagged, c.departs, strict=True)):
        y = c.curve(s) * scale
        ax.plot(x, y, color=colour, lw=2.5, ls=_STYLES[i % len(_STYLES)], zorder=3,
                marker="o" if x.size < 12 else None, ms=4, label=f"seed {s} (flagged)")
        last = c.last_epoch(s)
        if last is not None:
            ax.annotate(f"seed {s}", (last, y[last - 1]), xytext=(6, 0), va="center",
                        textcoords="offset points", fontsize=9, weight="bold", color=colour)
        if k is not None:
            ax.axvline(k, color=colour, lw=1, ls=":", alpha=0.9)
            ax.annotate(f"seed {s} leaves the range: epoch {k}", (k, 0.98 - 0.07 * i),
                        xycoords=("data", "axes fraction"), xytext=(4, 0),
                        textcoords="offset points", fontsize=8, color=colour, va="top")
    ax.set_xlabel("Epoch")
    ax.set_ylabel(_label(c))
    ax.set_xlim(x[0] - 0.3, x[-1] + max(0.8, 0.08 * x.size))  # room for the seed labels
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8, frameon=False)
    title = curve_caption(a, arm)  # the caption; the figure's own title is shorter
    leaves = [f"seed {s} from epoch {k}" for s, k in zip(c.flagged, c.departs, strict=True)
              if k is not None]
    word = "seed" if len(c.flagged) == 1 else "seeds"
    put_title(fig, f"{arm}: {_series(c)} per epoch, flagged {word} {seed_list(c.flagged)}"
              + (f"; outside the others' range: {join(leaves)}" if leaves else ""), 10)
    flagged = seed_list(c.flagged)
    return Plot(figure_name(a, arm), title,
                f"{_series(c).capitalize()} per epoch of every seed of {arm}, the flagged "
                f"{'seed' if len(c.flagged) == 1 else 'seeds'} {flagged} highlighted",
                png(fig))


def unstable_plots(a: Analysis) -> list[Plot]:
    """One figure per arm with a flagged seed and epoch rows, in study order."""
    colours = arm_colours([arm.name for arm in a.study.arms])
    return [_figure(a, arm.name, colours[arm.name]) for arm in a.study.arms
            if arm.name in a.unstable]


def _section(a: Analysis, arm: str, plot: Plot) -> Section:
    c = a.unstable[arm]
    drawn = ("the whole validation split each epoch, not the cross-fitted metric the flag "
             "is on" if c.key.startswith("val_") else "the study has no validation split")
    return Section(unstable_title(arm), paragraphs=(
        f"{outlier_flag(a, arm)}.",
        f"The figure draws the {_series(c)} of every seed of the arm per epoch ({drawn}): "
        "the flagged seeds highlighted, the others light grey, the band their range. A "
        "flagged seed departs at the first epoch from which it stays outside that range "
        "through its last epoch.",),
        plots=(plot,))


def with_unstable(doc: Document, a: Analysis, plots: list[Plot]) -> Document:
    """The document with one section per flagged arm with curves, before the warnings."""
    by_name = {p.name: p for p in plots}
    new = [_section(a, arm.name, by_name[figure_name(a, arm.name)]) for arm in a.study.arms
           if arm.name in a.unstable and figure_name(a, arm.name) in by_name]
    return doc.before_warnings(new)


def unstable_json(a: Analysis) -> dict[str, dict[str, Any]]:
    """Per flagged arm with curves, the keys report.json adds to its `outliers` entry."""
    return {arm: {"figure": f"{FILES_DIR}/{figure_name(a, arm)}.png", "curve": c.key,
                  "epochs": int(c.epochs.size),
                  "departs_from_epoch": list(c.departs),
                  "departure": [None if k is None else "early" if c.early(k) else "late"
                                for k in c.departs],
                  "caption": curve_caption(a, arm)}
            for arm, c in a.unstable.items()}
