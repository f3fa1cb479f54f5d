"""The cross-fitted estimand against hand-computed cases and a brute-force loop."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ablate.engine import crossfit


def test_hand_computed_accuracy() -> None:
    # Half A (50 images) peaks at epoch 2, half B (50 images) at epoch 3: epoch 2 is scored
    # on B (20 correct) and epoch 3 on A (20 correct): 40 of 100.
    fit = crossfit(np.array([10.0, 30, 20]), np.array([40.0, 20, 45]), 50, 50,
                   higher_is_better=True)
    assert fit.value == pytest.approx(0.4, abs=0)
    assert (int(fit.epoch_a), int(fit.epoch_b)) == (2, 3)


def test_loss_picks_the_minimum_and_ties_go_to_the_first_epoch() -> None:
    fit = crossfit(np.array([3.0, 1.0, 1.0]), np.array([2.0, 2.0, 5.0]), 10, 10,
                   higher_is_better=False)
    assert (int(fit.epoch_a), int(fit.epoch_b)) == (2, 1)
    assert fit.value == pytest.approx((2.0 + 3.0) / 20)


def test_nan_epochs_are_never_chosen_and_a_run_without_any_is_nan() -> None:
    # A run's epochs are NaN in both halves at once (it diverged before or during them).
    a = np.array([[np.nan, 5.0, 3.0], [np.nan, np.nan, np.nan]])
    b = np.array([[np.nan, 1.0, 9.0], [np.nan, np.nan, np.nan]])
    fit = crossfit(a, b, 10, 10, higher_is_better=True)
    assert fit.value[0] == pytest.approx((1.0 + 3.0) / 20)  # A -> epoch 2; B -> epoch 3
    assert np.isnan(fit.value[1]) and fit.epoch_a[1] == 0


def test_an_empty_half_gives_nan() -> None:
    assert np.isnan(crossfit(np.array([1.0]), np.array([1.0]), 0, 3,
                             higher_is_better=True).value)


def _loop(a: np.ndarray, b: np.ndarray, n_a: int, n_b: int, higher: bool) -> float:
    def pick(sums: np.ndarray, n: int) -> int:
        best = None
        for e, v in enumerate(sums / n):
            if best is None or (v > sums[best] / n if higher else v < sums[best] / n):
                best = e
        assert best is not None
        return best
    return float((b[pick(a, n_a)] + a[pick(b, n_b)]) / (n_a + n_b))


@given(st.integers(1, 12), st.integers(1, 40), st.integers(1, 40), st.booleans(),
       st.integers(0, 2**32 - 1))
def test_matches_a_brute_force_loop(epochs: int, n_a: int, n_b: int, higher: bool,
                                    seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Integer sums (correct counts) make ties common: the first best epoch must win.
    a = rng.integers(0, n_a + 1, size=(3, epochs)).astype(float)
    b = rng.integers(0, n_b + 1, size=(3, epochs)).astype(float)
    fit = crossfit(a, b, n_a, n_b, higher_is_better=higher)
    for r in range(3):
        assert fit.value[r] == _loop(a[r], b[r], n_a, n_b, higher)


def test_the_maximum_over_epochs_is_optimistic_and_crossfit_is_not() -> None:
    """Flat true accuracy 0.9 over 20 epochs, binomial noise on 5,000 + 5,000 images:
    the best-epoch score on the whole split is biased up, the cross-fitted one is not."""
    rng = np.random.default_rng(7)
    n, runs, epochs = 5_000, 4_000, 20
    a = rng.binomial(n, 0.9, size=(runs, epochs)).astype(float)
    b = rng.binomial(n, 0.9, size=(runs, epochs)).astype(float)
    best_on_whole = ((a + b) / (2 * n)).max(axis=1)
    fit = crossfit(a, b, n, n, higher_is_better=True)
    se = 0.3 / np.sqrt(2 * n) / np.sqrt(runs)  # sd of one run's score / sqrt(runs)
    assert abs(fit.value.mean() - 0.9) < 4 * se
    assert best_on_whole.mean() - 0.9 > 0.004  # ~1.9 sd of one epoch's score
