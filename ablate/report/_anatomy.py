"""The anatomy of an arm's spread, rendered: terminal lines and a Markdown section.

Input: the JSON values of `anatomy.json` (`AnatomyStudy.to_dict()`, which `ablate study
--anatomy` writes beside the store), so a report reads it as stored; every number comes
from there. Metric values in points (x 100, an accuracy); variances as sds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["ANATOMY_TITLE", "anatomy_lines", "anatomy_markdown", "anatomy_paragraphs",
           "anatomy_table"]

ANATOMY_TITLE = "Anatomy of the spread"

_WORDS = {"init": "initialization", "order": "data order", "mask": "dropout masks",
          "all": "all streams"}


def _sd(var: float | None) -> str:
    return "n/a" if var is None else f"{100 * math.sqrt(max(var, 0.0)):.3f}"


def _share(s: Mapping[str, Any]) -> str:
    if s.get("share") is None:
        return ""
    lo, hi = s["share_ci"]
    return f"{s['share']:.0%} ({lo:.0%}-{hi:.0%})"


def _rows(a: Mapping[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(stream, runs, sd, sd's 95% interval, share and its interval) per source."""
    sources = list(a["sources"]) + ([a["all_streams"]] if a.get("all_streams") else [])
    return [(_WORDS.get(s["stream"], s["stream"]), str(s["n"]), _sd(s["var"]),
             f"{_sd(s['var_ci'][0])}-{_sd(s['var_ci'][1])}", _share(s)) for s in sources]


def _cost(d: Mapping[str, Any]) -> str:
    runs, t = len(d["runs"]), float(d["seconds"])
    took = f"{t:.1f} s" if t < 10 else f"{t:.0f} s"
    budget = "" if "epochs" not in d else \
        f"; {d['epochs']} epoch{'' if d['epochs'] == 1 else 's'} on " \
        f"{d['train_images']:,} training images"
    return (f"{runs} runs ({d['seeds']} per stream, the others at seed {d['reference']}"
            f"{budget}) in one cohort, {took} on {d['device']}")


def _images(a: Mapping[str, Any]) -> list[str]:
    if a.get("image_sd") is None:
        return []
    return [f"Image sampling alone (another {a['images']:,} images like these) moves one "
            f"run's accuracy by an sd of {100 * a['image_sd']:.3f} points (binomial), "
            "whatever the seed."]


def anatomy_lines(d: Mapping[str, Any]) -> list[str]:
    """What `ablate study --anatomy` prints at the end."""
    a = d.get("anatomy")
    head = f"Anatomy of {d['arm']}'s spread: {_cost(d)}."
    if a is None:
        return [head, "Too few finished runs per stream for an anatomy (need 2 each)."]
    lines = [head, "  sd in points; share of the streams' summed variance, 95% intervals",
             f"  {'stream varied':<15} {'runs':>4} {'sd':>7} {'sd 95%':>15}  share"]
    lines += [f"  {s:<15} {n:>4} {sd:>7} {ci:>15}  {share}" for s, n, sd, ci, share in
              _rows(a)]
    if a.get("additivity") is not None:
        lines.append(f"  The streams' variances sum to {a['additivity']:.2f} x the variance "
                     "with every stream varied (1 if they added up).")
    lines += [f"  {line}" for line in _images(a)]
    lines.append(a["advice"])
    return lines


def anatomy_table(d: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """(header, rows) of the report's table; no rows when there is no anatomy."""
    a = d.get("anatomy")
    if a is None:
        return (), ()
    header = ("stream varied", "runs", f"sd of {a['metric']} (points)", "sd 95%",
              "share of the streams' variance (95%)")
    return header, tuple(_rows(a))


def anatomy_paragraphs(d: Mapping[str, Any]) -> tuple[str, ...]:
    """The report section's sentences: what was trained, additivity, the advice."""
    a = d.get("anatomy")
    first = (f"Extra runs of {d['arm']}, one random stream varied at a time: {_cost(d)}. "
             "They are not part of any verdict.")
    if a is None:
        return first, "Too few finished runs per stream for an anatomy (need 2 each)."
    out = [first]
    if a.get("additivity") is not None:
        out.append(f"The streams' variances sum to {a['additivity']:.2f} times the variance "
                   "with every stream varied (training is not additive: one stream can move "
                   "a run almost as far as all of them).")
    return (*out, *_images(a), a["advice"])


def anatomy_markdown(d: Mapping[str, Any]) -> str:
    """The section as Markdown (a notebook or a file of its own)."""
    header, rows = anatomy_table(d)
    paragraphs = anatomy_paragraphs(d)
    out = [f"## {ANATOMY_TITLE}", "", paragraphs[0], ""]
    if rows:
        out += ["| " + " | ".join(header) + " |",
                "| --- |" + " ---: |" * (len(header) - 1)]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        out.append("")
    for p in paragraphs[1:]:
        out += [p, ""]
    return "\n".join(out)
