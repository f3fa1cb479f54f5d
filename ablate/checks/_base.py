"""What every layer-math property shares: tolerances, the engine under test, the tracker.

A property is a plain function `(engine, device, hsettings) -> CheckResult`. `engine` bundles the
implementations under test (the real ones by default), so a test can swap in a planted bug
with `dataclasses.replace(ENGINE, batchnorm=Buggy)` and assert that the property fails. The
`Tracker` counts examples, keeps the worst error relative to its tolerance, and turns a
failure (with Hypothesis's falsifying example) into the outcome's `failure` text.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from ablate.checks import _reference as ref
from ablate.checks._reference import Array
from ablate.conventions import CONVENTIONS, Conventions
from ablate.engine import (
    Activation,
    CohortBatchNorm,
    CohortDropout,
    CohortLinear,
    CohortMLP,
    InitConfig,
    LayerConfig,
    Optimizer,
    OptimizerConfig,
    RunConfig,
    init_bias,
    init_weight,
    replica_losses,
)

__all__ = [
    "DTYPES", "ENGINE", "TOL_F32", "TOL_F32_CHAIN", "TOL_F64", "TOL_F64_CHAIN",
    "CheckResult", "Engine", "InitBias", "InitWeight", "MLPFactory", "Property",
    "PropertyFailed", "Tol", "Tracker", "build_mlp", "cohort_cross_entropy", "dims",
    "dropout_keys", "dtypes", "log_uniform", "mlp_config", "numpy", "oracle_keeps",
    "randomize_batchnorm", "replicas", "rounded", "seeds", "set_dropout_step",
    "softmax", "tensor", "tol_for",
]


@dataclass(frozen=True)
class Tol:
    """|actual - expected| <= atol + rtol |expected|, elementwise."""

    rtol: float
    atol: float


# Why these numbers. float64 has unit roundoff 1.1e-16; one layer rounds O(10^2) times on
# O(1) values, so 1e-10 leaves ~10^4 headroom above rounding while every planted formula bug
# is off by 1e-6 relative or (much) more.
TOL_F64 = Tol(rtol=1e-10, atol=1e-12)
# float32: torch.testing.assert_close's defaults (rtol 1.3e-6, atol 1e-5), which allow a few
# roundings at unit roundoff 6e-8 on sums of a dozen O(1) terms.
TOL_F32 = Tol(rtol=1.3e-6, atol=1e-5)
# Chains of ops (whole MLPs, batch norm's reduction-then-division, several optimizer steps,
# divisions by small square roots) compound rounding and amplify it through conditioning:
# 100x the single-op rtol (10x the float32 atol, the values being O(1)).
TOL_F64_CHAIN = Tol(rtol=1e-8, atol=1e-10)
TOL_F32_CHAIN = Tol(rtol=1e-4, atol=1e-4)
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def tol_for(dtype: str, chain: bool = False) -> Tol:
    if dtype == "float64":
        return TOL_F64_CHAIN if chain else TOL_F64
    return TOL_F32_CHAIN if chain else TOL_F32


# ---------------------------------------------------------------- the engine under test

# (one config for every replica, or one per replica sharing a cohort key; seeds) -> model
MLPFactory = Callable[[RunConfig | Sequence[RunConfig], Sequence[int]], nn.Module]
InitWeight = Callable[[str, float | None, bool, int, int, torch.Generator], Tensor]
InitBias = Callable[[str, int, int, torch.Generator], Tensor]


def softmax(z: Tensor) -> Tensor:
    """The engine's output probabilities: softmax over the class axis of (S, B, C) logits."""
    return torch.softmax(z, dim=-1)


def cohort_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """The cohort training loss, as `ablate.engine.train_cohort` computes it: logits
    (S, B, C), labels (S, B) int64 -> the scalar sum of the replicas' mean cross-entropies."""
    return replica_losses(logits, labels).sum()


def _mlp(configs: RunConfig | Sequence[RunConfig], seeds: Sequence[int]) -> nn.Module:
    return CohortMLP(configs, list(seeds))


@dataclass(frozen=True)
class Engine:
    """The implementations the properties check; replace one to plant a bug."""

    linear: type[CohortLinear] = CohortLinear
    batchnorm: type[CohortBatchNorm] = CohortBatchNorm
    dropout: type[CohortDropout] = CohortDropout
    activation: type[Activation] = Activation
    init_weight: InitWeight = init_weight
    init_bias: InitBias = init_bias
    optimizer: type[Optimizer] = Optimizer
    # what a study's `conventions = "keras"` resolves to (`ablate.conventions`)
    conventions: Mapping[str, Conventions] = field(default_factory=lambda: CONVENTIONS)
    softmax: Callable[[Tensor], Tensor] = softmax
    cross_entropy: Callable[[Tensor, Tensor], Tensor] = cohort_cross_entropy
    mlp: MLPFactory = _mlp


