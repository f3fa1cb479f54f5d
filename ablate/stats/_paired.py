"""Paired, per-seed statistics of one contrast: tests, intervals and effect sizes.

Every test takes the per-seed differences of one contrast, `diffs: (n_seeds,)`
(arm minus baseline, paired by seed), and is a pure function of that array; the only
randomness comes from an explicit `numpy.random.Generator` argument.

The primary test is the two-sided paired sign-flip permutation test of the mean
difference. Under the null hypothesis of no effect, each seed's difference is
symmetric about zero, so flipping its sign is as likely as not; the p value is the
share of the 2^n sign patterns whose |sum| is at least the observed |sum|. It is exact
(enumerated) for n <= 13 and Monte Carlo beyond, with p = (1 + count) / (1 + R) so that
it is never zero and stays valid. Zero differences are kept: they flip to themselves,
so they contribute nothing to either sum and leave the p value unchanged.

`complete_pairs` aligns per-arm results on the seeds every arm completed and lists
the failed or diverged seeds, so nothing is dropped silently.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.stats as st

EXACT_MAX_N = 13  # 2^13 = 8192 patterns: still a cheap matrix product
DEFAULT_RESAMPLES = 100_000  # Monte Carlo sign patterns; SE of p = 0.05 is ~0.0007
DEFAULT_BOOTSTRAP = 9_999  # SciPy's default number of bootstrap resamples
# Relative tolerance for "|T*| >= |T_obs|": the same sum taken in another order differs
# by at most ~n * eps * sum|d|; 1e-12 covers that for any realistic n without turning
# genuinely different sums into ties.
_TIE_RTOL = 1e-12
_MC_CHUNK = 8_192  # sign patterns drawn per block, bounds memory at (chunk, n)


def as_diffs(diffs: object) -> np.ndarray:
    """Validate and return `diffs` as a float64 array of shape (n_seeds,), n_seeds >= 1."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"diffs must be a non-empty 1-D array (n_seeds,), got shape {d.shape}")
    if not np.all(np.isfinite(d)):
        raise ValueError(
            "diffs contain NaN or inf; drop failed seeds first with ablate.stats.complete_pairs"
        )
    return d


def sign_patterns(n: int) -> np.ndarray:
    """All 2^n sign patterns, shape (2^n, n), entries +-1.0; row 0 is all +1."""
    bits = (np.arange(2**n, dtype=np.int64)[:, None] >> np.arange(n)) & 1  # (2^n, n)
    return 1.0 - 2.0 * bits


def sign_flip_p_exact(diffs: np.ndarray) -> np.ndarray:
    """Exact two-sided sign-flip p values, vectorised over leading axes.

    diffs: (..., n) -> p: (...). p = #{patterns s : |s . d| >= |sum d|} / 2^n. The
    identity pattern is counted, so p >= 1/2^n (and >= 2/2^n unless all d are zero).
    Cost is O(2^n * n) per row; intended for n <= EXACT_MAX_N but correct for any n.
    """
    d = np.asarray(diffs, dtype=np.float64)
    n = d.shape[-1]
    signs = sign_patterns(n)  # (2^n, n)
    null = np.abs(d @ signs.T)  # (..., 2^n)
    observed = np.abs(d.sum(axis=-1))[..., None]  # (..., 1)
    tol = _TIE_RTOL * np.abs(d).sum(axis=-1)[..., None]
    count = np.count_nonzero(null >= observed - tol, axis=-1)
    return count / 2.0**n


def sign_flip_p_mc(diffs: np.ndarray, n_resamples: int, rng: np.random.Generator) -> float:
    """Monte Carlo two-sided sign-flip p value, p = (1 + count) / (1 + R).

    diffs: (n,). Draws R = n_resamples random sign patterns from `rng` in blocks.
    """
    d = as_diffs(diffs)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    observed = abs(d.sum())
    tol = _TIE_RTOL * np.abs(d).sum()
    count = 0
    done = 0
    while done < n_resamples:
        b = min(_MC_CHUNK, n_resamples - done)
        signs = 2.0 * rng.integers(0, 2, size=(b, d.size), dtype=np.int8) - 1.0  # (b, n)
        count += int(np.count_nonzero(np.abs(signs @ d) >= observed - tol))
        done += b
    return (1 + count) / (1 + n_resamples)


