"""MLP spec -> cohort model, and the Keras-style parameter summary.

A hidden block is Dense -> [BN] -> activation -> [BN] -> [Dropout] (BN before or after
the activation, as the config says); the output is Dense(10) whose logits feed a
softmax cross-entropy. The same config builds one replica per seed.
"""

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ablate.engine import _rng as rng
from ablate.engine._config import RunConfig, cohort_key
from ablate.engine._layers import (
    Activation,
    CohortBatchNorm,
    CohortDropout,
    CohortLinear,
    init_bias,
    init_weight,
)

__all__ = [
    "CLASSES", "INPUTS", "CohortMLP", "SummaryRow", "initial_dense", "layer_sizes",
    "layers_text", "optimizer_text", "parameter_count", "replica_state", "replicate",
    "summary_rows",
]

INPUTS = 784  # 28 x 28 pixels, flattened row-major
CLASSES = 10


def layer_sizes(config: RunConfig) -> list[tuple[int, int]]:
    """(fan_in, fan_out) of every Dense layer, the output layer last."""
    widths = [INPUTS, *(layer.units for layer in config.layers), CLASSES]
    return list(zip(widths[:-1], widths[1:], strict=True))


def initial_dense(config: RunConfig, seed: int, index: int) -> tuple[Tensor, Tensor]:
    """Initial (kernel (fan_in, fan_out), bias (fan_out,)) of Dense layer `index` for `seed`.

    Each layer draws from its own stream (seed, "init", index): adding a layer or
    toggling dropout leaves the other layers' initial weights unchanged.
    """
    fan_in, fan_out = layer_sizes(config)[index]
    g = rng.seed_generator(seed, "init", index)
    init = config.init
    w = init_weight(init.name, init.scale, init.truncated, fan_in, fan_out, g)
    return w, init_bias(init.name, fan_in, fan_out, g)


class CohortMLP(nn.Module):
    """S replicas of one MLP; replica s is initialized from seeds[s] with configs[s].

    `configs` is one config for every replica, or one per replica sharing a `cohort_key`
    (same shapes and batch-norm settings); what may differ per replica (dropout rate,
    activation, leaky slope, initializer) each replica takes from its own config.
    Modules are named by role and hidden-layer index, so checkpoints name their tensors
    the same way whatever the architecture: hidden layer i is `dense{i}` -> [`bn{i}`] ->
    `act{i}` -> [`bn{i}`] -> [`drop{i}`]; the output layer is `dense{L}` (L hidden layers).
    Tensors: `dense{i}.weight` (S, fan_in, fan_out), `dense{i}.bias` (S, fan_out),
    `bn{i}.weight`, `.bias`, `.running_mean`, `.running_var` (S, units). Dropout keeps no
    state (its masks are a function of seed, layer and step), so any device can train it.
    """

    def __init__(self, configs: RunConfig | Sequence[RunConfig],
                 seeds: list[int] | tuple[int, ...]) -> None:
        super().__init__()
        self.seeds = tuple(seeds)
        S = len(seeds)
        self.configs = replicate(configs, S)
        config = self.config = self.configs[0]
        for i in range(len(config.layers) + 1):
            pairs = [initial_dense(c, c.stream_seed("init", seed), i)
                     for c, seed in zip(self.configs, seeds, strict=True)]
            self.add_module(f"dense{i}", CohortLinear(torch.stack([w for w, _ in pairs]),
                                                      torch.stack([b for _, b in pairs])))
            if i == len(config.layers):
                break
            layer = config.layers[i]
            mine = [c.layers[i] for c in self.configs]  # this layer of every replica
            bn = CohortBatchNorm(S, layer.units, config.bn_momentum, config.bn_eps,
                                 bessel=config.bn_running_var == "unbiased")
            if layer.batch_norm == "before":
                self.add_module(f"bn{i}", bn)
            # after the Dense layer directly, ReLU overwrites its output (baddbmm's
            # backward reads its inputs, not its output)
            self.add_module(f"act{i}", Activation([m.activation for m in mine],
                                                  [c.leaky_slope for c in self.configs],
                                                  inplace=layer.batch_norm != "before"))
            if layer.batch_norm == "after":
                self.add_module(f"bn{i}", bn)
            if any(m.dropout > 0 for m in mine):
                keys = [rng.dropout_key(c.stream_seed("mask", s), i)
                        for c, s in zip(self.configs, seeds, strict=True)]
                self.add_module(f"drop{i}", CohortDropout([m.dropout for m in mine], keys))

    @property
    def dense(self) -> list[CohortLinear]:
        """The Dense layers, the output layer last."""
        return [m for m in self.children() if isinstance(m, CohortLinear)]

    @property
    def dropouts(self) -> list[CohortDropout]:
        return [m for m in self.children() if isinstance(m, CohortDropout)]

    @property
    def replicas(self) -> int:
        return len(self.seeds)

    def set_step(self, step: Tensor | int) -> None:
        """The optimizer step (from 0) whose dropout masks the next forward passes draw."""
        for drop in self.dropouts:
            drop.step, drop.word = step, None

    def dropout_words(self, first: int, steps: int) -> Tensor:
        """Every dropout layer's step words for steps first..first+steps-1, computed at
        once: (steps, dropout layers, S) int32 (see `ablate.engine._rng`)."""
        drops = self.dropouts
        if not drops:
            return torch.empty(steps, 0, self.replicas, dtype=torch.int32)
        lo = torch.stack([d.key_lo for d in drops])  # (L, S)
        hi = torch.stack([d.key_hi for d in drops])
        step = torch.arange(first, first + steps, dtype=torch.int32, device=lo.device)
        return rng.step_words(lo, hi, step.view(-1, 1, 1))

    def set_words(self, words: Tensor) -> None:
        """Draw the next masks from one row of `dropout_words`: (dropout layers, S)."""
        for drop, word in zip(self.dropouts, words, strict=True):
            drop.word = word

    def forward(self, x: Tensor) -> Tensor:
        """(S, B, 784) per-replica rows, or (B, 784) shared by all, in [0, 1] -> (S, B, 10)."""
        for block in self.children():  # registered in forward order
            x = block(x)
        return x


