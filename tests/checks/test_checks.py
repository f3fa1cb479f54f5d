"""The layer-math properties hold for the engine, and fail on planted bugs.

A property that no planted bug can fail is a defect (house style 6), so every property in
`ablate.checks.PROPERTIES` must appear below with at least one bug it catches. The buggy
variants are written here, as subclasses or drop-in functions, and passed to a property
through `dataclasses.replace(ENGINE, ...)`.
"""

import io
import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import Phase, settings
from rich.console import Console
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx

from ablate.checks import ENGINE, TOL_F64, Engine, Property, PropertyFailed, Tol, Tracker
from ablate.checks import _conventions as cv
from ablate.checks import _dropout as dr
from ablate.checks import _evaluation as ev
from ablate.checks import _grads as gr
from ablate.checks import _independence as ind
from ablate.checks import _initializers as ini
from ablate.checks import _layers as la
from ablate.checks import _optimizers as op
from ablate.checks import _packed as pk
from ablate.checks import _run as checks
from ablate.conventions import CONVENTIONS
from ablate.engine import (
    Activation,
    CohortBatchNorm,
    CohortDropout,
    CohortLinear,
    CohortMLP,
    Optimizer,
    OptimizerConfig,
    RunConfig,
    resolve_device,
)
from ablate.engine import _layers as layers
from ablate.engine import _rng as rng
from ablate.errors import UserError

CPU = torch.device("cpu")


def _name(prop: Property) -> str:
    return prop.__name__


# ---------------------------------------------------------------- the engine passes


@pytest.mark.parametrize("prop", checks.PROPERTIES, ids=_name)
def test_property_holds_for_the_engine(prop: Property) -> None:
    # the loaded Hypothesis profile (dev: 25 random examples; ci: 40, derandomized)
    outcome = prop(ENGINE, CPU, settings())
    assert outcome.passed, outcome.failure
    assert outcome.examples > 0
    assert outcome.ratio <= 1.0


# ---------------------------------------------------------------- planted bugs: layers


class PlantedBatchNorm(CohortBatchNorm):
    """CohortBatchNorm with one switchable mistake (all off: the engine's formula)."""

    unbiased_normalization = eps_outside_sqrt = biased_running_var = False
    reversed_momentum = batch_stats_in_eval = stop_gradient = pooled_replicas = False

    def forward(self, x: Tensor) -> Tensor:  # (S, B, F)
        if self.training or self.batch_stats_in_eval:
            dims = (0, 1) if self.pooled_replicas else (1,)
            correction = 1 if self.unbiased_normalization else 0
            var, mean = torch.var_mean(x, dim=dims, correction=correction, keepdim=True)
            var, mean = var.expand(x.shape[0], 1, -1), mean.expand(x.shape[0], 1, -1)
            if self.stop_gradient:
                var, mean = var.detach(), mean.detach()
            if self.training:
                with torch.no_grad():
                    # a batch of one has no unbiased variance: the engine moves towards
                    # 0, the biased value (`CohortBatchNorm._single_row`), as here
                    unbiased = self.bessel and not self.biased_running_var and x.shape[1] > 1
                    stat = torch.var(x, dim=dims, correction=1 if unbiased else 0,
                                     keepdim=True).expand(x.shape[0], 1, -1)
                    weight = 1.0 - self.momentum if self.reversed_momentum else self.momentum
                    self.get_buffer("running_mean").lerp_(mean.squeeze(1), weight)
                    self.get_buffer("running_var").lerp_(stat.squeeze(1), weight)
        else:
            mean = self.get_buffer("running_mean").unsqueeze(1)
            var = self.get_buffer("running_var").unsqueeze(1)
        inv_std = 1.0 / (var.sqrt() + self.eps) if self.eps_outside_sqrt else \
            torch.rsqrt(var + self.eps)
        return (x - mean) * inv_std * self.weight.unsqueeze(1) + self.bias.unsqueeze(1)


def bn_bug(**flags: bool) -> type[CohortBatchNorm]:
    return type("BuggyBatchNorm", (PlantedBatchNorm,), flags)


