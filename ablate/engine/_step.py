"""One optimizer step of a cohort: run eagerly, or (on CUDA, optionally) captured once as a
CUDA graph and replayed.

A step reads its minibatch indices (S, B) and its dropout words (dropout layers, S), and
adds its metrics to on-device accumulators, so that nothing in it waits for the device.
On a GPU a step of small MLPs is bound by kernel launches (~100 per step); a CUDA graph
replays them all with one launch. Capture needs every tensor a step touches at a fixed
address: `static` mode routes the step through such buffers (copying the minibatch's
indices and words in), which is all the graph adds to the eager step's logic, and runs on
any device (the tests compare it with the eager step on the CPU); `graph` mode records
that static step once and replays it. Optimizers whose arithmetic depends on the step
number (Adam, AdamW: bias corrections) cannot be replayed unchanged and are refused.
The last, shorter minibatch of an epoch always runs eagerly.
"""

from typing import Literal

import torch
from torch import Tensor

from ablate.engine._model import INPUTS, CohortMLP
from ablate.engine._optim import Optimizer
from ablate.engine._optimizers import OPTIMIZER_SPECS

__all__ = ["WARMUP", "Mode", "Stepper", "replica_losses"]

Mode = Literal["eager", "static", "graph"]
WARMUP = 3  # eager steps (on a side stream) before capture, as PyTorch's recipe asks


def replica_losses(logits: Tensor, labels: Tensor) -> Tensor:
    """Each replica's mean cross-entropy: logits (S, B, C), labels (S, B) -> (S,).

    The training loss is their sum, so each replica's gradient is exactly its own.
    """
    return torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels,
                                             reduction="none").mean(1)


class Stepper:
    """Steps of one cohort over one dataset, accumulating each epoch's metrics on the device:
    `loss_sum` (S,) float64 (sum of batch mean loss x rows), `correct` (S,) int64,
    `grad_sq` (S, dense layers) float64 (sum over steps of ||dL/dW||^2)."""

    def __init__(self, model: CohortMLP, opt: Optimizer, x_train: Tensor, y_train: Tensor,
                 batch: int, mode: Mode = "eager") -> None:
        if mode == "graph" and x_train.device.type != "cuda":
            raise ValueError("a captured training step needs a CUDA device")
        if mode != "eager" and OPTIMIZER_SPECS[opt.config.name].step_dependent:
            raise ValueError(f"{opt.config.name} cannot be captured: its bias corrections change "
                             "every step; train it without capture")
        self.model, self.opt, self.x, self.y, self.mode = model, opt, x_train, y_train, mode
        device, S = x_train.device, model.replicas
        self.dense = [layer.weight for layer in model.dense]
        self.loss_sum = torch.zeros(S, dtype=torch.float64, device=device)
        self.correct = torch.zeros(S, dtype=torch.long, device=device)
        self.grad_sq = torch.zeros(S, len(self.dense), dtype=torch.float64, device=device)
        self.weight = torch.ones(S, dtype=x_train.dtype, device=device)  # 0: diverged
        self.batch = batch
        self.static_idx = torch.zeros(S, batch, dtype=torch.long, device=device)
        self.static_words = torch.zeros(len(model.dropouts), S, dtype=torch.int32,
                                        device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.side: torch.cuda.Stream | None = None
        self.full_steps = 0  # full-batch steps taken (graph mode: warm-up, then capture)

    def start_epoch(self, alive: Tensor) -> None:
        """Zero the accumulators (in place: a graph keeps their addresses); dead replicas
        (alive False) contribute no gradient."""
        self.loss_sum.zero_()
        self.correct.zero_()
        self.grad_sq.zero_()
        self.weight.copy_(alive.to(self.weight.dtype))

    def __call__(self, idx: Tensor, words: Tensor) -> None:
        """One step on minibatch indices idx (S, b) with dropout words (dropout layers, S)."""
        if self.mode == "eager" or idx.shape[1] != self.batch:
            self._step(idx, words)
            return
        self.static_idx.copy_(idx)
        self.static_words.copy_(words)
        if self.mode == "static":
            self._step(self.static_idx, self.static_words)
        elif self.graph is not None:
            self._replay()
        elif self.full_steps < WARMUP:
            self._warm_up()
        else:
            self._capture()
            self._replay()
        self.full_steps += 1

    def _step(self, idx: Tensor, words: Tensor) -> None:
        flat = idx.reshape(-1)  # index_select copies whole rows: ~8x faster than x[idx]
        xb = self.x.index_select(0, flat).view(*idx.shape, INPUTS)  # (S, b, 784)
        yb = self.y.index_select(0, flat).view(idx.shape)  # (S, b)
        self.model.set_words(words)
        logits = self.model(xb)  # (S, b, 10)
        per_replica = replica_losses(logits, yb)  # (S,)
        self.opt.zero_grad()
        (per_replica * self.weight).sum().backward()
        self.opt.step()
        with torch.no_grad():
            self.loss_sum.add_(per_replica.double() * idx.shape[1])
            self.correct.add_((logits.argmax(-1) == yb).sum(1))
            norms = torch.stack([torch.linalg.vector_norm(g, dim=(1, 2))
                                 for g in (w.grad for w in self.dense) if g is not None], 1)
            self.grad_sq.add_(norms.double().square())  # (S, dense layers)

    def _side_stream(self) -> torch.cuda.Stream:
        """The one side stream of warm-up and capture, made once on the data's device (a
        stream per step would cost a cuBLAS workspace each)."""
        if self.side is None:
            self.side = torch.cuda.Stream(device=self.x.device)
        return self.side

    def _warm_up(self) -> None:
        """A real step on the side stream, before capture (cuBLAS and allocator warm-up).
        Streams, capture and replay name the data's device explicitly: on the current
        device (cuda:0) they would record nothing of a cuda:1 step."""
        side, main = self._side_stream(), torch.cuda.current_stream(self.x.device)
        side.wait_stream(main)
        with torch.cuda.device(self.x.device), torch.cuda.stream(side):
            self._step(self.static_idx, self.static_words)
        main.wait_stream(side)

    def _capture(self) -> None:
        """Record the static step once, on the side stream (not `torch.cuda.graph`'s own
        default stream, made once per process on whichever device was current)."""
        self.opt.zero_grad()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.device(self.x.device), torch.cuda.graph(graph, stream=self._side_stream()):
            self._step(self.static_idx, self.static_words)
        self.graph = graph

    def _replay(self) -> None:
        assert self.graph is not None
        with torch.cuda.device(self.x.device):  # onto the current stream of the graph's device
            self.graph.replay()