ENGINE = Engine()


def _swap(engine: Engine, block: nn.Module) -> nn.Module:
    """`block` rebuilt with the engine's class for its kind, if that differs from the default."""
    if type(block) is CohortLinear and engine.linear is not CohortLinear:
        return engine.linear(block.weight.detach().clone(), block.bias.detach().clone())
    if type(block) is CohortBatchNorm and engine.batchnorm is not CohortBatchNorm:
        S, n = block.weight.shape
        bn = engine.batchnorm(S, n, block.momentum, block.eps, bessel=block.bessel)
        bn.load_state_dict(block.state_dict())
        return bn
    if type(block) is CohortDropout and engine.dropout is not CohortDropout:
        return engine.dropout(block.p, block.keys)
    if type(block) is Activation and engine.activation is not Activation:
        return engine.activation(block.names, block.slopes)
    return block


def build_mlp(engine: Engine, configs: RunConfig | Sequence[RunConfig], seeds: Sequence[int]
              ) -> nn.Module:
    """engine.mlp with every default layer swapped for the engine's (planted) layer classes."""
    model = engine.mlp(configs, seeds)
    for name, block in list(model.named_children()):
        setattr(model, name, _swap(engine, block))
    return model


def mlp_config(widths: Sequence[int], activations: Sequence[str], bns: Sequence[str],
               dropouts: Sequence[float], *, leaky_slope: float = 0.01,
               bn_momentum: float = 0.1, bn_eps: float = 1e-3) -> RunConfig:
    """A RunConfig for a small MLP (784 -> widths... -> 10); the optimizer is unused here."""
    hidden = tuple(LayerConfig(w, a, b, d)
                   for w, a, b, d in zip(widths, activations, bns, dropouts, strict=True))
    return RunConfig(conventions="torch", layers=hidden, leaky_slope=leaky_slope,
                     bn_momentum=bn_momentum, bn_eps=bn_eps, bn_running_var="unbiased",
                     init=InitConfig("glorot_uniform", None, False),
                     optimizer=OptimizerConfig("sgd", 0.01), epochs=1, batch_size=1)


def dropout_keys(r: np.random.Generator, S: int) -> list[int]:
    """S random 63-bit dropout stream keys (what `dropout_key(seed, layer)` gives a layer)."""
    return [int(k) for k in r.integers(0, 2**63 - 1, S, dtype=np.int64)]


def set_dropout_step(model: nn.Module, step: int) -> None:
    """Make every dropout layer of `model` draw the masks of optimizer step `step`."""
    for block in model.modules():
        if isinstance(block, CohortDropout):
            block.step = step


def oracle_keeps(seeds: Sequence[int], config: RunConfig, step: int, rows: int
                 ) -> list[npt.NDArray[np.bool_]]:
    """The keep masks (S, rows, units) of every dropout layer of `config` at `step`, by the
    documented rule (the NumPy oracle's `dropout_keep`, keyed by seed and hidden layer)."""
    return [np.stack([ref.dropout_keep(ref.dropout_key(seed, i), step, rows, layer.units,
                                       layer.dropout) for seed in seeds])
            for i, layer in enumerate(config.layers) if layer.dropout > 0]


def randomize_batchnorm(model: nn.Module, r: np.random.Generator) -> None:
    """Give every batch-norm block of `model` random gamma, beta and running statistics."""
    with torch.no_grad():
        for block in model.modules():
            if isinstance(block, CohortBatchNorm):
                shape = tuple(block.weight.shape)
                sign = np.where(r.random(shape) < 0.5, -1.0, 1.0)
                block.weight.copy_(torch.as_tensor(sign * r.uniform(0.5, 2.0, shape)))
                block.bias.copy_(torch.as_tensor(r.normal(0, 1, shape)))
                block.get_buffer("running_mean").copy_(torch.as_tensor(r.normal(0, 0.5, shape)))
                block.get_buffer("running_var").copy_(torch.as_tensor(r.uniform(0.2, 3, shape)))


# ---------------------------------------------------------------- conversions and strategies


def tensor(a: Array, dtype: str | torch.dtype, device: torch.device) -> Tensor:
    """A copy of `a` (never sharing its memory: the engine updates tensors in place)."""
    dt = DTYPES[dtype] if isinstance(dtype, str) else dtype
    return torch.tensor(np.asarray(a), dtype=dt, device=device)


def numpy(t: Tensor) -> Array:
    """A float64 copy of `t` (never a view: the engine updates tensors in place)."""
    return t.detach().to("cpu", torch.float64).numpy().copy()


def rounded(a: Array, dtype: str) -> Array:
    """`a` rounded to `dtype` and back, so the oracle sees exactly what the engine sees."""
    return a.astype(np.float32).astype(np.float64) if dtype == "float32" else a


