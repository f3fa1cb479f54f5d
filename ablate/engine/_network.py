"""One trained MLP for inference: the network an exported model is served with.

The cohort model (`CohortMLP`) carries a replica axis for training; a served model is a
single network in eval mode, built from a resolved `RunConfig` and the tensors a
checkpoint names by role (`dense0.weight`, `bn0.running_var`, ...). Hidden layer i is
Dense -> [BN] -> activation -> [BN] -> [Dropout], as in training; in eval mode batch
norm uses its running statistics and dropout is the identity, so no dropout module
exists here. `Network.probabilities` is the one forward pass used both to compute an
export's self-test probes and to answer requests.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablate.engine._config import RunConfig
from ablate.engine._layers import Activation
from ablate.engine._model import layer_sizes

__all__ = ["Network", "TensorMismatch", "network_tensors"]


class TensorMismatch(ValueError):
    """Tensors that are not exactly the ones a config's network holds."""


def network_tensors(config: RunConfig) -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor a network of `config` holds, in forward order.

    Hidden layer i: `dense{i}.weight` (fan_in, fan_out), `dense{i}.bias` (fan_out,) and,
    with batch norm, `bn{i}.weight`, `.bias`, `.running_mean`, `.running_var` (units,);
    the output layer is `dense{L}` (L hidden layers).
    """
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (fan_in, fan_out) in enumerate(layer_sizes(config)):
        shapes[f"dense{i}.weight"] = (fan_in, fan_out)
        shapes[f"dense{i}.bias"] = (fan_out,)
        if i < len(config.layers) and config.layers[i].batch_norm != "off":
            for part in ("weight", "bias", "running_mean", "running_var"):
                shapes[f"bn{i}.{part}"] = (fan_out,)
    return shapes


class _Dense(nn.Module):
    """y = x @ weight + bias, the kernel stored (fan_in, fan_out) as checkpoints hold it."""

    def __init__(self, fan_in: int, fan_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(fan_in, fan_out), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(fan_out), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:  # (B, fan_in) -> (B, fan_out)
        return torch.addmm(self.bias, x, self.weight)


class _BatchNorm(nn.Module):
    """Batch normalization at inference: the running statistics, never the batch's.

    (`nn.BatchNorm1d` would add a `num_batches_tracked` buffer that checkpoints lack.)
    """

    running_mean: Tensor  # (F,)
    running_var: Tensor  # (F,)

    def __init__(self, features: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(features), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(features), requires_grad=False)
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))

    def forward(self, x: Tensor) -> Tensor:  # (B, F)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training=False, eps=self.eps)


class Network(nn.Module):
    """A single MLP in eval mode: (B, 784) pixels in [0, 1] -> (B, 10) logits."""

    def __init__(self, config: RunConfig) -> None:
        super().__init__()
        self.config = config
        hidden = len(config.layers)
        for i, (fan_in, fan_out) in enumerate(layer_sizes(config)):
            self.add_module(f"dense{i}", _Dense(fan_in, fan_out))
            if i == hidden:
                break
            layer = config.layers[i]
            if layer.batch_norm == "before":
                self.add_module(f"bn{i}", _BatchNorm(fan_out, config.bn_eps))
            self.add_module(f"act{i}", Activation(layer.activation, config.leaky_slope))
            if layer.batch_norm == "after":
                self.add_module(f"bn{i}", _BatchNorm(fan_out, config.bn_eps))
        self.eval()

    @classmethod
    def from_tensors(cls, config: RunConfig, tensors: dict[str, Tensor]) -> "Network":
        """The network of `config` holding `tensors`, which must be exactly the tensors
        `network_tensors(config)` names, float32 and finite (else `TensorMismatch`)."""
        want = network_tensors(config)
        got = {name: tuple(t.shape) for name, t in tensors.items()}
        if want != got:
            missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
            raise TensorMismatch(f"missing {missing}" if missing else
                                 f"unexpected {extra}" if extra else
                                 "shapes differ from the architecture")
        for name, t in tensors.items():
            if t.dtype != torch.float32 or not bool(torch.isfinite(t).all()):
                raise TensorMismatch(f"tensor {name} is not finite float32")
        network = cls(config)
        network.load_state_dict(tensors, strict=True)
        return network

    def forward(self, x: Tensor) -> Tensor:  # (B, 784) -> (B, 10)
        for block in self.children():  # registered in forward order
            x = block(x)
        return x

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """x: (B, 784) float32 pixels in [0, 1] -> (B, 10) float32 class probabilities.

        The softmax runs in float64 on the float32 logits, so a probability near 1 keeps
        its digits."""
        with torch.inference_mode():
            logits = self(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        z = logits.numpy().astype(np.float64)  # (B, 10)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        p: np.ndarray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        return p
