"""What a study is: the study file parsed into a typed, frozen `Study` (question, arms,
seeds, metric, ROPE, design), and the `StudyRecord` (the study as trained, stored with
its runs) that analyses and exports are built from, never a re-parsed file.

The first stage of the pipeline: spec -> plan and train (`ablate.study`, `ablate.engine`)
-> store -> analysis -> report.
"""

from ablate.spec._design import Arm, Factor, Sequential, Study
from ablate.spec._parse import SpecError, load_study, parse_study
from ablate.spec._record import StudyRecord, read_record

__all__ = [
    "Arm",
    "Factor",
    "Sequential",
    "SpecError",
    "Study",
    "StudyRecord",
    "load_study",
    "parse_study",
    "read_record",
]
