"""More than two levels of a factor: Friedman omnibus test and a critical difference.

Seeds are the blocks: within each seed the arms are ranked (rank 1 = best), and the
Friedman test asks whether the average ranks differ more than chance allows. The
critical difference (CD) is the gap in average rank beyond which two arms differ at
level alpha (Demsar 2006), drawn for the design the study has:

- versus a baseline (k - 1 comparisons with one control): Bonferroni-Dunn,
  q = z_{1 - alpha / (2 (k - 1))}; only gaps to the baseline's rank are tested;
- all pairs (k (k - 1) / 2 comparisons): Nemenyi, the studentized range with
  infinite degrees of freedom divided by sqrt(2).

Both use CD = q sqrt(k (k + 1) / (6 n)). Drawing Nemenyi's all-pairs CD for a
versus-baseline design would test comparisons the study never asked and is needlessly
conservative for the ones it did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.stats as st

__all__ = [
    "Friedman",
    "average_ranks",
    "bonferroni_dunn_q",
    "critical_difference",
    "friedman",
    "nemenyi_q",
]


def nemenyi_q(k: int, alpha: float = 0.05) -> float:
    """Nemenyi q_alpha for k arms: studentized_range.ppf(1 - alpha, k, inf) / sqrt(2).

    Published values at alpha 0.05: k=3 2.343, k=4 2.569, k=5 2.728, k=10 3.164.
    """
    if k < 2:
        raise ValueError(f"the Nemenyi q needs k >= 2 arms, got {k}")
    return float(st.studentized_range.ppf(1.0 - alpha, k, np.inf) / np.sqrt(2.0))


def bonferroni_dunn_q(k: int, alpha: float = 0.05) -> float:
    """Bonferroni-Dunn q_alpha for k arms against one control: z_{1 - alpha/(2(k-1))}.

    Published values at alpha 0.05 (Demsar 2006): k=3 2.241, k=4 2.394, k=5 2.498.
    """
    if k < 2:
        raise ValueError(f"the Bonferroni-Dunn q needs k >= 2 arms, got {k}")
    return float(st.norm.isf(alpha / (2 * (k - 1))))


def critical_difference(q: float, k: int, n: int) -> float:
    """Critical difference of average ranks: q * sqrt(k (k + 1) / (6 n))."""
    if n < 1:
        raise ValueError(f"the critical difference needs n >= 1 seeds, got {n}")
    return q * float(np.sqrt(k * (k + 1) / (6.0 * n)))


def average_ranks(scores: np.ndarray, *, higher_is_better: bool = True) -> np.ndarray:
    """Average rank of each arm over seeds, rank 1 = best, ties share the mean rank.

    scores: (n_seeds, n_arms) -> (n_arms,).
    """
    s = np.asarray(scores, dtype=np.float64)
    ranks = st.rankdata(-s if higher_is_better else s, axis=1)  # (n_seeds, n_arms)
    return np.asarray(ranks.mean(axis=0), dtype=np.float64)


@dataclass(frozen=True)
class Friedman:
    """Friedman omnibus test with seeds as blocks, plus the CD for the diagram."""

    arms: tuple[str, ...]
    n: int  # seeds (blocks)
    statistic: float  # tie-corrected chi-square, as scipy.stats.friedmanchisquare
    p_value: float
    avg_ranks: tuple[float, ...]  # per arm, in `arms` order; rank 1 = best
    q_alpha: float
    cd: float  # critical difference of average ranks (method below)
    alpha: float
    method: str = "Nemenyi"  # "Bonferroni-Dunn" (versus `baseline`) or "Nemenyi" (all pairs)
    baseline: str | None = None  # the control of a versus-baseline design


def friedman(
    scores: np.ndarray,
    arms: Sequence[str],
    *,
    higher_is_better: bool = True,
    alpha: float = 0.05,
    baseline: str | None = None,
) -> Friedman:
    """Friedman test of scores: (n_seeds, n_arms), n_arms >= 3, seeds as blocks.

    baseline: the control arm of a versus-baseline design (Bonferroni-Dunn CD); None
    for an all-pairs design (Nemenyi CD).

    When every seed ties all arms, SciPy's tie correction divides 0 by 0 (nan and a
    warning); here the statistic is 0 and p = 1: the ranks carry no evidence at all.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != len(arms):
        raise ValueError(f"scores must be (n_seeds, n_arms={len(arms)}), got shape {s.shape}")
    n, k = s.shape
    if k < 3 or n < 2:
        raise ValueError(f"the Friedman test needs >= 3 arms and >= 2 seeds, got {k} and {n}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or inf: keep the seeds where every arm has an "
                         "outcome, and give a diverged run a value worse than every finished one")
    if np.all(np.ptp(s, axis=1) == 0.0):
        stat, p = 0.0, 1.0
    else:
        res = st.friedmanchisquare(*s.T)
        stat, p = float(res.statistic), float(res.pvalue)
    if baseline is not None and baseline not in arms:
        raise ValueError(f"baseline {baseline!r} is not one of the arms {list(arms)}")
    ranks = average_ranks(s, higher_is_better=higher_is_better)
    q = nemenyi_q(k, alpha) if baseline is None else bonferroni_dunn_q(k, alpha)
    return Friedman(
        arms=tuple(arms), n=n, statistic=stat, p_value=p,
        avg_ranks=tuple(float(r) for r in ranks),
        q_alpha=q, cd=critical_difference(q, k, n), alpha=alpha,
        method="Nemenyi" if baseline is None else "Bonferroni-Dunn", baseline=baseline,
    )
