"""Tables for people and machines: runs (table / csv / json), per-arm summary, Keras summary.

A table for people must be read, so no number is ever cut: columns take the width of
their widest cell, and a table that would not fit the terminal is shown one run (or one
arm) per block instead, `key: value` per line. Accuracies are percentages with two
decimals (on 10,000 validation images one image is 0.01 points, so two decimals tell
any two runs apart); losses have four decimals.
"""

import csv
import html
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ablate.design import Arm, Study
from ablate.engine import layers_text, optimizer_text, summary_rows
from ablate.errors import UserError, suggest
from ablate.metric import METRICS, RUN_METRICS
from ablate.store import Run

__all__ = ["RUN_COLUMNS", "arm_summary", "keras_summary", "plan_table", "run_columns",
           "runs_csv", "runs_html", "runs_json", "runs_table"]

# Every column a run has, in display order; the JSON and CSV carry them all.
RUN_COLUMNS = ("arm", "seed", "status", "epochs", "best_epoch", "seconds", *RUN_METRICS,
               "device", "error")
_LEFT = ("arm", "status", "device", "error")


def _cell(column: str, value: object) -> str:
    """A value as shown to people: accuracies in percent, losses to 4 decimals."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        if column in METRICS and METRICS[column].quantity == "accuracy":
            return f"{value * 100:.2f}%"
        if column == "seconds":
            return f"{value:.1f}"
        return f"{value:.4f}"
    return str(value)


def _header(column: str) -> str:
    return column.replace("_", " ").replace("crossfit val", "cross-fit val")


@dataclass(frozen=True)
class _Grid:
    """Rows of already formatted cells, rendered as a table or, when too wide, blocks."""

    title: str
    headers: tuple[str, ...]
    left: tuple[bool, ...]  # per column: left-aligned (text) or right (numbers)
    rows: tuple[tuple[str, ...], ...]
    key_columns: int = 1  # leading columns that name a block ("arm", "seed")
    wrap: tuple[int, ...] = ()  # text columns whose cells may wrap between words

    def sizes(self) -> list[int]:
        """Each column's least width: its widest cell (a `wrap` column's longest word),
        or its header's longest word (headers may wrap between words)."""
        def least(i: int, cell: str) -> int:
            return max(map(len, cell.split()), default=0) if i in self.wrap else len(cell)
        return [max([*(len(w) for w in h.split()), *(least(i, r[i]) for r in self.rows)])
                for i, h in enumerate(self.headers)]

    def render(self, width: int) -> RenderableType:
        """A table with every cell whole when one fits `width` (a `wrap` column's cells
        broken only between words), else blocks."""
        cells = [max(len(r[i]) for r in self.rows) if self.rows else 0
                 for i in range(len(self.headers))]
        full = [max(c, len(h)) for c, h in zip(cells, self.headers, strict=True)]
        sizes = full if _table_width(full) <= width else self.sizes()
        if _table_width(sizes) > width:
            return self.blocks()
        # Room left: to the wrapping columns first, then to the rest, up to full width.
        for i in (*self.wrap, *range(len(sizes))):
            sizes[i] += max(0, min(width - _table_width(sizes), full[i] - sizes[i]))
        table = Table(title=self.title)
        for i, (header, left, size) in enumerate(zip(self.headers, self.left, sizes,
                                                     strict=True)):
            # A header wider than its column goes one word per line; cells wrap only
            # in `wrap` columns, between words (every word fits: `sizes`).
            text = header if len(header) <= size else "\n".join(header.split())
            table.add_column(text, justify="left" if left else "right", width=size,
                             no_wrap=i not in self.wrap, overflow="fold")
        for row in self.rows:
            table.add_row(*row)
        return table

    def blocks(self) -> RenderableType:
        """One block per row: its key columns as a heading, then `header: value` lines."""
        parts: list[RenderableType] = [Text(self.title, style="bold")]
        k = self.key_columns
        pad = max(len(h) for h in self.headers[k:]) if len(self.headers) > k else 0
        for row in self.rows:
            heading = "  ".join(f"{h} {v}" for h, v in zip(self.headers[:k], row[:k],
                                                             strict=True))
            lines = [f"  {h:<{pad}}  {v}" for h, v in zip(self.headers[k:], row[k:],
                                                          strict=True)]
            parts.append(Text("\n".join([heading, *lines]), no_wrap=False))
        return Group(*parts)


def _table_width(sizes: list[int]) -> int:
    """Columns a rich table with these column widths takes: │ cell │ cell │."""
    return sum(sizes) + 3 * len(sizes) + 1


def run_columns(study: Study | None, *, wide: bool = False,
                columns: Sequence[str] | None = None) -> tuple[str, ...]:
    """Which run columns to show: the compact default (arm, seed, status, best epoch, the
    study's metric, test accuracy), every column (`wide`), or the named ones."""
    if columns:
        for c in columns:
            if c not in RUN_COLUMNS:
                raise UserError(f"--columns: no column {c!r}{suggest(c, list(RUN_COLUMNS))}; "
                                f"columns: {', '.join(RUN_COLUMNS)}")
        return tuple(columns)
    if wide:
        return RUN_COLUMNS
    metric = study.metric.name if study is not None else "val_accuracy"
    return tuple(dict.fromkeys(("arm", "seed", "status", "best_epoch", metric,
                                "test_accuracy")))