seeds = st.integers(0, 2**32 - 1)
replicas = st.integers(1, 3)
dims = st.integers(1, 6)
dtypes = st.sampled_from(sorted(DTYPES))


def log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(math.log10(lo), math.log10(hi)).map(lambda e: float(10.0**e))


# ---------------------------------------------------------------- tracking and running


class PropertyFailed(AssertionError):
    """A property does not hold for the current example."""


@dataclass
class CheckResult:
    """One property's result, one row of `ablate check`'s table."""

    name: str
    group: str
    examples: int
    passed: bool
    worst_error: float  # in the property's units, e.g. |actual - expected|
    tolerance: float | None  # allowed where the error was worst; None: exact identities only
    failure: str | None = None  # the failing example and the message

    @property
    def ratio(self) -> float:
        """worst error / tolerance: <= 1 passes."""
        if self.worst_error == 0.0:
            return 0.0
        return self.worst_error / self.tolerance if self.tolerance else math.inf


@dataclass
class Tracker:
    """Counts examples and keeps the worst error / tolerance seen by one property."""

    name: str
    group: str
    examples: int = 0
    worst: tuple[float, float, float] | None = None  # (ratio, error, tolerance)
    case: str = ""
    failed_exactly: bool = False  # an exact identity failed

    def example(self, **case: object) -> None:
        """Start an example; `case` is shown if it fails."""
        self.examples += 1
        self.case = ", ".join(f"{k}={v!r}" for k, v in case.items())

    def _record(self, ratio: float, error: float, tolerance: float) -> None:
        if self.worst is None or ratio > self.worst[0] or not math.isfinite(ratio):
            self.worst = (ratio, error, tolerance)

    def close(self, actual: Tensor | Array, expected: Tensor | Array, tol: Tol,
              what: str) -> None:
        """actual == expected elementwise within `tol`; NaN or inf where finite expected fails."""
        a = numpy(actual) if isinstance(actual, Tensor) else np.asarray(actual, np.float64)
        e = numpy(expected) if isinstance(expected, Tensor) else np.asarray(expected, np.float64)
        if a.shape != e.shape:
            self._record(math.inf, math.inf, tol.atol)
            raise PropertyFailed(f"{what}: shape {a.shape} != expected {e.shape}")
        if a.size == 0:
            return
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.abs(a - e)
            allowed = tol.atol + tol.rtol * np.abs(e)
            ratio = np.where(np.isfinite(diff), diff / allowed, np.inf)
        k = int(np.argmax(ratio))
        r, err, tl = float(ratio.flat[k]), float(diff.flat[k]), float(allowed.flat[k])
        self._record(r, err if math.isfinite(r) else math.inf, tl)
        if r > 1.0:
            idx = np.unravel_index(k, a.shape)
            raise PropertyFailed(
                f"{what}: at {tuple(int(i) for i in idx)} got {a.flat[k]!r}, expected "
                f"{e.flat[k]!r}: |error| {err:.3g} > tolerance {tl:.3g} "
                f"(rtol {tol.rtol:g}, atol {tol.atol:g})")

    def within(self, error: float, tolerance: float, what: str) -> None:
        """A scalar error measure (a KS statistic, a z-score) at most `tolerance`."""
        r = error / tolerance if math.isfinite(error) else math.inf
        self._record(r, error, tolerance)
        if not r <= 1.0:
            raise PropertyFailed(f"{what}: {error:.3g} > tolerance {tolerance:.3g}")

    def holds(self, condition: bool, what: str) -> None:
        """An exact identity (no tolerance): a failure counts as infinitely wrong."""
        if not condition:
            self.failed_exactly = True
            raise PropertyFailed(what)

    def run(self, test: Callable[[], None], hsettings: settings | None) -> CheckResult:
        """Run `test` (Hypothesis-decorated or plain) and summarize it."""
        if hasattr(test, "hypothesis"):
            parent = hsettings or settings()
            test = settings(
                parent, database=None, deadline=None, report_multiple_bugs=False,
                phases=[p for p in parent.phases if p != Phase.explain],  # terse failures
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large],
            )(test)
        failure = None
        try:
            test()
        except Exception as e:  # any error is a failed property, reported with its example
            notes = [n for n in getattr(e, "__notes__", []) if isinstance(n, str)]
            example = notes or ([f"example: {self.case}"] if self.case else [])
            failure = "\n".join([*example, f"{type(e).__name__}: {e}"])
        error, tolerance = (0.0, None) if self.worst is None else self.worst[1:]
        if self.failed_exactly:
            error = math.inf
        return CheckResult(self.name, self.group, self.examples, failure is None, error, tolerance,
                       failure)


Property = Callable[[Engine, torch.device, settings | None], CheckResult]
