"""`ablate check`: the engine's layer math, training and evaluation checked on this
machine's device against a float64 NumPy reference (`_reference`), as Hypothesis
properties; a planted bug must fail them (tests/checks)."""

from ablate.checks._base import ENGINE, TOL_F64, Engine, Property, PropertyFailed, Tol, Tracker
from ablate.checks._run import run_checks

__all__ = [
    "ENGINE",
    "Engine",
    "TOL_F64",
    "Property",
    "PropertyFailed",
    "Tol",
    "Tracker",
    "run_checks",
]
