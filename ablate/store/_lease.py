"""One driver per run directory: a lease held in the store, renewed by a heartbeat.

`ablate study` takes the lease before it plans and gives it back when it ends. A second
driver on the same run directory finds the lease held and refuses with one line naming
the holder (pid, host, since when), or, with `--wait`, waits until it is free. A lease
whose holder is gone is taken over safely:

- on the same host, at once, when the holder's pid no longer exists (kill -9, a crash);
- from any host, when its heartbeat is older than `STALE_AFTER_S` (a machine that died).

Taking and checking the lease happen inside `BEGIN IMMEDIATE` transactions, so two
drivers cannot both take it; and every write of a lease holder checks, in the same
transaction, that it still holds it (fencing), so a driver that was paused past the
stale limit and lost its lease stops instead of writing beside its successor.
"""

import os
import socket
import sqlite3
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from ablate.errors import UserError

__all__ = ["HEARTBEAT_S", "STALE_AFTER_S", "Holder", "LeaseHeld", "LeaseLost", "Lease"]

HEARTBEAT_S = 10.0  # how often a holder renews its heartbeat
STALE_AFTER_S = 120.0  # a heartbeat this old means the holder is gone (12 missed beats)

SCHEMA = """
CREATE TABLE IF NOT EXISTS lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),  -- at most one holder
    token TEXT NOT NULL,                    -- the holder's random id (fencing)
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    since REAL NOT NULL,                    -- unix time taken
    heartbeat REAL NOT NULL                 -- unix time last renewed
);
"""


@dataclass(frozen=True)
class Holder:
    token: str
    pid: int
    host: str
    since: float
    heartbeat: float


class LeaseHeld(UserError):
    """Another live driver holds the run directory."""

    def __init__(self, holder: Holder, message: str, *, api: str | None = None) -> None:
        super().__init__(message, api=api)
        self.holder = holder


class LeaseLost(RuntimeError):
    """This driver's lease was taken over (it was presumed dead); it must stop writing."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def holder(db: sqlite3.Connection) -> Holder | None:
    row = db.execute("SELECT token, pid, host, since, heartbeat FROM lease").fetchone()
    return None if row is None else Holder(*row)


class Lease:
    """This process's claim on a store's database; `acquire` before writing."""

    def __init__(self, db: sqlite3.Connection, clock: Callable[[], float]) -> None:
        self.db, self.clock = db, clock
        self.token = uuid.uuid4().hex
        self.host, self.pid = socket.gethostname(), os.getpid()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def stale(self, h: Holder) -> bool:
        """Whether `h` is gone: dead pid on this host, or heartbeat too old."""
        if h.host == self.host and not _pid_alive(h.pid):
            return True
        return self.clock() - h.heartbeat > STALE_AFTER_S

    def try_acquire(self) -> Holder | None:
        """Take the lease if it is free, stale or ours; return the live holder otherwise."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            h = holder(self.db)
            if h is not None and h.token != self.token and not self.stale(h):
                self.db.execute("ROLLBACK")
                return h
            now = self.clock()
            self.db.execute("INSERT OR REPLACE INTO lease VALUES (1, ?, ?, ?, ?, ?)",
                            (self.token, self.pid, self.host,
                             h.since if h is not None and h.token == self.token else now, now))
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        return None

    def check(self, db: sqlite3.Connection) -> None:
        """Inside a write transaction: raise `LeaseLost` unless this process holds it."""
        h = holder(db)
        if h is None or h.token != self.token:
            raise LeaseLost("this driver's lease on the run directory was taken over by "
                            f"{'nobody' if h is None else f'pid {h.pid} on {h.host}'}; it "
                            "stops here (rerun the command once the other driver is done)")

    def start_heartbeat(self, path: str) -> None:
        """Renew the heartbeat every HEARTBEAT_S from a thread with its own connection."""
        def beat() -> None:
            conn = sqlite3.connect(path, isolation_level=None, timeout=30)
            try:
                while not self._stop.wait(HEARTBEAT_S):
                    conn.execute("UPDATE lease SET heartbeat = ? WHERE token = ?",
                                 (self.clock(), self.token))
            finally:
                conn.close()
        self._beat = threading.Thread(target=beat, name="ablate-lease", daemon=True)
        self._beat.start()

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        self.db.execute("DELETE FROM lease WHERE token = ?", (self.token,))
