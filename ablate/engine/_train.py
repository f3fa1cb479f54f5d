"""Train one cohort: S seeds of one arm as one batched model.

The loss is the sum over replicas of each replica's mean cross-entropy, so every
replica's gradient is exactly its own; each replica draws its own minibatch order and
dropout masks from its own streams. Data lives on the device as uint8 and is scaled
per batch. A replica whose loss turns NaN/inf is marked diverged, its parameters and
optimizer state are zeroed (finite, so they stay put) and its loss is masked out; the
others carry on.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ablate.data import Mnist, split, stratified_order, validation_halves
from ablate.engine import _rng as rng
from ablate.engine._config import RunConfig
from ablate.engine._model import INPUTS, CohortMLP, load_replica_state, replica_state
from ablate.engine._optim import Optimizer
from ablate.metric import Metric

EVAL_CHUNK = 2048  # rows per evaluation batch; bounds memory at (S, 2048, widest layer)


@dataclass(frozen=True)
class DeviceData:
    """The splits on the training device: images (n, 784) uint8, labels (n,) int64."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    val_half: Tensor  # (n_val,) int64: 0 for validation half A, 1 for half B (cross-fitting)

    @property
    def val_half_sizes(self) -> tuple[int, int]:
        b = int(self.val_half.sum())
        return len(self.val_half) - b, b

    @property
    def device(self) -> torch.device:
        return self.x_train.device


def prepare_data(mnist: Mnist, validation: int, subset: int | None,
                 device: torch.device | str) -> DeviceData:
    """Split off the fixed stratified validation set; `subset` keeps the first N training
    images of a fixed stratified order (smoke runs)."""
    train_idx, val_idx = split(mnist.y_train, validation)
    halves = validation_halves(mnist.y_train[val_idx])
    if subset is not None:
        order = train_idx[stratified_order(mnist.y_train[train_idx])]
        train_idx = np.sort(order[:subset])

    def put(x: np.ndarray, dtype: torch.dtype) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).to(device=device, dtype=dtype)

    def images(x: np.ndarray) -> Tensor:
        return put(x.reshape(len(x), INPUTS), torch.uint8)  # also for an empty split

    return DeviceData(
        x_train=images(mnist.x_train[train_idx]), y_train=put(mnist.y_train[train_idx], torch.long),
        x_val=images(mnist.x_train[val_idx]), y_val=put(mnist.y_train[val_idx], torch.long),
        x_test=images(mnist.x_test), y_test=put(mnist.y_test, torch.long),
        val_half=put(halves, torch.long),
    )


