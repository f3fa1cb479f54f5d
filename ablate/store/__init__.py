"""The run store: one SQLite file per study (WAL) with every run's status, metrics and
epochs and the study record; atomic checkpoints beside it; the lease that keeps one
driver (the only writer) per run directory; the stored runs' configurations, flat,
to compare (`finished_configs`, `differences`); and `anatomy.json`, the anatomy runs
kept out of the runs table."""

from ablate.store._anatomy import ANATOMY_FILE, read_anatomy, write_anatomy
from ablate.store._configs import (
    UNKNOWN,
    differences,
    finished_configs,
    flatten,
    spell,
    varied_fields,
)
from ablate.store._lease import STALE_AFTER_S, Holder, LeaseHeld, LeaseLost
from ablate.store._store import DB_NAME, STATES_DIR, Run, Store, describe

__all__ = [
    "ANATOMY_FILE",
    "DB_NAME",
    "STALE_AFTER_S",
    "STATES_DIR",
    "UNKNOWN",
    "Holder",
    "LeaseHeld",
    "LeaseLost",
    "Run",
    "Store",
    "describe",
    "differences",
    "finished_configs",
    "flatten",
    "spell",
    "varied_fields",
    "read_anatomy",
    "write_anatomy",
]
