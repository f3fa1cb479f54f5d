"""Train one cohort: S replicas (seeds of one arm, or of several arms that share a
`cohort_key`) as one batched model.

The loss is the sum over replicas of each replica's mean cross-entropy, so every
replica's gradient is exactly its own; each replica draws its own minibatch order and
dropout masks from its own streams, the same on any device and in any cohort. Data
lives on the device; the training images are scaled to floats once per dtype. Within an
epoch nothing waits for the device: metrics accumulate there and the epoch's are read
once at its end, where the kept (best) weights are updated on the device too. A replica
whose loss turns NaN/inf is marked diverged, its parameters and optimizer state are
zeroed (finite, so they stay put) and its loss is masked out; the others carry on.

Given `on_state`, training hands it the cohort's whole state (`ablate.engine._state`) at
the interval `save_every` says, and `resume` continues from such a state: the rest of
the run is the same, bit for bit, as had it never stopped (saving reads the state, it
changes nothing).
"""

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ablate.engine import _rng as rng
from ablate.engine._config import RunConfig
from ablate.engine._data import DeviceData
from ablate.engine._device import pinned_precision, pinned_threads, provenance
from ablate.engine._evaluate import PerImage, evaluate_images, run_predictions
from ablate.engine._model import CohortMLP, replicate
from ablate.engine._optim import Optimizer
from ablate.engine._results import CohortResult, Epoch, ReplicaResult
from ablate.engine._state import (
    EVERY_EPOCH,
    CohortState,
    SavedState,
    SaveEvery,
    StateMismatch,
    decode_state,
    encode_state,
    state_digest,
)
from ablate.engine._step import Mode, Stepper
from ablate.metric import Metric

__all__ = ["ModelFactory", "train_cohort"]


# Builds the cohort model from (configs, seeds): CohortMLP, or for `ablate check` the
# same model with one layer class swapped (a planted bug).
ModelFactory = Callable[[tuple[RunConfig, ...], list[int]], CohortMLP]


def train_cohort(configs: RunConfig | Sequence[RunConfig], seeds: Sequence[int],
                 data: DeviceData, *, select_on: Metric,
                 on_step: Callable[[int], None] | None = None,
                 on_epoch: Callable[[Epoch], None] | None = None,
                 dtype: torch.dtype = torch.float32,
                 model: ModelFactory = CohortMLP, optimizer: type[Optimizer] = Optimizer,
                 capture: bool = False, resume: bytes | None = None,
                 on_state: Callable[[SavedState], None] | None = None,
                 save_every: SaveEvery = EVERY_EPOCH) -> CohortResult:
    """Train replica s of `configs` (one config for all, or one per replica sharing a
    `cohort_key`) from `seeds[s]`, for the configs' epochs, in full float32 matmuls and
    at the configs' torch thread count (`RunConfig.threads`; the process's restored after).

    `select_on` is the validation metric (`val_accuracy` or `val_loss`) whose best
    epoch's weights are kept; with no validation split the last epoch is kept.
    `on_step(k)` is called after every k optimizer steps and `on_epoch(record)` after
    each epoch (for progress displays). `dtype` float64 is for exactness tests; studies
    train in float32. `model` builds the model and `optimizer` is its optimizer's class
    (`ablate check` passes them with a part under test). `capture` (CUDA only, not for
    Adam/AdamW) replays full-batch steps from a CUDA graph (see `ablate.engine._step`).

    `on_state(saved)` receives the cohort's encoded state (`SavedState`) as `save_every`
    says (by default after every epoch but the last); `resume` is such a state, which
    training continues from (`StateMismatch` if it is not one of this cohort: configs,
    seeds and dtype). The result is the same as an uninterrupted run's, bit for bit.
    """
    replicas = replicate(configs, len(seeds))
    threads = replicas[0].threads if replicas else None
    with pinned_precision(data.device), pinned_threads(threads):
        saving = _Saving(state_digest(replicas, list(seeds), dtype), on_state, save_every)
        return _train(replicas, list(seeds), data, select_on, on_step, on_epoch, dtype, model,
                      optimizer, "graph" if capture else "eager", resume, saving)


