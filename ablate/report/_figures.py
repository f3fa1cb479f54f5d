"""The report's figures, drawn from the decision object so they agree with its text.

Every study gets the forest plot, distributions, learning curves and gradient norms;
arm-versus-baseline designs the slopes; more than two arms (fixed design) the average
ranks against the baseline's with the Bonferroni-Dunn critical difference; a 2x2
factorial the interaction plot of its four cells; a sequential study the path of its
repeated confidence intervals over the looks.

Each function takes arrays (and, where it colours a verdict, the `Contrast`s that carry
it) and returns a `Plot`: PNG bytes plus a title that states the finding. Figures use
matplotlib's object API on the Agg backend (no display, no pyplot global state), one
colour per arm everywhere (`arm_colours`) and the decision colours of `_format`.
Metric values are drawn in display units (accuracy in %, differences in points).
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib

__all__ = [
    "ARM_PALETTE", "DPI", "Plot", "arm_colours", "cd_diagram", "distributions",
    "forest", "grad_norms", "interaction", "learning_curves", "png", "put_title",
    "sequential_path", "slopes", "tick",
]

matplotlib.use("Agg")  # reports are written on headless machines: never open a window

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
)

from ablate.analysis import ArmSummary, Curves, Factorial  # noqa: E402
from ablate.report._format import (  # noqa: E402
    DECISION_COLOURS,
    Units,
    estimate,
    join,
    p_clause,
)
from ablate.stats import Contrast, Friedman, SequentialResult  # noqa: E402

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


def forest(contrasts: Sequence[Contrast], u: Units, title: str, *,
           interval: str = "95% CI") -> Plot:
    """Each contrast's mean difference and 95% interval, coloured by decision, on the
    ROPE. interval: what the intervals are ("95% repeated CI" in a sequential study).
    An unbounded end is drawn to the edge of the axes with an arrow."""
    k = len(contrasts)
    fig = Figure(figsize=(9, 1.3 + 0.75 * k), layout="constrained")
    ax, side = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    rope = contrasts[0].rope * u.scale
    ax.axvspan(-rope, rope, color="#4575b4", alpha=0.12, lw=0,
               label=f"ROPE ±{u.amount(contrasts[0].rope)}")
    ax.axvline(0, color="#555555", lw=1)
    ys = np.arange(k)[::-1]  # first contrast on top
    ends = [-rope * 1.5, rope * 1.5]
    for c in contrasts:
        ends += [x * u.scale for x in (c.ci_low, c.ci_high, estimate(c)) if math.isfinite(x)]
    lo_all, hi_all = min(ends), max(ends)
    pad = 0.08 * (hi_all - lo_all) or 1.0  # rope 0 and no spread: avoid a singular axis
    left, right = lo_all - pad, hi_all + pad
    for y, c in zip(ys, contrasts, strict=True):
        colour = DECISION_COLOURS[c.decision]
        lo, hi = c.ci_low * u.scale, c.ci_high * u.scale
        if not (math.isnan(lo) or math.isnan(hi)):
            a, b = max(lo, left), min(hi, right)  # an unbounded end stops at the axis
            ax.plot([a, b], [y, y], color=colour, lw=4, solid_capstyle="butt")
            for end, x, mark in ((lo, a, "<"), (hi, b, ">")):
                if math.isinf(end):
                    ax.plot([x], [y], marker=mark, ms=10, color=colour)
        if math.isfinite(estimate(c)):
            ax.plot([estimate(c) * u.scale], [y], marker="D", ms=9, color=colour,
                    mec="white", mew=1.2)
        side.text(0.02, y + 0.12, c.decision.upper(), color=colour, weight="bold",
                  va="bottom", fontsize=11)
        side.text(0.02, y + 0.08, f"Δ {u.signed(estimate(c))}  {interval} "
                  f"[{u.signed(c.ci_low)}, {u.signed(c.ci_high)}]  n = {c.n}", va="top",
                  fontsize=9)
    ax.set_xlim(left, right)
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
    return Plot("forest", title, f"Forest plot: mean paired difference and {interval} of "
                "each contrast against the region of practical equivalence", png(fig))


def learning_curves(curves: Mapping[str, Curves], colours: Mapping[str, str], u: Units
                    ) -> Plot:
    """Training and validation loss (and accuracy) per epoch: mean and 95% CI band over
    each arm's finished seeds. Validation here is the whole split (what picks the
    kept epoch), not the cross-fitted metric."""
    panels = [("train_loss", "Training loss"), ("val_loss", "Validation loss")]
    if u.accuracy:
        panels.append(("val_accuracy", "Validation accuracy (%), whole split"))
    fig = Figure(figsize=(9, 3.6 + 0.2 * math.ceil(len(curves) / 4)), layout="constrained")
    axes = fig.subplots(1, len(panels))
    final: dict[str, float] = {}
    for ax, (key, label) in zip(axes, panels, strict=True):
        scale = 100.0 if key.endswith("accuracy") else 1.0
        for arm, c in curves.items():
            if getattr(c, key).size == 0:
                continue
            band = c.band(key)  # (n_epochs,) over seeds
            mean, lo, hi = band.mean * scale, band.low * scale, band.high * scale
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
        seeds = sorted({c.train_loss.shape[0] for c in curves.values()})
        over = f"{seeds[0]} seeds" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]} seeds per arm"
        title = (f"Learning curves: final validation loss lowest for {best} "
                 f"({final[best]:.3f}); bands are 95% CIs over {over}")
    else:
        title = "Learning curves: no finite losses recorded"
    put_title(fig, title)
    return Plot("learning_curves", title, "Training and validation loss per epoch for each "
                "arm, mean over seeds with a 95% confidence band", png(fig))


def tick(arm: str) -> str:
    """Arm names of factorial cells ('a=x,b=y') on one line per factor."""
    return arm.replace(",", ",\n")


def slopes(pairs: Mapping[str, tuple[np.ndarray, np.ndarray]], baseline: str,
           colours: Mapping[str, str], u: Units, decisions: Mapping[str, str]) -> Plot:
    """Each seed's baseline score joined to its score in the arm, one panel per contrast.

    pairs: arm -> (baseline values, arm values), each (n,) over the seeds where both
    finished; decisions: arm -> its contrast's decision, shown in the panel title in the
    decision's colour.
    """
    others = list(pairs)
    cols = min(3, len(others))
    rows = math.ceil(len(others) / cols)
    fig = Figure(figsize=(9 if cols > 1 else 6, 3.6 * rows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True, squeeze=False)).ravel()
    scale = 100.0 if u.accuracy else 1.0
    summary = []
    for ax, arm in zip(axes, others, strict=False):
        base, vals = (v * scale for v in pairs[arm])
        diff = vals - base
        better = diff > 0 if u.higher_is_better else diff < 0
        worse = diff < 0 if u.higher_is_better else diff > 0
        for b, v, good, bad in zip(base, vals, better, worse, strict=True):
            colour = DECISION_COLOURS["better" if good else "worse" if bad else "inconclusive"]
            ax.plot([0, 1], [b, v], color=colour, alpha=0.7, lw=1.3)
        ax.scatter(np.zeros_like(base), base, color=colours[baseline], s=18, zorder=3)
        ax.scatter(np.ones_like(vals), vals, color=colours[arm], s=18, zorder=3)
        if base.size:
            ax.plot([0, 1], [base.mean(), vals.mean()], color="black", lw=2.5, marker="s",
                    ms=6, alpha=0.8, zorder=4, label="mean over seeds")
        ax.set_xticks([0, 1], [tick(baseline), tick(arm)], fontsize=9)
        ax.set_xlim(-0.3, 1.3)
        k = int(better.sum())
        decision = decisions[arm]
        ax.set_title(f"better on {k} of {base.size} seeds: {decision.upper()}", fontsize=10,
                     color=DECISION_COLOURS[decision], weight="bold")
        ax.grid(axis="y", alpha=0.3)
        summary.append(f"{arm} {k}/{base.size}")
    for ax in axes[len(others):]:
        ax.axis("off")
    axes[0].set_ylabel(u.name.capitalize() + (" (%)" if u.accuracy else " (nats)"))
    if any(pairs[a][0].size for a in others):
        axes[0].legend(fontsize=8, frameon=False)
    title = ("Paired by seed: one line per seed where both finished, green where the arm "
             "beat the baseline, red where it lost")
    put_title(fig, title)
    return Plot("slopes", f"{title}. Seeds improved: {', '.join(summary)}",
                "Slope plot: one line per seed from the baseline's score to the arm's score",
                png(fig))


def distributions(values: Mapping[str, np.ndarray], colours: Mapping[str, str],
                  u: Units) -> Plot:
    """Box plot and every finished seed's score per arm; values: arm -> (n_arm,)."""
    arms = [a for a in values if values[a].size]
    scale = 100.0 if u.accuracy else 1.0
    fig = Figure(figsize=(max(5.5, 1.6 * len(arms) + 2), 3.8), layout="constrained")
    ax = fig.subplots()
    data = [values[a] * scale for a in arms]
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
    sizes = sorted({v.size for v in data})
    over = f"{sizes[0]} seeds" if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]} seeds per arm"
    title = (f"Per-arm {u.name} over {over} (finished runs): best mean {best} ({shown}); "
             "diamond = mean")
    put_title(fig, title)
    return Plot("distributions", title, "Distribution of the metric per arm: box plot and "
                "one dot per finished seed", png(fig))


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

    arms = list(curves)
    cols = 2 if len(arms) == 4 else min(3, len(arms))  # 2x2 for a 2x2 factorial
    rows = math.ceil(len(arms) / cols)
    fig = Figure(figsize=(9, 2.9 * rows + 0.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True, squeeze=False)).ravel()
    cmap = matplotlib.colormaps["viridis"]
    decades = _decades(curves)
    for ax, arm in zip(axes, arms, strict=False):
        c = curves[arm]
        g = c.grad_band()  # (n_epochs, n_layers): geometric mean and band over seeds
        n_layers = g.mean.shape[1] if g.mean.ndim == 2 else 0
        for layer in range(n_layers):
            mean, lo, hi = g.mean[:, layer], g.low[:, layer], g.high[:, layer]
            colour = cmap(layer / max(1, n_layers - 1) * 0.9)
            label = f"layer {layer + 1}" + (" (output)" if layer == n_layers - 1 else "")
            ax.plot(c.epochs, mean, color=colour, lw=2, label=label,
                    marker="o" if c.epochs.size < 8 else None, ms=3)
            ax.fill_between(c.epochs, lo, hi, color=colour, alpha=0.15, lw=0)
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

