"""What training a cohort returns: per-epoch metrics of every replica, each replica's
kept weights and final metrics, and where it trained."""

from dataclasses import dataclass, field

import numpy as np
from torch import Tensor

from ablate.predictions import Predictions

__all__ = ["CohortResult", "Epoch", "ReplicaResult"]


@dataclass


class Epoch:
    """Per-epoch metrics of every replica, as NumPy arrays of shape (S,) or (S, layers)."""

    epoch: int
    train_loss: np.ndarray
    train_accuracy: np.ndarray
    val_loss: np.ndarray  # NaN when there is no validation split
    val_accuracy: np.ndarray
    val_loss_halves: np.ndarray  # (S, 2): mean loss on validation halves A and B
    val_accuracy_halves: np.ndarray  # (S, 2): accuracy on halves A and B
    seconds: float  # wall time of the whole cohort's epoch
    grad_norms: np.ndarray  # (S, dense layers): RMS over the epoch's steps of ||dL/dW||
    weight_norms: np.ndarray  # (S, dense layers): ||W|| at the epoch's end


@dataclass


class ReplicaResult:
    seed: int
    status: str  # "done" | "diverged"
    best_epoch: int  # 1-based epoch whose weights were kept (0: none)
    metrics: dict[str, float]  # val/test loss and accuracy of the kept weights, train_loss
    state: dict[str, Tensor] = field(repr=False)  # kept weights (CPU), for the checkpoint
    # the kept weights' per-image predictions (None: diverged, or made before they existed)
    predictions: Predictions | None = field(default=None, repr=False)


@dataclass


class CohortResult:
    replicas: list[ReplicaResult]
    history: list[Epoch]
    seconds: float
    val_half_sizes: tuple[int, int]  # images in validation halves A and B
    provenance: dict[str, object]  # where and with what it trained (`provenance`)
