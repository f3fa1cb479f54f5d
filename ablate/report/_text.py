"""Words and numbers of the report, from the decision object only.

Accuracy metrics are shown in percentage points (0.0042 -> "0.42 points"); losses in
their own units. Every sentence is built from a `Contrast` (and the `Effect` saying
what it changes), so a sentence cannot claim a direction, interval or decision the
numbers do not carry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ablate.report._analysis import Analysis, Effect
from ablate.stats import Contrast, min_seeds_for_sign_flip

DECISION_COLOURS = {  # shared by the HTML and the plots: one meaning per colour
    "better": "#1a9850",
    "worse": "#d73027",
    "equivalent": "#4575b4",
    "inconclusive": "#8c8c8c",
}
METRIC_NAMES = {"val_accuracy": "validation accuracy", "val_loss": "validation loss"}


@dataclass(frozen=True)
class Units:
    """How one metric is shown: accuracy as percent / points, loss as is."""

    metric: str
    name: str  # "validation accuracy"
    scale: float  # display value = metric value * scale
    unit: str  # "points" for accuracy differences, "" for loss
    higher_is_better: bool

    @classmethod
    def for_metric(cls, metric: str, higher_is_better: bool) -> Units:
        accuracy = metric.endswith("accuracy")
        return cls(metric, METRIC_NAMES.get(metric, metric.replace("_", " ")),
                   100.0 if accuracy else 1.0, "points" if accuracy else "", higher_is_better)

    @property
    def accuracy(self) -> bool:
        return self.scale == 100.0

    def number(self, x: float) -> str:
        """A difference or spread in display units, no unit word: '0.42', '0.0123'."""
        if not math.isfinite(x):
            return "n/a"
        x *= self.scale
        if self.accuracy:
            return f"{x:.2f}"
        # Losses: four decimals (ROPEs are ~0.01); tiny nonzero values keep two digits.
        return f"{x:.2g}" if 0 < abs(x) < 5e-5 else f"{x:.4f}"

    def signed(self, x: float) -> str:
        """A signed difference: '+0.42', '-0.42', '0.00' (no sign when it rounds to 0)."""
        s = self.number(x)
        if s == "n/a" or float(s) == 0:
            return s.lstrip("-")
        return s if s.startswith("-") else "+" + s

    def amount(self, x: float) -> str:
        """A magnitude with its unit: '0.42 points', '0.0123'."""
        s = self.number(abs(x))
        return f"{s} {self.unit}" if self.unit else s

    def adjective(self, x: float) -> str:
        """A magnitude before a noun: '0.20-point difference', '0.01 difference'."""
        return f"{self.number(abs(x))}-point" if self.unit else self.number(abs(x))

    def level(self, x: float) -> str:
        """A metric value: '97.12%' for accuracy, '0.0832' for loss."""
        if not math.isfinite(x):
            return "n/a"
        return f"{x * 100:.2f}%" if self.accuracy else f"{x:.4f}"


def fmt_p(p: float) -> str:
    """p value as a reader expects it: '0.45', '0.004', '< 0.001'."""
    if not math.isfinite(p):
        return "n/a"
    if p < 0.001:
        return "< 0.001"
    return f"{p:.3f}" if p < 0.01 else f"{p:.2f}"


def p_clause(p: float) -> str:
    s = fmt_p(p)
    return f"p {s}" if s.startswith("<") else f"p = {s}"


def fmt_float(x: float, digits: int = 2) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"


def plural(n: int, noun: str) -> str:
    """'1 seed', '3 seeds'."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def join(words: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if not words:
        return ""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def change_phrase(factor: str, old: str, new: str) -> str:
    """'turning dropout off', 'turning bn on', 'changing optimizer from sgd to adam'."""
    if new in ("off", "on"):
        return f"turning {factor} {new}"
    return f"changing {factor} from {old} to {new}"


def direction_word(c: Contrast) -> str:
    """'raises' / 'lowers' / 'does not change': the sign of the mean difference."""
    return "raises" if c.mean_diff > 0 else "lowers" if c.mean_diff < 0 else "does not change"


