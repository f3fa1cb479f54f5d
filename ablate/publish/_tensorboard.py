"""A study as TensorBoard runs, written by PyTorch's `SummaryWriter` (the `tensorboard`
extra provides its event format).

Layout: `DIR/<study>/arm=<arm>/seed=<seed>/` per finished run, so `tensorboard --logdir
DIR` shows the study's runs by arm and seed, and `ablate analyze DIR/<study> --arm arm
--seed seed --metric crossfit_val_accuracy` reads them back. Each run holds

- its history per epoch as scalars `epoch/<name>` (step = epoch);
- its final metrics under their `ablate runs` names, as double-precision scalars (an
  accuracy on 10,000 images survives exactly; float32 would not), NaN where a diverged
  run has none, at the step of its last epoch;
- the HParams plugin's record: factor levels by factor name, `status` and the resolved
  config as `config.<field>`, with the study's metric as the plugin's metric.

`DIR/<study>/report/` carries the report's Markdown as a text summary. Publishing again
replaces a run's event files (the run directory holds nothing else of ablate's).
"""

from __future__ import annotations

import re
from pathlib import Path

from ablate.errors import UserError
from ablate.extras import need
from ablate.publish._study import EPOCH_METRICS, PublishedRun, StudyFiles
from ablate.sources._tensorboard import EVENTS_GLOB

__all__ = ["publish_tensorboard", "run_folder"]


def _part(text: str) -> str:
    """A folder name for a value: path separators replaced (the value itself is in the
    HParams record)."""
    return re.sub(r"[/\\\x00]", "_", text)


def run_folder(root: Path, study: str, arm: str, seed: int) -> Path:
    return root / _part(study) / f"arm={_part(arm)}" / f"seed={seed}"


def _write(folder: Path, study: StudyFiles, r: PublishedRun) -> None:
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    for old in folder.glob(EVENTS_GLOB):  # republished: the new files replace the old
        old.unlink()
    run = r.run
    last = max((int(e["epoch"]) for e in r.history), default=0)
    with SummaryWriter(log_dir=str(folder)) as w:
        for e in r.history:
            for k in EPOCH_METRICS:
                if e.get(k) is not None:
                    w.add_scalar(f"epoch/{k}", float(e[k]), int(e["epoch"]))
        for k, v in r.metrics.items():
            w.add_scalar(k, v, last, new_style=True, double_precision=True)
        values: dict[str, str | float] = {**dict(r.levels), "status": run.status, **r.config}
        metric = study.study.metric.name
        # The three HParams summaries, written into this run's own folder (add_hparams
        # would start a sub-run and log its metrics again in float32).
        for summary in hparams(values, {metric: r.metrics.get(metric, float("nan"))}):
            w.file_writer.add_summary(summary)


def publish_tensorboard(study: StudyFiles, target: str | None) -> str:
    """Write the study under `target` (default: RUN_DIR/tensorboard). Returns a line
    saying what was written; `UserError` when the folder cannot be written."""
    need("tensorboard", "tensorboard", "logging to TensorBoard")
    root = Path(target) if target else study.run_dir / "tensorboard"
    try:
        for r in study.runs:
            _write(run_folder(root, study.study.name, r.run.arm, r.run.seed), study, r)
        report = study.run_dir / "report.md"
        if report.is_file():
            from torch.utils.tensorboard import SummaryWriter

            folder = root / _part(study.study.name) / "report"
            for old in folder.glob(EVENTS_GLOB):
                old.unlink()
            with SummaryWriter(log_dir=str(folder)) as w:
                w.add_text("report", report.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot write TensorBoard files under {root} ({exc})") from None
    where = root / _part(study.study.name)
    return (f"TensorBoard {where}: {len(study.runs)} runs"
            + (" and the report" if (study.run_dir / "report.md").is_file() else ""))
