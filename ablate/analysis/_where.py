"""Where a difference lives, and what more seeds buy, from the runs' per-image predictions.

Everything here is on the test set, scored by the kept weights (the epoch each run kept
on validation; the test set was never selected on), so it describes the same models the
report's test accuracies do, image by image:

- per contrast (each arm against the baseline, seeds paired): each digit's accuracy
  difference, the mean over paired seeds with an exact sign-flip interval on that
  digit's per-seed differences (grid 1 / the digit's images). The intervals are per
  digit at 95%, not family-wise over the ten digits: read them as where to look, not as
  ten claims;
- the difference of the two arms' mean confusion matrices (rows the true digit,
  normalized to a share of that digit's images, so a cell is percentage points of the
  digit's images moved into that prediction);
- the images most often flipped: the seeds on which the arm and the baseline disagree
  about whether the image is right, with each side's count of rights;
- per contrast, its reach to new images (`ablate.stats.two_way` on the paired per-image
  correctness, seeds x test images): the interval for the difference on new seeds and
  new images like these, with the image share of its variance (the part more seeds never
  shrink), beside the one-way interval that holds these images fixed;
- per arm, the seed ensemble (the average of its seeds' class probabilities, then the
  argmax) against the mean single run, and the ensemble of the first k seeds for each k.

Runs trained before predictions were stored have none; their seeds are left out and
listed, and with none at all the section says the study needs a rerun.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ablate.predictions import Predictions
from ablate.stats import TwoWay, sign_flip, two_way

__all__ = ["CONFIDENCE", "GALLERY", "DigitDifference", "Ensemble", "Flip", "Where",
           "WhereContrast", "where"]

CONFIDENCE = 0.95  # per digit, not family-wise
GALLERY = 8  # images shown per contrast
CLASSES = 10
SPLIT = "test"


@dataclass(frozen=True)
class DigitDifference:
    digit: int
    images: int  # test images of this digit
    arm: float  # the arm's mean accuracy on them over the paired seeds
    baseline: float
    difference: float  # mean of the paired per-seed differences (arm - baseline)
    low: float  # CONFIDENCE sign-flip interval of the difference, per digit
    high: float


@dataclass(frozen=True)
class Flip:
    """One test image on which the two arms often disagree about being right."""

    image: int  # index into the test set
    label: int
    flips: int  # paired seeds where exactly one side is right
    arm_right: int  # seeds (of the paired ones) where the arm is right
    baseline_right: int
    arm_guess: int  # the arm's most frequent prediction over the seeds
    baseline_guess: int


@dataclass(frozen=True)
class WhereContrast:
    arm: str
    baseline: str
    seeds: tuple[int, ...]  # paired seeds with predictions on both sides
    digits: tuple[DigitDifference, ...]
    confusion: np.ndarray  # (10, 10): arm - baseline mean confusion, share of each row
    flips: tuple[Flip, ...]  # the GALLERY images flipped most often
    pixels: np.ndarray | None  # (len(flips), 28, 28) uint8, when MNIST's test set was at hand
    flipped_images: int  # test images flipped on at least one seed
    # the difference on new seeds and new test-like images (two-way, seeds x images), and
    # on these images (one-way, the verdict's kind of interval); None below 2 seeds
    reach: TwoWay | None = None


@dataclass(frozen=True)
class Ensemble:
    arm: str
    seeds: int  # runs with predictions
    single: float  # mean single-run test accuracy over those runs
    single_sd: float  # their sd (NaN for one run)
    ensemble: float  # accuracy of the average of their class probabilities
    by_size: tuple[float, ...]  # ensemble of the first k seeds, k = 1..seeds

    @property
    def gain(self) -> float:
        return self.ensemble - self.single


@dataclass(frozen=True)
class Where:
    split: str
    confidence: float
    contrasts: tuple[WhereContrast, ...]
    ensembles: tuple[Ensemble, ...]
    missing: tuple[tuple[str, int], ...]  # (arm, seed) finished without predictions

    @property
    def available(self) -> bool:
        return bool(self.contrasts or self.ensembles)


def _confusion(p: Predictions) -> np.ndarray:
    """(10, 10) counts of (true digit, predicted digit) on the test set."""
    s = p.splits[SPLIT]
    c = np.zeros((CLASSES, CLASSES), dtype=np.int64)
    np.add.at(c, (s.label.astype(np.int64), s.predicted.astype(np.int64)), 1)
    return c


def _mode(guesses: np.ndarray) -> np.ndarray:
    """(seeds, n) predictions -> (n,) most frequent per image (lowest digit on ties)."""
    counts = np.stack([(guesses == k).sum(0) for k in range(CLASSES)])
    return np.asarray(counts.argmax(0))


def _contrast(arm: str, baseline: str, seeds: Sequence[int],
              preds: Mapping[tuple[str, int], Predictions],
              pixels: Callable[[np.ndarray], np.ndarray | None], rope: float
              ) -> WhereContrast:
    a = [preds[(arm, s)].splits[SPLIT] for s in seeds]
    b = [preds[(baseline, s)].splits[SPLIT] for s in seeds]
    label = a[0].label.astype(np.int64)
    right_a = np.stack([x.correct for x in a])  # (seeds, n)
    right_b = np.stack([x.correct for x in b])
    digits = []
    for d in range(CLASSES):
        rows = label == d
        n_d = int(rows.sum())
        if n_d == 0:
            continue
        acc_a = right_a[:, rows].sum(1) / n_d  # (seeds,)
        acc_b = right_b[:, rows].sum(1) / n_d
        diffs = acc_a - acc_b
        low, high = sign_flip(diffs, resolution=1.0 / n_d).interval(CONFIDENCE)
        digits.append(DigitDifference(d, n_d, float(acc_a.mean()), float(acc_b.mean()),
                                      float(diffs.mean()), low, high))
    rows_total = np.bincount(label, minlength=CLASSES).astype(np.float64)
    per_row = np.where(rows_total > 0, rows_total, np.nan)[:, None]
    conf_a = np.mean([_confusion(preds[(arm, s)]) for s in seeds], 0) / per_row
    conf_b = np.mean([_confusion(preds[(baseline, s)]) for s in seeds], 0) / per_row
    flips = (right_a != right_b).sum(0)  # (n,)
    order = np.lexsort((np.arange(len(flips)), -flips))
    top = [int(i) for i in order[:GALLERY] if flips[i] > 0]
    guess_a = _mode(np.stack([x.predicted for x in a]))
    guess_b = _mode(np.stack([x.predicted for x in b]))
    image = a[0].image
    chosen = tuple(Flip(int(image[i]), int(label[i]), int(flips[i]), int(right_a[:, i].sum()),
                        int(right_b[:, i].sum()), int(guess_a[i]), int(guess_b[i]))
                   for i in top)
    return WhereContrast(arm, baseline, tuple(seeds), tuple(digits),
                         np.nan_to_num(conf_a - conf_b), chosen,
                         pixels(np.array([f.image for f in chosen], dtype=np.int64))
                         if chosen else None, int((flips > 0).sum()),
                         two_way(right_a, right_b, rope=rope)
                         if len(seeds) >= 2 and len(label) >= 2 else None)


def _ensemble(arm: str, runs: Sequence[Predictions]) -> Ensemble:
    """The seed ensemble of these runs (in seed order) against their mean single run."""
    label = runs[0].splits[SPLIT].label
    single = np.array([r.splits[SPLIT].accuracy() for r in runs])
    total = np.zeros_like(runs[0].test_probs, dtype=np.float64)
    by_size = []
    for r in runs:
        total += r.test_probs
        by_size.append(float((total.argmax(1) == label).mean()))
    return Ensemble(arm, len(runs), float(single.mean()),
                    float(single.std(ddof=1)) if len(runs) > 1 else float("nan"),
                    by_size[-1], tuple(by_size))


def where(arms: Sequence[str], baseline: str, seeds: Sequence[int],
          preds: Mapping[tuple[str, int], Predictions],
          missing: Sequence[tuple[str, int]],
          pixels: Callable[[np.ndarray], np.ndarray | None] = lambda _: None, *,
          rope: float = 0.0) -> Where:
    """The section's numbers: arms in study order (baseline among them), the analysed
    seeds, each finished run's predictions by (arm, seed), the finished runs without
    them; `pixels` maps test-image indices to their (k, 28, 28) images, or None; `rope`
    the ROPE in accuracy units, for the reach intervals' calls."""
    contrasts = []
    for arm in arms:
        if arm == baseline:
            continue
        paired = [s for s in seeds if (arm, s) in preds and (baseline, s) in preds]
        if paired:
            contrasts.append(_contrast(arm, baseline, paired, preds, pixels, rope))
    ensembles = []
    for arm in arms:
        runs = [preds[(arm, s)] for s in seeds if (arm, s) in preds]
        if runs:
            ensembles.append(_ensemble(arm, runs))
    return Where(SPLIT, CONFIDENCE, tuple(contrasts), tuple(ensembles), tuple(missing))
