"""How many seeds a study needs, and what it can detect with the seeds it has.

The power of the primary (sign-flip) test is approximated by that of the two-sided
paired t-test, computed exactly from the noncentral t distribution: for n seeds, true
mean difference delta and sd sigma of the differences, the statistic is noncentral t
with n - 1 degrees of freedom and noncentrality delta * sqrt(n) / sigma. The level is
alpha / m, Holm's strictest threshold for m contrasts, so the answer is conservative.

On top of the t power, the sign-flip test cannot reject at all unless its smallest
possible p, 2 / 2^n, is below alpha / m; `seeds_needed` never returns fewer seeds.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.optimize as opt
import scipy.stats as st

TARGET_POWER = 0.8
MAX_SEEDS = 1_000_000  # beyond this, "seeds needed" is reported as None (unreachable)


def t_power(n: int, effect: float, level: float) -> float:
    """Power of the two-sided one-sample t-test with n observations at `level`.

    effect: the standardized true mean, delta / sigma. Both tails are counted.
    """
    if n < 2:
        raise ValueError(f"a t-test needs n >= 2, got {n}")
    df = n - 1
    crit = st.t.isf(level / 2.0, df)
    nc = effect * math.sqrt(n)
    # P(T < -crit) is computed as P(T' > crit) with T' of noncentrality -nc: the same
    # number by symmetry, but SciPy's nct.cdf returns nan deep in the lower tail
    # (e.g. df=4, nc=8.9) where nct.sf stays finite.
    return float(st.nct.sf(crit, df, nc) + st.nct.sf(crit, df, -nc))


def min_seeds_for_sign_flip(alpha: float = 0.05, m: int = 1) -> int:
    """Smallest n whose smallest two-sided sign-flip p, 2 / 2^n, is below alpha / m.

    Equivalently the smallest n >= log2(2 m / alpha) (strictly above it). 6 at alpha
    0.05 with one contrast.
    """
    n = 1
    while m * 2.0 ** (1 - n) >= alpha:
        n += 1
    return n


def seeds_needed(
    sd: float,
    delta: float,
    *,
    alpha: float = 0.05,
    m: int = 1,
    power: float = TARGET_POWER,
) -> int | None:
    """Smallest n with power >= `power` to detect a true mean difference `delta`.

    sd: the (observed) sd of the per-seed differences; delta: usually the ROPE edge.
    Test: two-sided paired t at level alpha / m, floored at `min_seeds_for_sign_flip`.
    None when there is nothing to detect (delta <= 0), sd is unknown (nan), or more
    than MAX_SEEDS would be needed. sd = 0 returns the sign-flip floor.
    """
    floor = min_seeds_for_sign_flip(alpha, m)
    if not (delta > 0) or not np.isfinite(sd) or sd < 0:
        return None
    if sd == 0.0:
        return floor
    effect = delta / sd
    level = alpha / m

    def ok(n: int) -> bool:
        return t_power(n, effect, level) >= power

    # Power grows with n: double until it suffices, then bisect on (lo fails, hi passes].
    lo, hi = 1, 2
    while not ok(hi):
        lo, hi = hi, hi * 2
        if hi > MAX_SEEDS:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return max(hi, floor)


def mde(
    sd: float,
    n: int,
    *,
    alpha: float = 0.05,
    m: int = 1,
    power: float = TARGET_POWER,
) -> float:
    """Minimum detectable effect: the true mean difference found with `power` by n seeds.

    Same test as `seeds_needed` (paired t at alpha / m), solved for delta, in metric
    units. nan when n < 2 or sd is nan; 0.0 when sd = 0. It does not apply the
    sign-flip floor: below that floor the decision is withheld and says why.
    """
    if n < 2 or not np.isfinite(sd):
        return float("nan")
    if sd == 0.0:
        return 0.0
    level = alpha / m

    def gap(effect: float) -> float:
        return t_power(n, effect, level) - power

    hi = 1.0
    while gap(hi) < 0:
        hi *= 2.0
    effect = opt.brentq(gap, 0.0, hi, xtol=1e-12, rtol=1e-12)
    return float(effect * sd)