@dataclass(frozen=True)
class SignFlip:
    """Result of the sign-flip test: p value, whether exact, and how many patterns."""

    p_value: float
    exact: bool
    n_patterns: int  # 2^n when exact, else the number of Monte Carlo resamples

    @property
    def label(self) -> str:
        """Human description for the report, e.g. 'sign-flip (exact, 1024 patterns)'."""
        if self.exact:
            return f"sign-flip (exact, {self.n_patterns} patterns)"
        return f"sign-flip (Monte Carlo, {self.n_patterns} resamples)"


def sign_flip_test(
    diffs: np.ndarray,
    *,
    rng: np.random.Generator | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    exact_max_n: int = EXACT_MAX_N,
) -> SignFlip:
    """Two-sided paired sign-flip permutation test of mean(diffs) = 0.

    diffs: (n_seeds,). Exact enumeration when n_seeds <= exact_max_n (rng unused);
    otherwise Monte Carlo with `n_resamples` patterns drawn from `rng` (required then).
    """
    d = as_diffs(diffs)
    if d.size <= exact_max_n:
        return SignFlip(float(sign_flip_p_exact(d)), exact=True, n_patterns=2**d.size)
    if rng is None:
        raise ValueError(
            f"n={d.size} > {exact_max_n}: the Monte Carlo sign-flip test needs an explicit "
            "rng=numpy.random.default_rng(seed)"
        )
    return SignFlip(sign_flip_p_mc(d, n_resamples, rng), exact=False, n_patterns=n_resamples)


@dataclass(frozen=True)
class Interval:
    """A confidence interval of the mean difference and how it was obtained."""

    low: float
    high: float
    method: str  # "BCa" | "degenerate (all differences equal)" | "percentile" | "undefined"


def bca_intervals(
    diffs: np.ndarray,
    *,
    rng: np.random.Generator,
    levels: tuple[float, ...] = (0.95, 0.90),
    n_resamples: int = DEFAULT_BOOTSTRAP,
) -> tuple[Interval, ...]:
    """BCa bootstrap confidence intervals of mean(diffs), one per confidence level.

    diffs: (n_seeds,). One bootstrap distribution (`scipy.stats.bootstrap` with
    `rng`) serves all levels, so the first level equals a direct SciPy call with the
    same seed and the other levels reuse its resamples (and nest inside it).

    Degenerate cases, documented rather than hidden:
    - all differences equal (BCa's bias and acceleration are 0/0): the point value is
      returned as both ends, method "degenerate (all differences equal)";
    - n < 2 (no bootstrap possible): (nan, nan), method "undefined";
    - BCa still undefined (nan) or SciPy warns the data are degenerate: the percentile
      interval of the same resamples, method "percentile".
    """
    d = as_diffs(diffs)
    if d.size < 2:
        return tuple(Interval(np.nan, np.nan, "undefined (n < 2)") for _ in levels)
    if np.ptp(d) == 0.0:
        point = float(d[0])
        return tuple(Interval(point, point, "degenerate (all differences equal)") for _ in levels)
    out: list[Interval] = []
    first = None
    for level in levels:
        with warnings.catch_warnings(record=True) as caught:
            # Only the warnings that mean "BCa is undefined here" are caught; any other
            # warning still follows the caller's filters.
            warnings.simplefilter("always", st.DegenerateDataWarning)
            warnings.simplefilter("always", RuntimeWarning)
            if first is None:
                first = st.bootstrap(
                    (d,), np.mean, confidence_level=level, n_resamples=n_resamples,
                    method="BCa", rng=rng,
                )
                res = first
            else:
                res = st.bootstrap(
                    (d,), np.mean, confidence_level=level, n_resamples=0,
                    method="BCa", bootstrap_result=first,
                )
        low, high = (float(x) for x in res.confidence_interval)
        degenerate = any(
            issubclass(w.category, (st.DegenerateDataWarning, RuntimeWarning)) for w in caught
        )
        if degenerate or not (np.isfinite(low) and np.isfinite(high)):
            # BCa's jackknife or bias term is undefined for these data: fall back to the
            # percentile interval of the same resamples and say so.
            low, high = (float(q) for q in np.quantile(
                first.bootstrap_distribution, [(1 - level) / 2, (1 + level) / 2]
            ))
            out.append(Interval(low, high, "percentile"))
        else:
            out.append(Interval(low, high, "BCa"))
    return tuple(out)


