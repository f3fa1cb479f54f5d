"""Reach to new images: the paired difference of two arms on new seeds AND new images.

The verdict's interval (`_signflip`, over seeds) speaks of the validation images the
study scored: a second study on other images like them would see a different
difference, by image sampling alone, however many seeds it trained. This module gives
the interval for the difference on new images from the same distribution and new seeds,
from the paired per-image correctness of the two arms.

Data: `a, b: (S, I)` 0/1, seed s of each arm on validation image i (the same images
and seeds on both sides), and the paired differences d[s, i] = a[s, i] - b[s, i].
Estimand: Delta = E[d] over a new seed and a new image. Estimate: the grand mean
d.. (the mean of the seeds' accuracy differences).

Two-way random effects (seeds x images, crossed, one observation per cell). With
seeds and images drawn independently, whatever the law of d given them, the Hoeffding
(ANOVA) decomposition d = Delta + alpha_s + beta_i + e_si (seed effect, image effect,
their interaction with the per-run noise) gives exactly

    Var(d..) = var_seed / S + var_image / I + var_resid / (S I),

and the usual mean squares have E[MS_seed] = var_resid + I var_seed,
E[MS_image] = var_resid + S var_image, E[MS_resid] = var_resid. The method-of-moments
components (each truncated at 0, which can only widen the interval) give the variance
estimate V = (c_s MS_seed + c_i MS_image + c_e MS_resid) / (S I), a linear combination
of independent-ish mean squares, so the interval is d.. +- t(nu) sqrt(V) with
Satterthwaite's degrees of freedom nu = (sum c_k MS_k)^2 / sum (c_k MS_k)^2 / df_k.
When seeds dominate, nu is near S - 1 (a t interval over seeds); when images dominate,
nu is large (a normal interval). Its coverage is simulated in
`benchmarks/stats_calibration.py` (a generative model with seed effects, image effects
differing between arms and Bernoulli outcomes, at 6, 10 and 20 seeds) and checked at
small size in `tests/stats/test_twoway.py`.

The one-way interval beside it is the verdict's own: the exact sign-flip inversion over
the S per-seed differences (grid 1/I), which holds these images fixed. Each interval is
turned into a call against the ROPE r (A - B; correctness is higher-is-better):
"better" when the 95% interval lies above +r, "worse" below -r, "equivalent" when the
90% interval lies inside (-r, +r), else "inconclusive" (per contrast, no multiplicity:
the verdict's Holm levels are the analysis's business). `disagree` says the two calls
differ, or that one interval excludes 0 and the other does not.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.stats as st

from ablate.files import jsonable
from ablate.stats._signflip import sign_flip
from ablate.stats._streams import stream

__all__ = ["TwoWay", "call", "mean_squares", "two_way"]


@dataclass(frozen=True)
class TwoWay:
    """The difference A - B on new seeds and new images, next to the one on these images.

    Units: shares of images (accuracy units, 0.01 = one point). Variance components are
    per cell (one seed, one image); `*_share` are their parts of Var(mean_diff).
    """

    seeds: int  # S
    images: int  # I
    mean_diff: float  # mean of d[s, i] = a - b over seeds and images
    se: float  # sqrt(V): standard error for new seeds and new images
    df: float  # Satterthwaite degrees of freedom of V (inf when V = 0)
    low: float  # 95% two-way interval (new seeds, new images)
    high: float
    low90: float  # 90% two-way interval (TOST at 5%)
    high90: float
    var_seed: float  # variance of the seed effects, truncated at 0
    var_image: float  # variance of the image effects, truncated at 0
    var_resid: float  # interaction + per-run noise (MS_resid)
    seed_share: float  # (var_seed / S) / V; nan when V = 0
    image_share: float  # (var_image / I) / V: the part more seeds never shrink
    resid_share: float  # (var_resid / (S I)) / V
    one_way_low: float  # 95% exact sign-flip interval over seeds, these images
    one_way_high: float
    one_way_low90: float
    one_way_high90: float
    one_way_method: str
    rope: float
    call_two_way: str  # better | worse | equivalent | inconclusive
    call_one_way: str
    disagree: bool  # calls differ, or exactly one interval excludes 0
    method: str

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON values (nan and +-inf as None)."""
        return {k: jsonable(v) for k, v in dataclasses.asdict(self).items()}


