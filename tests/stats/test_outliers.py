"""Seeds far from their arm's bulk: the generalized ESD test against a hand count."""

from __future__ import annotations

import math

import numpy as np
import scipy.stats as st

from ablate.stats import outliers


def test_a_planted_bad_seed_is_flagged_and_matches_the_hand_statistic() -> None:
    x = np.array([0.975, 0.976, 0.974, 0.977, 0.975, 0.973, 0.976, 0.965, 0.975, 0.974])
    o = outliers(x, range(10))
    assert o.seeds == (7,) and o.values == (0.965,)
    # By hand: R_1 = |0.965 - mean| / sd against lambda_1 with n = 10, alpha = 0.05.
    n = 10
    r1 = abs(0.965 - x.mean()) / x.std(ddof=1)
    t = st.t.ppf(1 - 0.05 / (2 * n), n - 2)
    lam = (n - 1) * t / math.sqrt((n - 2 + t * t) * n)
    assert r1 > lam
    # The second step (the rest) is below its critical value: one seed, not two.
    rest = np.delete(x, 7)
    r2 = np.abs(rest - rest.mean()).max() / rest.std(ddof=1)
    t2 = st.t.ppf(1 - 0.05 / (2 * (n - 1)), n - 3)
    assert r2 <= (n - 2) * t2 / math.sqrt((n - 3 + t2 * t2) * (n - 1))


def test_clean_normal_arms_are_rarely_flagged() -> None:
    rng = np.random.default_rng(0)
    flagged = sum(bool(outliers(0.97 + 0.0025 * rng.standard_normal(10), range(10)).seeds)
                  for _ in range(400))
    assert flagged / 400 <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 400)


def test_too_few_seeds_flag_nothing() -> None:
    assert outliers([0.9, 0.9, 0.1, 0.9], range(4)).seeds == ()