def wilcoxon_p(diffs: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p value (`scipy.stats.wilcoxon`, its defaults).

    diffs: (n_seeds,). Zero differences are dropped (zero_method="wilcox"). When every
    difference is zero SciPy returns nan with a warning; here p = 1.0 (no evidence).
    """
    d = as_diffs(diffs)
    if not np.any(d):
        return 1.0
    return float(st.wilcoxon(d).pvalue)


def t_p(diffs: np.ndarray) -> float:
    """Two-sided paired t-test p value (`scipy.stats.ttest_1samp(diffs, 0)`).

    diffs: (n_seeds,). nan for n < 2. When all differences are equal the t statistic
    is 0/0 or +-inf: p = 1.0 if they are all zero, else 0.0 (SciPy would warn and
    return nan).
    """
    d = as_diffs(diffs)
    if d.size < 2:
        return float("nan")
    if np.ptp(d) == 0.0:
        return 1.0 if d[0] == 0.0 else 0.0
    with warnings.catch_warnings():
        # Nearly identical values: SciPy warns of precision loss in the variance; the
        # p value is still the best available, and it is tiny, as it should be.
        warnings.filterwarnings("ignore", message="Precision loss", category=RuntimeWarning)
        return float(st.ttest_1samp(d, 0.0).pvalue)


def d_z(diffs: np.ndarray) -> float:
    """Standardized paired effect size d_z = mean(diffs) / sd(diffs, ddof=1).

    diffs: (n_seeds,). nan for n < 2. If sd = 0: +inf or -inf with the sign of the
    mean, or nan when the mean is 0 too (no effect and no spread).
    """
    d = as_diffs(diffs)
    if d.size < 2:
        return float("nan")
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        return float("nan") if mean == 0.0 else float(np.copysign(np.inf, mean))
    return mean / sd


@dataclass(frozen=True)
class Wins:
    """Seeds on which the arm beat the baseline, with a Clopper-Pearson interval."""

    wins: int  # seeds where the arm is strictly better than the baseline
    ties: int  # seeds with a difference of exactly zero
    n: int  # all paired seeds (ties count as non-wins)
    ci: tuple[float, float]  # exact Clopper-Pearson interval of the win proportion


def wins(diffs: np.ndarray, *, higher_is_better: bool = True, confidence: float = 0.95) -> Wins:
    """Count wins k out of n and the Clopper-Pearson interval of k/n.

    diffs: (n_seeds,). A win is a strictly positive difference when higher is better
    and a strictly negative one when lower is better (a loss, say), so `wins` always
    means "the arm did better on this seed". Ties are counted separately and stay in n.
    """
    d = as_diffs(diffs)
    k = int(np.count_nonzero(d > 0 if higher_is_better else d < 0))
    ci = st.binomtest(k, d.size).proportion_ci(confidence_level=confidence, method="exact")
    return Wins(k, int(np.count_nonzero(d == 0)), int(d.size), (float(ci.low), float(ci.high)))


@dataclass(frozen=True)
class Paired:
    """Scores aligned on the seeds every arm completed, and what was left out."""

    seeds: tuple[int, ...]  # kept seeds, ascending
    scores: Mapping[str, np.ndarray]  # arm -> (n_seeds,), aligned with `seeds`
    failed: Mapping[str, tuple[int, ...]]  # arm -> its seeds missing, None, NaN or inf
    dropped: tuple[int, ...]  # seeds left out of every contrast (failed in some arm)


def complete_pairs(values: Mapping[str, Mapping[int, float | None]]) -> Paired:
    """Keep the seeds that completed in every arm; list the rest, never drop silently.

    values: arm -> {seed: metric value, or None / NaN for a failed or diverged run}.
    A seed absent from an arm's dict counts as failed for that arm.
    """
    all_seeds = sorted({s for per_arm in values.values() for s in per_arm})

    def ok(v: float | None) -> bool:
        return v is not None and math.isfinite(v)

    failed = {
        arm: tuple(s for s in all_seeds if not ok(per_arm.get(s)))
        for arm, per_arm in values.items()
    }
    dropped = tuple(sorted({s for seeds in failed.values() for s in seeds}))
    kept = tuple(s for s in all_seeds if s not in set(dropped))
    scores = {
        arm: np.array([float(per_arm[s]) for s in kept], dtype=np.float64)  # type: ignore[arg-type]
        for arm, per_arm in values.items()
    }
    return Paired(seeds=kept, scores=scores, failed=failed, dropped=dropped)