def agreeing_seeds(c: Contrast) -> int:
    """Seeds whose difference has the sign of the mean difference."""
    if c.mean_diff == 0:
        return c.ties
    up = c.mean_diff > 0
    # wins count seeds that moved the better way; flip for the other direction.
    return c.wins if up == c.higher_is_better else c.n - c.wins - c.ties


def ci_clause(c: Contrast, u: Units) -> str:
    lo, hi = c.ci_low, c.ci_high
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "no interval with a single seed"
    if c.mean_diff != 0 and (lo > 0 if c.mean_diff > 0 else hi < 0):
        # The whole interval lies on the mean's side: give it as magnitudes, small first.
        a, b = sorted((abs(lo), abs(hi)))
        return f"95% CI {u.number(a)} to {u.amount(b)}"
    tail = f" {u.unit}" if u.unit else ""
    return f"95% CI {u.signed(lo)} to {u.signed(hi)}{tail}, which includes zero"


def effect_sentence(c: Contrast, e: Effect, u: Units) -> str:
    """One sentence with the effect, its interval, the Holm p and the seed count."""
    adj = "after Holm" if c.correction == "holm" else "after BH, exploratory"
    stats = f"{ci_clause(c, u)}; {p_clause(c.p_adjusted)} {adj}"
    if e.kind == "interaction" and e.other is not None:
        factor, old, new = e.changes[0]
        mod, m_old, m_new = e.other
        more = "higher" if c.mean_diff > 0 else "lower" if c.mean_diff < 0 else "no different"
        size = f"{u.amount(c.mean_diff)} {more}" if c.mean_diff else more
        return (f"Interaction: the effect of {change_phrase(factor, old, new)} on {u.name} is "
                f"{size} with {mod}={m_new} than with {mod}={m_old} ({stats}; "
                f"same sign on {agreeing_seeds(c)} of {c.n} seeds).")
    subject = join([change_phrase(*ch) for ch in e.changes]) or f"arm {c.arm}"
    if e.kind == "main" and e.other is not None:
        subject = f"averaged over {e.other[0]}, {subject}"
    verb = direction_word(c)
    if c.mean_diff == 0:
        return f"{subject[0].upper()}{subject[1:]} does not change {u.name} ({stats})."
    side = "higher" if c.mean_diff > 0 else "lower"
    return (f"{subject[0].upper()}{subject[1:]} {verb} {u.name} by {u.amount(c.mean_diff)} "
            f"({stats}; {side} on {agreeing_seeds(c)} of {c.n} seeds).")


def rope_text(c: Contrast, u: Units) -> str:
    """'±0.20-point' (accuracy) or '±0.01' (loss): the ROPE as an adjective."""
    return f"±{u.adjective(c.rope)}"


def holm_floor(n: int, m: int) -> float:
    """Smallest Holm-adjusted p any of m contrasts can reach with n seeds: m * 2 / 2^n."""
    return min(1.0, m * 2.0 ** (1 - n))


