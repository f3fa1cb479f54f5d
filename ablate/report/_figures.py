"""The report's figures, drawn from the decision object so they agree with its text.

Every study gets the forest plot, slopes, distributions, learning curves and gradient
norms; more than two arms add a critical-difference diagram of the Friedman average ranks,
and a 2x2 factorial adds the interaction plot of its four cells.

Each function takes arrays (and, where it colours a verdict, the `Contrast`s that carry
it) and returns a `Plot`: PNG bytes plus a title that states the finding. Figures use
matplotlib's object API on the Agg backend (no display, no pyplot global state), one
colour per arm everywhere (`arm_colours`) and the decision colours of `report_text`.
Metric values are drawn in display units (accuracy in %, differences in points).
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # reports are written on headless machines: never open a window

import numpy as np  # noqa: E402
import scipy.stats as st  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
)

from ablate.report._analysis import Curves  # noqa: E402
from ablate.report._text import DECISION_COLOURS, Units, fmt_p, join, p_clause  # noqa: E402
from ablate.stats import Contrast, Friedman  # noqa: E402

DPI = 100  # 9-inch-wide figures -> 900 px, sharp in a 1000 px page column
# Baseline in near-black, then Okabe-Ito-like hues that avoid the decision colours
# (green, red, blue, grey) so an arm is never mistaken for a verdict.
ARM_PALETTE = ("#222222", "#e69f00", "#cc79a7", "#56b4e9", "#8c564b", "#9467bd",
               "#17becf", "#bcbd22", "#f781bf", "#a6761d")
# Gradient-norm flags. RMS ||dL/dW|| per epoch below VANISHING means a layer has all but
# stopped learning; above EXPLODING, SGD steps at lr ~0.01 move weights by > 10 per
# step. A spread between layers above SPREAD means the first layers learn orders of
# magnitude slower than the last (the vanishing-gradient signature in deep MLPs).
VANISHING, EXPLODING, SPREAD = 1e-5, 1e3, 1e3


@dataclass(frozen=True)
class Plot:
    name: str  # file stem in report_files/
    title: str  # the finding, also the figure's title
    alt: str  # what the figure shows, for alt text and captions
    png: bytes


def arm_colours(arms: Sequence[str]) -> dict[str, str]:
    """One colour per arm, in study order (baseline first), the same in every figure."""
    return {a: ARM_PALETTE[i % len(ARM_PALETTE)] for i, a in enumerate(arms)}


def put_title(fig: Figure, text: str, size: float = 11) -> None:
    """A bold suptitle wrapped to the figure's width (about 9.5 px per character)."""
    chars = max(30, int(fig.get_figwidth() * DPI / (0.86 * size)))
    fig.suptitle(textwrap.fill(text, chars), fontsize=size, weight="bold")


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # No "Software" chunk: the bytes depend only on the data and the matplotlib version.
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _mean_ci(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and 95% t band over axis 0, ignoring NaN, without empty-slice warnings.

    values: (n_seeds, n_points) -> three (n_points,) arrays; the band is NaN where
    fewer than two seeds have a value.
    """
    ok = np.isfinite(values)
    n = ok.sum(axis=0)
    filled = np.where(ok, values, 0.0)
    mean = np.where(n > 0, filled.sum(axis=0) / np.maximum(n, 1), np.nan)
    dev = np.where(ok, values - mean, 0.0)
    var = np.where(n > 1, (dev**2).sum(axis=0) / np.maximum(n - 1, 1), np.nan)
    half = np.where(n > 1, st.t.ppf(0.975, np.maximum(n - 1, 1)) * np.sqrt(var / np.maximum(n, 1)),
                    np.nan)
    return mean, mean - half, mean + half


def forest(contrasts: Sequence[Contrast], u: Units, title: str) -> Plot:
    """Each contrast's mean difference with its 95% CI, coloured by decision, on the ROPE."""
    k = len(contrasts)
    fig = Figure(figsize=(9, 1.3 + 0.75 * k), layout="constrained")
    ax, side = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    rope = contrasts[0].rope * u.scale
    ax.axvspan(-rope, rope, color="#4575b4", alpha=0.12, lw=0,
               label=f"ROPE ±{u.amount(contrasts[0].rope)}")
    ax.axvline(0, color="#555555", lw=1)
    ys = np.arange(k)[::-1]  # first contrast on top
    extent_lo, extent_hi = [-rope * 1.5], [rope * 1.5]
    for y, c in zip(ys, contrasts, strict=True):
        colour = DECISION_COLOURS[c.decision]
        lo, hi, m = c.ci_low * u.scale, c.ci_high * u.scale, c.mean_diff * u.scale
        if math.isfinite(lo) and math.isfinite(hi):
            ax.plot([lo, hi], [y, y], color=colour, lw=4, solid_capstyle="butt")
            extent_lo.append(lo)
            extent_hi.append(hi)
        ax.plot([m], [y], marker="D", ms=9, color=colour, mec="white", mew=1.2)
        extent_lo.append(m)
        extent_hi.append(m)
        side.text(0.02, y + 0.12, c.decision.upper(), color=colour, weight="bold",
                  va="bottom", fontsize=11)
        side.text(0.02, y + 0.08, f"Δ {u.signed(c.mean_diff)}  [{u.signed(c.ci_low)}, "
                  f"{u.signed(c.ci_high)}]  Holm p {fmt_p(c.p_holm)}", va="top", fontsize=9)
    # Limits hug the data but always show zero and the whole ROPE band.
    lo_all, hi_all = min(extent_lo), max(extent_hi)
    pad = 0.08 * (hi_all - lo_all) or 1.0  # rope 0 and no spread: avoid a singular axis
    ax.set_xlim(lo_all - pad, hi_all + pad)
    ax.set_ylim(-0.7, k - 0.3)
    ax.set_yticks(ys, [f"{c.arm}\nvs {c.baseline}" for c in contrasts])
    unit = "percentage points" if u.accuracy else "nats"
    ax.set_xlabel(f"Difference in {u.name}, arm − reference ({unit})")
    good, bad = ("better →", "← worse") if u.higher_is_better else ("← better", "worse →")
    for text, x in ((good, 0.99 if u.higher_is_better else 0.01),
                    (bad, 0.01 if u.higher_is_better else 0.99)):
        ax.text(x, 1.01, text, transform=ax.transAxes, fontsize=9, color="#555555",
                ha="right" if x > 0.5 else "left", va="bottom")
    ax.legend(loc="lower left", fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    side.axis("off")
    side.set_xlim(0, 1)
    put_title(fig, title, 12)
    return Plot("forest", title, "Forest plot: mean paired difference and 95% CI of each "
                "contrast against the region of practical equivalence", png(fig))


def learning_curves(curves: Mapping[str, Curves], colours: Mapping[str, str], u: Units,
                    n_seeds: int) -> Plot:
    """Training and validation loss (and accuracy) per epoch: mean and 95% CI band."""
    panels = [("train_loss", "Training loss"), ("val_loss", "Validation loss")]
    if u.accuracy:
        panels.append(("val_accuracy", "Validation accuracy (%)"))
    fig = Figure(figsize=(9, 3.6 + 0.2 * math.ceil(len(curves) / 4)), layout="constrained")
    axes = fig.subplots(1, len(panels))
    final: dict[str, float] = {}
    for ax, (key, label) in zip(axes, panels, strict=True):
        scale = 100.0 if key.endswith("accuracy") else 1.0
        for arm, c in curves.items():
            values = getattr(c, key) * scale  # (n_seeds, n_epochs)
            if values.size == 0:
                continue
            mean, lo, hi = _mean_ci(values)
            ax.plot(c.epochs, mean, color=colours[arm], lw=2, marker="o" if
                    c.epochs.size < 8 else None, ms=4, label=arm)
            ax.fill_between(c.epochs, lo, hi, color=colours[arm], alpha=0.2, lw=0)
            if key == "val_loss" and np.isfinite(mean[-1]):
                final[arm] = float(mean[-1])
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("Epoch")
        ax.set_ylabel(label if key.endswith("accuracy") else "Cross-entropy (nats)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    # One legend for all panels, below them, so it never hides a curve.
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)),
               fontsize=8, frameon=False)
    if final:
        best = min(final, key=final.__getitem__)
        title = (f"Learning curves: final validation loss lowest for {best} "
                 f"({final[best]:.3f}); bands are 95% CIs over {n_seeds} seeds")
    else:
        title = "Learning curves: no finite losses recorded"
    put_title(fig, title)
    return Plot("learning_curves", title, "Training and validation loss per epoch for each "
                "arm, mean over seeds with a 95% confidence band", png(fig))


