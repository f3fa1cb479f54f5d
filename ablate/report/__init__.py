from ablate.report._analysis import Analysis, Curves
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
from ablate.report._run_dir import analyse_run_dir, sequential_state
from ablate.report._text import answer_paragraph, headline
from ablate.report._write import write_report

__all__ = [
    "RUN_COLUMNS",
    "Analysis",
    "Curves",
    "DECISION_COLOURS",
    "Units",
    "analyse_run_dir",
    "answer_paragraph",
    "arm_summary",
    "headline",
    "keras_summary",
    "run_columns",
    "runs_csv",
    "runs_json",
    "runs_table",
    "sequential_state",
    "write_report",
]