class _GradNoScale(torch.autograd.Function):
    """Dropout whose backward forgets the 1/(1-p) scale (forward is right)."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, keep: Tensor, scale: float) -> Tensor:
        ctx.save_for_backward(keep)  # type: ignore[attr-defined]
        return x * keep * scale

    @staticmethod
    def backward(ctx: FunctionCtx, dy: Tensor) -> tuple[Tensor, None, None]:
        (keep,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return dy * keep, None, None


class PlantedDropout(CohortDropout):
    """CohortDropout with one switchable mistake; masks from the documented rule."""

    no_scale = keep_below_p = shared_mask = unvalidated = backward_no_scale = False

    def __init__(self, p: float | tuple[float, ...], keys: list[int]) -> None:
        super().__init__(0.5 if self.unvalidated else p, keys)
        if self.unvalidated:  # whatever it was given
            self.p = (float(p),) * len(keys)  # type: ignore[arg-type]

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p[0] == 0.0:
            return x
        S, B, F_ = x.shape
        keys = [self.keys[0]] * S if self.shared_mask else list(self.keys)
        keep = torch.stack([rng.dropout_keep(k, int(self.step), B, F_, self.p[0]) for k in keys]
                           ).to(x.device)
        if self.keep_below_p:
            keep = ~keep
        if self.backward_no_scale:
            return _GradNoScale.apply(x, keep.to(x.dtype), 1.0 / (1.0 - self.p[0]))
        return x * keep if self.no_scale else x * keep / (1.0 - self.p[0])  # p = 1: 0 * inf


def dropout_bug(**flags: bool) -> type[CohortDropout]:
    return type("BuggyDropout", (PlantedDropout,), flags)


class _SigmoidWrongGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor) -> Tensor:
        s = torch.sigmoid(x)
        ctx.save_for_backward(s)  # type: ignore[attr-defined]
        return s

    @staticmethod
    def backward(ctx: FunctionCtx, dy: Tensor) -> Tensor:
        (s,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return dy * s  # forgets the (1 - s)


class SigmoidWrongDerivative(Activation):
    def forward(self, x: Tensor) -> Tensor:
        return _SigmoidWrongGrad.apply(x) if self.name == "sigmoid" else super().forward(x)


class LeakyIgnoresSlope(Activation):
    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x) if self.name == "leaky_relu" else super().forward(x)


class _AveragedWeightGrad(torch.autograd.Function):
    """Dense whose backward averages dW over the batch (forward is right)."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, w: Tensor, b: Tensor) -> Tensor:
        ctx.save_for_backward(x, w)  # type: ignore[attr-defined]
        return torch.baddbmm(b.unsqueeze(1), x, w)

    @staticmethod
    def backward(ctx: FunctionCtx, dy: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x, w = ctx.saved_tensors  # type: ignore[attr-defined]
        return dy @ w.transpose(1, 2), x.transpose(1, 2) @ dy / x.shape[1], dy.sum(1)


class AveragedWeightGradLinear(CohortLinear):
    def forward(self, x: Tensor) -> Tensor:
        return _AveragedWeightGrad.apply(x, self.weight, self.bias)


class BFloat16Linear(CohortLinear):
    """Matmul in reduced precision, as an unreported TF32 or autocast would do."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1).bfloat16(), x.bfloat16(),
                             self.weight.bfloat16()).to(x.dtype)


class FirstReplicaLinear(CohortLinear):
    """Every replica multiplies by replica 0's kernel."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight[:1].expand_as(self.weight))


class RowMixingLinear(CohortLinear):
    """Reshapes (S, B, F) as (B, S, F): rows of different replicas and batch rows trade places."""

    def forward(self, x: Tensor) -> Tensor:
        mixed = x.transpose(0, 1).reshape(x.shape)
        return torch.baddbmm(self.bias.unsqueeze(1), mixed, self.weight)


class SharedRowsNoBias(CohortLinear):
    """Drops the bias on the shared-rows (2-D input) path, the one validation and test use;
    training's per-replica (3-D) path is right."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            return torch.matmul(x, self.weight)
        return super().forward(x)


class DropoutInEval(CohortDropout):
    """Keeps dropping (and scaling) units in eval mode."""

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            return super().forward(x)
        self.train()
        try:
            return super().forward(x.expand(len(self.keys), *x.shape) if x.dim() == 2 else x)
        finally:
            self.eval()


def naive_softmax(z: Tensor) -> Tensor:
    e = torch.exp(z)  # no max subtraction: overflows for large logits
    return e / e.sum(dim=-1, keepdim=True)


def batch_axis_softmax(z: Tensor) -> Tensor:
    return torch.softmax(z, dim=1)


def summed_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    S, B, C = logits.shape  # sums over the batch instead of averaging
    return F.cross_entropy(logits.reshape(S * B, C), labels.reshape(S * B), reduction="sum")


# ---------------------------------------------------------------- planted bugs: init, optim


def glorot_fan_in_only(name: str, scale: float | None, truncated: bool, fan_in: int,
                       fan_out: int, generator: torch.Generator) -> Tensor:
    if name == "glorot_uniform":
        bound = math.sqrt(6.0 / fan_in)
        return torch.empty(fan_in, fan_out).uniform_(-bound, bound, generator=generator)
    return layers.init_weight(name, scale, truncated, fan_in, fan_out, generator)


def truncated_without_correction(name: str, scale: float | None, truncated: bool, fan_in: int,
                                 fan_out: int, generator: torch.Generator) -> Tensor:
    if name == "he_normal" and truncated:
        sd = math.sqrt(2.0 / fan_in)  # forgets to divide by the truncated sd 0.8796
        return nn.init.trunc_normal_(torch.empty(fan_in, fan_out), 0.0, sd, -2 * sd, 2 * sd,
                                     generator=generator)
    return layers.init_weight(name, scale, truncated, fan_in, fan_out, generator)


def global_rng_init(name: str, scale: float | None, truncated: bool, fan_in: int,
                    fan_out: int, generator: torch.Generator) -> Tensor:
    with torch.random.fork_rng():  # keep the test session's global RNG untouched
        torch.seed()
        return layers.init_weight(name, scale, truncated, fan_in, fan_out,
                                  torch.default_generator)


class AdamNoBiasCorrection(Optimizer):
    def _adam(self, params: list[Tensor], grads: list[Tensor], m: list[Tensor],
              v: list[Tensor]) -> None:
        h = self.hyper
        b1, b2, eps, lr = (float(h[k]) for k in ("beta1", "beta2", "eps", "lr"))
        torch._foreach_lerp_(m, grads, 1 - b1)
        torch._foreach_mul_(v, b2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
        denom = torch._foreach_add(torch._foreach_sqrt(v), eps)
        torch._foreach_addcdiv_(params, m, denom, value=-lr)


class MomentumLrTwice(Optimizer):
    def _momentum(self, params: list[Tensor], grads: list[Tensor], v: list[Tensor]) -> None:
        if self.config.name == "momentum" and self.config.velocity == "gradients":
            lr, m = float(self.hyper["lr"]), float(self.hyper["momentum"])
            torch._foreach_mul_(v, m)
            torch._foreach_add_(v, grads, alpha=lr)
            torch._foreach_add_(params, v, alpha=-lr)
            return
        super()._momentum(params, grads, v)


class KerasEpsOutsideSqrt(Optimizer):
    def _denominator(self, a: list[Tensor]) -> list[Tensor]:
        # torch's placement under Keras conventions too
        return list(torch._foreach_add(torch._foreach_sqrt(a), float(self.hyper["eps"])))


# ---------------------------------------------------------------- planted bugs: packed cohorts


class FirstReplicaHyperparameters(Optimizer):
    """Steps every replica with replica 0's hyperparameters (the per-replica values lost)."""

    def __init__(self, configs: OptimizerConfig | Sequence[OptimizerConfig],
                 params: Sequence[Tensor]) -> None:
        first = configs if isinstance(configs, OptimizerConfig) else configs[0]
        super().__init__(first, params)


def _with_first_replicas(field: str) -> object:
    """A model factory that gives every replica replica 0's `field` of each hidden layer."""
    def build(configs: RunConfig | Sequence[RunConfig], seeds: Sequence[int]) -> nn.Module:
        configs = [configs] * len(seeds) if isinstance(configs, RunConfig) else list(configs)
        first = configs[0].layers
        same = [replace(c, layers=tuple(replace(layer, **{field: getattr(f, field)})
                                        for layer, f in zip(c.layers, first, strict=True)))
                for c in configs]
        return CohortMLP(same, list(seeds))

    return build


first_dropout_rates = _with_first_replicas("dropout")
first_activations = _with_first_replicas("activation")


# ---------------------------------------------------------------- planted bugs: conventions


def conventions_with(which: str, **changes: object) -> dict[str, object]:
    """The conventions with one of them changed (a wrong default)."""
    return {**CONVENTIONS, which: replace(CONVENTIONS[which], **changes)}  # type: ignore[arg-type]


def with_optimizer_default(name: str, optimizer: str, **values: float) -> dict[str, object]:
    c = CONVENTIONS[name]
    optimizers = {**c.optimizers, optimizer: {**c.optimizers[optimizer], **values}}
    return conventions_with(name, optimizers=optimizers)


KERAS_MOMENTUM_UNCONVERTED = conventions_with("keras", bn_momentum=0.99)  # not 1 - 0.99


# ---------------------------------------------------------------- which property catches what

PLANTED: list[tuple[str, Property, Engine]] = [
    # gradients
    ("averaged dW", gr.gradient_dense, replace(ENGINE, linear=AveragedWeightGradLinear)),
    ("sigmoid' = s", gr.gradient_activations, replace(ENGINE, activation=SigmoidWrongDerivative)),
    ("leaky slope ignored", gr.gradient_activations, replace(ENGINE, activation=LeakyIgnoresSlope)),
    ("BN stop-gradient", gr.gradient_batchnorm,
     replace(ENGINE, batchnorm=bn_bug(stop_gradient=True))),
    ("dropout backward unscaled", gr.gradient_dropout,
     replace(ENGINE, dropout=dropout_bug(backward_no_scale=True))),
    ("MLP with BN stop-gradient", gr.gradient_mlp,
     replace(ENGINE, batchnorm=bn_bug(stop_gradient=True))),
    ("MLP with averaged dW", gr.gradient_mlp, replace(ENGINE, linear=AveragedWeightGradLinear)),
    # dense
    ("bfloat16 matmul", la.dense_formula, replace(ENGINE, linear=BFloat16Linear)),
    ("BN batch stats in eval", ind.row_independence,
     replace(ENGINE, batchnorm=bn_bug(batch_stats_in_eval=True))),
    ("row-mixing reshape", ind.row_independence, replace(ENGINE, linear=RowMixingLinear)),
    # softmax
    ("softmax without max subtraction", la.softmax_properties,
     replace(ENGINE, softmax=naive_softmax)),
    ("softmax over the batch axis", la.softmax_properties,
     replace(ENGINE, softmax=batch_axis_softmax)),
    ("cross-entropy summed", la.cross_entropy_gradient,
     replace(ENGINE, cross_entropy=summed_cross_entropy)),
    # batch norm
    ("BN unbiased variance", la.batchnorm_training,
     replace(ENGINE, batchnorm=bn_bug(unbiased_normalization=True))),
    ("BN eps outside sqrt", la.batchnorm_training,
     replace(ENGINE, batchnorm=bn_bug(eps_outside_sqrt=True))),
    ("BN biased running var", la.batchnorm_running,
     replace(ENGINE, batchnorm=bn_bug(biased_running_var=True))),
    ("BN momentum reversed", la.batchnorm_running,
     replace(ENGINE, batchnorm=bn_bug(reversed_momentum=True))),
    ("BN batch stats in eval", la.batchnorm_eval,
     replace(ENGINE, batchnorm=bn_bug(batch_stats_in_eval=True))),
    ("BN stop-gradient", la.batchnorm_backward_sums,
     replace(ENGINE, batchnorm=bn_bug(stop_gradient=True))),
    # dropout
    ("dropout without 1/(1-p)", dr.dropout_values,
     replace(ENGINE, dropout=dropout_bug(no_scale=True))),
    ("dropout without 1/(1-p)", dr.dropout_mean,
     replace(ENGINE, dropout=dropout_bug(no_scale=True))),
    ("dropout keeps u < p", dr.dropout_mean,
     replace(ENGINE, dropout=dropout_bug(keep_below_p=True))),
    ("dropout p unchecked", dr.dropout_bounds,
     replace(ENGINE, dropout=dropout_bug(unvalidated=True))),
    ("dropout without 1/(1-p)", dr.dropout_classic,
     replace(ENGINE, dropout=dropout_bug(no_scale=True))),
    # initializers
    ("glorot bound from fan_in", ini.init_distributions,
     replace(ENGINE, init_weight=glorot_fan_in_only)),
    ("truncated normal sd uncorrected", ini.init_distributions,
     replace(ENGINE, init_weight=truncated_without_correction)),
    ("global RNG", ini.init_determinism, replace(ENGINE, init_weight=global_rng_init)),
    # optimizers
    ("adam without bias correction", op.optimizer_torch_formulas,
     replace(ENGINE, optimizer=AdamNoBiasCorrection)),
    ("momentum lr twice", op.optimizer_torch_formulas, replace(ENGINE, optimizer=MomentumLrTwice)),
    ("keras eps outside sqrt", op.optimizer_keras_formulas,
     replace(ENGINE, optimizer=KerasEpsOutsideSqrt)),
    ("momentum lr twice", op.momentum_forms, replace(ENGINE, optimizer=MomentumLrTwice)),
    ("adam without bias correction", op.adam_first_step,
     replace(ENGINE, optimizer=AdamNoBiasCorrection)),
    # conventions
    ("Keras BN momentum 0.99 left unconverted", cv.conventions_layers,
     replace(ENGINE, conventions=KERAS_MOMENTUM_UNCONVERTED)),
    ("Keras BN epsilon 1e-5", cv.conventions_layers,
     replace(ENGINE, conventions=conventions_with("keras", bn_eps=1e-5))),
    ("torch running variance biased", cv.conventions_layers,
     replace(ENGINE, conventions=conventions_with("torch", bn_running_var="biased"))),
    ("Keras leaky slope 0.01", cv.conventions_layers,
     replace(ENGINE, conventions=conventions_with("keras", leaky_slope=0.01))),
    ("torch SGD lr 0.01 (torch has documented 1e-3 since 2.2)", cv.conventions_optimizers,
     replace(ENGINE, conventions=with_optimizer_default("torch", "sgd", lr=0.01))),
    ("Keras Adam epsilon 1e-8", cv.conventions_optimizers,
     replace(ENGINE, conventions=with_optimizer_default("keras", "adam", eps=1e-8))),
    ("Keras formula forms torch's (eps placement, velocity, bias correction)",
     cv.conventions_optimizers, replace(ENGINE, conventions=conventions_with("keras",
                                                                             name="torch"))),
    # cohorts
    ("BN stats pooled over replicas", ind.cohort_layers,
     replace(ENGINE, batchnorm=bn_bug(pooled_replicas=True))),
    ("one dropout mask for all replicas", ind.cohort_layers,
     replace(ENGINE, dropout=dropout_bug(shared_mask=True))),
    ("replica 0's kernel everywhere", ind.cohort_layers,
     replace(ENGINE, linear=FirstReplicaLinear)),
    ("one dropout mask for all replicas", ind.cohort_mlp,
     replace(ENGINE, dropout=dropout_bug(shared_mask=True))),
    ("BN stats pooled over replicas", ind.cohort_mlp,
     replace(ENGINE, batchnorm=bn_bug(pooled_replicas=True))),
    ("every replica stepped with replica 0's hyperparameters", pk.packed_cohort,
     replace(ENGINE, optimizer=FirstReplicaHyperparameters)),
    ("every replica given replica 0's dropout rates", pk.packed_cohort,
     replace(ENGINE, mlp=first_dropout_rates)),
    ("every replica given replica 0's activations", pk.packed_cohort,
     replace(ENGINE, mlp=first_activations)),
    # evaluation
    ("shared rows drop the bias", ev.dense_shared_rows, replace(ENGINE, linear=SharedRowsNoBias)),
    ("shared rows drop the bias", ev.mlp_evaluation, replace(ENGINE, linear=SharedRowsNoBias)),
    ("BN batch stats in eval", ev.mlp_evaluation,
     replace(ENGINE, batchnorm=bn_bug(batch_stats_in_eval=True))),
    ("dropout in eval", ev.mlp_evaluation, replace(ENGINE, dropout=DropoutInEval)),
    ("shared rows drop the bias", ev.train_then_evaluate,
     replace(ENGINE, linear=SharedRowsNoBias)),
    ("BN momentum reversed", ev.train_then_evaluate,
     replace(ENGINE, batchnorm=bn_bug(reversed_momentum=True))),
]

# Derandomized so that the verdict is the same on every run; no shrinking (a failure is all
# these tests need, and shrinking a failing example is most of the time a failure takes).
PLANTED_SETTINGS = settings(max_examples=25, derandomize=True,
                            phases=[Phase.explicit, Phase.generate])


@pytest.mark.parametrize(("bug", "prop", "engine"), PLANTED,
                         ids=[f"{p.__name__}-{bug}" for bug, p, _ in PLANTED])
def test_planted_bug_fails_the_property(bug: str, prop: Property, engine: Engine) -> None:
    outcome = prop(engine, CPU, PLANTED_SETTINGS)
    assert not outcome.passed, f"{prop.__name__} did not catch: {bug}"
    assert outcome.failure and outcome.ratio > 1.0


def test_the_shared_rows_bias_bug_passed_every_earlier_property() -> None:
    """The blind spot the evaluation properties close: dropping the bias on the shared-rows
    path (validation and test) passes every property that is not about evaluation, since
    those only feed per-replica (S, B, F) inputs; the evaluation properties fail it."""
    engine = replace(ENGINE, linear=SharedRowsNoBias)
    few = settings(max_examples=5, derandomize=True, phases=[Phase.explicit, Phase.generate])
    # the packed cohort is trained by train_cohort, whose validation and test scores come
    # from the shared-rows path too: it catches the bug as the evaluation properties do
    evaluation = {ev.dense_shared_rows, ev.mlp_evaluation, ev.train_then_evaluate,
                  pk.packed_cohort}
    for prop in checks.PROPERTIES:
        outcome = prop(engine, CPU, few)
        assert outcome.passed == (prop not in evaluation), (prop.__name__, outcome.failure)


# The three bugs the packed-cohort and conventions properties were added for (issue 19).
BLIND_SPOTS = {
    "replica 0's hyperparameters": replace(ENGINE, optimizer=FirstReplicaHyperparameters),
    "replica 0's dropout rates": replace(ENGINE, mlp=first_dropout_rates),
    "Keras BN momentum unconverted": replace(ENGINE, conventions=KERAS_MOMENTUM_UNCONVERTED),
}
NEW_PROPERTIES = {pk.packed_cohort, cv.conventions_layers, cv.conventions_optimizers}


@pytest.mark.parametrize("bug", sorted(BLIND_SPOTS))
def test_ablate_check_fails_on_the_blind_spots(bug: str) -> None:
    """`ablate check` (its new properties, which it runs on every device) returns 1 on
    each of the three bugs and shows the failing example; the engine passes them."""
    new = [p for p in checks.PROPERTIES if p in NEW_PROPERTIES]
    assert len(new) == len(NEW_PROPERTIES)  # `ablate check` runs every one of them
    console, out = _console()
    assert checks.run_checks("cpu", 5, engine=BLIND_SPOTS[bug], properties=new,
                             console=console) == 1
    assert "FAILED" in out.getvalue() and "PropertyFailed" in out.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("bug", sorted(BLIND_SPOTS))
def test_the_blind_spots_passed_every_earlier_property(bug: str) -> None:
    """Before the packed-cohort and conventions properties, each of the three bugs passed
    every property (a cohort of one config cannot tell replica s's value from replica 0's;
    nothing read the conventions' values)."""
    few = settings(max_examples=5, derandomize=True, phases=[Phase.explicit, Phase.generate])
    for prop in checks.PROPERTIES:
        if prop not in NEW_PROPERTIES:
            outcome = prop(BLIND_SPOTS[bug], CPU, few)
            assert outcome.passed, (prop.__name__, outcome.failure)


def test_every_property_has_a_planted_bug() -> None:
    caught = {prop for _, prop, _ in PLANTED}
    assert not [p.__name__ for p in checks.PROPERTIES if p not in caught]


def test_the_planted_switches_are_off_by_default() -> None:
    # PlantedBatchNorm and PlantedDropout with no switch on are the engine: the bugs are
    # the switches, not the rewrites
    engine = replace(ENGINE, batchnorm=PlantedBatchNorm, dropout=PlantedDropout)
    for prop in (la.batchnorm_training, la.batchnorm_running, la.batchnorm_eval,
                 gr.gradient_batchnorm, dr.dropout_values, dr.dropout_mean, ind.cohort_layers):
        outcome = prop(engine, CPU, PLANTED_SETTINGS)
        assert outcome.passed, outcome.failure


# ---------------------------------------------------------------- the tracker


def test_tracker_keeps_the_worst_ratio_and_fails_past_tolerance() -> None:
    tr = Tracker("t", "g")
    tr.close(np.array([1.0 + 1e-13]), np.array([1.0]), TOL_F64, "small")
    with pytest.raises(PropertyFailed, match="big"):
        tr.close(np.array([1.1]), np.array([1.0]), TOL_F64, "big")
    assert tr.worst is not None and tr.worst[0] > 1e8


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_tracker_treats_non_finite_as_a_failure(bad: float) -> None:
    with pytest.raises(PropertyFailed):
        Tracker("t", "g").close(np.array([bad]), np.array([1.0]), Tol(1.0, 1.0), "x")


def test_tracker_rejects_a_shape_mismatch() -> None:
    with pytest.raises(PropertyFailed, match="shape"):
        Tracker("t", "g").close(np.zeros(3), np.zeros((3, 1)), TOL_F64, "x")


# ---------------------------------------------------------------- ablate check


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200, color_system=None), out