def tick(arm: str) -> str:
    """Arm names of factorial cells ('a=x,b=y') on one line per factor."""
    return arm.replace(",", ",\n")


def slopes(scores: Mapping[str, np.ndarray], baseline: str, colours: Mapping[str, str],
           u: Units, decisions: Mapping[str, str] | None = None) -> Plot:
    """Each seed's baseline score joined to its score in every other arm.

    scores: arm -> (n_seeds,) aligned by seed. decisions: arm -> its contrast's decision
    (one-at-a-time designs), shown in the panel title in the decision's colour.
    """
    others = [a for a in scores if a != baseline]
    cols = min(3, len(others))
    rows = math.ceil(len(others) / cols)
    fig = Figure(figsize=(9 if cols > 1 else 6, 3.6 * rows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True, squeeze=False)).ravel()
    scale = 100.0 if u.accuracy else 1.0
    base = scores[baseline] * scale
    summary = []
    for ax, arm in zip(axes, others, strict=False):
        vals = scores[arm] * scale
        diff = vals - base
        better = diff > 0 if u.higher_is_better else diff < 0
        worse = diff < 0 if u.higher_is_better else diff > 0
        for b, v, good, bad in zip(base, vals, better, worse, strict=True):
            colour = DECISION_COLOURS["better" if good else "worse" if bad else "inconclusive"]
            ax.plot([0, 1], [b, v], color=colour, alpha=0.7, lw=1.3)
        ax.scatter(np.zeros_like(base), base, color=colours[baseline], s=18, zorder=3)
        ax.scatter(np.ones_like(vals), vals, color=colours[arm], s=18, zorder=3)
        ax.plot([0, 1], [base.mean(), vals.mean()], color="black", lw=2.5, marker="s", ms=6,
                alpha=0.8, zorder=4, label="mean over seeds")
        ax.set_xticks([0, 1], [tick(baseline), tick(arm)], fontsize=9)
        ax.set_xlim(-0.3, 1.3)
        k = int(better.sum())
        decision = (decisions or {}).get(arm)
        ax.set_title(f"better on {k} of {base.size} seeds"
                     + (f": {decision.upper()}" if decision else ""), fontsize=10,
                     color=DECISION_COLOURS[decision] if decision else "black",
                     weight="bold" if decision else "normal")
        ax.grid(axis="y", alpha=0.3)
        summary.append(f"{arm} {k}/{base.size}")
    for ax in axes[len(others):]:
        ax.axis("off")
    axes[0].set_ylabel(u.name.capitalize() + (" (%)" if u.accuracy else " (nats)"))
    axes[0].legend(fontsize=8, frameon=False)
    title = ("Paired by seed: one line per seed, green where the arm beat the baseline, red "
             "where it lost")
    put_title(fig, title)
    return Plot("slopes", f"{title}. Seeds improved: {', '.join(summary)}",
                "Slope plot: one line per seed from the baseline's score to the arm's score",
                png(fig))


