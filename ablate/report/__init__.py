from ablate.report._analysis import Curves
from ablate.report._console import arm_summary, keras_summary, runs_csv, runs_json, runs_table
from ablate.report._text import DECISION_COLOURS, Units
from ablate.report._write import write_report

__all__ = [
    "Curves",
    "DECISION_COLOURS",
    "Units",
    "arm_summary",
    "keras_summary",
    "runs_csv",
    "runs_json",
    "runs_table",
    "write_report",
]
