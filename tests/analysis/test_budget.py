"""The budget rule: a run still improving when training ended, an arm that had not
converged, and the report's sentence built from those numbers."""

import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.stats as st

from ablate.analysis import LAST_EPOCHS, SLOPE_SE, Convergence, analyse_run_dir
from ablate.analysis._budget import still_improving
from ablate.report._text import answer_paragraph, budget_sentence

LEGACY_RUN = Path(__file__).parent.parent / "data" / "legacy_run"


def _oracle(curve: np.ndarray, kept: int) -> bool:
    """The rule with SciPy's regression: kept epoch last, slope > 2 standard errors."""
    tail = curve[-LAST_EPOCHS:]
    fit = st.linregress(np.arange(len(tail)), tail)
    return bool(kept == len(curve) and fit.slope > SLOPE_SE * fit.stderr)


def test_the_rule_on_hand_made_curves() -> None:
    rising = [0.90, 0.92, 0.935, 0.945, 0.952, 0.958, 0.9635]
    assert still_improving(rising, kept_epoch=7) is True
    assert still_improving(rising, kept_epoch=6) is False  # it kept an earlier epoch
    plateau = [0.90, 0.95, 0.970, 0.971, 0.969, 0.972, 0.970]
    assert still_improving(plateau, kept_epoch=7) is False  # flat within noise
    noisy = [0.90, 0.95, 0.960, 0.975, 0.962, 0.978, 0.979]  # up, but not beyond noise
    assert still_improving(noisy, kept_epoch=7) is _oracle(np.array(noisy), 7) is False
    assert still_improving([0.9, 0.95], kept_epoch=2) is None  # too short to judge
    assert still_improving([0.9, math.nan, 0.95], kept_epoch=3) is None


def test_the_rule_agrees_with_scipy_on_random_curves() -> None:
    rng = np.random.default_rng(3)
    agree = 0
    for _ in range(400):
        n = int(rng.integers(3, 21))
        curve = np.cumsum(rng.normal(rng.uniform(-0.002, 0.004), 0.003, n)) + 0.9
        kept = n if rng.random() < 0.7 else int(rng.integers(1, n + 1))
        assert still_improving(curve, kept) == _oracle(curve, kept), (curve, kept)
        agree += still_improving(curve, kept) is True
    assert 40 < agree < 360  # both outcomes were exercised


def test_a_legacy_run_had_not_converged_and_the_report_says_at_which_budget(
        tmp_path: Path) -> None:
    shutil.copy(LEGACY_RUN / "runs.sqlite", tmp_path / "runs.sqlite")
    a = analyse_run_dir(tmp_path, power=False)
    assert [(c.arm, c.improving, c.runs, c.converged) for c in a.convergence] == [
        ("dropout=on", 6, 6, False), ("dropout=off", 6, 6, False), ("dropout=high", 6, 6, False)]
    sentence = budget_sentence(a)
    assert sentence.startswith("Budget: at this budget (3 epochs, adam lr=0.001) the arms had "
                               "not converged")
    assert "dropout=on 6 of 6" in sentence and "last 3 epochs" in sentence  # all it had
    assert f"beyond {SLOPE_SE:g} standard errors" in sentence
    assert "the arms had not converged, so the verdict holds at this budget." in \
        answer_paragraph(a)
    # One arm converged, the others not: the sentence names only those.
    some = replace(a, convergence=(replace(a.convergence[0], improving=1),
                                   *a.convergence[1:]))
    assert "dropout=off and dropout=high had not converged" in budget_sentence(some)
    # Every arm converged (fewer than half its runs still improving): nothing is said.
    done = replace(a, convergence=tuple(replace(c, improving=2) for c in a.convergence))
    assert budget_sentence(done) == "" and "budget" not in answer_paragraph(done)


@pytest.mark.parametrize(("improving", "runs", "converged"),
                         [(0, 10, True), (4, 10, True), (5, 10, False), (10, 10, False),
                          (0, 0, True)])
def test_an_arm_has_not_converged_from_half_of_its_runs(improving: int, runs: int,
                                                         converged: bool) -> None:
    assert Convergence("a", 20, "sgd lr=0.01", runs, improving).converged is converged
