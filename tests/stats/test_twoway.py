"""The two-way (seeds x images) interval: hand-computed, brute-force ANOVA, coverage.

Oracles: a 2 x 3 case worked by hand (exact fractions), a float64 loop-by-loop ANOVA
written independently of the vectorized one, SciPy's t quantiles, and a simulation at
small size whose true Delta is known exactly (a finite mixture of image types).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st

from ablate.stats import two_way
from ablate.stats._twoway import call, mean_squares


def test_hand_computed_two_seeds_three_images() -> None:
    # d = a - b = [[1, 0, 0], [0, -1, 0]]: grand mean 0, seed means +-1/3, image means
    # 1/2, -1/2, 0. MS_seed = 3 (1/9 + 1/9) / 1 = 2/3; MS_image = 2 (1/4 + 1/4) / 2 =
    # 1/2; residuals +-[1/6, 1/6, -1/3], SS 1/3 over 2 df: MS_resid = 1/6.
    a = np.array([[1, 1, 0], [1, 0, 0]])
    b = np.array([[0, 1, 0], [1, 1, 0]])
    r = two_way(a, b)
    assert mean_squares((a - b).astype(float)) == pytest.approx((2 / 3, 1 / 2, 1 / 6),
                                                               abs=1e-15)
    # V = (2/3 + 1/2 - 1/6) / 6 = 1/6; components (2/3 - 1/6)/3 = (1/2 - 1/6)/2 = 1/6.
    assert r.mean_diff == 0.0
    assert r.se == pytest.approx(math.sqrt(1 / 6), rel=1e-14)
    assert (r.var_seed, r.var_image, r.var_resid) == pytest.approx((1 / 6,) * 3, rel=1e-14)
    # Shares of V: (1/6)/2, (1/6)/3, (1/6)/6 over 1/6 = 1/2, 1/3, 1/6.
    assert (r.seed_share, r.image_share, r.resid_share) == pytest.approx(
        (1 / 2, 1 / 3, 1 / 6), rel=1e-14)
    # Satterthwaite: 1 / ((2/3)^2 / 1 + (1/2)^2 / 2 + (1/6)^2 / 2) = 72 / 42.
    assert r.df == pytest.approx(12 / 7, rel=1e-14)
    half = st.t.ppf(0.975, 12 / 7) * math.sqrt(1 / 6)
    assert (r.low, r.high) == pytest.approx((-half, half), rel=1e-12)
    # Two seeds: 4 sign patterns, none below 2.5%, so the one-way interval is unbounded.
    assert (r.one_way_low, r.one_way_high) == (-math.inf, math.inf)
    assert r.call_two_way == r.call_one_way == "inconclusive" and not r.disagree


def brute_force(d: np.ndarray) -> tuple[float, float, float, float]:
    """(MS_seed, MS_image, MS_resid, grand mean) by explicit loops, float64."""
    s, i = d.shape
    grand = sum(d[p, q] for p in range(s) for q in range(i)) / (s * i)
    rows = [sum(d[p, q] for q in range(i)) / i for p in range(s)]
    cols = [sum(d[p, q] for p in range(s)) / s for q in range(i)]
    ss_s = sum(i * (rows[p] - grand) ** 2 for p in range(s))
    ss_i = sum(s * (cols[q] - grand) ** 2 for q in range(i))
    ss_e = sum((d[p, q] - rows[p] - cols[q] + grand) ** 2 for p in range(s) for q in range(i))
    return ss_s / (s - 1), ss_i / (i - 1), ss_e / ((s - 1) * (i - 1)), grand


@pytest.mark.parametrize("seed", range(5))
def test_matches_a_brute_force_anova(seed: int) -> None:
    rng = np.random.default_rng(seed)
    s, i = 4 + seed, 30 + 7 * seed
    p_a = rng.uniform(0.5, 1.0, i)  # (I,) image difficulty differs between arms
    p_b = rng.uniform(0.5, 1.0, i)
    shift = rng.normal(0, 0.1, (s, 1))  # (S, 1) seed effect
    a = rng.random((s, i)) < np.clip(p_a + shift, 0, 1)
    b = rng.random((s, i)) < p_b
    ms_s, ms_i, ms_e, grand = brute_force(a.astype(float) - b.astype(float))
    r = two_way(a, b)
    # Sums of O(S I) terms of size <= 4 in float64: 1e-12 is ~1000x the rounding error.
    assert r.mean_diff == pytest.approx(grand, abs=1e-12)
    cs, ci = float(ms_s > ms_e), float(ms_i > ms_e)
    terms = np.array([cs * ms_s, ci * ms_i, (1 - cs - ci) * ms_e])
    dfs = np.array([s - 1, i - 1, (s - 1) * (i - 1)])
    assert r.se**2 == pytest.approx(terms.sum() / (s * i), rel=1e-10)
    assert r.df == pytest.approx(terms.sum() ** 2 / (terms**2 / dfs).sum(), rel=1e-10)
    assert r.var_seed == pytest.approx(max(ms_s - ms_e, 0) / i, abs=1e-14)
    assert r.var_image == pytest.approx(max(ms_i - ms_e, 0) / s, abs=1e-14)
    assert r.seed_share + r.image_share + r.resid_share == pytest.approx(1.0, abs=1e-12)
    # The one-way interval is the exact sign-flip one over the seeds' differences.
    assert r.one_way_method.startswith("exact sign-flip")


def test_calls_and_disagreement() -> None:
    assert call(0.003, 0.004, 0.0031, 0.0039, 0.002) == "better"
    assert call(-0.004, -0.003, -0.0039, -0.0031, 0.002) == "worse"
    assert call(-0.0021, 0.0019, -0.0015, 0.0015, 0.002) == "equivalent"
    assert call(-0.0021, 0.0019, -0.0015, 0.0020, 0.002) == "inconclusive"
    # Every seed gains the same 3 images out of 400 (no seed spread), but only three
    # images carry it: over seeds that is decisive, over new images it is not.
    a = np.zeros((8, 400), dtype=int)
    b = np.zeros((8, 400), dtype=int)
    a[:, :3] = 1
    r = two_way(a, b, rope=0.001)
    assert r.call_one_way == "better"
    assert r.image_share == pytest.approx(1.0)
    assert r.call_two_way == "inconclusive" and r.disagree


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="0 or 1"):
        two_way(np.full((3, 4), 0.5), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="share"):
        two_way(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="at least 2 seeds"):
        two_way(np.zeros((1, 4)), np.zeros((1, 4)))


# Image types: (share, error of A, error of B). True Delta = sum share (eB - eA) =
# 0.08 x 0.15 - 0.02 x 0.6 = 0 exactly; seeds scale each arm's errors by 1 + 0.3 z,
# z ~ U(-1, 1) (mean 1, so Delta stays 0). Image effects dominate: 0.009 / I per cell.
TYPES = np.array([[0.90, 0.001, 0.001], [0.08, 0.05, 0.20], [0.02, 0.70, 0.10]])


def simulate(rng: np.random.Generator, seeds: int, images: int
             ) -> tuple[np.ndarray, np.ndarray]:
    kind = rng.choice(3, size=images, p=TYPES[:, 0])  # (I,)
    scale = 1 + 0.3 * rng.uniform(-1, 1, (2, seeds, 1))  # (2, S, 1)
    a = rng.random((seeds, images)) >= TYPES[kind, 1] * scale[0]
    b = rng.random((seeds, images)) >= TYPES[kind, 2] * scale[1]
    return a, b


def test_two_way_covers_new_images_where_the_one_way_does_not() -> None:
    # 400 simulated studies: 3 SE of a proportion at 0.95 is 0.033, so a correct
    # interval fails this about once in 700 runs. The one-way interval over seeds at 20
    # seeds covers ~0.67 of the time (images carry ~80% of Var(mean)), below the bound
    # 0.8 by ~5 SE: the test fails if two_way ignored the images.
    rng = np.random.default_rng(18)
    sims = 400
    for seeds in (6, 20):
        two = one = 0
        for _ in range(sims):
            r = two_way(*simulate(rng, seeds, 1000))
            two += r.low <= 0.0 <= r.high
            one += r.one_way_low <= 0.0 <= r.one_way_high
        assert two / sims >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / sims), (seeds, two / sims)
        if seeds == 20:
            assert one / sims < 0.8, one / sims
