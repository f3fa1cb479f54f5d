"""The report: an `Analysis` rendered as report.md, report.html (self-contained) and
report.json, with its figures; and the terminal tables (`ablate runs`, the end-of-study
summary, the Keras-style parameter summary). It renders; every number comes from the
analysis."""

from ablate.report._anatomy import anatomy_lines, anatomy_markdown
from ablate.report._console import (
    RUN_COLUMNS,
    arm_summary,
    keras_summary,
    plan_table,
    run_columns,
    runs_csv,
    runs_html,
    runs_json,
    runs_table,
)
from ablate.report._document import floor_warnings
from ablate.report._format import DECISION_COLOURS, Units
from ablate.report._notebook import notebook_html
from ablate.report._render import FILES_DIR
from ablate.report._text import answer_paragraph, budget_sentence, headline, verdict_line
from ablate.report._write import write_report_files

__all__ = [
    "FILES_DIR",
    "RUN_COLUMNS",
    "DECISION_COLOURS",
    "Units",
    "anatomy_lines",
    "anatomy_markdown",
    "answer_paragraph",
    "arm_summary",
    "budget_sentence",
    "floor_warnings",
    "headline",
    "keras_summary",
    "notebook_html",
    "plan_table",
    "run_columns",
    "runs_csv",
    "runs_html",
    "runs_json",
    "runs_table",
    "verdict_line",
    "write_report_files",
]