def cd_diagram(fr: Friedman, colours: Mapping[str, str], decisions: Mapping[str, str]
               ) -> Plot:
    """Average ranks against the baseline's, with the Bonferroni-Dunn critical difference.

    A versus-baseline design asks k - 1 questions, each arm against the baseline, so the
    only band drawn is the baseline's rank +- CD (no all-pairs cliques). Each arm is
    labelled with its paired verdict, which the rank comparison sits beside and never
    replaces: ranks ignore the size of a difference and the ROPE.
    decisions: arm -> the paired decision of its contrast with the baseline.
    """
    if fr.baseline is None:
        raise ValueError("the rank figure is drawn for versus-baseline designs only: pass a "
                         "Friedman built with baseline=the baseline arm")
    order = sorted(range(len(fr.arms)), key=lambda i: fr.avg_ranks[i])
    arms = [fr.arms[i] for i in order]
    ranks = [fr.avg_ranks[i] for i in order]
    k = len(arms)
    base = fr.avg_ranks[fr.arms.index(fr.baseline)]
    fig = Figure(figsize=(9, 1.6 + 0.45 * k), layout="constrained")
    ax = fig.subplots()
    ax.axvspan(base - fr.cd, base + fr.cd, color="#bbbbbb", alpha=0.35, lw=0,
               label=f"within the CD ({fr.cd:.2f}) of the baseline's rank")
    ax.axvline(base, color=colours.get(fr.baseline, "black"), lw=1.5, ls="--")
    ys = np.arange(k)[::-1]
    for y, arm, rank in zip(ys, arms, ranks, strict=True):
        ax.plot([rank], [y], marker="o", ms=10, color=colours.get(arm, "black"))
        word = "baseline" if arm == fr.baseline else decisions.get(arm, "")
        ax.text(rank, y + 0.22, f"{rank:.2f}", ha="center", va="bottom", fontsize=9)
        ax.text(1.0, y, f"  {word.upper()}", transform=ax.get_yaxis_transform(),
                ha="left", va="center", fontsize=9, weight="bold",
                color=DECISION_COLOURS.get(word, "black"))
    ax.set_yticks(ys, arms)
    ax.set_xlim(0.5, k + 0.5)
    ax.set_ylim(-0.8, k - 0.2)
    ax.set_xlabel("Average rank over seeds (1 = best; a diverged run ranks last)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    outside = [a for a, r in zip(arms, ranks, strict=True)
               if a != fr.baseline and abs(r - base) >= fr.cd]
    found = (f"{join(outside)} differ{'s' if len(outside) == 1 else ''} in rank from the "
             "baseline" if outside else "no arm's rank differs from the baseline's by the CD")
    title = (f"Friedman χ² = {fr.statistic:.2f}, {p_clause(fr.p_value)} over {fr.n} seeds; "
             f"{found} ({fr.method}, alpha {fr.alpha:g}); labels: the paired verdicts")
    put_title(fig, title)
    return Plot("critical_difference", title, "Average rank of each arm over seeds (1 = "
                "best) against the baseline's, with the Bonferroni-Dunn critical difference "
                "as a band; each arm labelled with its paired verdict", png(fig))