def reason_text(c: Contrast, u: Units, m: int) -> str:
    """Why the decision, in plain words; `c.reason` keeps the technical version.

    m: the family size, which sets Holm's strictest threshold alpha / m.
    """
    rope = rope_text(c, u)
    if c.decision in ("better", "worse"):
        return (f"It survives Holm's correction and its whole 95% CI lies beyond the {rope} "
                "region of practical equivalence (ROPE), so it is real and large enough to "
                "matter.")
    if c.decision == "equivalent":
        return (f"Its 90% CI lies inside the {rope} region of practical equivalence (ROPE), "
                "so any effect is too small to matter.")
    n_min, n_min_m = min_seeds_for_sign_flip(c.alpha), min_seeds_for_sign_flip(c.alpha, m)
    beyond = c.ci_low > c.rope or c.ci_high < -c.rope
    if c.n < n_min:
        why = (f"With {plural(c.n, 'paired seed')} no test can reach p < {c.alpha:g} (the smallest "
               f"possible sign-flip p is 2/2^{c.n} = {2.0 ** (1 - c.n):.3g}), so this report "
               f"gives intervals only; use at least {n_min} seeds.")
    elif c.n < n_min_m:
        why = (f"With {c.n} seeds and {m} contrasts nothing can pass Holm's correction (the "
               f"smallest possible Holm p is {m} x 2/2^{c.n} = "
               f"{holm_floor(c.n, m):.3g} >= {c.alpha:g}); use at least {n_min_m} "
               "seeds" + (", which would likely settle it: the 95% CI already lies beyond "
                          "the ROPE." if beyond else "."))
    elif c.p_adjusted < c.alpha:
        why = (f"The difference is statistically clear (Holm p {fmt_p(c.p_adjusted)}), but "
               f"its 95% CI reaches into the {rope} ROPE, so it may be too small to matter.")
    else:
        why = (f"Holm p = {fmt_p(c.p_adjusted)} and the 90% CI reaches beyond the {rope} "
               "ROPE: the data neither show a difference nor rule one out.")
    return why + seeds_needed_clause(c, u)


def seeds_needed_clause(c: Contrast, u: Units) -> str:
    if c.seeds_needed is None or c.seeds_needed <= c.n:
        return ""
    return (f" About {c.seeds_needed} seeds would detect a {u.adjective(c.rope)} difference "
            "with 80% power after Holm.")


def answer_paragraph(a: Analysis, u: Units) -> str:
    """The study's question answered in one paragraph of plain English."""
    cs = a.family.contrasts
    m = len(cs)
    if m == 1:
        c = cs[0]
        lead = {"better": "Yes, it matters.", "worse": "Yes, it matters.",
                "equivalent": "No: the difference is too small to matter.",
                "inconclusive": "Not settled yet."}[c.decision]
        body = [effect_sentence(c, a.effects[c.arm], u), f"Verdict: {c.decision}.",
                reason_text(c, u, m)]
    else:
        counts = {d: sum(c.decision == d for c in cs) for d in DECISION_COLOURS}
        lead = f"Of {m} contrasts, {join([f'{k} {d}' for d, k in counts.items() if k])}."
        body = []
        for c in cs:
            body += [effect_sentence(c, a.effects[c.arm], u), f"Verdict: {c.decision}."]
        n, alpha = a.family.n, a.family.alpha
        if min_seeds_for_sign_flip(alpha) <= n < min_seeds_for_sign_flip(alpha, m):
            # One shared reason instead of the same sentence per contrast.
            body.append(f"With {n} seeds and {m} contrasts nothing can pass Holm's "
                        f"correction (smallest possible Holm p {holm_floor(n, m):.3g}); "
                        f"use at least {min_seeds_for_sign_flip(alpha, m)} seeds.")
        elif n < min_seeds_for_sign_flip(alpha):
            body.append(f"With {plural(n, 'paired seed')} no test can reach p < {alpha:g}, so this "
                        f"report gives intervals only; use at least "
                        f"{min_seeds_for_sign_flip(alpha)} seeds.")
    tail = (f"Paired by seed over {plural(a.family.n, 'seed')}"
            + (f" (seeds {join([str(s) for s in a.dropped])} left out: a run failed, diverged "
               "or did not finish)" if a.dropped else "") + ".")
    if a.lost:
        tail += (f" Left out entirely, with no completed run: {join(list(a.lost))}.")
    return " ".join([lead, *body, tail])


def headline(a: Analysis) -> str:
    """A one-line title for the verdict box and the forest plot."""
    cs = a.family.contrasts
    lost = f"; no completed run: {join(list(a.lost))}" if a.lost else ""
    if len(cs) == 1:
        c = cs[0]
        return f"{c.arm} vs {c.baseline}: {c.decision}{lost}"
    counts = {d: sum(c.decision == d for c in cs) for d in DECISION_COLOURS}
    return (", ".join(f"{k} {d}" for d, k in counts.items() if k)
            + f" of {len(cs)} contrasts{lost}")
