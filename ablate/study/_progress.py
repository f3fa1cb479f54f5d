"""How a study shows its progress: live in a terminal or a notebook, a line per
cohort-epoch in a log.

Live (a terminal, or a Jupyter notebook's one display updated in place), the display
is redrawn a few times a second from the latest events (the engine reports every 20
optimizer steps, so the step counts move within an epoch):

    training 20 runs ████████░░░░░░  1,234/9,380 steps 13%  0:02:10 elapsed  ETA 0:14:05
    cohort 1/1 (20 runs): epoch 3/20, step 140/391
      dropout=on (seeds 0-9): loss 0.231 (0.210-0.260)  val 97.12% (96.90-97.40)
      dropout=off (seeds 0-9): loss 0.187 (0.170-0.201)  val 97.80% (97.62-97.95)

Each arm of a packed cohort has its own line (its replicas' training loss and
validation metric at the last epoch, mean and range), so one can see which arm is
ahead. Every line fits the width it is drawn at: a narrower screen drops detail first
(the label, the bar, the seeds, the ranges) and never cuts a number; what still does
not fit wraps between whole pieces. The ETA is the remaining steps over the throughput
of the last `ETA_WINDOW_S` seconds (`Throughput`): recent enough to follow a machine
whose load changes, smoothed enough that an epoch's evaluation or a burst does not
swing it.

In a log (not a terminal, not a notebook) nothing updates in place: a cohort prints a
line when it starts, its epoch line at most every `LOG_EVERY` seconds (a study can be
one packed cohort, and a log should not stay silent for its whole length), and one line
when it finishes, with the same numbers.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from ablate.engine import Epoch
from ablate.study._execute import CohortOutcome
from ablate.study._plan import CohortTask, Plan, seed_range

__all__ = ["ETA_WINDOW_S", "LOG_EVERY", "STALL_S", "NOTEBOOK_WIDTH", "ArmLine", "StudyProgress",
           "Throughput", "arm_lines", "clock_text", "fit"]

LOG_EVERY = 30.0  # seconds between a cohort's epoch lines in a log
ETA_WINDOW_S = 120.0  # the ETA's throughput is measured over this many recent seconds
ETA_LEAST_S = 5.0  # no ETA before this many seconds of steps (the rate would be noise)
STALL_S = 30.0  # this long without a step: the ETA grows instead of counting down
MAX_COHORTS_SHOWN = 4  # live cohorts drawn at once (Ray may train many); the rest counted
NOTEBOOK_WIDTH = 100  # columns of the text a notebook's display shows
NOTEBOOK_EVERY = 1.0  # seconds between a notebook display's updates (each is a message)
_BAR = (10, 30)  # the bar's least and largest width, in columns


class Throughput:
    """Optimizer steps per second over the last `window` seconds, and the ETA it gives.

    `add(t, work)` records the cumulative steps trained by time t (monotone: a retried
    cohort's steps count again, since they were trained again).
    """

    def __init__(self, window: float = ETA_WINDOW_S, least: float = ETA_LEAST_S,
                 stall: float = STALL_S) -> None:
        self.window, self.least, self.stall = window, least, stall
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, t: float, work: int) -> None:
        self.samples.append((t, work))
        # Keep one sample at or before the window's start: the rate spans the window.
        while len(self.samples) > 2 and self.samples[1][0] <= t - self.window:
            self.samples.popleft()

    def rate(self, until: float | None = None) -> float | None:
        """Steps per second from the window's first sample to `until` (default: the last
        sample); None with under `least` seconds of samples."""
        if len(self.samples) < 2:
            return None
        (t0, w0), (t1, w1) = self.samples[0], self.samples[-1]
        if t1 - t0 < self.least:
            return None
        return (w1 - w0) / (max(t1, until) - t0 if until is not None else t1 - t0)

    def eta(self, remaining: int, now: float) -> float | None:
        """Seconds to train `remaining` steps (as counted at the last sample): the time
        at the window's rate, counting down between samples; after `stall` seconds
        without one, at the rate up to `now`, which a stall lowers. None: no rate yet."""
        rate = self.rate()
        if rate is None or rate <= 0:
            return None
        since = now - self.samples[-1][0]
        if since <= self.stall:
            return max(0.0, remaining / rate - since)
        slowed = self.rate(until=now)
        return remaining / slowed if slowed else None


def clock_text(seconds: float) -> str:
    """'0:14:05', '1 day, 2:03:04' (whole seconds)."""
    return str(timedelta(seconds=int(max(0.0, seconds))))


def _spread(values: np.ndarray, scale: float, digits: int, unit: str = "") -> tuple[str, str]:
    """('97.12%', '97.12% (96.90-97.40)'): mean, and mean with the range, over the
    replicas still training (NaN: diverged)."""
    v = values[np.isfinite(values)] * scale
    if v.size == 0:
        return "n/a", "n/a"
    mean = f"{v.mean():.{digits}f}{unit}"
    if v.size == 1:
        return mean, mean
    return mean, f"{mean} ({v.min():.{digits}f}-{v.max():.{digits}f})"


@dataclass(frozen=True)
class ArmLine:
    """One arm of a cohort at its last epoch: its numbers as whole pieces of text."""

    arm: str
    seeds: str  # 'seeds 0-9'
    loss: tuple[str, str]  # training loss: mean, mean (range)
    val: tuple[str, str] | None  # the selection metric: mean, mean (range); None: no split
    val_name: str  # 'val' (accuracy) or 'val loss'
    diverged: int

    def variants(self) -> list[str]:
        """The line, most detailed first: seeds, then the loss range, then the
        validation range are dropped in turn."""
        tail = f", {self.diverged} diverged" if self.diverged else ""

        def line(name: str, loss: str, val: str | None) -> str:
            numbers = f"loss {loss}" + (f"  {self.val_name} {val}" if val is not None else "")
            return f"{name}: {numbers}{tail}"

        v = self.val or (None, None)
        named = f"{self.arm} ({self.seeds})"
        return [line(named, self.loss[1], v[1]), line(self.arm, self.loss[1], v[1]),
                line(self.arm, self.loss[0], v[1]), line(self.arm, self.loss[0], v[0])]

    def pieces(self) -> list[str]:
        """The least detailed line's unbreakable pieces, for wrapping."""
        out = [f"{self.arm}:", f"loss {self.loss[0]}"]
        if self.val is not None:
            out.append(f"{self.val_name} {self.val[0]}")
        if self.diverged:
            out.append(f"{self.diverged} diverged")
        return out

    def log_text(self) -> str:
        v = f" {self.val_name} {self.val[1]}" if self.val is not None else ""
        tail = f" ({self.diverged} diverged)" if self.diverged else ""
        return f"{self.arm} loss {self.loss[1]}{v}{tail}"


