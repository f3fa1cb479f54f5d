"""How a study shows its progress: live in a terminal, a line per cohort in a log.

In a terminal, one bar covers every run of the study (steps, elapsed, ETA), and under
it each cohort in training has a line of its own that updates in place: which runs,
the epoch, and its replicas' training loss and validation accuracy (mean and range).
When the output is not a terminal (a log, CI), nothing updates in place: a cohort in
training prints its epoch line at most every `LOG_EVERY` seconds (a study can be a
single packed cohort, and a log should not stay silent for its whole length), and one
line when it finishes, with the same numbers.
"""

import time
from collections.abc import Callable

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ablate.engine import Epoch
from ablate.study._execute import CohortOutcome
from ablate.study._plan import CohortTask, Plan

__all__ = ["LOG_EVERY", "StudyProgress", "epoch_line"]

LOG_EVERY = 30.0  # seconds between a cohort's epoch lines in a log


def _spread(values: np.ndarray, scale: float, digits: int, unit: str = "") -> str:
    """'97.12% (96.90-97.40)': mean and range over the replicas still training."""
    v = values[np.isfinite(values)] * scale
    if v.size == 0:
        return "n/a"
    if v.size == 1:
        return f"{v[0]:.{digits}f}{unit}"
    return f"{v.mean():.{digits}f}{unit} ({v.min():.{digits}f}-{v.max():.{digits}f})"


def epoch_line(record: Epoch, epochs: int) -> str:
    """'epoch 3/20  loss 0.231 (0.210-0.260)  val 97.12% (96.90-97.40)'."""
    line = f"epoch {record.epoch}/{epochs}  loss {_spread(record.train_loss, 1, 3)}"
    if np.isfinite(record.val_accuracy).any():
        line += f"  val {_spread(record.val_accuracy, 100, 2, '%')}"
    return line


class StudyProgress:
    """The `CohortEvents` the study driver reports to, shown; a context manager around
    the display."""

    def __init__(self, plan: Plan, console: Console, *, log_every: float = LOG_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.plan, self.console, self.log_every, self.clock = plan, console, log_every, clock
        self.live = console.is_terminal
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(bar_width=24),
                            MofNCompleteColumn(), TextColumn("steps"), TimeElapsedColumn(),
                            TextColumn("ETA"), TimeRemainingColumn(), console=console,
                            disable=not self.live)
        self.total = self.bar.add_task(f"training {plan.runs} runs", total=plan.total_steps)
        self.rows: dict[CohortTask, TaskID] = {}
        self.done_steps: dict[CohortTask, int] = {}
        self.began: dict[CohortTask, float] = {}
        self.logged: dict[CohortTask, float] = {}  # when each cohort last printed (log)

    def __enter__(self) -> "StudyProgress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)

    # -- the driver's CohortEvents protocol ---------------------------------------------
    def started(self, task: CohortTask) -> None:
        redo = self.done_steps.get(task, 0)  # a retried cohort starts over
        if redo:
            self.bar.advance(self.total, -redo)
        self.done_steps[task] = 0
        self.began[task] = self.clock()
        if task not in self.rows:
            self.rows[task] = self.bar.add_task(f"  {task.label}: starting",
                                                total=self.plan.steps(task))
        else:
            self.bar.reset(self.rows[task], description=f"  {task.label}: retrying")

    def advanced(self, task: CohortTask, steps: int) -> None:
        self.done_steps[task] = self.done_steps.get(task, 0) + steps
        self.bar.advance(self.total, steps)
        if task in self.rows:
            self.bar.advance(self.rows[task], steps)

    def epoch(self, task: CohortTask, record: Epoch) -> None:
        line = f"  {task.label}: {epoch_line(record, task.epochs)}"
        if task in self.rows:
            self.bar.update(self.rows[task], description=line)
        now = self.clock()
        if not self.live and now - self.logged.get(task, self.began.get(task, now)) >= \
                self.log_every:
            self.logged[task] = now
            self.console.print(line, highlight=False)

    # -- the driver's on_cohort -----------------------------------------------------
    def finished(self, task: CohortTask, outcome: CohortOutcome) -> None:
        """Remove the cohort's live line; print its one summary line."""
        if task in self.rows:
            self.bar.remove_task(self.rows.pop(task))
        seconds = self.clock() - self.began.get(task, self.clock())
        n = len(task.replicas)
        runs = f"{n} run{'s' if n > 1 else ''}"
        if isinstance(outcome, Exception):
            self.console.print(f"  {task.label}: [red]failed[/] after {seconds:.0f} s: "
                               f"{type(outcome).__name__}: {outcome}", highlight=False)
            return
        diverged = sum(r.status == "diverged" for r in outcome.replicas)
        tail = f", [yellow]{diverged} diverged[/]" if diverged else ""
        last = outcome.history[-1] if outcome.history else None
        numbers = f"; {epoch_line(last, task.epochs)}" if last else ""
        self.console.print(f"  {task.label}: {runs} in {outcome.seconds:.0f} s{tail}{numbers}",
                           highlight=False)
