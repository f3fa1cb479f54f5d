"""Evaluation of a cohort on shared data: summed loss and correct predictions per replica
(and per group of rows, for the validation halves), in chunks that bound memory; on
request also each image's predicted class and the probability of its label (and every
class's probability), per replica, for the per-image predictions a run stores."""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ablate.engine._data import DeviceData, scale
from ablate.engine._model import CLASSES, CohortMLP
from ablate.predictions import Predictions, SplitPredictions

__all__ = ["EVAL_CHUNK", "PerImage", "evaluate", "evaluate_images", "mean_scores",
           "run_predictions"]

EVAL_CHUNK = 2048  # rows per evaluation batch; bounds memory at (S, 2048, widest layer)


@dataclass
class PerImage:
    """Per replica and image, on the evaluation's device."""

    predicted: Tensor  # (S, n) uint8: argmax of the logits (what `correct` counts)
    p_true: Tensor  # (S, n) float32: softmax probability of the label
    probs: Tensor | None  # (S, n, classes) float32, when asked for


def evaluate(model: CohortMLP, x: Tensor, y: Tensor, dtype: torch.dtype,
             groups: Tensor | None = None, n_groups: int = 1) -> tuple[Tensor, Tensor]:
    """Summed loss and correct predictions per replica and group on shared data.

    x (n, 784) uint8, y (n,), groups (n,) int64 in [0, n_groups) (None: one group) ->
    loss sums (S, n_groups) float64 and correct counts (S, n_groups) int64.
    """
    loss, correct, _ = _evaluate(model, x, y, dtype, groups, n_groups, None)
    return loss, correct


def evaluate_images(model: CohortMLP, x: Tensor, y: Tensor, dtype: torch.dtype,
                    groups: Tensor | None = None, n_groups: int = 1, *,
                    probs: bool = False) -> tuple[Tensor, Tensor, PerImage]:
    """`evaluate`, and in the same pass each image's prediction (`PerImage`)."""
    loss, correct, images = _evaluate(model, x, y, dtype, groups, n_groups, probs)
    assert images is not None
    return loss, correct, images


def _evaluate(model: CohortMLP, x: Tensor, y: Tensor, dtype: torch.dtype,
              groups: Tensor | None, n_groups: int, probs: bool | None
              ) -> tuple[Tensor, Tensor, PerImage | None]:
    """probs None: no per-image outputs; False: predictions; True: also probabilities."""
    S, n = model.replicas, len(y)
    loss = torch.zeros(S, n_groups, device=x.device, dtype=torch.float64)
    correct = torch.zeros(S, n_groups, device=x.device, dtype=torch.long)
    if groups is None:
        groups = torch.zeros(n, device=x.device, dtype=torch.long)
    predicted, p_true, all_probs = [], [], []
    model.eval()
    with torch.inference_mode():
        for i in range(0, n, EVAL_CHUNK):
            xb, yb = scale(x[i:i + EVAL_CHUNK], dtype), y[i:i + EVAL_CHUNK]
            gb = groups[i:i + EVAL_CHUNK]
            logits = model(xb)  # (b, 784) shared by every replica -> (S, b, 10)
            logp = F.log_softmax(logits, dim=-1)
            target = yb.expand(S, -1)
            logp_true = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # (S, b)
            row_loss = -logp_true.double()
            # per-group sums by masking, not index_add_: float atomics on CUDA would make
            # the sums' rounding, and so the kept epoch, vary from run to run
            loss += torch.stack([torch.where(gb == g, row_loss, 0.0).sum(1)
                                 for g in range(n_groups)], 1)
            guess = logits.argmax(-1)
            correct.index_add_(1, gb, (guess == target).long())  # exact
            if probs is not None:
                predicted.append(guess.to(torch.uint8))
                p_true.append(logp_true.float().exp())
                if probs:
                    all_probs.append(logp.float().exp())
    model.train()
    if probs is None:
        return loss, correct, None

    def cat(parts: list[Tensor], *empty: int) -> Tensor:
        return torch.cat(parts, 1) if parts else torch.zeros(S, 0, *empty, device=x.device)

    images = PerImage(cat(predicted).to(torch.uint8), cat(p_true).float(),
                      cat(all_probs, CLASSES).float() if probs else None)
    return loss, correct, images


def mean_scores(model: CohortMLP, x: Tensor, y: Tensor, dtype: torch.dtype
                ) -> tuple[Tensor, Tensor]:
    """Mean loss and accuracy per replica on shared data: (S,), (S,)."""
    loss, correct = evaluate(model, x, y, dtype)
    return loss[:, 0] / len(y), correct[:, 0].double() / len(y)


def run_predictions(data: DeviceData, val: PerImage | None, test: PerImage) -> list[Predictions]:
    """Each replica's `Predictions`: `val` from the kept epoch's validation pass (None: no
    validation split), `test` with probabilities from the kept weights' test pass."""
    y_test = data.y_test.cpu().numpy()
    S = test.predicted.shape[0]
    if val is None:  # no validation split: both halves empty
        y_val, half = np.zeros(0, np.int64), np.zeros(0, np.int64)
        index, v_pred, v_p = y_val, np.zeros((S, 0)), np.zeros((S, 0))
    else:
        y_val, half = data.y_val.cpu().numpy(), data.val_half.cpu().numpy()
        index = data.val_index if data.val_index is not None else np.arange(len(y_val))
        v_pred, v_p = val.predicted.cpu().numpy(), val.p_true.cpu().numpy()
    t_pred, t_p = test.predicted.cpu().numpy(), test.p_true.cpu().numpy()
    assert test.probs is not None
    t_probs = test.probs.cpu().numpy()
    test_image = np.arange(len(y_test), dtype=np.int32)
    out = []
    for s in range(S):
        splits = {name: SplitPredictions(index[rows].astype(np.int32),
                                         y_val[rows].astype(np.uint8),
                                         v_pred[s, rows].astype(np.uint8),
                                         v_p[s, rows].astype(np.float32))
                  for name, rows in (("val_a", half == 0), ("val_b", half == 1))}
        splits["test"] = SplitPredictions(test_image, y_test.astype(np.uint8),
                                          t_pred[s], t_p[s])
        out.append(Predictions(splits, t_probs[s]))
    return out
