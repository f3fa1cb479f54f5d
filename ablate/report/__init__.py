"""The report: an `Analysis` rendered as report.md, report.html (self-contained) and
report.json, with its figures; and the terminal tables (`ablate runs`, the end-of-study
summary, the Keras-style parameter summary). It renders; every number comes from the
analysis."""

from ablate.report._console import (
    RUN_COLUMNS,
    arm_summary,
    keras_summary,
    run_columns,
    runs_csv,
    runs_json,
    runs_table,
)
from ablate.report._format import DECISION_COLOURS, Units
from ablate.report._text import answer_paragraph, headline
from ablate.report._write import write_report_files

__all__ = [
    "RUN_COLUMNS",
    "DECISION_COLOURS",
    "Units",
    "answer_paragraph",
    "arm_summary",
    "headline",
    "keras_summary",
    "run_columns",
    "runs_csv",
    "runs_json",
    "runs_table",
    "write_report_files",
]
