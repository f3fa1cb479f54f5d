"""MLP spec -> cohort model, and the Keras-style parameter summary.

A hidden block is Dense -> [BN] -> activation -> [BN] -> [Dropout] (BN before or after
the activation, as the config says); the output is Dense(10) whose logits feed a
softmax cross-entropy. The same config builds one replica per seed.
"""

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ablate.engine import _rng as rng
from ablate.engine._config import RunConfig
from ablate.engine._layers import (
    Activation,
    CohortBatchNorm,
    CohortDropout,
    CohortLinear,
    init_bias,
    init_weight,
)

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
    g = rng.generator(seed, "init", index)
    init = config.init
    w = init_weight(init.name, init.scale, init.truncated, fan_in, fan_out, g)
    return w, init_bias(init.name, fan_in, fan_out, g)


class CohortMLP(nn.Module):
    """S replicas of one MLP; replica s is initialized from seeds[s].

    Modules are named by role and hidden-layer index, so checkpoints name their tensors
    the same way whatever the architecture: hidden layer i is `dense{i}` -> [`bn{i}`] ->
    `act{i}` -> [`bn{i}`] -> [`drop{i}`]; the output layer is `dense{L}` (L hidden layers).
    Tensors: `dense{i}.weight` (S, fan_in, fan_out), `dense{i}.bias` (S, fan_out),
    `bn{i}.weight`, `.bias`, `.running_mean`, `.running_var` (S, units).
    """

    def __init__(self, config: RunConfig, seeds: list[int] | tuple[int, ...],
                 dropout_generators: list[torch.Generator] | None = None) -> None:
        super().__init__()
        self.config, self.seeds = config, tuple(seeds)
        S = len(seeds)
        gens = dropout_generators or [rng.generator(s, "dropout") for s in seeds]
        self.order: list[str] = []  # module names in forward order
        for i in range(len(config.layers) + 1):
            pairs = [initial_dense(config, seed, i) for seed in seeds]
            self._add(f"dense{i}", CohortLinear(torch.stack([w for w, _ in pairs]),
                                                torch.stack([b for _, b in pairs])))
            if i == len(config.layers):
                break
            layer = config.layers[i]
            bn = CohortBatchNorm(S, layer.units, config.bn_momentum, config.bn_eps,
                                 bessel=config.bn_running_var == "unbiased")
            if layer.batch_norm == "before":
                self._add(f"bn{i}", bn)
            self._add(f"act{i}", Activation(layer.activation, config.leaky_slope))
            if layer.batch_norm == "after":
                self._add(f"bn{i}", bn)
            if layer.dropout > 0:
                self._add(f"drop{i}", CohortDropout(layer.dropout, gens))

    def _add(self, name: str, module: nn.Module) -> None:
        self.add_module(name, module)
        self.order.append(name)

    @property
    def dense(self) -> list[CohortLinear]:
        """The Dense layers, the output layer last."""
        return [m for m in self.children() if isinstance(m, CohortLinear)]

    @property
    def replicas(self) -> int:
        return len(self.seeds)

    def forward(self, x: Tensor) -> Tensor:
        """(S, B, 784) per-replica rows, or (B, 784) shared by all, in [0, 1] -> (S, B, 10)."""
        for name in self.order:
            x = self.get_submodule(name)(x)
        return x


def replica_state(model: CohortMLP, s: int) -> dict[str, Tensor]:
    """The parameters and BN statistics of replica s as standalone CPU tensors.

    Names as in the model (see `CohortMLP`) without the replica axis: `dense0.weight`
    (fan_in, fan_out), `dense0.bias` (fan_out,), `bn0.running_mean` (units,), ...
    """
    return {name: t[s].detach().cpu().clone() for name, t in model.state_dict().items()}


def load_replica_state(model: CohortMLP, s: int, state: dict[str, Tensor]) -> None:
    """Inverse of `replica_state` for replica s."""
    with torch.no_grad():
        for name, t in model.state_dict().items():
            t[s].copy_(state[name])


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
