from ablate.study._conventions import (
    CONVENTIONS,
    Conventions,
    optimizer_config,
    upgrade_config_dict,
)
from ablate.study._execute import InProcessExecutor, check_subset, execute, load_data, reset_run_dir
from ablate.study._plan import CohortTask, Plan, Replica, estimate_seconds, plan_study
from ablate.study._spec import Arm, SpecError, Study, load_study, parse_study

__all__ = [
    "Arm",
    "CONVENTIONS",
    "CohortTask",
    "Conventions",
    "InProcessExecutor",
    "Plan",
    "Replica",
    "SpecError",
    "Study",
    "check_subset",
    "estimate_seconds",
    "execute",
    "load_data",
    "load_study",
    "optimizer_config",
    "parse_study",
    "plan_study",
    "reset_run_dir",
    "upgrade_config_dict",
]
