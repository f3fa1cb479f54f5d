"""What a study prints while it trains, when the output is a log (not a terminal)."""

import io

import numpy as np
from rich.console import Console

from ablate.design import parse_study
from ablate.engine import Epoch
from ablate.metric import METRICS
from ablate.study import CohortTask, Plan, Replica, StudyProgress
from ablate.study._progress import epoch_line
from tests.study_harness import TINY_STUDY


def _epoch(n: int, val: list[float]) -> Epoch:
    S = len(val)
    return Epoch(epoch=n, train_loss=np.full(S, 0.5 / n), train_accuracy=np.full(S, 0.9),
                 val_loss=np.full(S, 0.4), val_accuracy=np.array(val),
                 val_loss_halves=np.full((S, 2), 0.4), val_accuracy_halves=np.full((S, 2), 0.9),
                 seconds=1.0, grad_norms=np.ones((S, 1)), weight_norms=np.ones((S, 1)))


def test_a_log_gets_a_throttled_epoch_line_and_no_live_display() -> None:
    arm = parse_study(TINY_STUDY, "tiny.toml").arms[0]
    task = CohortTask(tuple(Replica(arm.name, s, arm.config) for s in range(3)),
                      METRICS["val_accuracy"])
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=False)
    now = [100.0]
    with StudyProgress(Plan((task,), 0, 1600, {}), console, log_every=30,
                       clock=lambda: now[0]) as shown:
        shown.started(task)
        for n, t in enumerate((10.0, 25.0, 131.0, 140.0, 170.0), start=1):
            now[0] = 100 + t
            shown.epoch(task, _epoch(n, [0.95, 0.96, 0.97]))
    lines = out.getvalue().splitlines()
    # Printed at 131 s (>= 30 s after the start) and at 170 s (30 s after 131 s) only.
    assert lines == [f"  {task.label}: {epoch_line(_epoch(n, [0.95, 0.96, 0.97]), 6)}"
                     for n in (3, 5)]
    assert "val 96.00% (95.00-97.00)" in lines[0] and "epoch 3/6" in lines[0]
    assert task.label == "dropout=on, seeds 0-2"
