"""A run directory as a tracker sees it: the study, each finished run with its config,
per-epoch history, final metrics and files, and the report's files; read once from the
store for every tracker.

Names are the ones `ablate runs` and report.json use, so what a tracker shows reads the
same as ablate's own tables: a run's final metrics by their `ablate runs` column
(`crossfit_val_accuracy`, ...), its per-epoch history as `epoch/<name>`, its factor
levels by factor name, its config as `config.<field>`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.design import Study, StudyRecord, read_record
from ablate.metric import RUN_METRICS
from ablate.store import Run, Store

__all__ = ["EPOCH_METRICS", "PublishedRun", "StudyFiles", "flat_config", "read_study"]

EPOCH_METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
_PUBLISHED = ("done", "diverged", "failed")  # pending and running runs wait for later
_REPORT_FILES = ("report.md", "report.html", "report.json")


@dataclass(frozen=True)
class PublishedRun:
    run: Run
    levels: tuple[tuple[str, str], ...]  # the arm's (factor, level)
    config: Mapping[str, str]  # config.<field> -> value as text
    history: tuple[Mapping[str, Any], ...]  # per-epoch rows of the store
    metrics: Mapping[str, float]  # final metrics; NaN for a diverged run's missing ones
    files: tuple[Path, ...]  # the checkpoint and its JSON sidecar, where they exist

    @property
    def key(self) -> str:
        """What identifies the run across publishes: arm, seed and config hash."""
        return f"{self.run.arm}/{self.run.seed}/{self.run.config_hash}"


@dataclass(frozen=True)
class StudyFiles:
    record: StudyRecord
    runs: tuple[PublishedRun, ...]
    report: tuple[Path, ...]  # report.{md,html,json} and report_files/*, if written
    run_dir: Path

    @property
    def study(self) -> Study:
        return self.record.study


def flat_config(config: Mapping[str, Any], prefix: str = "config") -> dict[str, str]:
    """A nested config as flat `config.a.b` -> text (lists and None as JSON)."""
    out: dict[str, str] = {}
    for k, v in config.items():
        name = f"{prefix}.{k}"
        if isinstance(v, Mapping):
            out.update(flat_config(v, name))
        elif isinstance(v, str):
            out[name] = v
        else:
            out[name] = json.dumps(v, sort_keys=True)
    return out


def read_study(run_dir: Path) -> StudyFiles:
    """Everything a tracker shows of `run_dir`. Raises `UserError` without a store."""
    store = Store.open_existing(Path(run_dir))
    try:
        record = read_record(store)
        study = record.study
        arms = {a.name: a for a in study.arms}
        epochs = {a: store.epochs(a) for a in arms}
        out = []
        for run in store.runs():
            if run.arm not in arms or run.status not in _PUBLISHED:
                continue
            arm = arms[run.arm]
            # A diverged run's missing metrics are NaN (what marks it diverged when read
            # back); a finished run's missing ones (an older store) are left out.
            metrics = {m: float(v) if (v := getattr(run, m)) is not None else math.nan
                       for m in RUN_METRICS
                       if run.status == "diverged" or getattr(run, m) is not None
                       } if run.status != "failed" else {}
            for extra in ("seconds", "epochs", "best_epoch"):
                if getattr(run, extra) is not None:
                    metrics[extra] = float(getattr(run, extra))
            files: tuple[Path, ...] = ()
            if run.checkpoint:
                ckpt = store.dir / run.checkpoint
                files = tuple(p for p in (ckpt, ckpt.with_suffix(".json")) if p.is_file())
            out.append(PublishedRun(
                run=run, levels=arm.levels,
                config=flat_config(store.run_config(run.arm, run.seed)),
                history=tuple(e for e in epochs[run.arm] if e["seed"] == run.seed),
                metrics=metrics, files=files))
        report = [store.dir / f for f in _REPORT_FILES if (store.dir / f).is_file()]
        report += sorted((store.dir / "report_files").glob("*.png"))
        return StudyFiles(record, tuple(out), tuple(report), store.dir)
    finally:
        store.close()
