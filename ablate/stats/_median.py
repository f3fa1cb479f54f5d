"""The median estimand: the sign test and its inversion, exact for any shape of seed noise.

Data: one contrast's joint outcome per paired seed, `u: (n,)` in improvement units
(arm - baseline; baseline - arm for a loss): -inf where only the arm diverged, +inf
where only the baseline did, 0 where both did (equal outcomes). The estimand is the
median of u: the improvement of a typical seed.

Null H(delta0) of "better": P(u > delta0) <= 1/2 (the median is at most delta0). Under
it the count K = #{i : u_i > delta0} is stochastically at most Binomial(n, 1/2) for any
law of u (skewed, heavy-tailed, a mixture with bad seeds, diverged runs), so

    p_greater(delta0) = P(Binomial(n, 1/2) >= K)     (tests H: median <= delta0)
    p_less(delta0)    = P(Binomial(n, 1/2) >= L),  L = #{i : u_i < delta0}

are valid p values with no symmetry assumed; a tie u_i = delta0 counts against the
claim, which keeps them valid on a grid. The mean's sign-flip test (`_signflip`) needs
every difference to be symmetric about delta0; a lopsided arm (a bad seed now and
then, a skewed spread) breaks that, and its false "better" rate then exceeds the level
(the calibration benchmark measures both).

Inverting the two one-sided tests gives order statistics: with c the smallest count
such that P(Binomial(n, 1/2) >= c) <= a, the lower bound at one-sided level a is
u_(n-c+1) (ascending order, 1-based) and the upper bound u_(c); -inf / +inf when no
count is rare enough (2^-n > a: too few seeds). Both tests are monotone in delta0, so
the composite nulls are exact at their edge, as for the sign-flip test.

Across contrasts (`_joint`) a seed's score for "better" is +1 where u > r and -1
otherwise: flipping a seed's signs gives, for one contrast, exactly the binomial law
above, and the step-down over the shared seeds uses their dependence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.stats as st

__all__ = ["ESTIMAND_MEDIAN", "SIGN_METHOD", "SignTest", "joint_median", "joint_outcome",
           "sign_scores", "sign_test"]

ESTIMAND_MEDIAN = "median of the joint outcome (diverged = worst)"
SIGN_METHOD = "exact sign-test inversion (order statistics)"
# Ties with delta0: on a grid u and delta0 are multiples of its step; compared with a
# tolerance far below one step and far above float error.
_TIE_RTOL = 1e-9


def joint_outcome(u: np.ndarray) -> np.ndarray:
    """The improvement scores of `_divergence.improvement_scores` (NaN where both sides
    diverged) with both-diverged seeds as 0: equal outcomes, a tie at no difference."""
    return np.where(np.isnan(u), 0.0, u)


def joint_median(u: np.ndarray) -> float:
    """The sample median of joint outcomes `u: (n,)`, n >= 1: the midpoint of the middle
    two for an even n (infinite where a middle one is; NaN for -inf and +inf)."""
    with np.errstate(invalid="ignore"):
        return float(np.median(u))


def _above(u: np.ndarray, delta0: float) -> np.ndarray:
    """u > delta0, a value within the tie tolerance of delta0 counting as a tie."""
    tol = _TIE_RTOL * max(abs(delta0), 1e-12)
    return np.asarray(u > delta0 + tol)


def _below(u: np.ndarray, delta0: float) -> np.ndarray:
    tol = _TIE_RTOL * max(abs(delta0), 1e-12)
    return np.asarray(u < delta0 - tol)


def _tail(n: int, k: int) -> float:
    """P(Binomial(n, 1/2) >= k), exact."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return float(st.binom.sf(k - 1, n, 0.5))


def _critical(n: int, a: float) -> int | None:
    """Smallest count c with P(Binomial(n, 1/2) >= c) <= a; None when even c = n fails."""
    for c in range(n + 1):
        if _tail(n, c) <= a + 1e-15:
            return c
    return None


@dataclass(frozen=True)
class SignTest:
    """The sign test of one contrast's joint outcome: p values at any shift, intervals.

    Duck-compatible with `SignFlip` where the verdict uses it (p_greater, p_less,
    p_two_sided, floor, interval, exact, method, mc_se).
    """

    u: np.ndarray = field(repr=False)  # (n,) ascending joint outcomes, improvement units
    n: int
    method: str = SIGN_METHOD
    exact: bool = True

    def p_greater(self, delta0: float = 0.0) -> float:
        """p value of H: median <= delta0 against median > delta0."""
        return _tail(self.n, int(np.count_nonzero(_above(self.u, delta0))))

    def p_less(self, delta0: float = 0.0) -> float:
        """p value of H: median >= delta0 against median < delta0."""
        return _tail(self.n, int(np.count_nonzero(_below(self.u, delta0))))

    def p_two_sided(self, delta0: float = 0.0) -> float:
        return min(1.0, 2.0 * min(self.p_greater(delta0), self.p_less(delta0)))

    @property
    def floor(self) -> float:
        """Smallest attainable one-sided p: 1/2^n."""
        return 2.0 ** -self.n

    def mc_se(self, p: float) -> float:
        return 0.0

    def lower_bound(self, a: float) -> float:
        """Smallest delta0 that p_greater does not reject at level a: u_(n-c+1)."""
        c = _critical(self.n, a)
        return -math.inf if c is None or c == 0 else float(self.u[self.n - c])

    def upper_bound(self, a: float) -> float:
        """Largest delta0 that p_less does not reject at level a: u_(c)."""
        c = _critical(self.n, a)
        return math.inf if c is None or c == 0 else float(self.u[c - 1])

    def interval(self, confidence: float) -> tuple[float, float]:
        a = (1.0 - confidence) / 2.0
        return self.lower_bound(a), self.upper_bound(a)


def sign_test(u: object) -> SignTest:
    """The sign test of `u: (n,)` joint outcomes (no NaN; +-inf allowed), n >= 1."""
    x = np.asarray(u, dtype=np.float64)
    if x.ndim != 1 or x.size == 0 or np.isnan(x).any():
        raise ValueError(f"u must be a non-empty 1-D array without NaN, got {x!r}")
    return SignTest(np.sort(x), int(x.size))


def sign_scores(u: np.ndarray, delta0: float, *, upper: bool) -> np.ndarray:
    """(n,) +1 where the seed is evidence for the claim (u > delta0 when upper, else
    u < delta0), -1 otherwise (a tie counts against): what the joint step-down flips."""
    hit = _above(u, delta0) if upper else _below(u, delta0)
    return np.where(hit, 1.0, -1.0)
