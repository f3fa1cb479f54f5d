from ablate.study._design import Arm, Factor, Sequential, Study
from ablate.study._execute import (
    Executed,
    Executor,
    InProcessExecutor,
    Outcome,
    Progress,
    check_subset,
    execute,
    load_data,
)
from ablate.study._plan import (
    CohortTask,
    Plan,
    Replica,
    cohorts_per_gpu,
    estimate_seconds,
    plan_study,
)
from ablate.study._record import StudyRecord, read_record
from ablate.study._spec import SpecError, load_study, parse_study

__all__ = [
    "Arm",
    "CohortTask",
    "Executed",
    "Executor",
    "Factor",
    "InProcessExecutor",
    "Outcome",
    "Plan",
    "Progress",
    "Replica",
    "Sequential",
    "SpecError",
    "Study",
    "StudyRecord",
    "check_subset",
    "cohorts_per_gpu",
    "estimate_seconds",
    "execute",
    "load_data",
    "load_study",
    "parse_study",
    "plan_study",
    "read_record",
]
