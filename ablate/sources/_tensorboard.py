"""TensorBoard event folders -> records, read with TensorBoard's own event reader (the
`tensorboard` extra).

One run per folder that holds event files (`events.out.tfevents.*`), anywhere under
the root. Each run's fields:

- `path.KEY` for every folder name of the form `KEY=VALUE` between the root and the
  run (`runs/arm=dropout=off/seed=3` gives `path.arm` = `dropout=off`, `path.seed` = 3:
  the first `=` splits), and `path.0`, `path.1`, ... for the folder names by position;
- `hparams.NAME` from the HParams plugin's session info (`add_hparams`);
- `metrics.TAG` for every scalar: its value at the last step logged (old-style scalars
  are float32, and marked so: on a stated grid they are snapped to it; new-style
  double-precision tensors keep float64).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ablate.errors import UserError
from ablate.extras import need
from ablate.sources._table import Record

__all__ = ["EVENTS_GLOB", "is_event_dir", "read_tensorboard"]

EVENTS_GLOB = "events.out.tfevents.*"


def is_event_dir(source: str) -> bool:
    """Whether `source` is a folder with TensorBoard event files somewhere under it."""
    path = Path(source)
    return path.is_dir() and next(path.rglob(EVENTS_GLOB), None) is not None


def _last(events: list[Any]) -> Any:
    """The event of the largest step (the last written among equal steps)."""
    best = events[0]
    for e in events[1:]:
        if e.step >= best.step:
            best = e
    return best


def _run(folder: Path, root: Path) -> Record:
    ea = need("tensorboard.backend.event_processing.event_accumulator", "tensorboard",
              "reading TensorBoard event files")
    from tensorboard.plugins.hparams import plugin_data_pb2
    from tensorboard.util import tensor_util

    acc = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    try:
        acc.Reload()
    except Exception as exc:  # a damaged event file: the reader's own error
        raise UserError(f"{folder}: cannot read its event files ({exc})") from None
    rel = folder.relative_to(root)
    fields: dict[str, object] = {"run": str(rel)}
    for i, part in enumerate(rel.parts):
        fields[f"path.{i}"] = part
        if "=" in part:
            key, value = part.split("=", 1)
            fields[f"path.{key}"] = value
    float32 = set()
    tags = acc.Tags()
    for tag in tags.get("scalars", []):
        fields[f"metrics.{tag}"] = float(_last(acc.Scalars(tag)).value)
        float32.add(f"metrics.{tag}")
    for tag in tags.get("tensors", []):
        if acc.SummaryMetadata(tag).plugin_data.plugin_name != "scalars":
            continue  # text, histograms...: not a value of the run
        value = tensor_util.make_ndarray(_last(acc.Tensors(tag)).tensor_proto)
        fields[f"metrics.{tag}"] = float(np.asarray(value).reshape(()))
        if value.dtype != np.float64:
            float32.add(f"metrics.{tag}")
    try:
        content = acc.PluginTagToContent("hparams")
    except KeyError:  # no HParams record in this run
        content = {}
    for blob in content.values():
        data = plugin_data_pb2.HParamsPluginData.FromString(blob)
        if data.HasField("session_start_info"):
            for name, v in data.session_start_info.hparams.items():
                kind = v.WhichOneof("kind")
                fields[f"hparams.{name}"] = getattr(v, kind) if kind else None
    return Record(fields, str(rel) if str(rel) != "." else str(folder), frozenset(float32))


def read_tensorboard(source: str) -> list[Record]:
    """One record per event folder under `source`, in path order (module doc)."""
    root = Path(source)
    if not root.is_dir():
        raise UserError(f"{source}: no such folder")
    folders = sorted({p.parent for p in root.rglob(EVENTS_GLOB)})
    if not folders:
        raise UserError(f"{source}: no TensorBoard event files ({EVENTS_GLOB}) under it")
    with warnings.catch_warnings():  # TensorBoard's own deprecations, not the user's
        warnings.simplefilter("ignore", DeprecationWarning)
        return [_run(f, root) for f in folders]
