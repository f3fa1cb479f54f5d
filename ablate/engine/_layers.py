"""Cohort layers: S independent replicas of a layer, computed together.

Every parameter carries a leading replica axis, so S seeds of one architecture train
as one batched model. Replica s of each layer computes exactly what a standalone layer
with replica s's parameters would (a test and `ablate check` prove it): batch-norm
statistics are per replica, dropout masks come from each replica's own generator.
Activations flow as (S, B, features).
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CohortLinear(nn.Module):
    """y[s] = x[s] @ weight[s] + bias[s]."""

    def __init__(self, weight: Tensor, bias: Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)  # (S, fan_in, fan_out)
        self.bias = nn.Parameter(bias)  # (S, fan_out)

    def forward(self, x: Tensor) -> Tensor:  # (S, B, fan_in) or shared (B, fan_in)
        if x.dim() == 2:  # the same rows for every replica (evaluation): one broadcast matmul
            return torch.matmul(x, self.weight) + self.bias.unsqueeze(1)  # (S, B, fan_out)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)


class CohortBatchNorm(nn.Module):
    """Batch normalization over the batch axis, separately for each replica and feature.

    `momentum` is the weight of the new batch statistic (PyTorch's form; Keras's 0.99
    is 0.01 here). Training normalizes with the biased batch variance; the running
    variance tracks the unbiased batch variance (`bessel=True`, PyTorch's form) or the
    biased one (Keras's form: its BatchNormalization averages `ops.moments`' variance).
    """

    running_mean: Tensor  # (S, F)
    running_var: Tensor  # (S, F)

    def __init__(self, replicas: int, features: int, momentum: float, eps: float,
                 bessel: bool = True) -> None:
        super().__init__()
        self.momentum, self.eps, self.bessel = momentum, eps, bessel
        self.weight = nn.Parameter(torch.ones(replicas, features))  # gamma
        self.bias = nn.Parameter(torch.zeros(replicas, features))  # beta
        self.register_buffer("running_mean", torch.zeros(replicas, features))
        self.register_buffer("running_var", torch.ones(replicas, features))

    def forward(self, x: Tensor) -> Tensor:  # (S, B, F)
        S, B, F_ = x.shape
        if self.training and B == 1:
            return self._single_row(x)
        # PyTorch's fused batch-norm kernel over channels (replica, feature): one op forward
        # and one backward instead of a dozen elementwise ones (5x faster on the CPU).
        flat = x.transpose(0, 1).reshape(B, S * F_)  # (B, S*F)
        running_var = self.running_var.view(-1)  # views: the kernel updates them in place
        biased_update = self.training and not self.bessel
        if biased_update:  # a scratch copy (autograd keeps the kernel's argument unchanged)
            running_var = running_var.clone()
        y = F.batch_norm(flat, self.running_mean.view(-1), running_var, self.weight.view(-1),
                         self.bias.view(-1), self.training, self.momentum, self.eps)
        if biased_update:
            # The kernel averaged the unbiased variance v*B/(B-1); Keras averages the biased
            # v: new = (1-m) old + m v = ((B-1) kernel_new + (1-m) old) / B.
            with torch.no_grad():
                old = self.running_var.view(-1)
                old.mul_(1 - self.momentum).add_(running_var, alpha=B - 1).div_(B)
        return y.view(B, S, F_).transpose(0, 1)

    def _single_row(self, x: Tensor) -> Tensor:
        """A batch of one normalizes to beta (x - mean = 0); its unbiased variance is
        undefined, so the running variance moves towards 0, the biased value."""
        with torch.no_grad():
            self.running_mean.lerp_(x[:, 0], self.momentum)
            self.running_var.mul_(1 - self.momentum)
        return self.bias.unsqueeze(1) + 0 * x


class CohortDropout(nn.Module):
    """Inverted dropout with one mask stream per replica.

    Replica s draws its mask as `torch.empty(B, F).uniform_(generator=generators[s])`
    and keeps units whose draw is >= p, scaling them by 1/(1-p); a standalone run of
    seed s with the same generator draws the same mask.
    """

    def __init__(self, p: float, generators: list[torch.Generator]) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p, self.generators = p, generators

    def forward(self, x: Tensor) -> Tensor:  # (S, B, F)
        if not self.training or self.p == 0.0:
            return x
        u = torch.empty_like(x)
        for s, g in enumerate(self.generators):
            u[s].uniform_(generator=g)
        scale = 1.0 / (1.0 - self.p) if self.p < 1.0 else 0.0  # p = 1: zeros, not NaN
        return x * (u >= self.p) * scale


class Activation(nn.Module):
    def __init__(self, name: str, leaky_slope: float) -> None:
        super().__init__()
        self.name, self.leaky_slope = name, leaky_slope

    def forward(self, x: Tensor) -> Tensor:
        match self.name:
            case "relu":
                return F.relu(x)
            case "leaky_relu":
                return F.leaky_relu(x, self.leaky_slope)
            case "sigmoid":
                return torch.sigmoid(x)
            case "tanh":
                return torch.tanh(x)
            case "elu":
                return F.elu(x)  # alpha = 1 in both frameworks
            case "gelu":
                return F.gelu(x)  # exact (erf) form
        raise ValueError(f"unknown activation {self.name!r}")


# Keras's truncated variance-scaling normals divide by the sd of a unit normal truncated
# to [-2, 2], so the truncated draw has the intended variance.
_TRUNC_SD = 0.87962566103423978


def init_weight(name: str, scale: float | None, truncated: bool, fan_in: int, fan_out: int,
                generator: torch.Generator) -> Tensor:
    """One (fan_in, fan_out) float32 kernel on the CPU, drawn from `generator`.

    Drawn on the CPU so that the same seed gives the same initial weights on any device.
    """
    w = torch.empty(fan_in, fan_out)
    variance_scaling = {  # name -> (variance numerator, denominator)
        "glorot_uniform": (1.0, (fan_in + fan_out) / 2),
        "glorot_normal": (1.0, (fan_in + fan_out) / 2),
        "he_uniform": (2.0, fan_in), "he_normal": (2.0, fan_in),
        "lecun_uniform": (1.0, fan_in), "lecun_normal": (1.0, fan_in),
    }
    if name in variance_scaling:
        num, den = variance_scaling[name]
        var = num / den
        if name.endswith("_uniform"):
            bound = math.sqrt(3.0 * var)  # e.g. glorot: sqrt(6 / (fan_in + fan_out))
            return w.uniform_(-bound, bound, generator=generator)
        if truncated:
            sd = math.sqrt(var) / _TRUNC_SD
            return nn.init.trunc_normal_(w, 0.0, sd, -2 * sd, 2 * sd, generator=generator)
        return w.normal_(0.0, math.sqrt(var), generator=generator)
    match name:
        case "uniform":
            assert scale is not None
            return w.uniform_(-scale, scale, generator=generator)
        case "normal":
            assert scale is not None
            return w.normal_(0.0, scale, generator=generator)
        case "zeros":
            return w.zero_()
        case "torch_default":
            # nn.Linear's reset_parameters: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in))
            bound = 1.0 / math.sqrt(fan_in)
            return w.uniform_(-bound, bound, generator=generator)
    raise ValueError(f"unknown initializer {name!r}")


def init_bias(name: str, fan_in: int, fan_out: int, generator: torch.Generator) -> Tensor:
    """Biases: zeros (Keras), or nn.Linear's U(+-1/sqrt(fan_in)) for `torch_default`.

    Drawn from the layer's generator after its kernel, so the kernel is unaffected.
    """
    b = torch.zeros(fan_out)
    if name == "torch_default":
        bound = 1.0 / math.sqrt(fan_in)
        b.uniform_(-bound, bound, generator=generator)
    return b