def distributions(scores: Mapping[str, np.ndarray], colours: Mapping[str, str],
                  u: Units) -> Plot:
    """Box plot and every seed's score per arm."""
    arms = list(scores)
    scale = 100.0 if u.accuracy else 1.0
    fig = Figure(figsize=(max(5.5, 1.6 * len(arms) + 2), 3.8), layout="constrained")
    ax = fig.subplots()
    data = [scores[a] * scale for a in arms]
    box = ax.boxplot(data, positions=range(len(arms)), widths=0.5, patch_artist=True,
                     showfliers=False, medianprops={"color": "black"})
    for patch, arm in zip(box["boxes"], arms, strict=True):
        patch.set_facecolor(colours[arm])
        patch.set_alpha(0.25)
    for i, (arm, vals) in enumerate(zip(arms, data, strict=True)):
        # Deterministic spread (by seed order), so reruns draw the same picture.
        jitter = np.linspace(-0.12, 0.12, vals.size) if vals.size > 1 else np.zeros(1)
        ax.scatter(i + jitter, vals, color=colours[arm], s=22, zorder=3)
        ax.scatter([i], [vals.mean()], marker="D", color="white", edgecolor="black", s=45,
                   zorder=4)
    ax.set_xticks(range(len(arms)), [tick(a) for a in arms], fontsize=9)
    ax.set_ylabel(u.name.capitalize() + (" (%)" if u.accuracy else " (nats)"))
    ax.grid(axis="y", alpha=0.3)
    means = {a: float(v.mean()) for a, v in zip(arms, data, strict=True)}
    best = (max if u.higher_is_better else min)(means, key=means.__getitem__)
    shown = f"{means[best]:.2f}%" if u.accuracy else f"{means[best]:.4f}"
    title = (f"Per-arm {u.name} over {data[0].size} seeds: best mean {best} ({shown}); "
             "diamond = mean")
    put_title(fig, title)
    return Plot("distributions", title, "Distribution of the metric per arm: box plot and "
                "one dot per seed", png(fig))


