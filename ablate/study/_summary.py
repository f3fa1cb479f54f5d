"""What a study prints before it trains (the dry run: can these seeds decide?) and when it
ends (the answer: each contrast's verdict in one line, the caveats, where the report is
and what to do next).

Each verdict line and caveat is the report's own sentence (`ablate.report`), so the
terminal and report.html cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from ablate.analysis import Analysis, Reach, reach
from ablate.design import Study
from ablate.report import budget_sentence, floor_warnings, headline, verdict_line

__all__ = ["outcome_lines", "print_outcome", "print_reach", "reach_lines"]


def _claims(r: Reach) -> str:
    over = f" over {r.contrasts} contrasts" if r.contrasts > 1 else ""
    agree = (f" (where the contrasts' seeds agree in sign; {r.directional_any} whatever "
             "the others show)" if r.contrasts > 1 and r.directional_any > r.directional
             else "")
    return (f"'better' or 'worse' needs at least {r.directional} seeds{agree} and "
            f"'equivalent' at least {r.equivalent}{over}")


def reach_lines(study: Study) -> list[str]:
    """Whether each claim is reachable with the planned seeds, and if not, the fewest
    seeds that make it so."""
    r = reach(study)
    planned = (f"up to {r.seeds} seeds per arm (sequential)" if study.sequential is not None
               else f"{r.seeds} seeds per arm")
    if r.can_claim_direction and r.can_claim_equivalence:
        return [f"Reach: with {planned} every claim is possible ({_claims(r)})."]
    floor = f"no exact one-sided p can be below 1/2^{r.seeds} = {r.floor:.3g}"
    if not r.can_claim_equivalence:
        what = "no claim is possible whatever the data"
    else:
        what = ("'better' and 'worse' are impossible whatever the data (only 'equivalent' "
                "can be claimed)")
    return [f"Reach: with {planned}, {floor}, so {what}: {_claims(r)}.",
            f"Use at least {r.fewest} seeds per arm to be able to decide every claim."]


def print_reach(console: Console, study: Study) -> None:
    style = "" if len(lines := reach_lines(study)) == 1 else "[yellow]"
    for line in lines:
        console.print(f"{style}{line}" if style else line, highlight=False,
                      markup=bool(style))


def outcome_lines(a: Analysis, run_dir: Path, written: Sequence[Path]) -> list[str]:
    """The verdict of each contrast (one line each), the caveats that qualify them (the
    floor of exact tests, an unconverged budget), the report and what to do next."""
    cs = a.contrasts
    if len(cs) == 1:
        lines = [f"Verdict: {verdict_line(a, cs[0])}"]
    else:
        lines = [f"Verdict: {headline(a)}", *(f"  {verdict_line(a, c)}" for c in cs)]
    lines += [f"  {arm}: no finished run, in no contrast" for arm in a.lost]
    lines += floor_warnings(a)
    if budget := budget_sentence(a, rule=False):
        lines.append(budget)
    html = next((p for p in written if p.suffix == ".html"), None)
    if html is not None:
        others = ", ".join(p.name for p in written if p != html)
        lines.append(f"Report: {html}" + (f" (and {others})" if others else ""))
    lines.append(f"Next: open the report in a browser, then `ablate serve {run_dir}` to "
                 "try its best model (a drawing page at http://127.0.0.1:8000/).")
    return lines


def print_outcome(console: Console, a: Analysis, run_dir: Path, written: Sequence[Path]
                  ) -> None:
    for line in outcome_lines(a, run_dir, written):
        console.print(line, highlight=False, markup=False)
