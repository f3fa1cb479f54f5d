"""The report's figures: valid, sized, non-blank PNGs whose colours carry the decision.

The figures are checked as images (decoded with Pillow): a plot that silently draws
nothing, or colours a worse contrast green, fails here.
"""

from __future__ import annotations

import io
import math
from dataclasses import replace

import numpy as np
import pytest
import scipy.stats as st
from PIL import Image

from ablate.analysis import Curves
from ablate.analysis._contrasts import Factorial
from ablate.analysis._summaries import arm_summary, t_band
from ablate.metric import METRICS
from ablate.report import DECISION_COLOURS, Units
from ablate.report import _figures as plots
from ablate.stats import (
    Family,
    SequentialDesign,
    compare,
    decide,
    factorial,
    friedman,
    pair,
    sequential_verdicts,
)

ACC = Units.for_metric(METRICS["crossfit_val_accuracy"])
LOSS = Units.for_metric(METRICS["crossfit_val_loss"])
H = 1e-4  # accuracy on 10,000 validation images


def pixels(p: plots.Plot) -> np.ndarray:
    """Decode a plot's PNG to (height, width, 3) float RGB."""
    assert p.png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(p.png)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float64)


def colour_count(rgb: np.ndarray, hex_colour: str, tol: float = 24) -> int:
    """Pixels within `tol` (sum of |channel difference|, 0-765) of a colour.

    24 allows for antialiasing at edges while staying far from the other decision
    colours (the closest pair, red and green, are > 250 apart).
    """
    target = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float64)
    return int((np.abs(rgb - target).sum(axis=2) < tol).sum())


def family(shifts: dict[str, float], n: int = 10, sd: float = 0.0005, seed: int = 0
           ) -> tuple[dict[str, np.ndarray], Family]:
    """Scores on the accuracy grid and their decided family (power is not drawn here)."""
    rng = np.random.default_rng(seed)
    base = 0.97 + rng.normal(0, 0.002, n)
    scores = {arm: np.rint((base + s + rng.normal(0, sd, n)) / H) * H
              for arm, s in shifts.items()}
    arms = list(shifts)
    return scores, compare(scores, arms[0], "crossfit_val_accuracy", 0.002, resolution=H,
                           key="plots", power=False)


