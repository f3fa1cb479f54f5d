"""A study where its users already look: every run of a run directory in MLflow and in
TensorBoard, with its config, history, final metrics, checkpoint and the report
(`ablate publish RUN_DIR --to mlflow[=URI]`, `ablate study --log ...`).

The store stays the record: publishing only reads it, so a tracker that cannot be
reached costs nothing but a warning, and publishing later (or again) adds what is
missing. The trackers' packages are optional extras (`ablate.extras`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ablate.errors import UserError
from ablate.publish._mlflow import publish_mlflow
from ablate.publish._study import StudyFiles, read_study
from ablate.publish._tensorboard import publish_tensorboard, run_folder

__all__ = ["TRACKERS", "Target", "parse_target", "publish", "read_study", "run_folder"]

TRACKERS = ("mlflow", "tensorboard")


@dataclass(frozen=True)
class Target:
    tracker: Literal["mlflow", "tensorboard"]
    location: str | None  # a URI or path; None: the tracker's default

    def __str__(self) -> str:
        return self.tracker if self.location is None else f"{self.tracker}={self.location}"


def parse_target(text: str) -> Target:
    """'mlflow', 'mlflow=sqlite:///m.db', 'tensorboard=runs/tb' -> a Target."""
    name, _, location = text.partition("=")
    name = name.strip().lower()
    if name not in TRACKERS:
        raise UserError(f"unknown tracker {text!r}: expected mlflow[=URI] or "
                        "tensorboard[=DIR]")
    return Target(name, location.strip() or None)  # type: ignore[arg-type]


def publish(run_dir: Path, targets: Sequence[Target],
            say: Callable[[str], None] = print) -> list[str]:
    """Publish `run_dir` to every target; returns (and says) one line per target.
    Raises `UserError` for the first target that fails (the others are still tried
    first, so one unreachable tracker does not keep the study from another)."""
    study: StudyFiles = read_study(Path(run_dir))
    lines, errors = [], []
    for t in targets:
        try:
            line = (publish_mlflow if t.tracker == "mlflow" else publish_tensorboard)(
                study, t.location)
        except UserError as exc:
            errors.append(exc)
            continue
        say(line)
        lines.append(line)
    if errors:
        raise errors[0]
    return lines
