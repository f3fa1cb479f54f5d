"""Tables for people and machines: runs (table/csv/json), per-arm summary, Keras summary."""

import csv
import io
import json
import math
from collections.abc import Sequence

import numpy as np
from rich.table import Table

from ablate.engine import summary_rows
from ablate.store import Run
from ablate.study import Arm, Study

RUN_COLUMNS = ("arm", "seed", "status", "epochs", "best_epoch", "seconds", "train_loss",
               "val_loss", "val_accuracy", "test_loss", "test_accuracy", "device", "error")


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def runs_table(runs: Sequence[Run]) -> Table:
    table = Table(title=f"{len(runs)} runs")
    for col in RUN_COLUMNS:
        table.add_column(col, justify="right" if col not in ("arm", "status", "device", "error")
                         else "left")
    for run in runs:
        table.add_row(*(_fmt(getattr(run, col)) for col in RUN_COLUMNS))
    return table


def runs_csv(runs: Sequence[Run]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(RUN_COLUMNS)
    for run in runs:
        writer.writerow(["" if getattr(run, c) is None else getattr(run, c) for c in RUN_COLUMNS])
    return buf.getvalue()


def runs_json(runs: Sequence[Run]) -> str:
    return json.dumps([{c: getattr(r, c) for c in RUN_COLUMNS} for r in runs], indent=2)


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    a = np.asarray(values, dtype=float)
    sd = float(a.std(ddof=1)) if len(a) > 1 else math.nan
    return f"{a.mean():.4f} ± {sd:.4f}" if len(a) > 1 else f"{a.mean():.4f}"


def arm_summary(study: Study, runs: Sequence[Run]) -> Table:
    """Per arm: runs done / diverged / failed, mean ± sd of the metric and of test accuracy."""
    table = Table(title=f"{study.name}: {study.metric.name} by arm (mean ± sd over seeds)")
    metrics = list(dict.fromkeys((study.metric.name, "test_accuracy")))  # once if they coincide
    for col in ("arm", "done", "diverged", "failed", *metrics):
        table.add_column(col, justify="left" if col == "arm" else "right")
    by_arm: dict[str, list[Run]] = {a.name: [] for a in study.arms}
    seeds = set(study.seeds)
    for run in runs:
        if run.arm in by_arm and run.seed in seeds:
            by_arm[run.arm].append(run)
    for arm in study.arms:
        rs = by_arm[arm.name]
        done = [r for r in rs if r.status == "done"]
        values = [[getattr(r, m) for r in done if getattr(r, m) is not None] for m in metrics]
        table.add_row(arm.name, str(len(done)), str(sum(r.status == "diverged" for r in rs)),
                      str(sum(r.status == "failed" for r in rs)), *map(_mean_sd, values))
    return table


def keras_summary(arm: Arm) -> Table:
    """The table Keras's `model.summary()` prints for this arm's model."""
    rows = summary_rows(arm.config)
    total = sum(r.params for r in rows)
    trainable = sum(r.trainable for r in rows)
    table = Table(title=f'Model: "{arm.name}"', caption=(
        f"Total params: {total:,}\nTrainable params: {trainable:,}\n"
        f"Non-trainable params: {total - trainable:,}"), caption_justify="left")
    table.add_column("Layer (type)")
    table.add_column("Output Shape")
    table.add_column("Param #", justify="right")
    for row in rows:
        table.add_row(row.layer, row.output_shape, f"{row.params:,}")
    return table
