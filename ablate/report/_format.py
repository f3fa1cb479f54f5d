"""How the report writes numbers, lists and decisions: units, p values, colours.

Accuracy metrics are shown in percentage points (0.0042 -> "0.42 points"), variances
in points squared; losses in their own units (nats). One place for these rules, so
the text, the tables and the figures cannot write the same number two ways.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ablate.analysis import Analysis
from ablate.metric import Metric
from ablate.stats import ESTIMAND_MEDIAN, Contrast

__all__ = [
    "estimate",
    "DECISION_COLOURS", "Units", "fmt_float", "fmt_p", "join", "p_clause", "plural",
    "seed_list", "units",
]

DECISION_COLOURS = {  # shared by the HTML and the plots: one meaning per colour
    "better": "#1a9850",
    "worse": "#d73027",
    "equivalent": "#4575b4",
    "inconclusive": "#8c8c8c",
    "interaction": "#762a83",
    "no interaction": "#313695",
}


@dataclass(frozen=True)
class Units:
    """How one metric is shown: accuracy as percent / points, loss as is."""

    metric: str
    name: str  # "cross-fitted validation accuracy"
    scale: float  # display value = metric value * scale
    unit: str  # "points" for accuracy differences, "" for loss
    higher_is_better: bool

    @classmethod
    def for_metric(cls, metric: Metric) -> Units:
        accuracy = metric.quantity == "accuracy"
        return cls(metric.name, metric.phrase, 100.0 if accuracy else 1.0,
                   "points" if accuracy else "", metric.higher_is_better)

    @property
    def accuracy(self) -> bool:
        return self.scale == 100.0

    def number(self, x: float) -> str:
        """A difference or spread in display units, no unit word: '0.42', '0.0123';
        'inf' / '-inf' for an unbounded interval end."""
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
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
        if s in ("n/a", "inf", "-inf"):
            return "+inf" if s == "inf" else s
        if float(s) == 0:
            return s.lstrip("-")
        return s if s.startswith("-") else "+" + s

    def amount(self, x: float) -> str:
        """A magnitude with its unit: '0.42 points', '0.0123'."""
        s = self.number(abs(x))
        return f"{s} {self.unit}" if self.unit else s

    def level(self, x: float) -> str:
        """A metric value: '97.12%' for accuracy, '0.0832' for loss."""
        if not math.isfinite(x):
            return "n/a"
        return f"{x * 100:.2f}%" if self.accuracy else f"{x:.4f}"

    def variance(self, x: float) -> str:
        """A variance of differences in display units: '0.0625 points²', '1.2e-05'."""
        if not math.isfinite(x):
            return "n/a"
        v = x * self.scale**2
        return f"{v:.3g} points²" if self.accuracy else f"{v:.3g}"

    def rope(self, r: float) -> str:
        """The ROPE as a band: '±0.20 points', '±0.0100'."""
        return f"±{self.amount(r)}"


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


def seed_list(seeds: Sequence[int]) -> str:
    """'0..9' for a run of more than three consecutive seeds, else '1, 4 and 7'."""
    s = list(seeds)
    if not s:
        return "none"
    if s == list(range(s[0], s[0] + len(s))) and len(s) > 3:
        return f"{s[0]}..{s[-1]}"
    return join([str(x) for x in s])


def units(a: Analysis) -> Units:
    """How the analysis's compared metric is shown."""
    return Units.for_metric(a.estimand.metric)


def estimate(c: Contrast) -> float:
    """The point estimate of what the verdict is about: the median of the joint outcome
    under the median estimand, else the mean difference."""
    return c.median_diff if c.estimand == ESTIMAND_MEDIAN else c.mean_diff
