"""Seeds until the answer is settled: an exact group-sequential sign-flip design.

A sequential study runs `min_seeds` seeds per arm, then adds `step` seeds per arm per
round up to `max_seeds`, and looks after every round (looks n_1 = min, min + step, ...,
max). It stops when every contrast's verdict is settled. Looking after every round
must not inflate any error rate, so each one-sided test is a group-sequential test
with alpha spending, computed exactly and conditionally on the observed magnitudes:

- Under H(delta0) the signs of y_i = d_i - delta0 are fair coins given |y_i|, whatever
  the magnitudes of the seeds still to come. So, given the magnitudes seen by look k,
  the partial sums S_j = sum_{i <= n_j} s_i |y_i| (j <= k) form a random walk with a
  known law, counted exactly by dynamic programming over the integer grid.
- The test at level a spends a * (n_k / max_seeds)^rho by look k (rho = 1: linear
  spending, between Pocock's and O'Brien-Fleming's). At look k its boundary b_k is the
  smallest value with P(no earlier crossing, S_k >= b_k | magnitudes) <= the level
  spent by look k minus what earlier looks actually spent. A look where the floor
  (1/2^n) makes any rejection impossible spends nothing, and the unspent level carries
  forward. Summed over the looks, P(crossing | magnitudes) <= a: exact at every look,
  whenever the study stops (stopping early only removes chances to cross).
- A seed without a metric difference (missing, or a diverged side) enters as y = 0:
  a fair coin with no weight, which changes no probability.

Composite nulls. "better" rejects H: Delta <= r, not just Delta = r, and a sequential
boundary need not be monotone in delta0 (the discrete spending differs between shifts).
So a claim at the edge r is made only when the test rejects *every* half-grid shift
delta0 <= r (a true Delta symmetric for grid data lies on the half-grid); below the
smallest difference every shift behaves alike, so the sweep is finite. Then
P(false claim) <= P(the test at the true Delta rejects) <= a. The repeated confidence
interval of a look is likewise the hull of the shifts not rejected by then.

Claims and family: as in `_verdict` (better / worse at alpha/2, equivalent by two
one-sided tests at alpha, each claim type family-wise), with Holm's method made
sequential by recycling: a contrast's claim is tested at alpha_c / (number of its
claim type's hypotheses not yet rejected); when one is rejected its level passes to
the rest, which may then reject at any look so far (Maurer & Bretz 2013). Divergence is
an outcome: from the first look at which a contrast has a diverged side, that
contrast is decided on its joint outcome (diverged = worst) by the exact signed-rank
test, at each look spending only that look's share of the claim's level (see
`_claim_looks`), so looking again never re-tests divergence at the full level. A
contrast is settled by its first claim; at `max_seeds` every contrast is settled,
"inconclusive" if no claim was made. A contrast near the ROPE edge therefore keeps
the study going up to max_seeds.

The median (the default estimand, `_median`): each seed steps the walk by +1 where its
joint outcome (diverged = worst) lies beyond the claim's edge and -1 otherwise (a tie
counts against; a seed with no outcome steps 0). Under H: median <= r the steps are
+1 with probability at most 1/2 whatever the law of the outcomes, and a walk of fair
+-1 steps crosses the same boundaries at least as often, so every look's test is
exact without symmetry, divergence included (no separate rank test, no carried
level). The count at r is monotone in the shift, so the composite null needs no sweep.
Its repeated interval is the hull of the shifts not rejected, found at the outcomes.

Losses have no grid: their differences are rounded to 1/100 of the ROPE (moving none
by more than 0.5% of the ROPE), and exactness holds for the rounded differences.

Everything is a pure function of the stored per-seed data, so a resumed study
recomputes the same looks, boundaries and verdicts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ablate.files import jsonable
from ablate.stats._divergence import improvement_scores, rank_p
from ablate.stats._grid import to_grid
from ablate.stats._median import joint_median, joint_outcome, sign_scores
from ablate.stats._outcomes import ContrastData
from ablate.stats._power import min_seeds_for_sign_flip
from ablate.stats._verdict import CLAIMS, label, levels

__all__ = [
    "FIRST_LOOK",
    "LAST_LOOK",
    "Look",
    "SequentialDesign",
    "SequentialResult",
    "SequentialVerdict",
    "Crossing",
    "claim_look",
    "crossing",
    "first_crossing",
    "sequential_verdicts",
]

# Seeds at a sequential study's first look by default: the fewest at which an exact
# paired test can call anything better or worse (1/2^n <= alpha / 2 at alpha 0.05).
FIRST_LOOK = min_seeds_for_sign_flip()
LAST_LOOK = 30  # seeds: a sequential study's default maximum
_MAX_SEEDS_LIMIT = 62  # exact int64 counts of 2^n patterns
_LOSS_GRID_PER_ROPE = 100


@dataclass(frozen=True)
class SequentialDesign:
    """Looks at min, min + step, ..., max seeds per arm; spending alpha * t^rho."""

    min_seeds: int = FIRST_LOOK
    max_seeds: int = LAST_LOOK
    step: int = 2  # seeds added per arm per round
    alpha: float = 0.05
    rope: float = 0.002  # metric units, as the study's rope
    rho: float = 1.0  # spending exponent: 1 is linear in the seeds
    estimand: str = "median"  # "median" (sign test) or "mean" (sign-flip test)

    def __post_init__(self) -> None:
        if not 1 <= self.min_seeds <= self.max_seeds <= _MAX_SEEDS_LIMIT:
            raise ValueError(f"need 1 <= min_seeds <= max_seeds <= {_MAX_SEEDS_LIMIT}, got "
                             f"{self.min_seeds}, {self.max_seeds}")
        if self.step < 1:
            raise ValueError(f"step must be >= 1 seed per round, got {self.step}")
        if not (0 < self.alpha < 1 and self.rope >= 0 and self.rho > 0):
            raise ValueError("need 0 < alpha < 1, rope >= 0 and rho > 0")
        if self.estimand not in ("median", "mean"):
            raise ValueError(f"estimand must be 'median' or 'mean', got {self.estimand!r}")

    @property
    def looks(self) -> tuple[int, ...]:
        """Seeds per arm at each look; the last is always max_seeds."""
        out = list(range(self.min_seeds, self.max_seeds, self.step))
        return (*out, self.max_seeds)

    def spending(self, level: float) -> tuple[float, ...]:
        """Level spent by each look: level * (n_k / max_seeds)^rho, ending at `level`."""
        return tuple(level * (n / self.max_seeds) ** self.rho for n in self.looks)


@dataclass(frozen=True)
class Crossing:
    """Where the observed sums first cross the upper boundary, and the test's size."""

    look: int  # index of the first crossed look; len(looks) when none was
    size: float  # P(crossing at any reached look | magnitudes): exact, <= the level