def runs_table(runs: Sequence[Run], columns: Sequence[str], width: int) -> RenderableType:
    """The runs, one row each (or one block each when a row would not fit `width`)."""
    grid = _Grid(f"{len(runs)} runs", tuple(_header(c) for c in columns),
                 tuple(c in _LEFT for c in columns),
                 tuple(tuple(_cell(c, getattr(r, c)) for c in columns) for r in runs),
                 key_columns=2 if tuple(columns[:2]) == ("arm", "seed") else 1)
    return grid.render(width)


def runs_html(runs: Sequence[Run], columns: Sequence[str], title: str) -> str:
    """The runs as an HTML table with the cells `ablate runs` shows (for a notebook)."""
    head = "".join(f"<th>{html.escape(_header(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(
        f'<td style="text-align:{"left" if c in _LEFT else "right"}">'
        f"{html.escape(_cell(c, getattr(r, c)))}</td>" for c in columns) + "</tr>"
        for r in runs)
    return (f"<div><b>{html.escape(title)}</b><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def runs_csv(runs: Sequence[Run]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(RUN_COLUMNS)
    for run in runs:
        writer.writerow(["" if getattr(run, c) is None else getattr(run, c) for c in RUN_COLUMNS])
    return buf.getvalue()


def runs_json(runs: Sequence[Run]) -> str:
    return json.dumps([{c: getattr(r, c) for c in RUN_COLUMNS} for r in runs], indent=2)


def _mean_sd(values: list[float], fmt: Callable[[float], str]) -> str:
    """'97.12% ± 0.08' or '0.0832 ± 0.0011' (sd in the same units; alone with one value)."""
    if not values:
        return "-"
    a = np.asarray(values, dtype=float)
    mean = fmt(float(a.mean()))
    if len(a) < 2:
        return mean
    sd = fmt(float(a.std(ddof=1)))
    return f"{mean} ± {sd.rstrip('%')}"


def arm_summary(study: Study, runs: Sequence[Run], width: int) -> RenderableType:
    """Per arm: runs done / diverged / failed, mean ± sd of the metric and of test accuracy."""
    metrics = list(dict.fromkeys((study.metric.name, "test_accuracy")))  # once if the same
    by_arm: dict[str, list[Run]] = {a.name: [] for a in study.arms}
    seeds = set(study.seeds)
    for run in runs:
        if run.arm in by_arm and run.seed in seeds:
            by_arm[run.arm].append(run)
    rows = []
    for arm in study.arms:
        rs = by_arm[arm.name]
        done = [r for r in rs if r.status == "done"]
        values = [[v for r in done if (v := getattr(r, m)) is not None] for m in metrics]
        rows.append((arm.name, str(len(done)), str(sum(r.status == "diverged" for r in rs)),
                     str(sum(r.status == "failed" for r in rs)),
                     *(_mean_sd(v, lambda x, m=m: _cell(m, x))  # type: ignore[misc]
                       for v, m in zip(values, metrics, strict=True))))
    grid = _Grid(f"{study.name}: mean ± sd over seeds",
                 ("arm", "done", "diverged", "failed", *(_header(m) for m in metrics)),
                 (True, False, False, False, *(False for _ in metrics)), tuple(rows))
    return grid.render(width)


def plan_table(study: Study, todo: Mapping[str, int], width: int) -> RenderableType:
    """The dry run's and the study's plan: per arm its layers, optimizer, epochs and the
    runs still to train (`todo`: arm -> runs), every cell whole (blocks when too wide).
    A column the same for every arm is said once, in a line under the table."""
    columns = {"layers": [layers_text(a.run_config) for a in study.arms],
               "optimizer": [optimizer_text(a.run_config) for a in study.arms],
               "epochs": [str(a.run_config.epochs) for a in study.arms]}
    shared = {k: v[0] for k, v in columns.items() if len(study.arms) > 1 and len(set(v)) == 1}
    varying = [k for k in columns if k not in shared]
    headers = ("arm", *varying, "to run")
    rows = tuple((arm.name, *(columns[k][i] for k in varying), str(todo.get(arm.name, 0)))
                 for i, arm in enumerate(study.arms))
    grid = _Grid(f"plan: {len(study.arms)} arms x {len(study.seeds)} seeds", headers,
                 tuple(h not in ("epochs", "to run") for h in headers), rows,
                 wrap=tuple(i for i, h in enumerate(headers) if h in ("arm", "optimizer")))
    if not shared:
        return grid.render(width)
    every = "; ".join(f"{k} {v}" for k, v in shared.items())
    return Group(grid.render(width), Text(f"every arm: {every}"))


def keras_summary(arm: Arm) -> Table:
    """The table Keras's `model.summary()` prints for this arm's model."""
    rows = summary_rows(arm.run_config)
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