def _train(configs: tuple[RunConfig, ...], seeds: list[int], data: DeviceData,
           select_on: Metric, on_step: Callable[[int], None] | None,
           on_epoch: Callable[[Epoch], None] | None, dtype: torch.dtype,
           build: ModelFactory, optimizer: type[Optimizer], mode: Mode,
           resume: bytes | None, saving: "_Saving") -> CohortResult:
    device, S, config = data.device, len(seeds), configs[0]
    start = time.perf_counter()
    order_gens = [rng.seed_generator(c.stream_seed("order", s), "data")
                  for c, s in zip(configs, seeds, strict=True)]
    model = build(configs, seeds).to(device=device, dtype=dtype)
    opt = optimizer([c.optimizer for c in configs], list(model.parameters()))
    alive = torch.ones(S, dtype=torch.bool, device=device)
    n, B = len(data.y_train), config.batch_size
    step = Stepper(model, opt, data.train_images(dtype), data.y_train, min(B, n), mode)
    n_val = len(data.y_val)
    has_val = n_val > 0
    sizes = data.val_half_sizes  # (counted on the device: read once)
    # A half can be empty (a 1-image split): its mean is then NaN, never 0/0 garbage.
    half_sizes = torch.tensor(sizes, dtype=torch.float64, device=device)
    half_sizes = torch.where(half_sizes > 0, half_sizes, math.nan)
    kept = _Kept(model, select_on, has_val)
    history: list[Epoch] = []
    first, skip, spent = 1, 0, 0.0  # the epoch to train first, its steps already done
    state = None if resume is None else decode_state(resume, saving.digest)
    if state is not None:
        _restore(state, model, opt, order_gens, alive, kept, history)
        first, skip, spent = state.epoch + 1, state.steps, state.seconds
    saver = None if saving.on_state is None else _Saver(
        saving, model, opt, order_gens, alive, step, kept, history, start - spent)

    for epoch in range(first, config.epochs + 1):
        t0 = time.perf_counter()
        if saver is not None:
            saver.epoch_started()  # the data-order streams as this epoch draws from them
        perms = rng.permutations(order_gens, n, device)  # (S, n), drawn on the CPU
        per_epoch = math.ceil(n / B)
        words = model.dropout_words((epoch - 1) * per_epoch, per_epoch)  # (steps, L, S)
        step.start_epoch(alive)
        steps = 0
        if skip and state is not None:  # resumed inside this epoch: `skip` steps are done
            steps, skip = skip, 0
            _restore_accumulators(state, step)
        for i in range(steps * B, n, B):
            step(perms[:, i:i + B], words[steps])  # each replica its own minibatch (S, b)
            steps += 1
            if on_step is not None and steps % 20 == 0:
                on_step(20)
            if saver is not None and saver.due() and i + B < n:
                saver.save(epoch - 1, steps)
        if on_step is not None and steps % 20:
            on_step(steps % 20)
        loss_sum, correct, grad_sq = step.loss_sum, step.correct, step.grad_sq

        train_loss = loss_sum / n
        if has_val:  # per half (A, B), for the cross-fitted metrics; the whole split too
            loss_halves, correct_halves, val_images = evaluate_images(
                model, data.x_val, data.y_val, dtype, data.val_half, 2)  # (S, 2), (S, 2)
            val_loss = loss_halves.sum(1) / n_val
            val_acc = correct_halves.sum(1).double() / n_val
            loss_halves, acc_halves = loss_halves / half_sizes, correct_halves / half_sizes
        else:
            val_images = None
            val_loss = val_acc = torch.full((S,), math.nan, dtype=torch.float64, device=device)
            loss_halves = acc_halves = torch.full((S, 2), math.nan, dtype=torch.float64,
                                                  device=device)
        with torch.no_grad():
            weight_norms = torch.stack([torch.linalg.vector_norm(w, dim=(1, 2))
                                        for w in step.dense], 1)
        bad = ~torch.isfinite(train_loss)
        if has_val:
            bad |= ~torch.isfinite(val_loss)
        newly_dead = bad & alive
        if newly_dead.any():  # the epoch's one wait for the device
            _bury(model, opt, newly_dead)
            alive &= ~newly_dead
        dead = ~alive.cpu().numpy()  # a diverged replica's later epochs are NaN, not its zeros
        record = Epoch(
            epoch=epoch, train_loss=_host(train_loss, dead),
            train_accuracy=_host(correct / n, dead), val_loss=_host(val_loss, dead),
            val_accuracy=_host(val_acc, dead), val_loss_halves=_host(loss_halves, dead),
            val_accuracy_halves=_host(acc_halves, dead), seconds=time.perf_counter() - t0,
            grad_norms=_host((grad_sq / steps).sqrt(), dead),
            weight_norms=_host(weight_norms, dead),
        )
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        kept.update(epoch, val_acc if select_on.higher_is_better else val_loss, alive,
                    val_images)
        if saver is not None and epoch < config.epochs and (
                epoch % saving.every.epochs == 0 or saver.due()):
            saver.save(epoch, 0)

    replicas = _finish(model, seeds, data, alive, kept, history, dtype)
    return CohortResult(replicas, history, time.perf_counter() - start + spent, sizes,
                        provenance(device))