def mean_squares(d: np.ndarray) -> tuple[float, float, float]:
    """(MS_seed, MS_image, MS_resid) of `d: (S, I)`, one observation per cell, with
    S - 1, I - 1 and (S - 1)(I - 1) degrees of freedom."""
    s, i = d.shape
    grand = d.mean()
    by_seed = d.mean(axis=1)  # (S,)
    by_image = d.mean(axis=0)  # (I,)
    ss_seed = i * float(((by_seed - grand) ** 2).sum())
    ss_image = s * float(((by_image - grand) ** 2).sum())
    resid = d - by_seed[:, None] - by_image[None, :] + grand  # (S, I)
    ss_resid = float((resid**2).sum())
    return ss_seed / (s - 1), ss_image / (i - 1), ss_resid / ((s - 1) * (i - 1))


def call(low: float, high: float, low90: float, high90: float, rope: float) -> str:
    """The decision words an interval supports against the ROPE r (higher is better)."""
    if low > rope:
        return "better"
    if high < -rope:
        return "worse"
    if -rope < low90 and high90 < rope:
        return "equivalent"
    return "inconclusive"


def _correctness(x: object, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (seeds, images) of 0/1, got shape "
                         f"{arr.shape}")
    out = arr.astype(np.float64)
    if not np.all((out == 0.0) | (out == 1.0)):
        raise ValueError(f"{name} must hold per-image correctness, 0 or 1 only")
    return out


def two_way(a: object, b: object, *, rope: float = 0.0) -> TwoWay:
    """The two-way (seeds x images) interval of mean(a - b), and the one-way one.

    a, b: (S, I) 0/1 correctness of arm A and arm B, row s the same seed on both sides,
    column i the same image; S >= 2, I >= 2. rope: the ROPE half-width r >= 0 in
    accuracy units (0.002 = 0.2 points).
    """
    x, y = _correctness(a, "a"), _correctness(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must share (seeds, images), got {x.shape} and {y.shape}")
    s, i = x.shape
    if s < 2 or i < 2:
        raise ValueError(f"need at least 2 seeds and 2 images, got {s} x {i}")
    if not rope >= 0:
        raise ValueError(f"rope must be >= 0 (accuracy units), got {rope}")
    d = x - y  # (S, I) in {-1, 0, 1}
    mean = float(d.mean())
    ms_seed, ms_image, ms_resid = mean_squares(d)
    # Truncation: a component whose mean square is below MS_resid is estimated as 0.
    c_seed = 1.0 if ms_seed > ms_resid else 0.0
    c_image = 1.0 if ms_image > ms_resid else 0.0
    terms = np.array([c_seed * ms_seed, c_image * ms_image,
                      (1.0 - c_seed - c_image) * ms_resid])  # (3,) sum = V S I
    dfs = np.array([s - 1, i - 1, (s - 1) * (i - 1)], dtype=np.float64)
    total = float(terms.sum())
    var_seed = c_seed * (ms_seed - ms_resid) / i
    var_image = c_image * (ms_image - ms_resid) / s
    v = max(total, 0.0) / (s * i)
    se = math.sqrt(v)
    if v > 0:
        df = total**2 / float((terms**2 / dfs).sum())
        parts = np.array([var_seed / s, var_image / i, ms_resid / (s * i)]) / v
    else:
        df, parts = math.inf, np.full(3, math.nan)
    t95 = float(st.t.ppf(0.975, df)) if math.isfinite(df) else float(st.norm.ppf(0.975))
    t90 = float(st.t.ppf(0.95, df)) if math.isfinite(df) else float(st.norm.ppf(0.95))
    low, high = mean - t95 * se, mean + t95 * se
    low90, high90 = mean - t90 * se, mean + t90 * se
    # (S,) on the grid 1/I; rng only for > 20 seeds whose count table would be too wide
    dist = sign_flip(d.mean(axis=1), resolution=1.0 / i, rng=stream("two_way", "one-way"))
    o_low, o_high = dist.interval(0.95)
    o_low90, o_high90 = dist.interval(0.90)
    two = call(low, high, low90, high90, rope)
    one = call(o_low, o_high, o_low90, o_high90, rope)
    excludes_two = low > 0 or high < 0
    excludes_one = o_low > 0 or o_high < 0
    return TwoWay(
        seeds=s, images=i, mean_diff=mean, se=se, df=df, low=low, high=high, low90=low90,
        high90=high90, var_seed=var_seed, var_image=var_image, var_resid=ms_resid,
        seed_share=float(parts[0]), image_share=float(parts[1]),
        resid_share=float(parts[2]), one_way_low=o_low, one_way_high=o_high,
        one_way_low90=o_low90, one_way_high90=o_high90, one_way_method=dist.method,
        rope=float(rope), call_two_way=two, call_one_way=one,
        disagree=two != one or excludes_two != excludes_one,
        method="two-way random effects (seeds x images), method of moments, "
               "Satterthwaite t",
    )
