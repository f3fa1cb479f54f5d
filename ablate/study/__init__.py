"""How a study runs: the plan (runs still to do, packed into cohorts), the executors that
train cohorts (in process; Ray in `_ray`), the driver that holds the lease, trains in
rounds, records every result and asks the analysis when a sequential study may stop,
and the progress display.

What a study *is* (the study file, `Study`, the study record) is `ablate.design`; what
trains a cohort is `ablate.engine`.
"""

from ablate.options import StudyOptions
from ablate.study._driver import Runtime, StudyRun, run_study, study_device
from ablate.study._execute import (
    CohortEvents,
    CohortOutcome,
    Executed,
    Executor,
    InProcessExecutor,
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
    queue_plan,
)
from ablate.study._progress import StudyProgress

__all__ = [
    "CohortEvents",
    "CohortOutcome",
    "CohortTask",
    "Executed",
    "Executor",
    "InProcessExecutor",
    "Plan",
    "Replica",
    "Runtime",
    "StudyOptions",
    "StudyProgress",
    "StudyRun",
    "check_subset",
    "cohorts_per_gpu",
    "estimate_seconds",
    "execute",
    "load_data",
    "plan_study",
    "queue_plan",
    "run_study",
    "study_device",
]