class _Saving:
    """What saving needs besides the training objects: the state's name, where it goes
    (None: nowhere) and how often."""

    def __init__(self, digest: str, on_state: Callable[[SavedState], None] | None,
                 every: SaveEvery) -> None:
        self.digest, self.on_state, self.every = digest, on_state, every


class _Saver:
    """Captures the training state and hands it on (`_Saving.on_state`). Reads only: the
    tensors are encoded before training goes on, and nothing they hold is changed."""

    def __init__(self, saving: _Saving, model: CohortMLP, opt: Optimizer,
                 order_gens: list[torch.Generator], alive: Tensor, step: Stepper,
                 kept: "_Kept", history: list[Epoch], began: float) -> None:
        self.saving, self.model, self.opt, self.order_gens = saving, model, opt, order_gens
        self.alive, self.step, self.kept, self.history = alive, step, kept, history
        self.began = began  # perf_counter time training would have begun, sessions joined
        self.last = time.perf_counter()
        self.at_start: list[Tensor] = []

    def epoch_started(self) -> None:
        self.at_start = [g.get_state() for g in self.order_gens]

    def due(self) -> bool:
        """Whether `SaveEvery.seconds` have passed since the last save (or the start)."""
        every = self.saving.every.seconds
        return every is not None and time.perf_counter() - self.last >= every

    def save(self, epoch: int, steps: int) -> None:
        """Hand on the state after `epoch` epochs and `steps` steps of the next."""
        assert self.saving.on_state is not None
        order = self.at_start if steps else [g.get_state() for g in self.order_gens]
        s, opt = self.step, self.opt
        state = CohortState(
            digest=self.saving.digest, epoch=epoch, steps=steps,
            seconds=time.perf_counter() - self.began, model=self.model.state_dict(),
            optimizer_t=opt.t, optimizer=opt.state, order=order, alive=self.alive,
            accumulators={"loss_sum": s.loss_sum, "correct": s.correct, "grad_sq": s.grad_sq},
            kept_best=self.kept.best, kept_epoch=self.kept.epoch, kept=self.kept.state,
            kept_images=self.kept.images_state(), history=self.history)
        self.saving.on_state(SavedState(epoch, steps, encode_state(state)))
        self.last = time.perf_counter()


@torch.no_grad()
def _restore(state: CohortState, model: CohortMLP, opt: Optimizer,
             order_gens: list[torch.Generator], alive: Tensor, kept: "_Kept",
             history: list[Epoch]) -> None:
    """Put the training objects where `state` says (in place: the optimizer and the
    stepper hold the model's tensors). `StateMismatch` if its tensors do not fit."""
    try:
        model.load_state_dict(state.model)
        if set(state.optimizer) != set(opt.state) or any(
                len(state.optimizer[k]) != len(v) for k, v in opt.state.items()):
            raise ValueError("optimizer state differs")
        for key, tensors in opt.state.items():
            for t, saved in zip(tensors, state.optimizer[key], strict=True):
                t.copy_(saved)
        if set(state.kept) != set(kept.state) or len(state.order) != len(order_gens):
            raise ValueError("kept weights or streams differ")
        for g, saved in zip(order_gens, state.order, strict=True):
            g.set_state(saved)
        alive.copy_(state.alive)
        kept.best.copy_(state.kept_best)
        kept.epoch.copy_(state.kept_epoch)
        for name, t in kept.state.items():
            t.copy_(state.kept[name])
        kept.restore_images(state.kept_images)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise StateMismatch(f"does not fit this cohort ({exc})") from None
    opt.t = state.optimizer_t
    history.extend(state.history)


@torch.no_grad()
def _restore_accumulators(state: CohortState, step: Stepper) -> None:
    """The metric sums of an epoch resumed inside it (after `Stepper.start_epoch`)."""
    acc = state.accumulators
    step.loss_sum.copy_(acc["loss_sum"])
    step.correct.copy_(acc["correct"])
    step.grad_sq.copy_(acc["grad_sq"])


