"""The verdict: a run directory -> its `Analysis` (the estimand, each arm's outcome per
seed, the contrasts paired per contrast, their decisions, and for a sequential study the
state of its looks); runs trained anywhere (`ablate analyze`) -> the same, through the
same code (`analyse_source`).

Between the store and the report: the report renders an `Analysis` and computes
nothing of its own; the study driver (`ablate.study`) asks `sequential_state` after each
round whether to stop, through the same code, so where a study stopped and what its
report says cannot disagree. The statistics themselves are pure functions in
`ablate.stats`.
"""

from ablate.analysis._analysis import ALPHA, Analysis
from ablate.analysis._budget import LAST_EPOCHS, SHARE, SLOPE_SE, Convergence
from ablate.analysis._contrasts import Effect, Factorial
from ablate.analysis._estimand import Estimand, Optimism
from ablate.analysis._external import analyse_source, read_analysis_file, sequential_source
from ablate.analysis._reach import Reach, family_size, reach
from ablate.analysis._run_dir import analyse_run_dir, sequential_state
from ablate.analysis._summaries import ArmSummary, Band, Curves, Failure
from ablate.analysis._unstable import SeedCurves
from ablate.analysis._where import DigitDifference, Ensemble, Flip, Where, WhereContrast

__all__ = [
    "ALPHA",
    "LAST_EPOCHS",
    "SHARE",
    "SLOPE_SE",
    "Analysis",
    "ArmSummary",
    "Band",
    "Convergence",
    "Curves",
    "DigitDifference",
    "Effect",
    "Ensemble",
    "Estimand",
    "Factorial",
    "Failure",
    "Flip",
    "Optimism",
    "Reach",
    "SeedCurves",
    "Where",
    "WhereContrast",
    "analyse_run_dir",
    "analyse_source",
    "family_size",
    "reach",
    "read_analysis_file",
    "sequential_source",
    "sequential_state",
]