def _grad_finding(curves: Mapping[str, Curves]) -> str:
    flags, lows, highs = [], [], []
    for arm, c in curves.items():
        g = c.grad_norms  # (n_seeds, n_epochs, n_layers)
        if g.size == 0 or not np.isfinite(g).any():
            continue
        lows.append(float(np.nanmin(g)))
        highs.append(float(np.nanmax(g)))
        per_layer = np.exp(np.nanmean(np.log(np.where(g > 0, g, np.nan)), axis=(0, 1)))
        if np.nanmin(g) < VANISHING:
            flags.append(f"vanishing in {arm}")
        elif np.nanmax(g) > EXPLODING:
            flags.append(f"exploding in {arm}")
        elif np.nanmax(per_layer) / np.nanmin(per_layer) > SPREAD:
            flags.append(f"layers differ > {SPREAD:.0e}x in {arm}")
    if not lows:
        return "Gradient norms per layer: none recorded"
    span = f"{min(lows):.2g} to {max(highs):.2g}"
    if flags:
        return f"Gradient norms per layer ({span}): {join(flags)}"
    return f"Gradient norms per layer stay within {span}: no vanishing or exploding gradients"


def _decades(curves: Mapping[str, Curves]) -> float:
    """How many powers of ten the positive, finite gradient norms span."""
    vals = np.concatenate([c.grad_norms.ravel() for c in curves.values()] or [np.empty(0)])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    return float(np.log10(vals.max() / vals.min())) if vals.size else 0.0