class _Kept:
    """Each replica's best epoch so far and its weights, kept on the training device.

    The first epoch is kept, then any strictly better one (on the validation metric);
    without validation every epoch replaces the last, so the last is kept.
    """

    def __init__(self, model: CohortMLP, select_on: Metric, has_val: bool) -> None:
        self.model, self.select_on, self.has_val = model, select_on, has_val
        device, S = model.dense[0].weight.device, model.replicas
        self.best = torch.full((S,), math.nan, dtype=torch.float64, device=device)
        self.epoch = torch.zeros(S, dtype=torch.long, device=device)
        self.state = {k: t.detach().clone() for k, t in model.state_dict().items()}
        self.val_images: PerImage | None = None  # the kept epoch's validation predictions

    @torch.no_grad()
    def update(self, epoch: int, value: Tensor, alive: Tensor,
               val_images: PerImage | None = None) -> None:
        """value (S,) float64: this epoch's selection metric; alive (S,) bool;
        val_images: this epoch's validation predictions, kept with its weights."""
        if not self.has_val:
            improved = alive.clone()
        else:
            better = value > self.best if self.select_on.higher_is_better else value < self.best
            improved = (better | self.best.isnan()) & alive
            self.best = torch.where(improved, value, self.best)
        self.epoch = torch.where(improved, epoch, self.epoch)
        for name, t in self.model.state_dict().items():
            mask = improved.view(-1, *[1] * (t.dim() - 1))
            self.state[name] = torch.where(mask, t, self.state[name])
        if val_images is not None:
            old, rows = self.val_images or val_images, improved.view(-1, 1)
            self.val_images = PerImage(torch.where(rows, val_images.predicted, old.predicted),
                                       torch.where(rows, val_images.p_true, old.p_true), None)

    def images_state(self) -> dict[str, Tensor]:
        """The kept epoch's validation predictions, for a cohort state ({} before any)."""
        v = self.val_images
        return {} if v is None else {"predicted": v.predicted, "p_true": v.p_true}

    def restore_images(self, saved: dict[str, Tensor]) -> None:
        """Put back what `images_state` saved (on this cohort's device)."""
        device = self.epoch.device
        self.val_images = (PerImage(saved["predicted"].to(device), saved["p_true"].to(device),
                                    None) if saved else None)


def _host(t: Tensor, dead: np.ndarray) -> np.ndarray:
    """A per-replica metric as float64 NumPy, NaN where the replica has diverged."""
    a = t.double().cpu().numpy()
    a[dead] = math.nan
    return a


@torch.no_grad()


def _bury(model: CohortMLP, opt: Optimizer, dead: Tensor) -> None:
    """Zero a diverged replica's parameters and state so it stays finite and still."""
    for name, t in model.state_dict().items():
        fill = torch.full_like(t, 1.0 if name.endswith("running_var") else 0.0)
        t.copy_(torch.where(dead.view(-1, *[1] * (t.dim() - 1)), fill, t))
    opt.reset_replicas(dead)


def _finish(model: CohortMLP, seeds: list[int], data: DeviceData, alive: Tensor, kept: _Kept,
            history: list[Epoch], dtype: torch.dtype) -> list[ReplicaResult]:
    """Load each replica's kept weights and measure them on test; their validation scores
    are those their epoch measured (the same weights on the same images)."""
    with torch.no_grad():
        for name, t in model.state_dict().items():
            t.copy_(kept.state[name])
    has_val = kept.has_val
    test_sum, test_correct, test_images = evaluate_images(model, data.x_test, data.y_test,
                                                          dtype, probs=True)
    n_test = len(data.y_test)
    test_loss, test_acc = test_sum[:, 0] / n_test, test_correct[:, 0].double() / n_test
    predictions = run_predictions(data, kept.val_images, test_images)
    host = {name: t.cpu() for name, t in kept.state.items()}  # one copy per tensor
    best_epoch = kept.epoch.tolist()
    out = []
    for s, seed in enumerate(seeds):
        ok = bool(alive[s])
        record = history[best_epoch[s] - 1] if best_epoch[s] else history[-1]
        metrics = {
            "train_loss": float(record.train_loss[s]),
            "val_loss": float(record.val_loss[s]) if has_val else math.nan,
            "val_accuracy": float(record.val_accuracy[s]) if has_val else math.nan,
            "test_loss": float(test_loss[s]),
            "test_accuracy": float(test_acc[s]),
        }
        if not ok:
            metrics = {k: math.nan for k in metrics}
        out.append(ReplicaResult(seed=seed, status="done" if ok else "diverged",
                                 best_epoch=best_epoch[s] if ok else 0, metrics=metrics,
                                 state={k: v[s].clone() for k, v in host.items()},
                                 predictions=predictions[s] if ok else None))
    return out
