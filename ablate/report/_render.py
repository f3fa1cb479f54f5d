"""One `Document`, two formats: Markdown (figures as files) and self-contained HTML.

The HTML carries its CSS and its figures (base64 PNG) inline and links to nothing, so
it opens offline and can be mailed as one file. Its first screen is the verdict box
(one coloured line per contrast) and the forest plot: the answer in ten seconds.
"""

from __future__ import annotations

import base64
from html import escape

from ablate.report._document import Document, Section, Table
from ablate.report._figures import Plot
from ablate.report._format import DECISION_COLOURS

__all__ = ["EXCLUDED_COLOUR", "FILES_DIR", "html", "markdown"]

EXCLUDED_COLOUR = "#333333"  # an arm with no completed run: not a decision, a fact
FILES_DIR = "report_files"  # PNGs referenced by report.md, beside it in the run directory


# -- Markdown ---------------------------------------------------------------------------
def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(t: Table) -> list[str]:
    lines = ["| " + " | ".join(_md_cell(h) for h in t.header) + " |",
             "|" + "|".join("---" for _ in t.header) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
    if t.caption:
        lines += ["", f"*{t.caption}*"]
    return [*lines, ""]


def _md_plot(p: Plot) -> list[str]:
    return [f"![{p.alt}]({FILES_DIR}/{p.name}.png)", "", f"*{p.title}*", ""]


def _md_section(s: Section) -> list[str]:
    out = [f"## {s.title}", ""]
    for para in s.paragraphs:
        out += [para, ""]
    out += [f"- {b}" for b in s.bullets]
    if s.bullets:
        out.append("")
    for t in s.tables:
        out += _md_table(t)
    for p in s.plots:
        out += _md_plot(p)
    if s.code:
        out += ["```toml", s.code.rstrip("\n"), "```", ""]
    return out


def markdown(doc: Document) -> str:
    out = [f"# {doc.title}", "", f"**Question.** {doc.question}", "",
           f"## Verdict: {doc.headline}", ""]
    for v in doc.verdicts:
        out += [f"- **{v.decision.upper()}** ({v.contrast}): {v.sentence} {v.why}", ""]
    if doc.lead_plot is not None:
        out += _md_plot(doc.lead_plot)
    out += ["## Answer", "", doc.answer, ""]
    for s in doc.sections:
        out += _md_section(s)
    return "\n".join(out).rstrip("\n") + "\n"


# -- HTML -------------------------------------------------------------------------------
_CSS = """
:root { --fg: #1b1b1b; --muted: #5b5b5b; --line: #dddddd; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--fg); margin: 0; background: #f6f6f4; }
main { max-width: 1000px; margin: 0 auto; padding: 24px 28px 60px; background: #ffffff; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 34px 0 10px; border-bottom: 1px solid var(--line);
     padding-bottom: 4px; }
.question { font-size: 17px; color: var(--muted); margin: 0 0 18px; }
.verdict { border: 2px solid #333333; border-radius: 8px; padding: 14px 18px 8px;
           margin: 0 0 18px; background: #fcfcfb; }
.verdict h2 { margin: 0 0 10px; border: 0; font-size: 21px; }
.v { display: flex; gap: 14px; align-items: flex-start; padding: 10px 0;
     border-top: 1px solid var(--line); }
.badge { flex: 0 0 136px; text-align: center; color: #ffffff; font-weight: 700;
         letter-spacing: 0.05em; padding: 8px 4px; border-radius: 6px; font-size: 15px; }
.v .what { font-weight: 600; }
.v p { margin: 2px 0; }
.v .why { color: var(--muted); font-size: 14px; }
figure { margin: 14px 0 22px; }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { color: var(--muted); font-size: 13px; text-align: center; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0 4px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left;
         vertical-align: top; }
th { background: #f0f0ee; }
td.mark { color: #ffffff; font-weight: 700; }
.caption { color: var(--muted); font-size: 13px; margin: 2px 0 12px; }
pre { background: #f3f3f1; padding: 10px; overflow-x: auto; font-size: 12.5px; }
ul { padding-left: 20px; }
"""


def _img(p: Plot) -> str:
    data = base64.b64encode(p.png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(p.alt)}">'
            f"<figcaption>{escape(p.title)}</figcaption></figure>")


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in t.header)
    body = []
    for i, row in enumerate(t.rows):
        mark = t.marks[i] if i < len(t.marks) else ""
        cells = [f"<td>{escape(c)}</td>" for c in row[:-1]]
        last = row[-1] if row else ""
        if mark:
            cells.append(f'<td class="mark" style="background:{DECISION_COLOURS[mark]}">'
                         f"{escape(last)}</td>")
        elif row:
            cells.append(f"<td>{escape(last)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    caption = f'<p class="caption">{escape(t.caption)}</p>' if t.caption else ""
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>'
            f"{''.join(body)}</tbody></table></div>{caption}")


def _html_section(s: Section) -> str:
    parts = [f"<h2>{escape(s.title)}</h2>"]
    parts += [f"<p>{escape(p)}</p>" for p in s.paragraphs]
    if s.bullets:
        parts.append("<ul>" + "".join(f"<li>{escape(b)}</li>" for b in s.bullets) + "</ul>")
    parts += [_html_table(t) for t in s.tables]
    parts += [_img(p) for p in s.plots]
    if s.code:
        parts.append(f"<pre>{escape(s.code)}</pre>")
    return "\n".join(parts)


def html(doc: Document) -> str:
    rows = []
    for v in doc.verdicts:
        colour = DECISION_COLOURS.get(v.decision, EXCLUDED_COLOUR)
        rows.append(
            f'<div class="v"><span class="badge" style="background:{colour}">'
            f"{escape(v.decision.upper())}</span><div><p class=\"what\">{escape(v.contrast)}"
            f"</p><p>{escape(v.sentence)}</p><p class=\"why\">{escape(v.why)}</p></div></div>")
    lead = _img(doc.lead_plot) if doc.lead_plot is not None else ""
    body = "\n".join([
        f"<h1>{escape(doc.title)}</h1>",
        f'<p class="question">{escape(doc.question)}</p>',
        f'<section class="verdict"><h2>Verdict: {escape(doc.headline)}</h2>'
        f"{''.join(rows)}</section>",
        lead,
        "<h2>Answer</h2>",
        f"<p>{escape(doc.answer)}</p>",
        *(_html_section(s) for s in doc.sections),
    ])
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(doc.title)}</title><style>{_CSS}</style></head>"
            f"<body><main>\n{body}\n</main></body></html>\n")