def pairs(scores: dict[str, np.ndarray], baseline: str
          ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {a: (scores[baseline], v) for a, v in scores.items() if a != baseline}


def curves(n_seeds: int = 4, n_epochs: int = 5, n_layers: int = 3, scale: float = 1.0,
           seed: int = 0) -> Curves:
    rng = np.random.default_rng(seed)
    e = np.arange(1, n_epochs + 1)
    loss = 1.0 / e + rng.normal(0, 0.01, (n_seeds, n_epochs))  # (S, E)
    grads = scale * np.exp(rng.normal(0, 0.1, (n_seeds, n_epochs, n_layers)))  # (S, E, L)
    return Curves(epochs=e, train_loss=loss, val_loss=loss + 0.05, train_accuracy=1 - loss / 2,
                  val_accuracy=1 - loss / 2 - 0.01, grad_norms=grads)


def test_arm_colours_are_distinct_stable_and_not_decision_colours() -> None:
    arms = [f"arm{i}" for i in range(8)]
    colours = plots.arm_colours(arms)
    assert colours == plots.arm_colours(arms)  # same arms, same colours, every figure
    assert len(set(colours.values())) == len(arms)
    assert not set(colours.values()) & set(DECISION_COLOURS.values())


def test_forest_colours_each_contrast_by_its_decision() -> None:
    scores, fam = family({"on": 0.0, "off": -0.006, "same": 0.0})
    decisions = {c.arm: c.decision for c in fam.contrasts}
    assert decisions == {"off": "worse", "same": "equivalent"}
    p = plots.forest(fam.contrasts, ACC, "Verdict: test")
    rgb = pixels(p)
    assert rgb.shape == (round((1.3 + 0.75 * 2) * plots.DPI), 9 * plots.DPI, 3)
    assert colour_count(rgb, DECISION_COLOURS["worse"]) > 200
    assert colour_count(rgb, DECISION_COLOURS["equivalent"]) > 50
    assert colour_count(rgb, DECISION_COLOURS["better"]) == 0
    # Flip the decision object and the picture follows it: text and plot share one source.
    flipped = [replace(c, decision="better") for c in fam.contrasts]
    rgb = pixels(plots.forest(flipped, ACC, "Verdict: test"))
    assert colour_count(rgb, DECISION_COLOURS["better"]) > 200
    assert colour_count(rgb, DECISION_COLOURS["worse"]) == 0


def test_forest_draws_an_unbounded_interval_to_the_edge() -> None:
    """One seed: no shift can be rejected, so the interval is (-inf, inf), drawn across
    the whole axis in the decision's colour, with arrows, never dropped."""
    _, fam = family({"on": 0.0, "off": -0.006}, n=1)
    c = fam.contrasts[0]
    assert (c.ci_low, c.ci_high) == (-math.inf, math.inf)
    rgb = pixels(plots.forest(fam.contrasts, ACC, "one seed"))
    grey = colour_count(rgb, DECISION_COLOURS["inconclusive"])
    assert grey > 900  # a 4 px bar across the plot area (about 500 px) and the label


def test_forest_has_colours_for_interactions() -> None:
    base = [replace(c, kind="interaction") for c in family({"on": 0.0, "off": -0.006})[1]
            .contrasts]
    for decision in ("interaction", "no interaction"):
        rgb = pixels(plots.forest([replace(c, decision=decision) for c in base], ACC, "t"))
        assert colour_count(rgb, DECISION_COLOURS[decision]) > 200, decision
    assert len(set(DECISION_COLOURS.values())) == len(DECISION_COLOURS)


def test_slopes_draw_one_green_line_per_improving_seed() -> None:
    scores, fam = family({"on": 0.0, "better": 0.01, "worse": -0.01})
    colours = plots.arm_colours(list(scores))
    p = plots.slopes(pairs(scores, "on"), "on", colours, ACC,
                     {c.arm: c.decision for c in fam.contrasts})
    rgb = pixels(p)
    # Left panel: all 10 seeds improve -> green lines; right panel: all lose -> red lines.
    half = rgb.shape[1] // 2
    assert colour_count(rgb[:, :half], DECISION_COLOURS["better"], tol=60) > 300
    assert colour_count(rgb[:, :half], DECISION_COLOURS["worse"], tol=60) < 20
    assert colour_count(rgb[:, half:], DECISION_COLOURS["worse"], tol=60) > 300
    assert "better 10/10" in p.title and "worse 0/10" in p.title


def test_distributions_and_title_name_the_best_arm() -> None:
    scores, _ = family({"a": 0.0, "b": 0.01})
    p = plots.distributions(scores, plots.arm_colours(list(scores)), ACC)
    assert "best mean b" in p.title
    lower = plots.distributions(scores, plots.arm_colours(list(scores)), LOSS)
    assert "best mean a" in lower.title  # for a loss the smaller mean is best
    assert pixels(p).std() > 10


def test_learning_curves_band_is_a_t_interval() -> None:
    values = np.array([[1.0, 2.0, np.nan], [3.0, 2.0, 5.0], [2.0, 2.0, np.nan]])  # (S, E)
    band = t_band(values)
    mean, lo, hi = band.mean, band.low, band.high
    ref = st.t.interval(0.95, 2, loc=2.0, scale=st.sem([1.0, 3.0, 2.0]))
    assert mean[0] == pytest.approx(2.0)
    assert (lo[0], hi[0]) == pytest.approx(ref)
    assert (lo[1], hi[1]) == (2.0, 2.0)  # no spread, no band
    assert mean[2] == 5.0 and np.isnan(lo[2])  # one seed: a mean but no band
    c = {"on": curves(), "off": curves(seed=1)}
    p = plots.learning_curves(c, plots.arm_colours(list(c)), ACC)
    assert pixels(p).shape == (380, 900, 3)  # 3.6 in + 0.2 in per legend row, at 100 dpi
    assert "final validation loss lowest for" in p.title and "over 4 seeds" in p.title


@pytest.mark.parametrize(("scale", "word"), [(1.0, "no vanishing or exploding"),
                                             (1e-7, "vanishing in"), (1e4, "exploding in")])
def test_grad_norms_title_flags_vanishing_and_exploding(scale: float, word: str) -> None:
    c = {"on": curves(scale=scale), "off": curves(seed=3)}
    p = plots.grad_norms(c, plots.arm_colours(list(c)))
    assert word in p.title
    assert pixels(p).std() > 10


def test_grad_norms_ignore_missing_values() -> None:
    c = curves()
    g = c.grad_norms.copy()
    g[0, 2:, :] = np.nan  # a run that stopped logging
    p = plots.grad_norms({"on": replace(c, grad_norms=g)}, {"on": "#222222"})
    assert "no vanishing" in p.title


def test_rank_figure_is_drawn_against_the_baseline() -> None:
    """Bonferroni-Dunn: one band, the baseline's rank +- CD; each arm labelled with its
    paired verdict. An all-pairs (Nemenyi) summary is refused: no study asks it."""
    rng = np.random.default_rng(0)
    table = np.stack([0.95 + rng.normal(0, 0.001, 10), 0.97 + rng.normal(0, 0.001, 10),
                      0.96 + rng.normal(0, 0.001, 10)], axis=1)  # (seeds, arms)
    arms = ["sgd", "adam", "momentum"]
    fr = friedman(table, arms, baseline="sgd")
    p = plots.cd_diagram(fr, plots.arm_colours(fr.arms), {"adam": "better",
                                                          "momentum": "better"})
    # Every seed ranks adam 1, momentum 2, sgd 3; CD = z_{1-0.05/4} sqrt(3 * 4 / 60) =
    # 1.002: adam's gap of 2 is beyond it, momentum's gap of 1 is not.
    assert fr.method == "Bonferroni-Dunn" and fr.avg_ranks == (3.0, 1.0, 2.0)
    assert fr.cd == pytest.approx(st.norm.isf(0.0125) * math.sqrt(0.2), rel=1e-12)
    assert "; adam differs in rank from the baseline (Bonferroni-Dunn" in p.title
    assert "p < 0.001" in p.title and "labels: the paired verdicts" in p.title
    rgb = pixels(p)
    assert colour_count(rgb, plots.arm_colours(fr.arms)["adam"], tol=30) > 30
    assert colour_count(rgb, DECISION_COLOURS["better"], tol=30) > 30  # the verdict labels
    with pytest.raises(ValueError, match="versus-baseline"):
        plots.cd_diagram(friedman(table, arms), plots.arm_colours(arms), {})


def test_interaction_plot_title_reports_the_contrast() -> None:
    rng = np.random.default_rng(0)
    base = 0.97 + rng.normal(0, 0.002, 8)
    cells = {("on", "after"): base, ("on", "off"): base - 0.01,
             ("off", "after"): base - 0.004, ("off", "off"): base - 0.011}
    cells = {k: np.rint(v / H) * H for k, v in cells.items()}
    f = Factorial("dropout", "bn", ("on", "off"), ("after", "off"),
                  {k: f"dropout={k[0]},bn={k[1]}" for k in cells})
    seeds = list(range(8))
    effects = factorial({k: dict(enumerate(v.tolist())) for k, v in cells.items()}, seeds,
                        factor_a="dropout", factor_b="bn", levels_a=("on", "off"),
                        levels_b=("after", "off"), resolution=H)
    inter = decide(effects, metric="crossfit_val_accuracy", rope=0.002, power=False).contrasts[2]
    summaries = {k: arm_summary(f.cells[k], (), dict(enumerate(v.tolist())), []) for k, v in
                 cells.items()}
    p = plots.interaction(summaries, f, plots.arm_colours(list(f.cells.values())), ACC, inter)
    assert p.title.startswith(f"Interaction, {inter.decision}: +0.30 points (95% CI ")
    assert pixels(p).std() > 10


def test_sequential_path_colours_each_look_by_its_verdict() -> None:
    rng = np.random.default_rng(3)
    seeds = list(range(12))
    base = {s: float(np.rint((0.97 + rng.normal(0, 0.002)) / H) * H) for s in seeds}
    arm = {s: float(np.rint((v + 0.006 + rng.normal(0, 0.001)) / H) * H)
           for s, v in base.items()}
    c = pair(arm, base, seeds, name="off", reference="on", resolution=H)
    res = sequential_verdicts(SequentialDesign(6, 14, 2, rope=0.002), [c], seeds)
    decisions = {look.decision for look in res.verdicts[0].path}
    assert decisions == {"inconclusive", "better"}  # unbounded at 6 seeds, then settled
    p = plots.sequential_path(res, 0.002, ACC)
    rgb = pixels(p)
    for d in decisions:
        assert colour_count(rgb, DECISION_COLOURS[d]) > 100, d
    assert p.title.startswith("Sequential path: stopped at 12 seeds per arm")


def test_png_bytes_are_reproducible() -> None:
    scores, fam = family({"on": 0.0, "off": -0.006})
    assert plots.forest(fam.contrasts, ACC, "t").png == plots.forest(fam.contrasts, ACC, "t").png