def test_run_checks_prints_the_table_and_returns_0() -> None:
    console, out = _console()
    props = (la.dense_formula, dr.dropout_bounds)
    assert checks.run_checks("cpu", 3, properties=props, console=console) == 0
    text = out.getvalue()
    assert "y = x @ W + b" in text and "exact" in text and "pass" in text
    assert "float32 matmul precision on cpu: 'ieee' (pinned)" in text
    assert "2/2 properties hold" in text


def test_run_checks_returns_1_and_shows_the_failing_example() -> None:
    console, out = _console()
    engine = replace(ENGINE, batchnorm=bn_bug(eps_outside_sqrt=True))
    assert checks.run_checks("cpu", 5, engine=engine, properties=(la.batchnorm_training,),
                             console=console) == 1
    text = out.getvalue()
    assert "FAIL" in text and "seed=" in text and "PropertyFailed" in text


def test_every_property_holds_on_the_cpu() -> None:
    console, out = _console()
    assert checks.run_checks("cpu", 2, console=console) == 0
    text = out.getvalue()
    assert f"{len(checks.PROPERTIES)}/{len(checks.PROPERTIES)} properties hold" in text


@pytest.mark.parametrize("device", ["tpu", "cuda:0" if not torch.cuda.is_available() else "meta"])
def test_unusable_devices_are_user_errors(device: str) -> None:
    with pytest.raises(UserError):
        resolve_device(device)


def test_ablate_check_reads_only_the_current_precision_api() -> None:
    """Once anything sets PyTorch's `fp32_precision` API, reading the legacy TF32 flags
    raises; `ablate check` must still run, pinned to full float32, and say so."""
    backend = torch.backends.cuda.matmul
    saved = backend.fp32_precision
    backend.fp32_precision = "tf32"
    try:
        with pytest.raises(RuntimeError):
            torch.backends.cuda.matmul.allow_tf32  # noqa: B018  (the legacy read raises)
        console, out = _console()
        assert checks.run_checks("cpu", 2, properties=(la.dense_formula,), console=console) == 0
        assert "'ieee' (pinned)" in out.getvalue()
        assert backend.fp32_precision == "tf32"  # restored after the run
    finally:
        backend.fp32_precision = saved


def test_ablate_check_on_a_missing_gpu_is_exit_2_without_traceback() -> None:
    from typer.testing import CliRunner

    from ablate.cli import app

    missing = f"cuda:{torch.cuda.device_count() + 2}"
    result = CliRunner().invoke(app, ["check", "--device", missing, "--examples", "1"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "error:" in result.output