def first_crossing(y: np.ndarray, looks: Sequence[int], spend: Sequence[float]) -> int:
    """Index of the first look whose upper boundary the observed sums cross.

    y: (n,) integers, the shifted differences in seed order (0 for a seed with none);
    looks: seeds at each look (those beyond n are not reached); spend: cumulative level
    by each look. Returns len(looks) when no reached look is crossed. Exact for n <= 62.
    """
    return crossing(y, looks, spend).look


def crossing(y: np.ndarray, looks: Sequence[int], spend: Sequence[float],
             *, to_the_end: bool = False) -> Crossing:
    """`first_crossing` with the conditional size of the test: the probability, over the
    fair signs given the magnitudes |y|, that the sums cross at some reached look.
    to_the_end=True runs every reached look even after the observed sums crossed, so
    that `size` covers them all (for calibration: its mean over simulated magnitudes is
    the test's exact error rate)."""
    n = y.size
    top = int(np.abs(y).sum())
    counts = np.zeros(2 * top + 1, dtype=np.int64)  # index s + top holds partial sum s
    moved = np.zeros_like(counts)
    counts[top] = 1
    lo = hi = top  # occupied index range of counts
    spent = 0  # exited patterns so far, counted among the 2^i patterns of i seeds
    observed = 0
    i = 0
    first = len(looks)
    for k, n_k in enumerate(looks):
        if n_k > n:
            break
        while i < n_k:
            a = abs(int(y[i]))
            observed += int(y[i])
            if a == 0:
                counts[lo:hi + 1] *= 2
            else:
                # Each pattern moves a up or a down: counts(s) = old(s - a) + old(s + a).
                moved[lo - a:hi + a + 1] = 0
                moved[lo + a:hi + a + 1] += counts[lo:hi + 1]
                moved[lo - a:hi - a + 1] += counts[lo:hi + 1]
                counts, moved = moved, counts
                moved[lo:hi + 1] = 0
                lo, hi = lo - a, hi + a
            spent *= 2  # an exited pattern has two continuations
            i += 1
        budget = math.floor(Fraction(spend[k]) * 2**n_k) - spent
        if budget < 1:
            continue  # nothing can be spent here: the level carries forward
        tail = np.cumsum(counts[hi:lo - 1 if lo > 0 else None:-1])  # from the top down
        fits = int(np.searchsorted(tail, budget, side="right"))  # top values that fit
        if fits == 0:
            continue
        b = hi - fits + 1  # the boundary: smallest sum whose tail fits the budget
        spent += int(tail[fits - 1])
        counts[b:hi + 1] = 0
        hi = b - 1
        if observed + top >= b and first == len(looks):
            first = k
            if not to_the_end:
                break
    return Crossing(first, spent / 2.0**i)