def arm_lines(task: CohortTask, record: Epoch) -> list[ArmLine]:
    """Each arm of the cohort, in order, with its replicas' numbers at `record`'s epoch
    (record arrays are (S,), replica s is task.replicas[s])."""
    accuracy = task.select_on.quantity == "accuracy"
    metric = record.val_accuracy if accuracy else record.val_loss
    has_val = bool(np.isfinite(metric).any() or np.isfinite(record.val_loss).any())
    out = []
    for arm, seeds in task.arms.items():
        idx = np.array([s for s, r in enumerate(task.replicas) if r.arm == arm])
        val = (_spread(metric[idx], 100, 2, "%") if accuracy else _spread(metric[idx], 1, 4)) \
            if has_val else None
        out.append(ArmLine(arm, seed_range(seeds), _spread(record.train_loss[idx], 1, 3), val,
                           "val" if accuracy else "val loss",
                           int((~np.isfinite(record.train_loss[idx])).sum())))
    return out


def fit(variants: Sequence[str], pieces: Sequence[str], width: int, indent: int = 0
        ) -> list[str]:
    """The first variant that fits `width` after `indent` spaces; else `pieces` packed
    onto lines, broken only between pieces (a piece wider than a line is text, such as
    a long arm name, and is folded; numbers are short pieces and stay whole)."""
    pad = " " * indent
    for v in variants:
        if indent + len(v) <= width:
            return [pad + v]
    lines: list[str] = []
    line = ""
    room = max(1, width - indent)
    for piece in pieces:
        if line and len(line) + 1 + len(piece) <= room:
            line += " " + piece
            continue
        if line:
            lines.append(pad + line)
        while len(piece) > room:  # only text is this long
            lines.append(pad + piece[:room])
            piece = piece[room:]
        line = piece
    if line:
        lines.append(pad + line)
    return lines


class _Cohort:
    """A cohort in training: its place in the plan, steps, and last epoch's numbers."""

    def __init__(self, task: CohortTask, index: int, total: int, began: float) -> None:
        self.task, self.index, self.total, self.began = task, index, total, began
        self.per_epoch = total // task.epochs  # steps per epoch (one count per cohort)
        self.steps = 0
        self.last: Epoch | None = None
        self.resumed = 0 if task.resume is None else task.resume.epoch  # epochs done before

    @property
    def position(self) -> tuple[int, int]:
        """(epoch in training, 1-based; its steps done), from the epochs reported: while
        an epoch's evaluation runs its steps show complete."""
        epoch = min(self.task.epochs, (self.last.epoch if self.last else self.resumed) + 1)
        return epoch, min(self.per_epoch, max(0, self.steps - (epoch - 1) * self.per_epoch))


