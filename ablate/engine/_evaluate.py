"""Evaluation of a cohort on shared data: summed loss and correct predictions per replica
(and per group of rows, for the validation halves), in chunks that bound memory."""

import torch
import torch.nn.functional as F
from torch import Tensor

from ablate.engine._data import scale
from ablate.engine._model import CohortMLP

__all__ = ["EVAL_CHUNK", "evaluate", "mean_scores"]

EVAL_CHUNK = 2048  # rows per evaluation batch; bounds memory at (S, 2048, widest layer)


def evaluate(model: CohortMLP, x: Tensor, y: Tensor, dtype: torch.dtype,
              groups: Tensor | None = None, n_groups: int = 1) -> tuple[Tensor, Tensor]:
    """Summed loss and correct predictions per replica and group on shared data.

    x (n, 784) uint8, y (n,), groups (n,) int64 in [0, n_groups) (None: one group) ->
    loss sums (S, n_groups) float64 and correct counts (S, n_groups) int64.
    """
    S, n = model.replicas, len(y)
    loss = torch.zeros(S, n_groups, device=x.device, dtype=torch.float64)
    correct = torch.zeros(S, n_groups, device=x.device, dtype=torch.long)
    if groups is None:
        groups = torch.zeros(n, device=x.device, dtype=torch.long)
    model.eval()
    with torch.inference_mode():
        for i in range(0, n, EVAL_CHUNK):
            xb, yb = scale(x[i:i + EVAL_CHUNK], dtype), y[i:i + EVAL_CHUNK]
            gb = groups[i:i + EVAL_CHUNK]
            logits = model(xb)  # (b, 784) shared by every replica -> (S, b, 10)
            logp = F.log_softmax(logits, dim=-1)
            target = yb.expand(S, -1)
            row_loss = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1).double()  # (S, b)
            # per-group sums by masking, not index_add_: float atomics on CUDA would make
            # the sums' rounding, and so the kept epoch, vary from run to run
            loss += torch.stack([torch.where(gb == g, row_loss, 0.0).sum(1)
                                 for g in range(n_groups)], 1)
            correct.index_add_(1, gb, (logits.argmax(-1) == target).long())  # exact
    model.train()
    return loss, correct


def mean_scores(model: CohortMLP, x: Tensor, y: Tensor, dtype: torch.dtype
                ) -> tuple[Tensor, Tensor]:
    """Mean loss and accuracy per replica on shared data: (S,), (S,)."""
    loss, correct = evaluate(model, x, y, dtype)
    return loss[:, 0] / len(y), correct[:, 0].double() / len(y)
