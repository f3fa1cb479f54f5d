"""The report's sentences, each built from the numbers it states.

Every sentence takes a `Contrast` (or another record of the analysis) and says only
what those numbers show: a direction from the sign of the mean difference, an
interval's relation to the ROPE from its ends (`ci_vs_rope`), a claim from its
family-adjusted p against its level. Nothing is worded in advance of the numbers, so a
sentence cannot claim a direction, interval or decision the numbers do not carry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ablate.analysis import LAST_EPOCHS, SLOPE_SE, Analysis, Effect, Optimism
from ablate.report._format import (
    DECISION_COLOURS,
    Units,
    estimate,
    fmt_p,
    join,
    p_clause,
    plural,
    units,
)
from ablate.stats import (
    ESTIMAND_MEAN,
    ESTIMAND_MEDIAN,
    MAX_SEEDS,
    Contrast,
    Pairing,
    Power,
    SequentialResult,
    SequentialVerdict,
    floor_seeds,
)

__all__ = [
    "MULTIPLICITY_WORDS", "agreeing_seeds", "answer_paragraph", "budget_clause",
    "budget_sentence", "budget_text", "change_phrase",
    "ci_clause", "ci_vs_rope", "counts", "direction_word", "divergence_sentence",
    "effect_sentence", "estimand_method", "estimand_sentence", "floor_sentence",
    "headline",
    "interval_text", "methods_paragraph", "missing_sentence", "optimism_sentence",
    "pairing_sentence", "power_sentence", "sequential_sentence", "subject",
    "verdict_line", "why_sentence",
]

MULTIPLICITY_WORDS = {
    "holm": "Holm's method (holm), applied to each claim type separately",
    "joint step-down": (
        "for 'better' and for 'worse', the min-p step-down over the joint sign flips of "
        "the shared seeds (Westfall-Young; each seed's differences in every contrast "
        "flipped together, so the dependence between contrasts that share seeds and a "
        "baseline is used rather than bounded); for 'equivalent', Holm's method on the "
        "TOST p values"),
}


def p_against(p: float, level: float) -> str:
    """p as `fmt_p` writes it, with more digits where the rounded value would read as
    equal to the level it is compared with (when it is not), or on its other side."""
    text = fmt_p(p)
    for digits in (3, 4, 6, 17):
        shown = p if not text[0].isdigit() else float(text)
        if (shown <= level) == (p <= level) and (shown != level or p == level):
            return text
        text = f"{p:.{digits}g}"
    return text


# -- pieces --------------------------------------------------------------------------
def change_phrase(factor: str, old: str, new: str) -> str:
    """'turning dropout off', 'turning bn on', 'changing optimizer from sgd to adam'."""
    if new in ("off", "on"):
        return f"turning {factor} {new}"
    return f"changing {factor} from {old} to {new}"


def subject(c: Contrast, e: Effect) -> str:
    """What the contrast changes, as the subject of a sentence (lower case)."""
    what = join([change_phrase(*ch) for ch in e.changes]) or f"arm {c.arm}"
    if e.kind == "main" and e.other is not None:
        return f"averaged over {e.other[0]}, {what}"
    if e.kind == "simple" and e.other is not None:
        return f"with {e.other[0]}={e.other[1]}, {what}"
    return what


def direction_word(c: Contrast) -> str:
    """'raises' / 'lowers' / 'does not change': the sign of the estimate."""
    e = estimate(c)
    return "raises" if e > 0 else "lowers" if e < 0 else "does not change"


def agreeing_seeds(c: Contrast) -> int:
    """Seeds whose difference has the sign of the estimate."""
    e = estimate(c)
    if e == 0 or math.isnan(e):
        return c.ties
    up = e > 0
    # wins count seeds that moved the better way; flip for the other direction.
    return c.wins if up == c.higher_is_better else c.n - c.wins - c.ties


def interval_text(lo: float, hi: float, u: Units) -> str:
    """'+0.45 to +0.60 points', '-inf to +inf points'."""
    tail = f" {u.unit}" if u.unit else ""
    return f"{u.signed(lo)} to {u.signed(hi)}{tail}"


def ci_vs_rope(lo: float, hi: float, rope: float, u: Units) -> str:
    """Where an interval lies relative to the ROPE, read off its ends."""
    r = u.amount(rope)
    if math.isinf(lo) and math.isinf(hi):
        return "is unbounded: too few seeds to bound it"
    if lo > rope:
        return f"lies above +{r}"
    if hi < -rope:
        return f"lies below -{r}"
    if -rope < lo and hi < rope:
        return f"lies inside ±{r}"
    return f"reaches across the edge of the ROPE ±{r}"


def ci_clause(c: Contrast, u: Units, name: str = "95% CI") -> str:
    lo, hi = c.ci_low, c.ci_high
    if math.isinf(lo) and math.isinf(hi):
        return f"{name} unbounded: too few seeds"
    e = estimate(c)
    if math.isfinite(lo) and math.isfinite(hi) and e != 0 and (lo > 0 if e > 0 else hi < 0):
        # The whole interval lies on the mean's side: give it as magnitudes, small first.
        a, b = sorted((abs(lo), abs(hi)))
        return f"{name} {u.number(a)} to {u.amount(b)}"
    zero = ", which includes zero" if lo <= 0 <= hi else ""
    return f"{name} {interval_text(lo, hi, u)}{zero}"


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:]


# -- the effect and its verdict ------------------------------------------------------
def effect_sentence(c: Contrast, e: Effect, u: Units, *, family: int,
                    sequential: bool = False) -> str:
    """The estimate with its interval, the p of no difference (fixed designs only; Holm
    over the family when it has more than one contrast: `family`, its size) and the
    seeds that agree."""
    ci = ci_clause(c, u, "95% repeated CI" if sequential else "95% CI")
    after = ", after Holm" if family > 1 else ""
    stats = ci if sequential else f"{ci}; {p_clause(c.p_holm)} for no difference{after}"
    if c.n == 0:
        return _sentence(f"{subject(c, e)}: no seed where both sides finished.")
    if e.kind == "interaction" and e.other is not None:
        factor, old, new = e.changes[0]
        mod, m_old, m_new = e.other
        x = estimate(c)
        more = "higher" if x > 0 else "lower" if x < 0 else "no different"
        size = f"{u.amount(x)} {more}" if x else more
        return (f"Interaction: the effect of {change_phrase(factor, old, new)} on {u.name} is "
                f"{size} with {mod}={m_new} than with {mod}={m_old} ({stats}; "
                f"same sign on {agreeing_seeds(c)} of {c.n} seeds).")
    x = estimate(c)
    median = c.estimand == ESTIMAND_MEDIAN
    typical = "for the median seed" if median else "on average"
    if x == 0:
        return _sentence(f"{subject(c, e)} does not change {u.name} {typical} ({stats}).")
    if math.isnan(x):
        return _sentence(f"{subject(c, e)}: the median seed has no value (as many seeds "
                         f"diverged on each side as the middle needs) ({stats}).")
    side = "higher" if x > 0 else "lower"
    by = f"a median of {u.amount(x)}" if median else u.amount(x)
    if median and math.isinf(x):
        by = "divergence on most seeds"
    mean = f"; mean {u.signed(c.mean_diff)}" if median and math.isfinite(c.mean_diff) else ""
    return _sentence(f"{subject(c, e)} {direction_word(c)} {u.name} by {by} ({stats}{mean}; "
                     f"{side} on {agreeing_seeds(c)} of {c.n} seeds).")


def _claim(c: Contrast) -> str | None:
    """The claim behind a fixed-design decision (an interaction's side from its p)."""
    if c.decision in ("better", "worse", "equivalent"):
        return c.decision
    if c.decision == "no interaction":
        return "equivalent"
    if c.decision == "interaction":
        return "better" if c.p_better_holm <= c.alpha / 2 else "worse"
    return None


def _made(c: Contrast, claim: str, u: Units) -> str:
    r, word = c.rope, _sentence(c.decision)
    what = "interaction" if c.kind == "interaction" else "difference"
    if claim == "equivalent":
        return (f"{word}: its Holm-adjusted TOST {p_clause(c.p_equivalent_holm)}"
                f"{_of_joint(c)} against "
                f"|Δ| ≥ {u.amount(r)} is at most {c.alpha:g}, and its 90% CI, "
                f"{interval_text(c.ci90_low, c.ci90_high, u)}, "
                f"{ci_vs_rope(c.ci90_low, c.ci90_high, r, u)}: any {what} is too small to "
                "matter.")
    up = (claim == "better") == (c.higher_is_better or c.kind == "interaction")
    null = f"Δ ≤ +{u.amount(r)}" if up else f"Δ ≥ -{u.amount(r)}"
    p = c.p_better_holm if claim == "better" else c.p_worse_holm
    return (f"{word}: its step-down-adjusted {p_clause(p)}{_of_joint(c)} against {null} is "
            f"at most "
            f"{c.alpha / 2:g}, and its 95% CI, {interval_text(c.ci_low, c.ci_high, u)}, "
            f"{ci_vs_rope(c.ci_low, c.ci_high, r, u)}: {'an' if c.kind == 'interaction' else 'a'} "
            f"{what} real and large enough to matter.")


def _of_joint(c: Contrast) -> str:
    """' of the joint outcome (diverged = worst)' for a contrast decided on it."""
    if c.estimand == ESTIMAND_MEAN:
        return ""
    if c.estimand == ESTIMAND_MEDIAN:
        return " of the median (sign test)"
    return f" of the {c.estimand.removeprefix('pseudo-median of the ')}"


def estimand_method(estimand: str) -> str:
    """What the verdict is about and which exact test decides it, and why."""
    if estimand == "median":
        return ("The verdict is about the median of each contrast's per-seed difference (a "
                "diverged run below every finished one): the difference a typical seed "
                "makes. The exact sign test decides it (the seeds beyond a shift counted "
                "against Binomial(n, 1/2)), which assumes independent seeds and nothing "
                "about the shape of their spread: an arm with a bad seed now and then, or "
                "a skewed spread, keeps every error rate, where the mean's sign-flip test "
                "said 'better' falsely at 2.7 times its level (a seed 1 point worse with "
                "probability 0.10, 10 seeds; benchmarks/stats_calibration.py). The study "
                "key estimand = \"mean\" decides on the mean instead, with more power when "
                "the differences are symmetric.")
    return ("The verdict is about the mean per-seed difference (study key estimand = "
            "\"mean\"), tested with the exact paired sign-flip test, which assumes "
            "independent seeds whose differences are symmetric about the true difference "
            "Δ; a lopsided arm (a bad seed now and then) breaks that, and the default "
            "estimand, the median, does not need it.")


def floor_sentence(n: int, m: int, alpha: float) -> str:
    """What the floor of exact one-sided p values (1/2^n) rules out with n seeds and m
    contrasts ('' when it rules out nothing). 'Better' and 'worse' (the joint
    step-down) reach the floor itself when every contrast's seeds agree; 'equivalent'
    (Holm) needs 1/2^n <= alpha / m to pass at its first step."""
    floor = 2.0 ** -n
    head = (f"With {plural(n, 'paired seed')} no one-sided exact p can be below "
            f"1/2^{n} = {floor:.3g}")
    need = floor_seeds(alpha / 2)
    if floor > alpha:
        return (f"{head}, above the level of every claim ({alpha / 2:g} for 'better' or "
                f"'worse', {alpha:g} for 'equivalent'): no claim was possible whatever the "
                f"data; use at least {need} seeds.")
    if floor > alpha / 2:
        return (f"{head}, above the {alpha / 2:g} a 'better' or 'worse' claim needs: those "
                f"claims were impossible whatever the data; use at least {need} seeds.")
    if m > 1 and floor > alpha / m:
        return (f"{head}, above Holm's first level for 'equivalent' over {m} "
                f"contrasts, {alpha / m:.3g}: that claim here could pass only after "
                f"another contrast's had; {floor_seeds(alpha / m)} seeds would remove "
                "that limit.")
    return ""


def why_sentence(c: Contrast, u: Units, m: int, *, verdict: SequentialVerdict | None = None,
                 result: SequentialResult | None = None, undiverged: str | None = None
                 ) -> str:
    """Why the decision, from the numbers that made it. m: the contrast's family size;
    verdict/result: a sequential study's verdict of this contrast and its looks;
    undiverged: the decision had its diverged runs been dropped, where it differs."""
    if verdict is not None and result is not None:
        text = _why_sequential(c, u, verdict, result)
    elif (claim := _claim(c)) is not None:
        text = _made(c, claim, u)
    elif c.n == 0:
        text = "Inconclusive: no seed where both sides finished, so there is nothing to test."
    else:
        up, down, none = (("'interaction' (positive)", "'interaction' (negative)",
                           "'no interaction'") if c.kind == "interaction" else
                          ("'better'", "'worse'", "'equivalent'"))
        half = c.alpha / 2
        text = (f"Inconclusive: no claim reached its level (adjusted p{_of_joint(c)} "
                f"{p_against(c.p_better_holm, half)} for {up} and "
                f"{p_against(c.p_worse_holm, half)} for {down}, each needing at most "
                f"{half:g}; {p_against(c.p_equivalent_holm, c.alpha)} for "
                f"{none}, needing at most {c.alpha:g}); its 95% CI, "
                f"{interval_text(c.ci_low, c.ci_high, u)}, "
                f"{ci_vs_rope(c.ci_low, c.ci_high, c.rope, u)}.")
        if floor := floor_sentence(c.n, m, c.alpha):
            text += " " + floor
    if undiverged is not None:
        text += (f" Had its diverged runs been dropped (complete pairs) instead of counted as "
                 f"the worst outcome, the same rule would have said '{undiverged}'.")
    return text


def _why_sequential(c: Contrast, u: Units, v: SequentialVerdict, res: SequentialResult
                    ) -> str:
    if not v.path:
        return (f"Not settled: no look yet; the first is at {res.design.looks[0]} seeds per "
                "arm.")
    last = v.path[-1]
    ci = (f"{interval_text(last.ci_low, last.ci_high, u)}, "
          f"{ci_vs_rope(last.ci_low, last.ci_high, c.rope, u)}")
    if v.settled and v.decision != "inconclusive":
        return (f"{_sentence(v.decision)}: claimed at the look with {v.settled_at} seeds per "
                "arm by the group-sequential exact sign-flip test (Holm per claim, made "
                f"sequential); the 95% repeated CI at the last look ({last.n} seeds), {ci}.")
    if v.settled:
        return (f"Inconclusive: no claim by the maximum of {res.design.max_seeds} seeds per "
                f"arm; the last 95% repeated CI, {ci}.")
    return (f"Not settled at {last.n} seeds per arm: the 95% repeated CI, {ci}; the next "
            "round adds seeds.")


# -- what the numbers rest on --------------------------------------------------------
def pairing_sentence(p: Pairing | None, u: Units) -> str:
    """The realized correlation of the paired sides and what the pairing bought."""
    if p is None or p.n < 2 or not math.isfinite(p.var_paired):
        return "Pairing: not measurable with fewer than 2 seeds where both sides finished."
    if math.isfinite(p.correlation):
        lo, hi = p.correlation_ci
        ci = (f" (approximate 95% CI {lo:.2f} to {hi:.2f})"
              if math.isfinite(lo) and math.isfinite(hi) else "")
        corr = f"the two sides correlate at r = {p.correlation:.2f}{ci} over {p.n} seeds"
        if math.isfinite(lo) and lo <= 0 <= hi:
            corr += ", not distinguishable from no correlation"
    else:
        corr = f"one side does not vary over the {p.n} seeds, so it has no correlation"
    var = (f"the paired differences have variance {u.variance(p.var_paired)} against "
           f"{u.variance(p.var_unpaired)} for independent runs (var(a) + var(b))")
    if not math.isfinite(p.ratio):
        bought = "the paired differences do not vary at all"
    elif p.ratio > 1:
        bought = (f"a ratio of {p.ratio:.2f}: these {p.n} paired seeds are as precise as "
                  f"about {p.ratio * p.n:.0f} unpaired seeds per arm would be")
    elif p.ratio == 1:
        bought = "a ratio of 1.00: the pairing bought no precision"
    else:
        bought = (f"a ratio of {p.ratio:.2f}: the paired differences vary more than "
                  "independent runs would, so the pairing bought no precision")
    return f"Pairing: {corr}; {var}, {bought}."


def power_sentence(c: Contrast, u: Units) -> str:
    """The power of the verdict itself, from `Contrast.power` (fixed designs)."""
    pw: Power | None = c.power
    if pw is None:
        return ""
    interaction = c.kind == "interaction"
    claim, null = ("interaction", "no interaction") if interaction else ("better", "equivalent")
    toward = "" if interaction or c.higher_is_better else " (lower is better)"
    size = f"a true {'interaction' if interaction else 'improvement'} of {u.amount(pw.effect)}"

    def seeds(k: int | None, rng: tuple[int | None, int | None] = (None, None)) -> str:
        text = f"more than {MAX_SEEDS} seeds" if k is None else plural(k, "seed")
        lo, hi = rng
        if lo is None and hi is None or lo == hi == k:
            return text
        ends = [str(x) if x is not None else f"more than {MAX_SEEDS}" for x in (lo, hi)]
        return f"{text} ({ends[0]} to {ends[1]} within 2 Monte Carlo SE)"

    mde = (f"the smallest {'interaction' if interaction else 'improvement'} it calls "
           f"'{claim}' with probability 0.8 with these seeds is {u.amount(pw.mde)}"
           if math.isfinite(pw.mde) else
           f"with {pw.n} seeds no {'interaction' if interaction else 'improvement'} is called "
           f"'{claim}' with probability 0.8")
    level = (f", each at Holm's first level over {pw.m} contrasts (so lower bounds: the "
             "step-down is never stricter)"
             if pw.m > 1 else "")
    return (f"Power of this verdict ({pw.simulations} simulated studies, SE {pw.mc_se:.2f}"
            f"{level}): planning with normal per-seed differences and the sd's 80% upper "
            f"bound, {u.amount(pw.sd_upper)} (observed {u.amount(pw.sd)} over {pw.n} seeds; "
            "a normal-theory bound: under heavy-tailed differences it covers the true sd "
            "only about half the time, so these plans are then optimistic), "
            f"the rule says '{claim}' with probability {pw.power_better:.2f} at {size}"
            f"{toward} ({pw.effect_rule}) and would need "
            f"{seeds(pw.seeds_better, pw.seeds_better_range)} for 0.8; "
            f"it says '{null}' with probability {pw.power_equivalent:.2f} at no difference "
            f"and would need {seeds(pw.seeds_equivalent, pw.seeds_equivalent_range)} for "
            f"0.8; {mde}.")


def divergence_sentence(c: Contrast, *, sequential: bool = False) -> str:
    """Divergence among the contrast's paired seeds ('' when none diverged)."""
    dv = c.divergence
    if not (dv.arm_only or dv.baseline_only or dv.both):
        return ""
    k = dv.arm_only + dv.baseline_only
    label = " (a fixed-sample test, not adjusted for the sequential looks)" if sequential else ""
    test = (f"the exact test of equal divergence rates on the {plural(k, 'discordant seed')} "
            f"gives {p_clause(dv.p_value)}{label}" if k else
            "no seed diverged on one side only, so the rates cannot differ")
    which = "; ".join(f"{who} on seed{'s' if len(ss) > 1 else ''} {', '.join(map(str, ss))}"
                      for who, ss in ((c.arm, dv.arm_seeds), (c.baseline, dv.baseline_seeds))
                      if ss)
    if sequential:
        how = ("from the first look with a diverged seed, its claims come from the joint "
               "outcome per seed (a diverged run below every finished one) by the exact "
               "signed-rank test, each look spending only its share of the level; the "
               "repeated CI is of the differences where both finished")
    elif c.estimand == ESTIMAND_MEDIAN:
        how = ("its decision and its 95% CI are those of the joint outcome's median per "
               "seed (a diverged run below every finished one), by the exact sign test, "
               "while the mean difference is over the seeds where both finished")
    elif c.estimand != ESTIMAND_MEAN:
        how = ("its decision and its 95% CI are those of the joint outcome per seed (a "
               "diverged run below every finished one: the exact signed-rank test and its "
               "inversion, about the outcome's pseudo-median), while the mean difference "
               "above is over the seeds where both finished")
    else:
        how = "a diverged run counts as the worst outcome"
    return (f"Divergence: {c.arm} diverged on {dv.arm_only + dv.both} and {c.baseline} on "
            f"{dv.baseline_only + dv.both} of {dv.paired} paired seeds ({dv.both} on both"
            f"{'; ' + which if which else ''}); {test}. A diverged run is an outcome: {how}.")


def missing_sentence(c: Contrast) -> str:
    """The seeds this contrast lost, and why ('' when none)."""
    if not c.missing:
        return ""
    listed = join([f"{s} ({why})" for s, why in c.missing])
    return (f"{c.arm} vs {c.baseline}: seed{'s' if len(c.missing) > 1 else ''} {listed} "
            "left out of this contrast only.")


def optimism_sentence(rows: Sequence[Optimism], u: Units, quantity: str) -> str:
    """Each arm's selection optimism and how much it differs between arms."""
    usable = [o for o in rows if o.n]
    if not usable:
        return ""
    best = f"val_{quantity}"
    per_arm = join([f"{o.arm} {u.signed(o.mean)}" + (f" (sd {u.number(o.sd)})"
                                                     if math.isfinite(o.sd) else "")
                    for o in usable])
    text = (f"Selection optimism, the mean over seeds of {best} (the kept epoch scored on "
            f"the split that chose it) minus crossfit_val_{quantity}, in "
            f"{'points' if u.accuracy else 'improvement units'} (positive: the best-epoch "
            f"figure flatters the arm): {per_arm}.")
    if len(usable) > 1:
        hi = max(usable, key=lambda o: o.mean)
        lo = min(usable, key=lambda o: o.mean)
        text += (f" It differs between arms by up to {u.amount(hi.mean - lo.mean)} "
                 f"({hi.arm} minus {lo.arm}), a difference that comparing on {best} would "
                 "have mixed into the contrasts.")
    return text


def estimand_sentence(a: Analysis) -> str:
    """What the compared number is, and a warning when it is optimistic."""
    est = a.estimand
    m = est.metric
    if est.fallback:
        return (f"Compared on {m.name}: {m.description}. This store was written before the "
                f"cross-fitted metric existed ({plural(est.fallback, 'finished run')} without "
                f"crossfit_val_{m.quantity}), so the number compared was scored on the same "
                "validation images that chose its epoch: it is optimistic, and more so for "
                "noisier or longer training curves, which can favour one arm. Rerun the study "
                "with `--fresh` for the selection-free comparison.")
    if m.split == "external":
        return (f"Compared on {m.name}: {m.description}. The runs were trained outside "
                "ablate, so what chose each run's checkpoint, and on which images, is not "
                "known here: read the verdict as a verdict on these numbers.")
    if m.split == "test":
        return (f"Compared on {m.name}: {m.description}. With no validation split the last "
                "epoch is kept, so nothing was selected on the number compared.")
    return (f"Compared on {m.name}: {m.description}. No validation image scores the epoch "
            "it helped choose.")


def budget_text(a: Analysis) -> str:
    """'20 epochs, sgd lr=0.01', or each arm's own when they differ."""
    budgets = {(c.epochs, c.optimizer) for c in a.convergence}
    if len(budgets) == 1:
        epochs, optimizer = budgets.pop()
        return f"{plural(epochs, 'epoch')}, {optimizer}"
    return "each arm's own epochs and optimizer, as in the design"


def budget_clause(a: Analysis) -> str:
    """'' when every arm had converged; else the verdict's qualification in a clause."""
    late = [c for c in a.convergence if not c.converged]
    if not late:
        return ""
    who = "the arms" if len(late) == len(a.convergence) else join([c.arm for c in late])
    return (f"at this budget ({budget_text(a)}) {who} had not converged, so the verdict "
            "holds at this budget")


def budget_sentence(a: Analysis, *, rule: bool = True) -> str:
    """Which arms were still improving when training ended, by the rule stated in the
    sentence (`ablate.analysis._budget`; rule=False leaves the rule out, for a
    terminal); '' when every arm had converged."""
    late = [c for c in a.convergence if not c.converged]
    if not late:
        return ""
    counts = join([f"{c.arm} {c.improving} of {c.runs}" for c in late])
    if not rule:
        return (f"Budget: {budget_clause(a)} (runs still improving when training ended: "
                f"{counts}; the rule is in the report's warnings).")
    quantity = a.study.metric.selection.quantity
    way = "rising" if quantity == "accuracy" else "falling"
    k = min(LAST_EPOCHS, max(c.epochs for c in a.convergence))
    return (f"Budget: {budget_clause(a)}. Runs still improving when training ended: "
            f"{counts} (a run is still improving when its kept epoch is its last and its "
            f"validation {quantity} over its last {plural(k, 'epoch')} is still {way}, the "
            f"least-squares slope beyond {SLOPE_SE:g} standard errors; an arm has not "
            "converged when half or more of its runs are). Trained longer, the arms may "
            "differ by another amount, or not at all.")


def verdict_line(a: Analysis, c: Contrast) -> str:
    """One line per contrast for a terminal: 'dropout=off vs dropout=on: better,
    median +0.76 points (95% CI 0.69 to 0.78 points)' (the estimand's estimate: 'mean'
    under estimand = "mean")."""
    if c.n == 0:
        return f"{c.arm} vs {c.baseline}: {c.decision} (no seed where both sides finished)"
    u = units(a)
    name = "95% repeated CI" if a.sequential is not None else "95% CI"
    unit = f" {u.unit}" if u.unit else ""
    which = "median" if c.estimand == ESTIMAND_MEDIAN else "mean"
    return (f"{c.arm} vs {c.baseline}: {c.decision}, {which} {u.signed(estimate(c))}{unit} "
            f"({ci_clause(c, u, name)})")


# -- the study as a whole ------------------------------------------------------------
def counts(cs: Sequence[Contrast]) -> str:
    """'1 better and 2 inconclusive', in the order of the decision colours."""
    tally = {d: sum(c.decision == d for c in cs) for d in DECISION_COLOURS}
    return join([f"{k} {d}" for d, k in tally.items() if k])


def headline(a: Analysis) -> str:
    """A one-line title for the verdict box and the forest plot."""
    cs = a.contrasts
    lost = f"; no finished run: {join(list(a.lost))}" if a.lost else ""
    if len(cs) == 1:
        c = cs[0]
        return f"{c.arm} vs {c.baseline}: {c.decision}{lost}"
    return f"{counts(cs)} of {len(cs)} contrasts{lost}"


def sequential_sentence(res: SequentialResult) -> str:
    """Where a sequential study stands: its looks, and whether and why it stopped."""
    d = res.design
    if not res.looks_done:
        return (f"Sequential study: no look yet (the first is at {d.looks[0]} seeds per arm); "
                f"next: {res.next_seeds} seeds per arm.")
    looks = join([str(n) for n in res.looks_done])
    if res.stop:
        return (f"Sequential study: looked at {looks} seeds per arm and stopped at "
                f"{res.looks_done[-1]}: {res.why}.")
    return (f"Sequential study: looked at {looks} seeds per arm; {res.why}; next: "
            f"{res.next_seeds} seeds per arm.")


def _lead(a: Analysis, c: Contrast) -> str:
    if c.decision in ("better", "worse"):
        return "Yes, it matters."
    if c.decision == "equivalent":
        return "No: the difference is too small to matter."
    res = a.sequential
    if res is not None and res.stop:
        return f"Not settled by the maximum of {res.design.max_seeds} seeds per arm."
    if res is None:  # a fixed design has finished: these seeds settle nothing
        return "Not settled: no claim with these seeds."
    return "Not settled yet."


def answer_paragraph(a: Analysis) -> str:
    """The study's question answered in one paragraph of plain English."""
    u = units(a)
    cs = a.contrasts
    sequential = a.sequential is not None
    if len(cs) == 1:
        c = cs[0]
        body = [_lead(a, c), effect_sentence(c, a.effects[c.arm], u, sequential=sequential,
                                             family=a.family_of(c).size),
                f"Verdict: {c.decision}."]
    else:
        body = [f"Of {len(cs)} contrasts, {counts(cs)}."]
        for c in cs:
            body += [effect_sentence(c, a.effects[c.arm], u, sequential=sequential,
                                     family=a.family_of(c).size),
                     f"Verdict: {c.decision}."]
    if a.sequential is not None:
        body.append(sequential_sentence(a.sequential))
    lost = join([f"{c.arm} vs {c.baseline} lost {plural(len(c.missing), 'seed')}"
                 for c in cs if c.missing])
    body.append("Each contrast is paired by seed over the seeds where both sides have an "
                "outcome; a diverged run is the worst outcome"
                + (f"; {lost} (listed below)." if lost else "."))
    if a.estimand.fallback:
        body.append(f"Compared on {a.estimand.metric.name}, which is optimistic: this store "
                    "predates the cross-fitted metric.")
    if a.lost:
        body.append(f"Left out entirely, with no finished run: {join(list(a.lost))}.")
    if budget := budget_clause(a):
        body.append(_sentence(budget) + ".")
    return " ".join(body)


def methods_paragraph(a: Analysis) -> str:
    """How the verdicts were reached: the test, the interval, the rule, multiplicity."""
    fam = a.family
    alpha, m = fam.alpha, fam.size
    u = units(a)
    intervals = sorted({c.interval for c in a.contrasts})
    rope = u.rope(fam.rope)
    text = estimand_method(a.study.estimand) + f" Intervals: {join(intervals)}. "
    if a.sequential is None:
        how = MULTIPLICITY_WORDS.get(fam.multiplicity, fam.multiplicity)
        counted = ("every joint sign pattern counted" if fam.joint_exact else
                   f"random joint sign patterns, Monte Carlo standard error of an adjusted p "
                   f"at most {fam.joint_mc_se:.2g}")
        text += (f"'Better' is claimed when the adjusted p against Δ within the ROPE "
                 f"({rope}) on that side is at most {alpha / 2:g}, so the whole 95% CI lies "
                 f"beyond the ROPE; 'worse' likewise on the other side; 'equivalent' when the "
                 f"Holm-adjusted TOST p (two one-sided tests against |Δ| ≥ {u.amount(fam.rope)}) "
                 f"is at most {alpha:g}, so the 90% CI lies inside the ROPE; otherwise "
                 f"'inconclusive'. Multiplicity: {how} ({counted})"
                 f", over the {plural(m, 'contrast')}, so each kind of false claim is controlled "
                 "family-wise. The step-down assumes that each seed's vector of differences "
                 "is symmetric jointly, which a shared baseline with skewed noise breaks; "
                 "the calibration measures it.")
    else:
        d = a.sequential.design
        test = "sign test" if d.estimand == "median" else "sign-flip test"
        text += (f"Seeds were added in rounds of {d.step} per arm, looking at "
                 f"{join([str(n) for n in d.looks])} seeds per arm. Each claim ('better' or "
                 f"'worse' at {alpha / 2:g}, 'equivalent' by two one-sided tests at "
                 f"{alpha:g}) is an exact group-sequential {test} spending its level "
                 f"as (n/{d.max_seeds})^{d.rho:g}, conditional on the observed magnitudes; a "
                 "look where no rejection is possible spends nothing. Multiplicity: "
                 f"{fam.multiplicity}, over the {plural(m, 'contrast')}. The 95% repeated "
                 "confidence intervals hold at every look for each contrast (not adjusted "
                 "for multiplicity); no fixed-sample p value or interval is shown, because "
                 "after looking they are not valid.")
    mc = [c for c in a.contrasts if not c.exact]
    if mc:
        text += (" Counting every sign pattern was impossible for "
                 + join([f"{c.arm} vs {c.baseline} (its p of no difference has Monte Carlo "
                         f"standard error {c.mc_se:.2g})" for c in mc])
                 + ": their p values and intervals come from random sign patterns.")
    if a.factorial is not None and a.sequential is None:
        text += (" The main effects, the interaction and the effect of the first factor at "
                 "each level of the second (the simple effects) are one family of "
                 f"{m}; the simple effects are shown "
                 + ("because the interaction was decided." if a.simple is not None else
                    "only when the interaction is decided (it was not)."))
    text += (f" Floor: with n paired seeds no one-sided exact p is below 1/2^n, so 'better' "
             f"or 'worse' is possible from {floor_seeds(alpha / 2)} seeds (where every "
             f"contrast's seeds agree in sign, the step-down's adjusted p is that floor; "
             f"Holm's would be m/2^n) and 'equivalent' from {floor_seeds(alpha)}" + (
                 f", {floor_seeds(alpha / m)} at Holm's first level over {m} contrasts"
                 if m > 1 else "") + ". A seed whose run failed or did not finish is left "
             "out of the contrasts of its arm only. ")
    if a.study.estimand == "median":
        return text + (
            "A diverged run is an outcome, the worst one: the sign test counts a seed where "
            "only the arm diverged as below any shift, one where only the reference did "
            "as above, and one where both did as no difference, so divergence alone can "
            "make an arm 'worse'" + (", at every look within the same spending"
                                     if a.sequential is not None else "") + ".")
    text += ("A diverged run is an outcome, the worst "
             "one: a contrast with a diverged seed is decided on its joint outcome per seed "
             "(diverged below every finished run) by the exact signed-rank test, its "
             "estimand that outcome's pseudo-median" + (
                 ", from the first look with a diverged seed, each look spending only its "
                 "share of the level (the repeated intervals stay those of the differences "
                 "where both finished)" if a.sequential is not None else
                 " and its intervals the test's inversion")
             + ", so divergence alone can make an arm 'worse'.")
    return text
