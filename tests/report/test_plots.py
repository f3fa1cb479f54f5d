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

from ablate.report import DECISION_COLOURS, Curves, Units
from ablate.report import _figures as plots
from ablate.stats import compare, friedman

ACC = Units.for_metric("val_accuracy", True)
LOSS = Units.for_metric("val_loss", False)


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


def family(shifts: dict[str, float], n: int = 10, sd: float = 0.0005, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = 0.97 + rng.normal(0, 0.002, n)
    scores = {arm: base + s + rng.normal(0, sd, n) for arm, s in shifts.items()}
    arms = list(shifts)
    return scores, compare(scores, arms[0], "val_accuracy", 0.002,
                           rng=np.random.default_rng(1), n_bootstrap=999)


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


def test_forest_handles_single_seed_without_an_interval() -> None:
    _, fam = family({"on": 0.0, "off": -0.006}, n=1)
    assert math.isnan(fam.contrasts[0].ci_low)
    assert pixels(plots.forest(fam.contrasts, ACC, "one seed")).std() > 10


def test_slopes_draw_one_green_line_per_improving_seed() -> None:
    scores, fam = family({"on": 0.0, "better": 0.01, "worse": -0.01})
    colours = plots.arm_colours(list(scores))
    p = plots.slopes(scores, "on", colours, ACC, {c.arm: c.decision for c in fam.contrasts})
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
    mean, lo, hi = plots._mean_ci(values)
    ref = st.t.interval(0.95, 2, loc=2.0, scale=st.sem([1.0, 3.0, 2.0]))
    assert mean[0] == pytest.approx(2.0)
    assert (lo[0], hi[0]) == pytest.approx(ref)
    assert (lo[1], hi[1]) == (2.0, 2.0)  # no spread, no band
    assert mean[2] == 5.0 and np.isnan(lo[2])  # one seed: a mean but no band
    c = {"on": curves(), "off": curves(seed=1)}
    p = plots.learning_curves(c, plots.arm_colours(list(c)), ACC, 4)
    assert pixels(p).shape == (380, 900, 3)  # 3.6 in + 0.2 in per legend row, at 100 dpi
    assert "final validation loss lowest for" in p.title


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


@pytest.mark.parametrize(("ranks", "cd", "expected"), [
    ([1.0, 1.5, 2.9, 3.0], 1.0, [(0, 1), (2, 3)]),
    ([1.0, 2.0, 3.0], 1.35, [(0, 1), (1, 2)]),
    ([1.0, 2.0, 3.0], 5.0, [(0, 2)]),
    ([1.0, 2.0, 3.0], 0.5, []),
    ([1.0, 2.0, 3.0], 1.0, []),  # a gap of exactly the CD is significant (Demsar 2006)
])
def test_cd_cliques_by_hand(ranks: list[float], cd: float, expected: list) -> None:
    assert plots.cd_cliques(ranks, cd) == expected


def test_cd_diagram_names_the_best_arm() -> None:
    rng = np.random.default_rng(0)
    table = np.stack([0.95 + rng.normal(0, 0.001, 10), 0.97 + rng.normal(0, 0.001, 10),
                      0.96 + rng.normal(0, 0.001, 10)], axis=1)  # (seeds, arms)
    fr = friedman(table, ["sgd", "adam", "momentum"])
    p = plots.cd_diagram(fr, plots.arm_colours(fr.arms))
    assert "adam ranks best" in p.title and "p < 0.001" in p.title
    assert colour_count(pixels(p), plots.arm_colours(fr.arms)["adam"], tol=30) > 30


def test_interaction_plot_title_reports_the_contrast() -> None:
    from ablate.stats import compare_contrasts, factorial_2x2

    rng = np.random.default_rng(0)
    base = 0.97 + rng.normal(0, 0.002, 8)
    cells = {("on", "after"): base, ("on", "off"): base - 0.01,
             ("off", "after"): base - 0.004, ("off", "off"): base - 0.011}
    arm_of = {k: f"dropout={k[0]},bn={k[1]}" for k in cells}
    vectors = factorial_2x2(cells["on", "after"], cells["on", "off"], cells["off", "after"],
                            cells["off", "off"])
    fam = compare_contrasts(vectors, metric="val_accuracy", rope=0.002,
                            rng=np.random.default_rng(1), n_bootstrap=999)
    inter = fam.contrasts[2]
    p = plots.interaction(
        cells, arm_of, ("dropout", "bn"), (("on", "off"), ("after", "off")),
        plots.arm_colours(list(arm_of.values())), ACC, inter)
    assert p.title.startswith(f"Interaction {inter.decision}: +0.30 points")
    assert pixels(p).std() > 10


def test_png_bytes_are_reproducible() -> None:
    scores, fam = family({"on": 0.0, "off": -0.006})
    assert plots.forest(fam.contrasts, ACC, "t").png == plots.forest(fam.contrasts, ACC, "t").png
