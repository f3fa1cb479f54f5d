"""One run's per-image predictions: its kept weights on validation halves A and B and on
the test set, as compact arrays, and their file format.

Each split holds, per image, the image's index (into MNIST's 60,000 training images for
the validation halves, into the 10,000 test images for `test`), its label, the predicted
class (the argmax of the logits, the same comparison the stored accuracies count, so
`predicted == label` reproduces them exactly) and the probability given to the true
class. The test split also holds every class's probability, which is what averaging
seeds' predictions (the seed ensemble) needs. On disk this is one compressed `.npz`
beside the run's checkpoint, tagged with the run's config hash so a file left by an
earlier config is never read as this run's. To keep it small: image indices as
differences (the test split's are 0, 1, 2, ...), the prediction as its offset from the
label modulo 10 (0 wherever it is right, which compresses to almost nothing), the
label's probability as float16 (relative precision, so a wrong image's tiny
probability survives), every class's probability on a uint16 grid of step 1/65535
(absolute precision, which is what an average needs: each is off by at most 1/131070).
"""

import io
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ablate.errors import UserError

if TYPE_CHECKING:
    import pandas

__all__ = ["COLUMNS", "SPLITS", "PredictionSet", "Predictions", "SplitPredictions", "decode",
           "encode"]

SPLITS = ("val_a", "val_b", "test")  # the names `read_predictions` uses
FORMAT = 1  # the file's layout version
GRID = 65535  # test probabilities are stored as round(p * GRID), uint16
CLASSES = 10


@dataclass(frozen=True)
class SplitPredictions:
    """One split's per-image arrays, all of length n (the split's images)."""

    image: np.ndarray  # (n,) int32: index into the MNIST set the split comes from
    label: np.ndarray  # (n,) uint8
    predicted: np.ndarray  # (n,) uint8: argmax of the logits
    p_true: np.ndarray  # (n,) float32: softmax probability of the label (float16 on disk)

    def __post_init__(self) -> None:
        n = len(self.image)
        if not all(len(a) == n for a in (self.label, self.predicted, self.p_true)):
            raise ValueError("a split's arrays must all have one length")

    @property
    def correct(self) -> np.ndarray:
        """(n,) bool: predicted == label."""
        return np.asarray(self.predicted == self.label)

    def accuracy(self) -> float:
        """The share correct (NaN for an empty split)."""
        return float(self.correct.mean()) if len(self.image) else float("nan")


@dataclass(frozen=True)
class Predictions:
    """A run's kept weights on `val_a`, `val_b` and `test`, and the test probabilities."""

    splits: dict[str, SplitPredictions]  # keyed by SPLITS
    test_probs: np.ndarray  # (n_test, 10) float32: softmax of the logits (on GRID on disk)

    def val_accuracy(self) -> float:
        """Accuracy on the whole validation split (both halves pooled)."""
        a, b = self.splits["val_a"].correct, self.splits["val_b"].correct
        n = len(a) + len(b)
        return float((a.sum() + b.sum()) / n) if n else float("nan")


def encode(p: Predictions, config_hash: str) -> bytes:
    """The compressed `.npz` bytes of a run's predictions."""
    arrays: dict[str, np.ndarray] = {"format": np.array(FORMAT),
                                     "config_hash": np.array(config_hash)}
    for name in SPLITS:
        s = p.splits[name]
        arrays.update({f"{name}/image_step": np.diff(s.image.astype(np.int32), prepend=0),
                       f"{name}/label": s.label.astype(np.uint8),
                       f"{name}/miss": ((s.predicted.astype(np.int64) - s.label) % CLASSES
                                        ).astype(np.uint8),
                       f"{name}/p_true": s.p_true.astype(np.float16)})
    grid = np.rint(np.clip(p.test_probs.astype(np.float64), 0.0, 1.0) * GRID)
    arrays["test/probs"] = grid.astype(np.uint16)
    buf = io.BytesIO()
    np.savez_compressed(buf, allow_pickle=False, **arrays)
    return buf.getvalue()


def decode(data: bytes) -> tuple[Predictions, str]:
    """(predictions, config hash) from `encode`'s bytes; ValueError if they are not that."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"not a predictions file: {e}") from e
    if int(arrays.get("format", np.array(-1))) != FORMAT:
        raise ValueError("not a predictions file of this version")
    try:
        splits = {name: SplitPredictions(np.cumsum(arrays[f"{name}/image_step"],
                                                   dtype=np.int64).astype(np.int32),
                                         arrays[f"{name}/label"],
                                         ((arrays[f"{name}/label"].astype(np.int64)
                                           + arrays[f"{name}/miss"]) % CLASSES
                                          ).astype(np.uint8),
                                         arrays[f"{name}/p_true"].astype(np.float32))
                  for name in SPLITS}
        probs = (arrays["test/probs"].astype(np.float64) / GRID).astype(np.float32)
    except KeyError as e:
        raise ValueError(f"a predictions file without {e}") from e
    return Predictions(splits, probs), str(arrays["config_hash"])


COLUMNS = ("arm", "seed", "split", "image", "label", "predicted", "p_true")


@dataclass(frozen=True)
class PredictionSet:
    """A study's per-image predictions: one `Predictions` per finished run that has them.

    `missing` names the finished runs without them (written before predictions were
    stored, or diverged): rerun those to get them. `columns()` is the long table as NumPy
    arrays, `to_pandas()` the same as a DataFrame: one row per (run, split, image).
    """

    runs: tuple[tuple[str, int, Predictions], ...]  # (arm, seed, predictions)
    missing: tuple[tuple[str, int], ...] = ()  # (arm, seed) of done runs without them

    def get(self, arm: str, seed: int) -> Predictions | None:
        return next((p for a, s, p in self.runs if a == arm and s == seed), None)

    def columns(self) -> dict[str, np.ndarray]:
        """COLUMNS -> one array each, in run order, then split (SPLITS), then image."""
        parts: dict[str, list[np.ndarray]] = {c: [] for c in COLUMNS}
        for arm, seed, p in self.runs:
            for name in SPLITS:
                s = p.splits[name]
                n = len(s.image)
                parts["arm"].append(np.full(n, arm, dtype=object))
                parts["seed"].append(np.full(n, seed, dtype=np.int64))
                parts["split"].append(np.full(n, name, dtype=object))
                parts["image"].append(s.image.astype(np.int64))
                parts["label"].append(s.label.astype(np.int64))
                parts["predicted"].append(s.predicted.astype(np.int64))
                parts["p_true"].append(s.p_true.astype(np.float32))
        empty = {"arm": object, "seed": np.int64, "split": object, "image": np.int64,
                 "label": np.int64, "predicted": np.int64, "p_true": np.float32}
        return {c: np.concatenate(v) if v else np.zeros(0, dtype=empty[c])
                for c, v in parts.items()}

    def to_pandas(self) -> "pandas.DataFrame":
        """One row per (run, split, image), the columns COLUMNS (needs pandas)."""
        try:
            import pandas
        except ImportError:
            raise UserError("to_pandas() needs pandas: pip install pandas") from None
        return pandas.DataFrame(self.columns(), columns=list(COLUMNS))

    def __repr__(self) -> str:
        left = f", {len(self.missing)} finished runs without predictions" if self.missing else ""
        return f"<PredictionSet: {len(self.runs)} runs{left}>"
