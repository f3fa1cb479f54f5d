"""The run store: one SQLite file per study (WAL) with every run's status, metrics and
epochs and the study record; atomic checkpoints beside it; and the lease that keeps one
driver (the only writer) per run directory."""

from ablate.store._lease import STALE_AFTER_S, Holder, LeaseHeld, LeaseLost
from ablate.store._store import DB_NAME, STATES_DIR, Run, Store, describe

__all__ = [
    "DB_NAME",
    "STALE_AFTER_S",
    "STATES_DIR",
    "Holder",
    "LeaseHeld",
    "LeaseLost",
    "Run",
    "Store",
    "describe",
]