class StudyProgress:
    """The `CohortEvents` the study driver reports to, shown; a context manager around
    the display. Events may come from any thread; the display draws from a lock-guarded
    snapshot."""

    def __init__(self, plan: Plan, console: Console, *, log_every: float = LOG_EVERY,
                 clock: Callable[[], float] = time.monotonic,
                 live: bool | None = None) -> None:
        self.plan, self.console, self.log_every, self.clock = plan, console, log_every, clock
        self.notebook = console.is_jupyter
        self.live = (console.is_terminal or self.notebook) if live is None else live
        self.index = {t: i + 1 for i, t in enumerate(plan.cohorts)}
        self.total = plan.total_steps
        self.done = 0  # steps toward the plan (a retried cohort's restart is taken back)
        self.work = 0  # steps trained, retries included (the throughput's measure)
        self.began = clock()
        self.throughput = Throughput()
        self.cohorts: dict[CohortTask, _Cohort] = {}
        self.logged: dict[CohortTask, float] = {}  # when each cohort last printed (log)
        self.lock = threading.Lock()
        self._live: Live | None = None
        self._handle: Any = None  # a notebook's display handle
        self._shown = 0.0  # when the notebook display was last updated

    # -- the display ------------------------------------------------------------------
    def __enter__(self) -> StudyProgress:
        if self.live and self.notebook:
            self._handle = _display(self)
        elif self.live:
            self._live = Live(self, console=self.console, refresh_per_second=4,
                              redirect_stdout=False, redirect_stderr=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None
        if self._handle is not None:
            self._handle.update(_Snapshot(self.lines(NOTEBOOK_WIDTH)))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.lines(options.max_width):
            yield Text(line, no_wrap=True, overflow="ignore")

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left at the recent throughput; None before it is measured."""
        now = self.clock() if now is None else now
        return self.throughput.eta(max(0, self.total - self.done), now)

    def lines(self, width: int) -> list[str]:
        """The live display at `width` columns: the study's line, then each cohort in
        training (a header and a line per arm), every line at most `width` long."""
        with self.lock:
            now = self.clock()
            eta = self.eta(now)
            out = self._study_line(width, now, eta)
            active = sorted(self.cohorts.values(), key=lambda c: c.index)
            for c in active[:MAX_COHORTS_SHOWN]:
                out += self._cohort_lines(c, width)
            if len(active) > MAX_COHORTS_SHOWN:
                out += fit([f"+ {len(active) - MAX_COHORTS_SHOWN} more cohorts training"],
                           [], width)
        return out

    def _study_line(self, width: int, now: float, eta: float | None) -> list[str]:
        pct = math.floor(100 * self.done / self.total) if self.total else 100
        counts = f"{self.done:,}/{self.total:,} steps {pct}%"
        elapsed = clock_text(now - self.began)
        left = f"ETA {clock_text(eta)}" if eta is not None else "ETA --:--:--"
        label = f"training {self.plan.runs} runs"
        tail = f"{counts}  {elapsed} elapsed  {left}"
        variants = []
        for head in (f"{label} ", ""):  # with the bar: first with the label, then without
            room = width - len(head) - 1 - len(tail)
            if room >= _BAR[0]:
                size = min(room, _BAR[1])
                full = size * self.done // self.total if self.total else size
                variants.append(f"{head}{'█' * full}{'░' * (size - full)} {tail}")
        variants += [tail, f"{counts}  {elapsed}  {left}", f"{counts}  {left}"]
        return fit(variants, [f"{self.done:,}/{self.total:,}", f"{pct}%", left], width)

    def _cohort_lines(self, c: _Cohort, width: int) -> list[str]:
        n, runs = len(self.plan.cohorts), len(c.task.replicas)
        epoch, step = c.position
        where = f"epoch {epoch}/{c.task.epochs}, step {step}/{c.per_epoch}"
        out = fit([f"cohort {c.index}/{n} ({runs} runs): {where}", f"cohort {c.index}/{n}: "
                   f"{where}", f"{c.index}/{n}: {where}"],
                  [f"{c.index}/{n}:", f"epoch {epoch}/{c.task.epochs},",
                   f"step {step}/{c.per_epoch}"], width)
        if c.last is None:
            for arm, seeds in c.task.arms.items():
                out += fit([f"{arm} ({seed_range(seeds)}): numbers after epoch 1",
                            f"{arm}: numbers after epoch 1", f"{arm}"], [arm], width, 2)
            return out
        for line in arm_lines(c.task, c.last):
            out += fit(line.variants(), line.pieces(), width, 2)
        return out

    def _refresh_notebook(self, force: bool = False) -> None:
        now = self.clock()
        if self._handle is not None and (force or now - self._shown >= NOTEBOOK_EVERY):
            self._shown = now
            self._handle.update(_Snapshot(self.lines(NOTEBOOK_WIDTH)))

    # -- the driver's CohortEvents protocol ---------------------------------------------
    def started(self, task: CohortTask) -> None:
        with self.lock:
            old = self.cohorts.get(task)
            if old is not None:  # a retried cohort starts over
                self.done -= old.steps
            c = self.cohorts[task] = _Cohort(task, self.index.get(task, 0),
                                             self.plan.steps(task), self.clock())
            if task.resume is not None:  # its saved steps count as done, not as trained now
                c.steps = task.resume.epoch * c.per_epoch + task.resume.steps
                self.done += c.steps
        if not self.live:
            what = "; ".join(f"{arm}, {seed_range(s)}" for arm, s in task.arms.items())
            again = " again" if old is not None else ""
            self.console.print(f"  cohort {self.index.get(task, 0)}/{len(self.plan.cohorts)}"
                               f" started{again}: {len(task.replicas)} runs ({what})",
                               highlight=False, markup=False, soft_wrap=True)
        self._refresh_notebook(force=True)

    def advanced(self, task: CohortTask, steps: int) -> None:
        with self.lock:
            c = self.cohorts.get(task)
            if c is not None:
                c.steps += steps
            self.done += steps
            self.work += steps
            self.throughput.add(self.clock(), self.work)
        self._refresh_notebook()

    def epoch(self, task: CohortTask, record: Epoch) -> None:
        with self.lock:
            c = self.cohorts.get(task)
            if c is not None:
                c.last = record
        self._refresh_notebook(force=True)
        now = self.clock()
        if self.live or c is None or now - self.logged.get(task, c.began) < self.log_every:
            return
        self.logged[task] = now
        eta = self.eta(now)
        pct = math.floor(100 * self.done / self.total) if self.total else 100
        study = f"study {pct}%" + (f", ETA {clock_text(eta)}" if eta is not None else "")
        arms = "; ".join(a.log_text() for a in arm_lines(task, record))
        self.console.print(f"  cohort {c.index}/{len(self.plan.cohorts)} epoch {record.epoch}/"
                           f"{task.epochs}: {arms} [{study}]", highlight=False, markup=False,
                           soft_wrap=True)

    # -- the driver's on_cohort -----------------------------------------------------
    def finished(self, task: CohortTask, outcome: CohortOutcome) -> None:
        """Take the cohort off the live display; print its summary (a header and a line
        per arm in a terminal, one line in a log)."""
        with self.lock:
            c = self.cohorts.pop(task, None)
        began = c.began if c is not None else self.clock()
        name = f"cohort {self.index.get(task, 0)}/{len(self.plan.cohorts)}"
        if isinstance(outcome, Exception):
            self.console.print(f"  {name}: [red]failed[/] after {self.clock() - began:.0f} s: "
                               f"{escape(f'{type(outcome).__name__}: {outcome}')}",
                               highlight=False)
            self._refresh_notebook(force=True)
            return
        n = len(task.replicas)
        diverged = sum(r.status == "diverged" for r in outcome.replicas)
        head = f"{name}: {n} run{'s' if n > 1 else ''} in {outcome.seconds:.0f} s" + (
            f", {diverged} diverged" if diverged else "")
        last = outcome.history[-1] if outcome.history else None
        lines = arm_lines(task, last) if last is not None else []
        if self.live:
            width = NOTEBOOK_WIDTH if self.notebook else self.console.width
            body = [head] + [s for a in lines for s in fit(a.variants(), a.pieces(), width, 2)]
            self.console.print("\n".join(body), highlight=False, markup=False)
        else:
            arms = "; ".join(a.log_text() for a in lines)
            self.console.print(f"  {head}" + (f"; epoch {last.epoch}: {arms}" if last else ""),
                               highlight=False, markup=False, soft_wrap=True)
        self._refresh_notebook(force=True)


@dataclass(frozen=True)
class _Snapshot:
    """The display's text at one moment, as a notebook shows it."""

    lines: Sequence[str]

    def __repr__(self) -> str:
        return "\n".join(self.lines)

    def _repr_html_(self) -> str:
        from html import escape

        return "<pre style=\"margin:0\">" + escape("\n".join(self.lines)) + "</pre>"


def _display(progress: StudyProgress) -> Any:
    """A notebook display of the progress, updated in place (`handle.update`); None
    outside IPython."""
    try:
        from IPython import display as ipython
    except ImportError:
        return None
    show: Callable[..., Any] = ipython.display  # untyped
    return show(_Snapshot(progress.lines(NOTEBOOK_WIDTH)), display_id=True)