def replicate(configs: RunConfig | Sequence[RunConfig], replicas: int) -> tuple[RunConfig, ...]:
    """One config per replica: `configs` repeated, or checked to fit one cohort."""
    if isinstance(configs, RunConfig):
        return (configs,) * replicas
    configs = tuple(configs)
    if len(configs) != replicas:
        raise ValueError(f"{len(configs)} configs for {replicas} replicas")
    if len({cohort_key(c) for c in configs}) > 1:
        raise ValueError("these configs cannot share a cohort: their shapes, batch-norm "
                         "settings, optimizer kind or forms, epochs, batch size or thread "
                         "count differ")
    return configs


def replica_state(model: CohortMLP, s: int) -> dict[str, Tensor]:
    """The parameters and BN statistics of replica s as standalone CPU tensors.

    Names as in the model (see `CohortMLP`) without the replica axis: `dense0.weight`
    (fan_in, fan_out), `dense0.bias` (fan_out,), `bn0.running_mean` (units,), ...
    """
    return {name: t[s].detach().cpu().clone() for name, t in model.state_dict().items()}


@dataclass(frozen=True)
class SummaryRow:
    layer: str  # Keras-style name, e.g. "dense_1 (Dense)"
    output_shape: str  # e.g. "(None, 512)"
    params: int
    trainable: int


def summary_rows(config: RunConfig) -> list[SummaryRow]:
    """The rows Keras's `model.summary()` prints for this MLP, with its counts.

    Keras counts BatchNormalization's moving mean and variance as non-trainable. A BN
    before the activation makes Keras use a separate Activation layer.
    """
    rows, counts = [], {"dense": 0, "batch_normalization": 0, "activation": 0, "dropout": 0}

    def add(kind: str, cls: str, units: int, params: int, trainable: int) -> None:
        n = counts[kind]
        counts[kind] += 1
        name = kind if n == 0 else f"{kind}_{n}"
        rows.append(SummaryRow(f"{name} ({cls})", f"(None, {units})", params, trainable))

    for i, (fan_in, fan_out) in enumerate(layer_sizes(config)):
        dense = fan_in * fan_out + fan_out
        add("dense", "Dense", fan_out, dense, dense)
        if i == len(config.layers):
            break
        layer = config.layers[i]
        if layer.batch_norm == "before":
            add("batch_normalization", "BatchNormalization", fan_out, 4 * fan_out, 2 * fan_out)
            add("activation", "Activation", fan_out, 0, 0)
        elif layer.batch_norm == "after":
            add("batch_normalization", "BatchNormalization", fan_out, 4 * fan_out, 2 * fan_out)
        if layer.dropout > 0:
            add("dropout", "Dropout", fan_out, 0, 0)
    return rows


def parameter_count(config: RunConfig) -> int:
    """Trainable parameters of one replica."""
    return sum(row.trainable for row in summary_rows(config))


def layers_text(config: RunConfig) -> str:
    """Hidden layers in one word each: '512BND-128BND-64BN' (BN: batch norm, D: dropout)."""
    return "-".join(f"{layer.units}{'BN' if layer.batch_norm != 'off' else ''}"
                    f"{'D' if layer.dropout else ''}" for layer in config.layers)


def optimizer_text(config: RunConfig) -> str:
    """'sgd lr=0.01', 'adam lr=0.001 (beta1=0.9, beta2=0.999, eps=1e-07)'."""
    opt = config.optimizer
    extra = [f"{f.name}={getattr(opt, f.name):g}" for f in dataclasses.fields(opt)
             if f.name not in ("name", "lr") and isinstance(getattr(opt, f.name), float)]
    return f"{opt.name} lr={opt.lr:g}" + (f" ({', '.join(extra)})" if extra else "")
