"""One driver per run directory: the store's lease, with real SQLite and real processes."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ablate.store import DB_NAME, STALE_AFTER_S, LeaseHeld, LeaseLost, Store


class Clock:
    """A clock the test moves by hand (unix seconds)."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _pretend_holder(run_dir: Path, *, pid: int, host: str, heartbeat: float) -> None:
    """Write a lease row as another driver would have (another host, or a dead pid)."""
    with sqlite3.connect(run_dir / DB_NAME) as db:
        db.execute("INSERT OR REPLACE INTO lease VALUES (1, 'other', ?, ?, ?, ?)",
                   (pid, host, heartbeat - 5, heartbeat))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # reaped: no process has this pid now (pids are not reused this fast)


def test_a_second_driver_is_refused_naming_the_first(tmp_path: Path) -> None:
    first = Store(tmp_path)
    first.acquire()
    second = Store(tmp_path)
    with pytest.raises(LeaseHeld) as caught:
        second.acquire()
    message = str(caught.value)
    assert f"pid {os.getpid()}" in message and "since" in message and "--wait" in message
    assert "\n" not in message
    first.close()  # gives it back
    second.acquire()
    second.close()


def test_a_live_holder_on_another_host_is_respected_until_its_heartbeat_is_stale(
        tmp_path: Path) -> None:
    clock = Clock()
    Store(tmp_path).close()  # create the schema
    store = Store(tmp_path, clock=clock)
    _pretend_holder(tmp_path, pid=1, host="elsewhere", heartbeat=clock.now)
    Store(tmp_path, clock=clock).close()
    with pytest.raises(LeaseHeld, match="pid 1 on elsewhere"):
        store.acquire()
    clock.now += STALE_AFTER_S - 1
    with pytest.raises(LeaseHeld):
        store.acquire()
    clock.now += 2  # now past the stale limit: the holder is presumed gone
    store.acquire()
    assert store.holder() is not None and store.holder().pid == os.getpid()  # type: ignore[union-attr]
    store.close()


def test_a_dead_pid_on_this_host_is_taken_over_at_once(tmp_path: Path) -> None:
    import socket

    clock = Clock()
    Store(tmp_path).close()
    _pretend_holder(tmp_path, pid=_dead_pid(), host=socket.gethostname(), heartbeat=clock.now)
    store = Store(tmp_path, clock=clock)
    store.acquire()  # no waiting for the heartbeat to go stale
    store.close()


def test_a_driver_that_lost_its_lease_stops_writing(tmp_path: Path) -> None:
    clock = Clock()
    old = Store(tmp_path, clock=clock)
    old.acquire()
    old.queue("a", 0, "h", {})
    # The old driver is paused (SIGSTOP, a suspended laptop) past the stale limit; its
    # heartbeat thread is paused too, which we stand in for by freezing its beat time.
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        db.execute("UPDATE lease SET host = 'paused-host'")
    clock.now += STALE_AFTER_S + 1
    new = Store(tmp_path, clock=clock)
    new.acquire()
    with pytest.raises(LeaseLost, match="taken over"):
        old.queue("a", 1, "h", {})
    assert [r.seed for r in new.runs()] == [0]  # the old driver's write did not land
    new.close()
    old.lease = None  # it lost the lease: nothing of its own to give back
    old.close()


HOLD = """
import sys, time
from ablate.store import Store
store = Store(sys.argv[1])
store.acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
store.close()
"""


def test_wait_polls_until_the_holder_gives_it_back(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), "1.0"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    told: list = []
    store = Store(tmp_path)
    store.acquire(wait=True, poll_s=0.05, on_wait=told.append)
    assert holder.wait(timeout=30) == 0  # it gave the lease back before we got it
    holder.stdout.close()
    assert len(told) == 1 and told[0].pid == holder.pid
    store.close()
