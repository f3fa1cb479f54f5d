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
