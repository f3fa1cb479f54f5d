from ablate.store._lease import STALE_AFTER_S, Holder, LeaseHeld, LeaseLost
from ablate.store._store import DB_NAME, Run, Store, describe

__all__ = [
    "DB_NAME",
    "STALE_AFTER_S",
    "Holder",
    "LeaseHeld",
    "LeaseLost",
    "Run",
    "Store",
    "describe",
]
