"""Power of the verdict: its planning sd, its counting, and what it promises.

The promise itself (the seeds it names give the verdict with probability >= 0.8) is
checked against the decision rule in test_calibration; here its parts are checked
against independent oracles: SciPy's chi-square quantiles, brute-force enumeration.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats as st

from ablate.stats import min_seeds_for_sign_flip, power_for, sd_upper, sign_flip
from ablate.stats._power import _count_at_most, _p_greater, claim_power


def test_sd_upper_is_the_one_sided_80_percent_chi_square_bound() -> None:
    # P(s <= sigma_u | sigma = sd) = 0.8 by definition: check by the chi-square cdf.
    for n in (2, 5, 10, 30):
        u = sd_upper(1.0, n)
        # (n-1) s^2 / sigma^2 ~ chi2(n-1): s = 1 is the 20% point when sigma = u.
        assert st.chi2.cdf((n - 1) / u**2, n - 1) == pytest.approx(0.2, abs=1e-12)
    assert math.isnan(sd_upper(1.0, 1))


def test_the_floor_in_seeds() -> None:
    # 1/2^n <= alpha/(2m): 6 seeds for one contrast, 8 for five (1/256 <= 0.005).
    assert min_seeds_for_sign_flip(0.05, 1) == 6
    assert min_seeds_for_sign_flip(0.05, 5) == 8


def test_counting_matches_brute_force_and_the_table() -> None:
    rng = np.random.default_rng(0)
    for _ in range(40):
        mags = rng.integers(0, 9, 7)
        limit = int(rng.integers(-1, 30))
        brute = sum(int(np.dot(m, mags)) <= limit for m in itertools.product((0, 1), repeat=7))
        assert _count_at_most(mags, limit) == brute
        y = rng.integers(-30, 40, 9)
        assert _p_greater(y) == sign_flip(y * 1e-4, resolution=1e-4).p_greater(0.0)


def test_claim_power_matches_a_direct_count() -> None:
    rng = np.random.default_rng(1)
    z = rng.standard_normal((200, 8))
    got = claim_power(z, effect=40.0, sd=25.0, rope=20.0, h=1.0, level=0.025, claim="better")
    direct = np.mean([sign_flip(np.rint(40 + 25 * row), resolution=1.0).p_greater(20.0)
                      <= 0.025 for row in z])
    assert got == direct
    assert claim_power(z[:, :5], effect=40.0, sd=25.0, rope=20.0, h=1.0, level=0.025,
                       claim="better") == 0.0  # 1/32 > 0.025: impossible


def test_power_for_names_its_effect_and_stays_consistent() -> None:
    pw = power_for(0.0025, 10, rope=0.002, alpha=0.05, m=1, resolution=1e-4,
                   rng=np.random.default_rng(2), simulations=300)
    assert pw is not None
    assert pw.effect == 0.004 and pw.effect_rule == "2 x ROPE"
    assert pw.sd_upper == pytest.approx(sd_upper(0.0025, 10), rel=1e-12)
    assert pw.seeds_better is not None and pw.seeds_better > 10  # 0.41 power at 10 seeds
    assert pw.power_better < 0.8 and pw.mde > pw.effect  # so the MDE lies above 2 x ROPE
    assert "says 'better' with probability" in pw.sentence()
    assert power_for(float("nan"), 1, rope=0.002, alpha=0.05, m=1, resolution=1e-4,
                     rng=np.random.default_rng(0)) is None


def test_seeds_needed_carry_their_monte_carlo_range() -> None:
    import numpy as np
    pw = power_for(0.0025, 10, rope=0.002, alpha=0.05, m=1, resolution=1e-4,
                   rng=np.random.default_rng(3), simulations=400)
    assert pw is not None
    lo, hi = pw.seeds_better_range
    assert lo is not None and hi is not None and pw.seeds_better is not None
    assert lo <= pw.seeds_better <= hi and lo < hi  # 2 SE of 400 draws: a real spread
    assert "within 2 Monte Carlo SE" in pw.sentence()


def test_sd_bound_covers_80_percent_under_normal_noise_only() -> None:
    # The plan's sd bound is normal-theory: ~0.80 under normal differences; under t(3)
    # it covers about half the time (the report and README say so).
    import math

    import numpy as np
    rng = np.random.default_rng(0)
    n, sims = 10, 4000
    normal = rng.standard_normal((sims, n)).std(ddof=1, axis=1)
    heavy = (rng.standard_t(3, (sims, n)) / math.sqrt(3)).std(ddof=1, axis=1)
    cover = [float(np.mean([sd_upper(s, n) >= 1.0 for s in x])) for x in (normal, heavy)]
    assert abs(cover[0] - 0.8) < 0.03
    assert 0.40 < cover[1] < 0.60
