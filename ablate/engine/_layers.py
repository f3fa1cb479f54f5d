"""Cohort layers: S independent replicas of a layer, computed together.

Every parameter carries a leading replica axis, so S seeds of one architecture train
as one batched model. Replica s of each layer computes exactly what a standalone layer
with replica s's parameters would (a test and `ablate check` prove it): batch-norm
statistics are per replica, dropout masks come from each replica's own stream.
Activations flow as (S, B, features).
"""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablate.engine import _rng as rng
from ablate.engine._config import ACTIVATIONS

__all__ = [
    "Activation", "CohortBatchNorm", "CohortDropout", "CohortLinear", "init_bias",
    "init_weight",
]


class CohortLinear(nn.Module):
    """y[s] = x[s] @ weight[s] + bias[s]."""

    def __init__(self, weight: Tensor, bias: Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)  # (S, fan_in, fan_out)
        self.bias = nn.Parameter(bias)  # (S, fan_out)

    def forward(self, x: Tensor) -> Tensor:  # (S, B, fan_in) or shared (B, fan_in)
        if x.dim() == 2:  # the same rows for every replica (evaluation): an expanded view
            x = x.expand(self.weight.shape[0], *x.shape)  # (S, B, fan_in), no copy
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)  # bias added in the GEMM


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
        undefined, so the running variance moves towards 0, the biased value. Gamma's
        gradient is exactly 0 (it multiplies x - mean = 0) and still exists, so every
        optimizer steps gamma as with a zero gradient, as the formula says."""
        with torch.no_grad():
            self.running_mean.lerp_(x[:, 0], self.momentum)
            self.running_var.mul_(1 - self.momentum)
        return self.bias.unsqueeze(1) + 0 * x + 0 * self.weight.unsqueeze(1)


class CohortDropout(nn.Module):
    """Inverted dropout, each replica with its own rate and its own counter-based stream.

    Replica s keeps the units `ablate.engine._rng` documents for its key `keys[s]` (the
    stream of one seed at one hidden layer) at the current `step`, and scales them by
    1 / (1 - p[s]). The masks are a function of (key, step, unit) alone: a forward pass
    at the same step draws the same mask, on any device, whatever the other replicas.
    The trainer hands each step's words, computed for a whole epoch at once
    (`CohortMLP.set_words`); checks and tests set `step` (`CohortMLP.set_step`).
    """

    key_lo: Tensor  # (S,) int32
    key_hi: Tensor  # (S,) int32
    threshold: Tensor  # (S, 1) int16: keep iff draw >= threshold
    constants: Tensor  # mix32's, on the layer's device
    scale: Tensor  # (S, 1, 1): 1 / (1 - p), 0 for p = 1 (zeros, not NaN)

    def __init__(self, p: float | Sequence[float], keys: Sequence[int]) -> None:
        super().__init__()
        ps = [float(p)] * len(keys) if isinstance(p, int | float) else [float(q) for q in p]
        if len(ps) != len(keys):
            raise ValueError(f"{len(ps)} dropout rates for {len(keys)} replicas")
        for q in ps:
            if not 0.0 <= q <= 1.0:  # also rejects NaN
                raise ValueError(f"dropout probability must be in [0, 1], got {q}")
        self.p, self.keys = tuple(ps), tuple(keys)
        self.step: Tensor | int = 0
        # The step's words (S,) int32, when the trainer computed them ahead (one batched
        # computation per epoch for every layer); None: computed here from `step`.
        self.word: Tensor | None = None
        lo, hi = rng.key_words(list(keys), "cpu")
        # Not in the state dict: checkpoints hold parameters and BN statistics only.
        self.register_buffer("key_lo", lo, persistent=False)
        self.register_buffer("key_hi", hi, persistent=False)
        # p = 1's threshold (32768) does not fit an int16; its scale 0 zeroes what it keeps.
        thresholds = [min(rng.threshold16(q), 32767) for q in ps]
        self.register_buffer("threshold", torch.tensor(thresholds, dtype=torch.int16
                                                       ).view(-1, 1), persistent=False)
        # float64 until used: a float32 model converts it, a float64 input sees it exactly
        scales = [1.0 / (1.0 - q) if q < 1.0 else 0.0 for q in ps]
        self.register_buffer("scale", torch.tensor(scales, dtype=torch.float64).view(-1, 1, 1),
                             persistent=False)
        self.register_buffer("constants", rng.mix_constants("cpu"), persistent=False)
        self._counters: dict[tuple[int, torch.device], Tensor] = {}

    def forward(self, x: Tensor) -> Tensor:  # (S, B, F)
        if not self.training or not any(self.p):
            return x
        S, B, F_ = x.shape
        n = B * F_
        word = rng.step_words(self.key_lo, self.key_hi, self.step) if self.word is None \
            else self.word
        draws = rng.uniform16(word, self._pair_counters(n, x.device), n,
                              self.constants)  # (S, n) int16
        # One float mask, 0 or 1/(1-p), chosen straight from the comparison (no bool-to-
        # float copy): the forward multiplies once, and so does backward.
        keep = (draws >= self.threshold).view(S, B, F_)  # (S, B, F) bool
        return x * torch.where(keep, self.scale.to(x.dtype), 0.0)

    def _pair_counters(self, n: int, device: torch.device) -> Tensor:
        """The mask's pair counters, made once per size and device."""
        key = (n, device)
        if key not in self._counters:
            self._counters[key] = rng.pair_counters(n, device)
        return self._counters[key]