def scale(x: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 pixels -> floats in [0, 1], divided by 255 as the notebook did."""
    return x.to(dtype).div_(255.0)


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


@dataclass
class CohortResult:
    replicas: list[ReplicaResult]
    history: list[Epoch]
    seconds: float
    val_half_sizes: tuple[int, int]  # images in validation halves A and B


def replica_losses(logits: Tensor, labels: Tensor) -> Tensor:
    """Each replica's mean cross-entropy: logits (S, B, C), labels (S, B) -> (S,).

    The training loss is their sum, so each replica's gradient is exactly its own.
    """
    return F.cross_entropy(logits.transpose(1, 2), labels, reduction="none").mean(1)


def _evaluate(model: CohortMLP, x: Tensor, y: Tensor, dtype: torch.dtype,
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
            loss.index_add_(1, gb, row_loss)
            correct.index_add_(1, gb, (logits.argmax(-1) == target).long())
    model.train()
    return loss, correct


def _means(model: CohortMLP, x: Tensor, y: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Mean loss and accuracy per replica on shared data: (S,), (S,)."""
    loss, correct = _evaluate(model, x, y, dtype)
    return loss[:, 0] / len(y), correct[:, 0].double() / len(y)


def train_cohort(config: RunConfig, seeds: list[int], data: DeviceData, *, select_on: Metric,
                 on_step: Callable[[int], None] | None = None,
                 dtype: torch.dtype = torch.float32) -> CohortResult:
    """Train `len(seeds)` replicas of `config` for `config.epochs` epochs.

    `select_on` is the validation metric (`val_accuracy` or `val_loss`) whose best
    epoch's weights are kept; with no validation split the last epoch is kept.
    `on_step(k)` is called after every k optimizer steps (for progress bars). `dtype`
    float64 is for exactness tests; studies train in float32.
    """
    device, S = data.device, len(seeds)
    start = time.perf_counter()
    dropout_gens = [rng.generator(s, "dropout", device=device) for s in seeds]
    order_gens = [rng.generator(s, "data", device=device) for s in seeds]
    model = CohortMLP(config, seeds, dropout_gens).to(device=device, dtype=dtype)
    params = list(model.parameters())
    opt = Optimizer(config.optimizer, params)
    dense_weights = [layer.weight for layer in model.dense]
    alive = torch.ones(S, dtype=torch.bool, device=device)
    n, B = len(data.y_train), config.batch_size
    has_val = len(data.y_val) > 0
    n_val = len(data.y_val)
    # A half can be empty (a 1-image split): its mean is then NaN, never 0/0 garbage.
    half_sizes = torch.tensor(data.val_half_sizes, dtype=torch.float64, device=device)
    half_sizes = torch.where(half_sizes > 0, half_sizes, math.nan)
    best = [math.nan] * S
    best_epoch = [0] * S
    best_state: list[dict[str, Tensor]] = [replica_state(model, s) for s in range(S)]
    history: list[Epoch] = []

    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        perms = torch.stack([torch.randperm(n, generator=g, device=device) for g in order_gens])
        loss_sum = torch.zeros(S, device=device, dtype=torch.float64)
        correct = torch.zeros(S, device=device, dtype=torch.long)
        grad_sq = torch.zeros(S, len(dense_weights), device=device, dtype=torch.float64)
        weight = alive.to(torch.float32)  # dead replicas contribute no gradient
        steps = 0
        for i in range(0, n, B):
            idx = perms[:, i:i + B]  # (S, b): each replica its own minibatch
            xb, yb = scale(data.x_train[idx], dtype), data.y_train[idx]  # (S, b, 784), (S, b)
            logits = model(xb)  # (S, b, 10)
            per_replica = replica_losses(logits, yb)  # (S,)
            opt.zero_grad()
            (per_replica * weight).sum().backward()
            opt.step()
            with torch.no_grad():
                loss_sum += per_replica.double() * idx.shape[1]
                correct += (logits.argmax(-1) == yb).sum(1)
                for j, w in enumerate(dense_weights):
                    assert w.grad is not None
                    grad_sq[:, j] += torch.linalg.vector_norm(w.grad, dim=(1, 2)).double() ** 2
            steps += 1
            if on_step is not None and steps % 20 == 0:
                on_step(20)
        if on_step is not None and steps % 20:
            on_step(steps % 20)

        train_loss = loss_sum / n
        if has_val:  # per half (A, B), for the cross-fitted metrics; the whole split too
            loss_halves, correct_halves = _evaluate(model, data.x_val, data.y_val, dtype,
                                                    data.val_half, 2)  # (S, 2), (S, 2)
            val_loss = loss_halves.sum(1) / n_val
            val_acc = correct_halves.sum(1).double() / n_val
            loss_halves, acc_halves = loss_halves / half_sizes, correct_halves / half_sizes
        else:
            val_loss = val_acc = torch.full((S,), math.nan, dtype=torch.float64, device=device)
            loss_halves = acc_halves = torch.full((S, 2), math.nan, dtype=torch.float64,
                                                  device=device)
        with torch.no_grad():
            weight_norms = torch.stack([torch.linalg.vector_norm(w, dim=(1, 2))
                                        for w in dense_weights], 1)
        bad = ~torch.isfinite(train_loss)
        if has_val:
            bad |= ~torch.isfinite(val_loss)
        newly_dead = bad & alive
        if newly_dead.any():
            _bury(model, opt, newly_dead)
            alive &= ~newly_dead
        alive_now = alive.cpu().tolist()
        dead = ~np.array(alive_now)  # a diverged replica's later epochs are NaN, not its zeros
        record = Epoch(
            epoch=epoch, train_loss=_host(train_loss, dead),
            train_accuracy=_host(correct / n, dead), val_loss=_host(val_loss, dead),
            val_accuracy=_host(val_acc, dead), val_loss_halves=_host(loss_halves, dead),
            val_accuracy_halves=_host(acc_halves, dead), seconds=time.perf_counter() - t0,
            grad_norms=_host((grad_sq / steps).sqrt(), dead),
            weight_norms=_host(weight_norms, dead),
        )
        history.append(record)
        for s in range(S):
            if not alive_now[s]:
                continue
            value = float(getattr(record, select_on.name)[s]) if has_val else math.nan
            if not has_val or math.isnan(best[s]) or select_on.better(value, best[s]):
                best[s], best_epoch[s] = value, epoch
                best_state[s] = replica_state(model, s)

    replicas = _finish(model, seeds, data, alive, best_state, best_epoch, history, dtype)
    return CohortResult(replicas, history, time.perf_counter() - start, data.val_half_sizes)


def _host(t: Tensor, dead: np.ndarray) -> np.ndarray:
    """A per-replica metric as float64 NumPy, NaN where the replica has diverged."""
    a = t.double().cpu().numpy()
    a[dead] = math.nan
    return a


@torch.no_grad()
def _bury(model: CohortMLP, opt: Optimizer, dead: Tensor) -> None:
    """Zero a diverged replica's parameters and state so it stays finite and still."""
    for name, t in model.state_dict().items():
        t[dead] = 1.0 if name.endswith("running_var") else 0.0
    opt.reset_replicas(dead)


def _finish(model: CohortMLP, seeds: list[int], data: DeviceData, alive: Tensor,
            best_state: list[dict[str, Tensor]], best_epoch: list[int],
            history: list[Epoch], dtype: torch.dtype) -> list[ReplicaResult]:
    """Load each replica's kept weights, measure them on validation and test."""
    for s, state in enumerate(best_state):
        load_replica_state(model, s, state)
    has_val = len(data.y_val) > 0
    test_loss, test_acc = _means(model, data.x_test, data.y_test, dtype)
    if has_val:
        val_loss, val_acc = _means(model, data.x_val, data.y_val, dtype)
    out = []
    for s, seed in enumerate(seeds):
        ok = bool(alive[s])
        kept = history[best_epoch[s] - 1] if best_epoch[s] else history[-1]
        metrics = {
            "train_loss": float(kept.train_loss[s]),
            "val_loss": float(val_loss[s]) if has_val else math.nan,
            "val_accuracy": float(val_acc[s]) if has_val else math.nan,
            "test_loss": float(test_loss[s]),
            "test_accuracy": float(test_acc[s]),
        }
        if not ok:
            metrics = {k: math.nan for k in metrics}
        out.append(ReplicaResult(seed=seed, status="done" if ok else "diverged",
                                 best_epoch=best_epoch[s] if ok else 0, metrics=metrics,
                                 state=best_state[s]))
    return out
