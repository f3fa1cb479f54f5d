from ablate.store._store import DB_NAME, Run, Store

__all__ = [
    "DB_NAME",
    "Run",
    "Store",
]