class Activation(nn.Module):
    """One activation per replica: replica s applies `names[s]` (leaky slope `slopes[s]`).

    Replicas that share (name, slope) are computed together, all of them in one call when
    the cohort has a single activation. `inplace`: ReLU may overwrite its input (the model
    sets it where the input is a Dense layer's fresh output, which that layer's backward
    does not read), saving one (S, B, units) tensor per step.
    """

    def __init__(self, names: str | Sequence[str], leaky_slope: float | Sequence[float],
                 inplace: bool = False) -> None:
        super().__init__()
        names = [names] if isinstance(names, str) else list(names)
        slopes = ([float(leaky_slope)] * len(names) if isinstance(leaky_slope, int | float)
                  else [float(a) for a in leaky_slope])
        for name in names:
            if name not in ACTIVATIONS:
                raise ValueError(f"unknown activation {name!r}")
        # the slope only matters for leaky_relu: other activations group whatever it is
        kinds = [(n, a if n == "leaky_relu" else 0.0) for n, a in zip(names, slopes, strict=True)]
        self.groups = {kind: [s for s, k in enumerate(kinds) if k == kind]
                       for kind in dict.fromkeys(kinds)}
        self.names, self.slopes, self.inplace = tuple(names), tuple(slopes), inplace
        self.name, self.leaky_slope = names[0], slopes[0]
        self._index: dict[tuple[tuple[str, float], torch.device], Tensor] = {}

    def forward(self, x: Tensor) -> Tensor:  # (S, B, F)
        if len(self.groups) == 1:
            ((name, slope),) = self.groups
            return _activate(name, slope, x, self.inplace)
        out = torch.empty_like(x)
        for kind in self.groups:
            idx = self._replicas(kind, x.device)
            out = out.index_copy(0, idx, _activate(*kind, x.index_select(0, idx)))
        return out

    def _replicas(self, kind: tuple[str, float], device: torch.device) -> Tensor:
        """The replicas of one (name, slope) group as an index tensor on `device`, made once."""
        if (kind, device) not in self._index:
            self._index[kind, device] = torch.tensor(self.groups[kind], device=device)
        return self._index[kind, device]


def _activate(name: str, leaky_slope: float, x: Tensor, inplace: bool = False) -> Tensor:
    match name:
        case "relu":
            return F.relu(x, inplace=inplace)
        case "leaky_relu":
            return F.leaky_relu(x, leaky_slope)
        case "sigmoid":
            return torch.sigmoid(x)
        case "tanh":
            return torch.tanh(x)
        case "elu":
            return F.elu(x)  # alpha = 1 in both frameworks
        case "gelu":
            return F.gelu(x)  # exact (erf) form
    raise ValueError(f"unknown activation {name!r}")


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
