"""What a study is, its design: the study file parsed into a typed, frozen `Study`
(question, arms, seeds, metric, ROPE, fixed or sequential), and the `StudyRecord` (the
study as trained, stored with its runs) that analyses and exports are built from, never a
re-parsed file.

The first stage of the pipeline: design -> plan and train (`ablate.study`,
`ablate.engine`) -> store -> analysis -> report.
"""

from ablate.design._parse import SpecError, load_study, parse_study
from ablate.design._record import StudyRecord, read_record
from ablate.design._study import AnatomyPlan, Arm, Factor, Sequential, Study

__all__ = [
    "AnatomyPlan",
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