def interaction(cells: Mapping[tuple[str, str], ArmSummary], f: Factorial,
                colours: Mapping[str, str], u: Units, contrast: Contrast, *,
                interval: str = "95% CI") -> Plot:
    """2x2 interaction plot: factor A on x, one line per level of B; each cell's mean
    over its finished seeds with its 95% t interval (descriptive, the arm summary's).

    cells: (level of A, level of B) -> that arm's summary.
    """
    (a0, a1), (b0, b1) = f.levels_a, f.levels_b
    scale = 100.0 if u.accuracy else 1.0
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.subplots()
    for b, style in ((b0, "-"), (b1, "--")):
        means = [cells[a, b].mean * scale for a in (a0, a1)]
        ax.plot([0, 1], means, color="#555555", ls=style, lw=1.8, label=f"{f.factor_b}={b}")
        for x, a in zip((0, 1), (a0, a1), strict=True):
            s = cells[a, b]
            spread = [[0.0], [0.0]] if math.isnan(s.ci_low) else \
                [[(s.mean - s.ci_low) * scale], [(s.ci_high - s.mean) * scale]]
            ax.errorbar([x], [s.mean * scale], yerr=spread, fmt="o", ms=8, capsize=4,
                        color=colours[f.cells[a, b]])
    ax.set_xticks([0, 1], [f"{f.factor_a}={a0}", f"{f.factor_a}={a1}"])
    ax.set_xlim(-0.4, 1.4)
    ax.set_ylabel(u.name.capitalize() + (" (%)" if u.accuracy else " (nats)"))
    ax.legend(fontsize=9, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    c = contrast
    title = (f"Interaction, {c.decision}: {u.signed(estimate(c))}"
             f"{' points' if u.accuracy else ''} ({interval} {u.signed(c.ci_low)} to "
             f"{u.signed(c.ci_high)}); parallel lines = additive")
    put_title(fig, title)
    return Plot("interaction", title, "Interaction plot of the 2x2 factorial: mean and 95% t "
                "interval of each cell over its finished seeds", png(fig))


def sequential_path(result: SequentialResult, rope: float, u: Units) -> Plot:
    """Per contrast, the 95% repeated CI and mean difference at each look, against the
    ROPE band, coloured by the verdict as of that look; a dashed line where the
    contrast was settled. Unbounded ends are drawn to the panel's edge with an arrow."""
    vs = result.verdicts
    fig = Figure(figsize=(9, 0.9 + 2.4 * len(vs)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(vs), 1, sharex=True, squeeze=False)).ravel()
    r = rope * u.scale
    looks = result.design.looks
    for ax, v in zip(axes, vs, strict=True):
        ax.axhspan(-r, r, color="#4575b4", alpha=0.12, lw=0, label=f"ROPE {u.rope(rope)}")
        ax.axhline(0, color="#555555", lw=1)
        point = [look.median_diff if result.design.estimand == "median" else look.mean_diff
                 for look in v.path]
        finite = [x * u.scale for look, m in zip(v.path, point, strict=True)
                  for x in (look.ci_low, look.ci_high, m) if math.isfinite(x)]
        lo_all, hi_all = min([-1.5 * r, *finite]), max([1.5 * r, *finite])
        pad = 0.1 * (hi_all - lo_all) or 1.0
        bottom, top = lo_all - pad, hi_all + pad
        for look, m in zip(v.path, point, strict=True):
            colour = DECISION_COLOURS[look.decision]
            lo, hi = look.ci_low * u.scale, look.ci_high * u.scale
            a, b = max(lo, bottom), min(hi, top)
            ax.plot([look.n, look.n], [a, b], color=colour, lw=4, solid_capstyle="butt")
            for end, y, mark in ((lo, a, "v"), (hi, b, "^")):
                if math.isinf(end):
                    ax.plot([look.n], [y], marker=mark, ms=9, color=colour)
            if math.isfinite(m):
                ax.plot([look.n], [m * u.scale], marker="D", ms=7, color=colour,
                        mec="white", mew=1)
        if v.settled_at is not None:
            ax.axvline(v.settled_at, color=DECISION_COLOURS[v.decision], ls="--", lw=1.5,
                       label=f"settled at {v.settled_at} seeds: {v.decision}")
        ax.set_ylim(bottom, top)
        ax.set_title(f"{v.arm} vs {v.baseline}: {v.decision}", fontsize=10, weight="bold",
                     color=DECISION_COLOURS[v.decision])
        ax.set_ylabel(f"Δ ({'points' if u.accuracy else 'nats'})")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8, frameon=False)
    axes[-1].set_xlim(looks[0] - 1, looks[-1] + 1)
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("Seeds per arm at the look")
    stop = (f"stopped at {result.looks_done[-1]} seeds per arm" if result.stop and
            result.looks_done else "not stopped")
    title = f"Sequential path: {stop} ({result.why}); bars are 95% repeated CIs per look"
    put_title(fig, title)
    return Plot("sequential_path", title, "Each contrast's 95% repeated confidence interval "
                "and mean difference at every look, against the ROPE", png(fig))