def claim_look(x2: np.ndarray, valid: np.ndarray, edge: int, looks: Sequence[int],
               spend: Sequence[float]) -> int:
    """First look by which the upper test rejects every half-grid shift <= edge.

    x2: (n,) improvements in half-grid units (2 d / h); valid: (n,) bool, False where
    the seed has no difference (it enters as y = 0); edge: the largest null shift, half
    units. Returns len(looks) when not (yet) rejected everywhere.
    """
    present = x2[valid]
    if present.size == 0:
        return len(looks)

    def cross(delta: int) -> int:
        return first_crossing(np.where(valid, x2 - delta, 0), looks, spend)

    worst = cross(edge)
    if worst >= len(looks):
        return worst
    # Every shift below the smallest difference gives all-positive y: one representative.
    for delta in range(edge - 1, int(present.min()) - 2, -1):
        worst = max(worst, cross(delta))
        if worst >= len(looks):
            break
    return worst


@dataclass(frozen=True)
class Look:
    """One look of a contrast's path."""

    n: int  # seeds per arm planned by this look
    n_paired: int  # of them, paired seeds with a metric difference for this contrast
    mean_diff: float  # arm - baseline over those seeds (metric units)
    ci_low: float  # 95% repeated confidence interval of the estimand (metric units)
    ci_high: float
    decision: str  # the verdict as of this look
    median_diff: float = math.nan  # median of the joint outcome over the paired seeds

    def to_dict(self) -> dict[str, Any]:
        return {k: jsonable(getattr(self, k)) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class SequentialVerdict:
    """A contrast's verdict in a sequential study, and how it got there."""

    arm: str
    baseline: str
    kind: str
    decision: str
    settled: bool
    settled_at: int | None  # seeds per arm at the look that settled it
    path: tuple[Look, ...]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        out = {k: jsonable(getattr(self, k)) for k in
               ("arm", "baseline", "kind", "decision", "settled", "settled_at", "reason")}
        out["path"] = [look.to_dict() for look in self.path]
        return out


@dataclass(frozen=True)
class SequentialResult:
    """What the study driver needs after a round: verdicts, whether to stop, and why."""

    design: SequentialDesign
    looks_done: tuple[int, ...]
    verdicts: tuple[SequentialVerdict, ...]
    stop: bool
    why: str
    next_seeds: int | None  # seeds per arm to have after the next round; None: stop

    def to_dict(self) -> dict[str, Any]:
        return {"design": jsonable({k: getattr(self.design, k) for k in
                                    self.design.__dataclass_fields__}),
                "looks": list(self.design.looks), "looks_done": list(self.looks_done),
                "verdicts": [v.to_dict() for v in self.verdicts], "stop": self.stop,
                "why": self.why, "next_seeds": self.next_seeds}


@dataclass(frozen=True)
class _Prepared:
    """One contrast laid out over the planned seed slots (improvement units)."""

    data: ContrastData
    x2: np.ndarray  # (n_slots,) half-grid units; 0 where no difference
    valid: np.ndarray  # (n_slots,) bool
    u: np.ndarray  # (n_slots,) improvements with +-inf for divergence, NaN for none
    h: float  # the grid used
    sign: float  # +1: improvement = arm - baseline; -1 for a loss
    joint: np.ndarray  # (n_slots,) the joint outcome (both diverged: 0), NaN if unpaired

    @property
    def paired(self) -> np.ndarray:
        return np.asarray(~np.isnan(self.joint))

    def walk(self, delta0: float, *, upper: bool) -> np.ndarray:
        """(n_slots,) the median's +-1 steps at delta0 (0 where a seed has no outcome)."""
        return np.where(self.paired, sign_scores(self.joint, delta0, upper=upper),
                        0).astype(np.int64)


def _prepare(data: ContrastData, seeds: Sequence[int], rope: float, higher: bool) -> _Prepared:
    """Lay a contrast over the seed slots of the looks so far (later seeds wait)."""
    sign = 1.0 if higher or data.kind == "interaction" else -1.0
    h = data.resolution if data.resolution is not None else rope / _LOSS_GRID_PER_ROPE
    if not h > 0:
        raise ValueError(f"{data.name}: a sequential design needs a grid; a metric without "
                         "one needs rope > 0 (its differences are rounded to rope/100)")
    slot = {s: i for i, s in enumerate(seeds)}
    n = len(seeds)
    x2 = np.zeros(n, dtype=np.int64)
    valid = np.zeros(n, dtype=bool)
    u = np.full(n, np.nan)
    now = np.array([s in slot for s in data.seeds], dtype=bool)  # seeds up to the last look
    rows = np.array([slot[s] for s in data.seeds if s in slot], dtype=np.int64)
    u[rows] = improvement_scores(data, higher_is_better=sign > 0)[now]
    done = data.both_done[now]
    d = sign * (data.a[now][done] - data.b[now][done])
    # A loss has no grid: round its differences to rope/100 (see the module docstring).
    x2[rows[done]] = 2 * (np.rint(d / h).astype(np.int64) if data.resolution is None
                          else to_grid(d, h))
    valid[rows[done]] = True
    joint = np.full(n, np.nan)
    joint[rows] = joint_outcome(u[rows])
    return _Prepared(data, x2, valid, u, h, sign, joint)


def _edge(value_units: float) -> int:
    """The largest half-grid point <= value (grid units), in half units."""
    return math.floor(2 * value_units + 1e-9)


def _claim_looks(p: _Prepared, claim: str, level: float, design: SequentialDesign
                 ) -> int:
    """First look by which `claim` is made for this contrast at this level.

    Until a diverged side appears, the group-sequential test of the differences; from
    the first look with one (k*), the joint outcome decides: the exact signed-rank test
    with diverged = worst at look k spends only that look's share of the level,
    spend(k) - spend(k - 1) (a look whose floor blocks it passes its share on), so the
    looks before k* and the rank looks after it together spend at most `level` (a
    union bound; which look k* is does not depend on the signs)."""
    looks = design.looks
    spend = design.spending(level)
    if design.estimand == "median":
        rope = design.rope
        walks = {"better": [p.walk(rope, upper=True)], "worse": [p.walk(-rope, upper=False)],
                 "equivalent": [p.walk(-rope, upper=True), p.walk(rope, upper=False)]}
        return max(first_crossing(w, looks, spend) for w in walks[claim])
    r = design.rope / p.h
    inf = np.isinf(p.u)
    first_div = next((k for k, n in enumerate(looks) if inf[:n].any()), len(looks))
    pre, pre_spend = looks[:first_div], spend[:first_div]
    if claim == "better":
        sides = [(+1, design.rope)]
        first = claim_look(p.x2, p.valid, _edge(r), pre, pre_spend) if pre else 0
    elif claim == "worse":
        sides = [(-1, -design.rope)]
        first = claim_look(-p.x2, p.valid, _edge(r), pre, pre_spend) if pre else 0
    else:
        sides = [(+1, -design.rope), (-1, design.rope)]
        first = max(claim_look(p.x2, p.valid, _edge(-r), pre, pre_spend),
                    claim_look(-p.x2, p.valid, _edge(-r), pre, pre_spend)) if pre else 0
    if pre and first < len(pre):
        return first
    carry = 0.0
    n_done = int(min(p.u.size, looks[-1]))
    for k in range(first_div, len(looks)):
        if looks[k] > n_done:
            break
        share = carry + spend[k] - (spend[k - 1] if k > 0 else 0.0)
        u = p.u[:looks[k]]
        n_rank = int(np.count_nonzero(~np.isnan(u)))
        if 2.0 ** -n_rank > share:
            carry = share  # no rejection possible here: the share carries forward
            continue
        carry = 0.0
        if all(rank_p(u, delta, upper=up > 0, resolution=p.h) <= share
               for up, delta in sides):
            return k
    return len(looks)


def _median_lower_ends(p: _Prepared, design: SequentialDesign, n_looks: int, sign: int
                       ) -> list[float]:
    """Per look, the smallest shift the median's upper test (on sign x the outcomes) has
    not rejected by then. The count is constant from one outcome up to the next, so
    the outcomes themselves (and one point below them all) are the shifts to try."""
    looks, spend = design.looks, design.spending(design.alpha / 2)
    joint = sign * p.joint
    values = np.unique(joint[np.isfinite(joint)])
    below = float(values[0]) - 1.0 if values.size else 0.0
    mirrored = dataclasses.replace(p, joint=joint)
    found: list[float | None] = [None] * n_looks
    for i, delta in enumerate([below, *values.tolist()]):
        k_cross = first_crossing(mirrored.walk(delta, upper=True), looks, spend)
        for k in range(min(k_cross, n_looks)):
            if found[k] is None:
                found[k] = -math.inf if i == 0 else float(delta)
        if k_cross >= n_looks:
            break
    return [math.inf if f is None else f for f in found]


def _interval_path(p: _Prepared, design: SequentialDesign, n_looks: int
                   ) -> list[tuple[float, float]]:
    """Per look, the 95% repeated CI (improvement units) from the one-sided tests at
    alpha / 2: the hull of the half-grid shifts not rejected by that look (for the
    median: of the shifts at the outcomes)."""
    if design.estimand == "median":
        lows = _median_lower_ends(p, design, n_looks, +1)
        highs = _median_lower_ends(p, design, n_looks, -1)
        return [(lo, -hi) for lo, hi in zip(lows, highs, strict=True)]
    looks, spend = design.looks, design.spending(design.alpha / 2)
    present = p.x2[p.valid]
    if present.size == 0:
        return [(-math.inf, math.inf)] * n_looks
    lowest, highest = int(present.min()) - 1, int(present.max()) + 1

    def first_alive(shifts: range, sign: int) -> list[int | None]:
        """Per look k, the first shift (in scan order) not rejected by look k."""
        found: list[int | None] = [None] * n_looks
        for s in shifts:
            k_cross = first_crossing(np.where(p.valid, sign * (p.x2 - s), 0), looks, spend)
            for k in range(min(k_cross, n_looks)):
                found[k] = s if found[k] is None else found[k]
            if k_cross >= n_looks:  # alive at every look: the loop above resolved each one
                break
        return found

    low_at = first_alive(range(lowest, highest + 1), +1)  # scanning up: lower ends
    high_at = first_alive(range(highest, lowest - 1, -1), -1)  # scanning down: upper ends
    out = []
    for lo_s, hi_s in zip(low_at, high_at, strict=True):
        # The shift just below the smallest difference stands for all lower ones.
        low = -math.inf if lo_s is None or lo_s == lowest else lo_s * p.h / 2
        high = math.inf if hi_s is None or hi_s == highest else hi_s * p.h / 2
        out.append((float(low), float(high)))
    return out


def _holm_by_look(claim_at: Callable[[int, float], int], m: int, alpha_c: float, k: int
                  ) -> set[int]:
    """Contrasts whose claim holds by look k under sequentially rejective Holm."""
    rejected: set[int] = set()
    while len(rejected) < m:
        level = alpha_c / (m - len(rejected))
        new = {j for j in range(m) if j not in rejected and claim_at(j, level) <= k}
        if not new:
            break
        rejected |= new
    return rejected


def sequential_verdicts(
    design: SequentialDesign,
    contrasts: Sequence[ContrastData],
    seeds: Sequence[int],
    *,
    higher_is_better: bool = True,
    intervals: bool = True,
) -> SequentialResult:
    """Verdicts after the seeds run so far; call after every round.

    contrasts: every contrast of the study, each paired over the seeds run so far
    (`pair`, `factorial`); seeds: the study's seeds in run order, as many as have been
    run (a multiple of the round size, or max_seeds). Seeds beyond the last completed
    look are not used until their look. intervals=False skips the repeated confidence
    intervals (NaN in the path), for simulations that need only the verdicts.
    """
    looks = design.looks
    known = set(seeds)
    for c in contrasts:
        stray = [s for s in c.seeds if s not in known]
        if stray:
            raise ValueError(f"{c.name}: seeds {stray} are not among the seeds run {list(seeds)}")
    n_looks = sum(1 for n in looks if n <= len(seeds))
    if n_looks == 0:
        return SequentialResult(design, (), tuple(
            SequentialVerdict(c.name, c.reference, c.kind, "inconclusive", False, None, (),
                              f"no look yet: the first is at {looks[0]} seeds")
            for c in contrasts), stop=False, why=f"first look at {looks[0]} seeds",
            next_seeds=looks[0])
    used = list(seeds[:looks[n_looks - 1]])
    prepared = [_prepare(c, used, design.rope, higher_is_better) for c in contrasts]
    m = len(prepared)
    cache: dict[tuple[str, int, float], int] = {}

    def claim_at(claim: str) -> Callable[[int, float], int]:
        def at(j: int, level: float) -> int:
            key = (claim, j, level)
            if key not in cache:
                cache[key] = _claim_looks(prepared[j], claim, level, design)
            return cache[key]
        return at

    lv = levels(design.alpha)
    by_look: list[dict[int, str]] = []  # per look: contrast -> claim made by then
    first_claim: dict[int, tuple[int, str]] = {}
    for k in range(n_looks):
        made: dict[int, list[str]] = {}
        for claim in CLAIMS:
            for j in _holm_by_look(claim_at(claim), m, lv[claim], k):
                made.setdefault(j, []).append(claim)
        for j, claims in made.items():
            if j not in first_claim:
                first_claim[j] = (k, claims[0] if len(claims) == 1 else "conflict")
        by_look.append({j: c for j, (kk, c) in first_claim.items() if kk <= k})
    at_max = looks[n_looks - 1] == design.max_seeds
    verdicts = []
    for j, p in enumerate(prepared):
        cis = _interval_path(p, design, n_looks) if intervals else \
            [(math.nan, math.nan)] * n_looks
        path = []
        for k in range(n_looks):
            sel = p.valid[:looks[k]]
            d = p.sign * p.x2[:looks[k]][sel] * p.h / 2
            lo, hi = cis[k]
            raw = (lo, hi) if p.sign > 0 else (-hi, -lo)
            claimed = by_look[k].get(j)
            word = label(None if claimed == "conflict" else claimed, p.data.kind)
            joint = p.joint[:looks[k]]
            joint = joint[~np.isnan(joint)]
            median = p.sign * joint_median(joint) if joint.size else math.nan
            path.append(Look(looks[k], int(sel.sum()), float(d.mean()) if d.size else math.nan,
                             raw[0], raw[1], word, median))
        settled_k = first_claim.get(j)
        decision = path[-1].decision
        if settled_k is not None and settled_k[1] != "conflict":
            settled, at = True, looks[settled_k[0]]
            test = "sign test of the median" if design.estimand == "median" else \
                "sign-flip test"
            reason = (f"{decision}: claimed at the look with {at} seeds per arm (group-"
                      f"sequential {test}, {len(looks)} planned looks, spending "
                      f"alpha t^{design.rho:g}, Holm per claim over {m} contrast"
                      f"{'s' if m > 1 else ''})")
        elif at_max:
            settled, at = True, design.max_seeds
            reason = (f"inconclusive: no claim by max_seeds = {design.max_seeds}; last "
                      f"95% repeated CI [{path[-1].ci_low:.4g}, {path[-1].ci_high:.4g}] "
                      f"against the ROPE +-{design.rope:g}")
        else:
            settled, at = False, None
            reason = (f"not settled at {looks[n_looks - 1]} seeds: 95% repeated CI "
                      f"[{path[-1].ci_low:.4g}, {path[-1].ci_high:.4g}] against the ROPE "
                      f"+-{design.rope:g}; more seeds")
        verdicts.append(SequentialVerdict(p.data.name, p.data.reference, p.data.kind,
                                          decision, settled, at, tuple(path), reason))
    all_settled = all(v.settled for v in verdicts)
    if at_max:
        why = f"reached max_seeds = {design.max_seeds}"
    elif all_settled:
        why = f"every contrast settled by {looks[n_looks - 1]} seeds"
    else:
        open_ = [v.arm for v in verdicts if not v.settled]
        why = f"not settled yet: {', '.join(open_)}"
    stop = at_max or all_settled
    next_seeds = None if stop else looks[n_looks] if n_looks < len(looks) else None
    return SequentialResult(design, looks[:n_looks], tuple(verdicts), stop, why, next_seeds)
