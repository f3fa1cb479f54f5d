"""Figures only some designs get: the critical-difference diagram and the 2x2 interaction.

More than two arms: a Demsar-style critical-difference diagram of the Friedman average
ranks. A 2x2 factorial: the interaction plot of the four cells. Same style and
conventions as `ablate.plots` (Agg backend, one colour per arm, titles state findings).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.stats as st
from matplotlib.figure import Figure

from ablate.plots import Plot, png, put_title
from ablate.report_text import Units, fmt_p, p_clause
from ablate.stats import Contrast, Friedman


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