def grad_norms(curves: Mapping[str, Curves], colours: Mapping[str, str]) -> Plot:
    """Per-layer gradient norm per epoch, one panel per arm, log scale, mean over seeds."""
    import warnings

    arms = list(curves)
    cols = 2 if len(arms) == 4 else min(3, len(arms))  # 2x2 for a 2x2 factorial
    rows = math.ceil(len(arms) / cols)
    fig = Figure(figsize=(9, 2.9 * rows + 0.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True, squeeze=False)).ravel()
    cmap = matplotlib.colormaps["viridis"]
    decades = _decades(curves)
    for ax, arm in zip(axes, arms, strict=False):
        c = curves[arm]
        g = c.grad_norms  # (n_seeds, n_epochs, n_layers)
        n_layers = g.shape[2] if g.ndim == 3 else 0
        for layer in range(n_layers):
            vals = g[:, :, layer]
            with warnings.catch_warnings():
                # log of a 0 or NaN norm: masked below, not worth a warning
                warnings.simplefilter("ignore", RuntimeWarning)
                logs = np.log(np.where(vals > 0, vals, np.nan))
            mean, lo, hi = _mean_ci(logs)  # geometric mean: norms span decades
            colour = cmap(layer / max(1, n_layers - 1) * 0.9)
            label = f"layer {layer + 1}" + (" (output)" if layer == n_layers - 1 else "")
            ax.plot(c.epochs, np.exp(mean), color=colour, lw=2, label=label,
                    marker="o" if c.epochs.size < 8 else None, ms=3)
            ax.fill_between(c.epochs, np.exp(lo), np.exp(hi), color=colour, alpha=0.15, lw=0)
        ax.set_yscale("log")
        # Plain numbers at 1-2-5 steps ("0.2", "0.5", "1"), not "6x10^0"; over many
        # decades, powers of ten only so the labels do not collide.
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if decades < 4 else (1.0,)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_title(arm, fontsize=10, color=colours[arm], weight="bold")
        ax.set_xlabel("Epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, which="both")
    for ax in axes[len(arms):]:
        ax.axis("off")
    axes[0].set_ylabel("RMS ‖∂L/∂W‖ per epoch (log)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(6, max(1, len(labels))),
               fontsize=8, frameon=False)
    title = _grad_finding(curves)
    put_title(fig, title)
    return Plot("grad_norms", title, "Gradient norm of each Dense layer's weights per epoch "
                "(geometric mean over seeds, 95% band), one panel per arm", png(fig))

def cd_cliques(ranks: Sequence[float], cd: float) -> list[tuple[int, int]]:
    """Maximal runs (i, j) of rank-sorted arms whose ranks differ by less than cd.

    ranks: (k,) sorted ascending. Arms in a run are not significantly different
    (Nemenyi: significant when the average ranks differ by at least the CD).
    """
    out: list[tuple[int, int]] = []
    for i in range(len(ranks)):
        j = i
        while j + 1 < len(ranks) and ranks[j + 1] - ranks[i] < cd:
            j += 1
        if j > i and not any(a <= i and j <= b for a, b in out):
            out.append((i, j))
    return out


def cd_diagram(fr: Friedman, colours: Mapping[str, str]) -> Plot:
    """Critical-difference diagram: average ranks (1 = best), bars join arms within CD."""
    order = sorted(range(len(fr.arms)), key=lambda i: fr.avg_ranks[i])
    arms = [fr.arms[i] for i in order]
    ranks = [fr.avg_ranks[i] for i in order]
    k = len(arms)
    cliques = cd_cliques(ranks, fr.cd)
    half = math.ceil(k / 2)  # labels: best half on the left, the rest on the right
    fig = Figure(figsize=(9, 1.4 + 0.45 * (half + 1) + 0.1 * len(cliques)),
                 layout="constrained")
    ax = fig.subplots()
    ax.hlines(0, 1, k, color="black", lw=1.5)
    for r in range(1, k + 1):
        ax.vlines(r, 0, 0.12, color="black", lw=1)
        ax.text(r, 0.18, str(r), ha="center", va="bottom", fontsize=9)
    # The CD bar, drawn from rank 1, so its length reads against the axis.
    ax.hlines(0.75, 1, 1 + fr.cd, color="black", lw=2.5)
    ax.text(1 + fr.cd / 2, 0.85, f"CD = {fr.cd:.2f}", ha="center", va="bottom", fontsize=9)
    for idx, (arm, rank) in enumerate(zip(arms, ranks, strict=True)):
        left = idx < half
        y = -0.5 - 0.35 * (idx if left else k - 1 - idx)
        x_text = 0.6 if left else k + 0.4
        ax.plot([rank, rank, x_text], [0, y, y], color=colours.get(arm, "black"), lw=1.5)
        ax.text(x_text + (0.05 if not left else -0.05), y, f"{arm} ({rank:.2f})",
                ha="left" if not left else "right", va="center", fontsize=9,
                color=colours.get(arm, "black"), weight="bold")
    for m, (i, j) in enumerate(cliques):
        y = -0.25 - 0.12 * m
        ax.hlines(y, ranks[i] - 0.03, ranks[j] + 0.03, color="#444444", lw=4)
    ax.set_ylim(-0.6 - 0.35 * half, 1.2)
    ax.axis("off")
    # The labels sit outside [0.5, k + 0.5]; widen the view so they are not cut off.
    ax.set_xlim(-1.8, k + 2.8)
    verdict = "ranks differ" if fr.p_value < fr.alpha else "no rank difference shown"
    title = (f"Friedman χ² = {fr.statistic:.2f}, {p_clause(fr.p_value)} ({verdict}): "
             f"{arms[0]} ranks best; bars join arms within the Nemenyi CD")
    put_title(fig, title)
    return Plot("critical_difference", title, "Critical-difference diagram: average rank of "
                "each arm over seeds (1 = best); arms joined by a bar are not significantly "
                "different", png(fig))


def interaction(cells: Mapping[tuple[str, str], np.ndarray], arm_of: Mapping[tuple[str, str], str],
                factors: tuple[str, str], levels: tuple[tuple[str, str], tuple[str, str]],
                colours: Mapping[str, str], u: Units, contrast: Contrast) -> Plot:
    """2x2 interaction plot: factor A on x, one line per level of B, mean and 95% CI."""
    (a0, a1), (b0, b1) = levels
    scale = 100.0 if u.accuracy else 1.0
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.subplots()
    for b, style in ((b0, "-"), (b1, "--")):
        means, errs = [], []
        for a in (a0, a1):
            v = cells[a, b] * scale
            half = (st.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
                    if v.size > 1 else 0.0)
            means.append(v.mean())
            errs.append(half)
        ax.plot([0, 1], means, color="#555555", ls=style, lw=1.8,
                label=f"{factors[1]}={b}")
        for x, a, m, e in zip((0, 1), (a0, a1), means, errs, strict=True):
            ax.errorbar([x], [m], yerr=[e], fmt="o", ms=8, capsize=4,
                        color=colours[arm_of[a, b]])
    ax.set_xticks([0, 1], [f"{factors[0]}={a0}", f"{factors[0]}={a1}"])
    ax.set_xlim(-0.4, 1.4)
    ax.set_ylabel(u.name.capitalize() + (" (%)" if u.accuracy else " (nats)"))
    ax.legend(fontsize=9, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    title = (f"Interaction {contrast.decision}: {u.signed(contrast.mean_diff)}"
             f"{' points' if u.accuracy else ''} (Holm p {fmt_p(contrast.p_holm)}); "
             "parallel lines = additive")
    put_title(fig, title)
    return Plot("interaction", title, "Interaction plot of the 2x2 factorial: mean and 95% CI "
                "of each cell", png(fig))
