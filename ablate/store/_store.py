"""The run store: one SQLite file per study (WAL), plus one checkpoint per run.

A run's row moves pending -> running -> done | failed | diverged. The driver is the
only writer (it holds the store's lease, `_lease`); every state change is one
transaction, so a kill -9 at any moment leaves a store that a rerun completes with no
run lost or duplicated. Checkpoints are safetensors files with a JSON sidecar, written
atomically; beside each, the run's per-image predictions (`ablate.predictions`, a
compressed .npz tagged with the run's config hash), also atomic. The study record (what
the runs are runs of) is one JSON document in the `study` table; the `meta` key-value
table is only read, for stores written before it.
"""

import hashlib
import json
import math
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import save
from torch import Tensor

from ablate.errors import UserError
from ablate.files import atomic_write, remove_temporaries
from ablate.metric import RUN_METRICS
from ablate.predictions import Predictions, PredictionSet, decode, encode
from ablate.store._lease import SCHEMA as LEASE_SCHEMA
from ablate.store._lease import Holder, Lease, LeaseHeld, holder

__all__ = ["DB_NAME", "FINISHED", "HALF_COLUMNS", "STATES_DIR", "STATUSES", "Run", "Store",
           "describe"]

DB_NAME = "runs.sqlite"
STATES_DIR = "resume"  # the saved states of cohorts in training (`ablate.study._resume`)
STATUSES = ("pending", "running", "done", "failed", "diverged")
FINISHED = ("done", "diverged")  # a rerun with the same config does not repeat these
# Per-epoch metrics of the two validation halves (A, B), for cross-fitting.
HALF_COLUMNS = ("val_loss_a", "val_accuracy_a", "val_loss_b", "val_accuracy_b")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS study (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    record TEXT NOT NULL                  -- ablate.study.StudyRecord as JSON
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);  -- legacy
CREATE TABLE IF NOT EXISTS runs (
    arm TEXT NOT NULL,
    seed INTEGER NOT NULL,
    config_hash TEXT NOT NULL,
    config TEXT NOT NULL,                 -- resolved RunConfig as JSON
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed', 'diverged')),
    device TEXT,
    started REAL,                         -- unix time
    seconds REAL,                         -- this run's share of its cohort's wall time
    epochs INTEGER,                       -- epochs trained
    best_epoch INTEGER,                   -- epoch whose weights were kept (on validation)
    train_loss REAL, val_loss REAL, val_accuracy REAL, test_loss REAL, test_accuracy REAL,
    crossfit_val_loss REAL, crossfit_val_accuracy REAL,  -- selection-free (ablate.metric)
    checkpoint TEXT,                      -- path relative to the run directory
    error TEXT,
    PRIMARY KEY (arm, seed)
);
CREATE TABLE IF NOT EXISTS epochs (
    arm TEXT NOT NULL,
    seed INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    train_loss REAL, train_accuracy REAL, val_loss REAL, val_accuracy REAL,
    val_loss_a REAL, val_accuracy_a REAL, val_loss_b REAL, val_accuracy_b REAL,
    seconds REAL,
    grad_norms TEXT NOT NULL,             -- JSON list, one per Dense layer
    weight_norms TEXT NOT NULL,           -- JSON list, one per Dense layer
    PRIMARY KEY (arm, seed, epoch)
);
"""


@dataclass(frozen=True)
class Run:
    arm: str
    seed: int
    config_hash: str
    status: str
    device: str | None
    seconds: float | None
    epochs: int | None
    best_epoch: int | None
    train_loss: float | None
    val_loss: float | None
    val_accuracy: float | None
    crossfit_val_loss: float | None
    crossfit_val_accuracy: float | None
    test_loss: float | None
    test_accuracy: float | None
    checkpoint: str | None
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _finite(x: float) -> float | None:
    return x if x is not None and math.isfinite(x) else None


class Store:
    """A study's run directory: `runs.sqlite` and `checkpoints/`."""

    def __init__(self, run_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock  # unix time; tests pass their own
        self.lease: Lease | None = None  # set by `acquire`: this driver writes
        self.removed: list[Path] = []  # by `acquire`: temporary files killed writers left
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.dir / DB_NAME, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA + LEASE_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Add the columns later versions introduced to a store an older version wrote."""
        for table, columns in (("runs", ("crossfit_val_loss", "crossfit_val_accuracy")),
                               ("epochs", HALF_COLUMNS)):
            have = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
            for column in columns:
                if column not in have:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} REAL")

    @classmethod
    def open_existing(cls, run_dir: Path) -> "Store":
        """Open a run directory that must already hold a store (for `runs`, `report`...)."""
        if not (Path(run_dir) / DB_NAME).is_file():
            raise UserError(f"{run_dir}: no {DB_NAME} here; run `ablate study STUDY.toml` first "
                            "or point at runs/<study name>/")
        return cls(run_dir)

    def close(self) -> None:
        if self.lease is not None:
            self.lease.release()
            self.lease = None
        self.db.close()

    def acquire(self, *, wait: bool = False, poll_s: float = 1.0,
                on_wait: Callable[[Holder], None] | None = None) -> None:
        """Become this run directory's one driver (see `_lease`); `LeaseHeld` if another
        live driver holds it, unless `wait`, which polls until it is free. Then remove the
        temporary files of writes that a killed driver left unfinished (`removed`)."""
        lease = Lease(self.db, self.clock)
        told = False
        while (h := lease.try_acquire()) is not None:
            if not wait:
                busy = f"{self.dir} is in use by another `ablate study` " \
                    f"({describe(h, self.clock())}); wait for it to finish, or rerun with "
                raise LeaseHeld(h, busy + "--wait to start when it does",
                                api=busy + "wait=True to start when it does")
            if on_wait is not None and not told:
                on_wait(h)
                told = True
            time.sleep(poll_s)
        lease.start_heartbeat(str(self.dir / DB_NAME))
        self.lease = lease
        # The only writer now: a temporary file here is a killed writer's, never finished.
        self.removed = remove_temporaries(self.dir)

    def reset(self) -> None:
        """`--fresh`: forget every earlier run and the record (the lease stays held)."""
        with self.transaction() as db:
            for table in ("runs", "epochs", "study", "meta"):
                db.execute(f"DELETE FROM {table}")
        shutil.rmtree(self.dir / "checkpoints", ignore_errors=True)
        shutil.rmtree(self.dir / STATES_DIR, ignore_errors=True)

    def holder(self) -> Holder | None:
        """Who holds the lease now, if anyone (live or not)."""
        return holder(self.db)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if self.lease is not None:
                self.lease.check(self.db)
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- the study record ---------------------------------------------------------------
    def write_record(self, text: str) -> None:
        """Store the study record (JSON text), replacing any earlier one."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO study VALUES (1, ?)", (text,))

    def record_text(self) -> str | None:
        row = self.db.execute("SELECT record FROM study").fetchone()
        return None if row is None else str(row[0])

    def legacy_meta(self) -> dict[str, Any]:
        """The key-value table of stores written before the study record existed."""
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    # -- runs -------------------------------------------------------------------------
    def is_finished(self, arm: str, seed: int, config_hash: str) -> bool:
        """True when (arm, seed) already finished (done or diverged) with this config."""
        row = self.db.execute("SELECT config_hash, status FROM runs WHERE arm = ? AND seed = ?",
                              (arm, seed)).fetchone()
        return bool(row and row[0] == config_hash and row[1] in FINISHED)

    def queue(self, arm: str, seed: int, config_hash: str, config: dict[str, Any]) -> None:
        """(Re)queue (arm, seed) as pending for this config, dropping any older epochs."""
        with self.transaction() as db:
            db.execute("DELETE FROM epochs WHERE arm = ? AND seed = ?", (arm, seed))
            db.execute("INSERT OR REPLACE INTO runs (arm, seed, config_hash, config, status) "
                       "VALUES (?, ?, ?, ?, 'pending')",
                       (arm, seed, config_hash, json.dumps(config, sort_keys=True)))

    def mark(self, arm: str, seeds: list[int], status: str, *, device: str | None = None,
             error: str | None = None) -> None:
        assert status in STATUSES
        with self.transaction() as db:
            db.executemany(
                "UPDATE runs SET status = ?, device = COALESCE(?, device), error = ?, "
                "started = CASE WHEN ? = 'running' THEN ? ELSE started END "
                "WHERE arm = ? AND seed = ?",
                [(status, device, error, status, self.clock(), arm, s) for s in seeds])

    def finish(self, arm: str, seed: int, *, status: str, seconds: float,
               epochs: list[dict[str, Any]], best_epoch: int, metrics: dict[str, float],
               checkpoint: str | None, device: str | None = None) -> None:
        """Record a finished run and its per-epoch metrics in one transaction."""
        with self.transaction() as db:
            db.execute("DELETE FROM epochs WHERE arm = ? AND seed = ?", (arm, seed))
            values = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", *HALF_COLUMNS)
            db.executemany(
                f"INSERT INTO epochs (arm, seed, epoch, {', '.join(values)}, seconds, "
                f"grad_norms, weight_norms) VALUES ({', '.join('?' * (len(values) + 6))})",
                [(arm, seed, e["epoch"], *[_finite(e.get(k, math.nan)) for k in values],
                  e["seconds"],
                  json.dumps([_finite(x) for x in e["grad_norms"]]),
                  json.dumps([_finite(x) for x in e["weight_norms"]])) for e in epochs])
            db.execute(
                "UPDATE runs SET status = ?, seconds = ?, epochs = ?, best_epoch = ?, "
                + "".join(f"{k} = ?, " for k in RUN_METRICS)
                + "checkpoint = ?, device = COALESCE(?, device), error = NULL "
                "WHERE arm = ? AND seed = ?",
                (status, seconds, len(epochs), best_epoch,
                 *[_finite(metrics.get(k, math.nan)) for k in RUN_METRICS], checkpoint,
                 device, arm, seed))

    def runs(self) -> list[Run]:
        cols = ", ".join(Run.__dataclass_fields__)
        rows = self.db.execute(f"SELECT {cols} FROM runs ORDER BY arm, seed").fetchall()
        return [Run(*row) for row in rows]

    def run_config(self, arm: str, seed: int) -> dict[str, Any]:
        row = self.db.execute("SELECT config FROM runs WHERE arm = ? AND seed = ?",
                              (arm, seed)).fetchone()
        config: dict[str, Any] = json.loads(row[0])
        return config

    def epochs(self, arm: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM epochs" + (" WHERE arm = ?" if arm else "") + \
              " ORDER BY arm, seed, epoch"
        cur = self.db.execute(sql, (arm,) if arm else ())
        names = [d[0] for d in cur.description]
        out = []
        for row in cur.fetchall():
            rec = dict(zip(names, row, strict=True))
            rec["grad_norms"] = json.loads(rec["grad_norms"])
            rec["weight_norms"] = json.loads(rec["weight_norms"])
            out.append(rec)
        return out

    # -- checkpoints ------------------------------------------------------------------
    def checkpoint_path(self, arm: str, seed: int) -> Path:
        slug = re.sub(r"[^A-Za-z0-9._=+-]", "_", arm)
        return self.dir / "checkpoints" / slug / f"seed-{seed}.safetensors"

    def predictions_path(self, arm: str, seed: int) -> Path:
        return self.checkpoint_path(arm, seed).with_suffix(".predictions.npz")

    def write_predictions(self, arm: str, seed: int, predictions: Predictions,
                          config_hash: str) -> int:
        """Write a run's per-image predictions atomically; return the file's bytes."""
        data = encode(predictions, config_hash)
        atomic_write(self.predictions_path(arm, seed), data)
        return len(data)

    def predictions(self, arm: str, seed: int) -> Predictions | None:
        """A finished run's per-image predictions, or None where there are none: a run
        written before they were stored, a diverged or unfinished one, or a file another
        config of the run left (its config hash differs from the run's)."""
        row = self.db.execute("SELECT config_hash, status FROM runs WHERE arm = ? AND seed = ?",
                              (arm, seed)).fetchone()
        path = self.predictions_path(arm, seed)
        if row is None or row[1] != "done" or not path.is_file():
            return None
        try:
            predictions, config_hash = decode(path.read_bytes())
        except ValueError:
            return None
        return predictions if config_hash == row[0] else None

    def prediction_set(self, arms: list[str] | None = None,
                       seeds: set[int] | None = None) -> PredictionSet:
        """Every done run's predictions (of these arms and seeds, when given), in run
        order; the done runs without them are listed as missing."""
        found, missing = [], []
        for r in self.runs():
            if r.status != "done" or (arms is not None and r.arm not in arms) or \
                    (seeds is not None and r.seed not in seeds):
                continue
            p = self.predictions(r.arm, r.seed)
            if p is None:
                missing.append((r.arm, r.seed))
            else:
                found.append((r.arm, r.seed, p))
        return PredictionSet(tuple(found), tuple(missing))

    def write_checkpoint(self, arm: str, seed: int, state: dict[str, Tensor],
                         sidecar: dict[str, Any]) -> str:
        """Write weights and their JSON sidecar atomically; return the path relative to
        the run directory. The sidecar is written last, so its presence means complete."""
        path = self.checkpoint_path(arm, seed)
        weights = save({k: v.contiguous() for k, v in state.items()})
        atomic_write(path, weights, point="checkpoint")
        side = {**sidecar, "weights_sha256": hashlib.sha256(weights).hexdigest()}
        atomic_write(path.with_suffix(".json"),
                     json.dumps(side, indent=2, sort_keys=True).encode(),
                     point="checkpoint-sidecar")
        return str(path.relative_to(self.dir))


def describe(h: Holder, now: float) -> str:
    """'pid 123 on host-a since 2026-11-30 01:02:03 UTC, last heartbeat 4 s ago'."""
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(h.since))
    return f"pid {h.pid} on {h.host} since {since}, last heartbeat {now - h.heartbeat:.0f} s ago"
