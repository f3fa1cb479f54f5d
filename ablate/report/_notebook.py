"""The report as a notebook shows it: the verdict box of report.html, the forest plot,
the answer and a link to the full report, as one HTML fragment (`Report._repr_html_`).

The fragment styles itself inline (a notebook's page has its own stylesheet, which a
<style> block would leak into) and carries its figure as base64, like report.html.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from ablate.analysis import Analysis
from ablate.report._document import verdicts
from ablate.report._format import DECISION_COLOURS
from ablate.report._render import EXCLUDED_COLOUR
from ablate.report._text import answer_paragraph, headline

__all__ = ["notebook_html"]

_BOX = ("border:2px solid #333;border-radius:8px;padding:10px 14px;margin:4px 0;"
        "background:#fcfcfb;color:#1b1b1b;font:14px/1.45 system-ui,sans-serif;"
        "max-width:900px")
_BADGE = ("display:inline-block;min-width:120px;text-align:center;color:#fff;"
          "font-weight:700;padding:4px 6px;border-radius:5px;margin-right:10px")


def notebook_html(a: Analysis, *, forest_png: bytes | None = None,
                  report_html: Path | None = None) -> str:
    """The verdict box (one coloured line per contrast, with its effect sentence), the
    forest plot when given, the answer, and where the full report is."""
    rows = []
    for v in verdicts(a):
        colour = DECISION_COLOURS.get(v.decision, EXCLUDED_COLOUR)
        rows.append(f'<div style="padding:6px 0;border-top:1px solid #ddd">'
                    f'<span style="{_BADGE};background:{colour}">{escape(v.decision.upper())}'
                    f"</span><b>{escape(v.contrast)}</b><br>{escape(v.sentence)}</div>")
    parts = [f'<div style="{_BOX}">',
             f'<div style="font-size:17px;font-weight:600">{escape(a.study.name)}: '
             f"{escape(headline(a))}</div>",
             f'<div style="color:#5b5b5b">{escape(a.study.question)}</div>', *rows]
    if forest_png is not None:
        data = base64.b64encode(forest_png).decode("ascii")
        parts.append(f'<img style="max-width:100%" alt="forest plot of the contrasts" '
                     f'src="data:image/png;base64,{data}">')
    parts.append(f'<p style="margin:6px 0">{escape(answer_paragraph(a))}</p>')
    if report_html is not None:
        parts.append(f'<p style="margin:6px 0;color:#5b5b5b">The full report: '
                     f'<a href="{escape(report_html.as_posix())}" target="_blank">'
                     f"{escape(str(report_html))}</a></p>")
    parts.append("</div>")
    return "\n".join(parts)
