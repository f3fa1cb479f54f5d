"""The metrics a study can compare arms on: names, directions and what each one measures.

One `Metric` per name, so no code decides a direction from a name's spelling. Accuracy
is a fraction in [0, 1] (shown as percent, differences in points); loss is mean
cross-entropy in nats.

- `val_*`: the kept checkpoint on the whole validation split. The checkpoint is the
  epoch best on that same split, so these numbers are optimistic (selection bias).
- `crossfit_val_*`: selection-free. The validation split is cut into two fixed halves;
  the epoch chosen on one half is scored on the other, both ways, and the two scores
  averaged. No image scores the epoch it chose.
- `train_loss`: the kept epoch's mean training loss (reported, never compared).
- `test_*`: the kept checkpoint on the test set; compared only in studies without a
  validation split (`validation = 0`), where the last epoch is kept and nothing is
  selected.

A metric of runs trained elsewhere (`ablate analyze`) has split "external": its
direction and grid are stated by the user (`higher`, `resolution`), its quantity is
"value" unless it is one of the names above (then it is shown as that one is).
"""

from dataclasses import dataclass
from typing import Literal

from ablate.errors import UserError

__all__ = ["METRICS", "RUN_METRICS", "STUDY_METRICS", "Metric", "metric"]

Quantity = Literal["accuracy", "loss", "value"]


@dataclass(frozen=True)
class Metric:
    name: str  # as stored (a column of a run), in study files, `ablate runs`, report.json
    quantity: Quantity
    split: Literal["train", "val", "crossfit_val", "test", "external"]
    description: str  # what the number is, for tables and the report
    phrase: str  # what it is in a sentence: "lowers {phrase} by ..."
    higher: bool | None = None  # the direction where stated (external); else accuracy is
    # higher-is-better and a loss lower-is-better
    resolution: float | None = None  # the grid of an external metric, where stated

    @property
    def higher_is_better(self) -> bool:
        return self.quantity == "accuracy" if self.higher is None else self.higher

    @property
    def selection_free(self) -> bool:
        """True when no image that scores this number helped choose the epoch it scores."""
        return self.split != "val"

    @property
    def comparable(self) -> bool:
        """Whether a study may compare arms on it: selection-free held-out data only."""
        return self.split in ("crossfit_val", "test", "external")

    @property
    def kept(self) -> bool:
        """Whether the kept checkpoint measured it itself (the cross-fit pools two epochs)."""
        return self.split != "crossfit_val"

    def better(self, new: float, old: float) -> bool:
        """Whether `new` is strictly better than `old` (never for NaN)."""
        return new > old if self.higher_is_better else new < old

    @property
    def selection(self) -> "Metric":
        """The whole-validation metric of the same quantity: what picks a run's kept epoch."""
        return METRICS[f"val_{self.quantity}"]


# In the order a run's columns are shown and stored.
METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("train_loss", "loss", "train", "training loss of the kept epoch",
           "training loss"),
    Metric("val_loss", "loss", "val",
           "validation loss of the kept epoch, which was chosen on it (optimistic)",
           "validation loss (optimistic)"),
    Metric("val_accuracy", "accuracy", "val",
           "validation accuracy of the kept epoch, which was chosen on it (optimistic)",
           "validation accuracy (optimistic)"),
    Metric("crossfit_val_loss", "loss", "crossfit_val",
           "cross-fitted validation loss: epoch chosen on one half, scored on the other",
           "cross-fitted validation loss"),
    Metric("crossfit_val_accuracy", "accuracy", "crossfit_val",
           "cross-fitted validation accuracy: epoch chosen on one half, scored on the other",
           "cross-fitted validation accuracy"),
    Metric("test_loss", "loss", "test", "test loss of the kept epoch", "test loss"),
    Metric("test_accuracy", "accuracy", "test", "test accuracy of the kept epoch",
           "test accuracy"),
)}
RUN_METRICS = tuple(METRICS)  # every metric a finished run stores
STUDY_METRICS = tuple(m.name for m in METRICS.values() if m.comparable)


def metric(name: str) -> Metric:
    """The metric called `name`; a `UserError` naming the known ones otherwise."""
    try:
        return METRICS[name]
    except KeyError:
        raise UserError(f"unknown metric {name!r}; expected one of {', '.join(METRICS)}"
                        ) from None
