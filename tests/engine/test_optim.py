"""The optimizers against torch.optim (torch conventions) and against Keras's formulas."""

import math

import pytest
import torch

from ablate.conventions import optimizer_config
from ablate.engine import Optimizer, OptimizerConfig

TORCH = {
    "sgd": lambda p, c: torch.optim.SGD(p, lr=c.lr),
    "momentum": lambda p, c: torch.optim.SGD(p, lr=c.lr, momentum=c.momentum),
    "nesterov": lambda p, c: torch.optim.SGD(p, lr=c.lr, momentum=c.momentum, nesterov=True),
    "adagrad": lambda p, c: torch.optim.Adagrad(
        p, lr=c.lr, eps=c.eps, initial_accumulator_value=c.initial_accumulator),
    "adadelta": lambda p, c: torch.optim.Adadelta(p, lr=c.lr, rho=c.rho, eps=c.eps),
    "rmsprop": lambda p, c: torch.optim.RMSprop(p, lr=c.lr, alpha=c.rho, eps=c.eps),
    "adam": lambda p, c: torch.optim.Adam(p, lr=c.lr, betas=(c.beta1, c.beta2), eps=c.eps),
    "adamw": lambda p, c: torch.optim.AdamW(
        p, lr=c.lr, betas=(c.beta1, c.beta2), eps=c.eps, weight_decay=c.weight_decay),
}


def torch_optim_forms(c: OptimizerConfig) -> bool:
    """Whether torch.optim computes `c` (its forms are PyTorch's, or it has none)."""
    return (c.velocity in (None, "gradients") and c.eps_placement in (None, "outside_sqrt")
            and c.bias_correction in (None, "moments"))


def _grads(steps: int, shape: tuple[int, ...]) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(steps)]


@pytest.mark.parametrize("name", list(TORCH))
def test_torch_conventions_match_torch_optim(name: str) -> None:
    # float64 so that any formula difference shows far above rounding (1e-12 relative).
    c = optimizer_config("torch", name)
    w0 = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours, theirs = w0.clone().requires_grad_(), w0.clone().requires_grad_()
    opt, ref = Optimizer(c, [ours]), TORCH[name]([theirs], c)
    for g in _grads(6, w0.shape):
        ours.grad, theirs.grad = g.clone(), g.clone()
        opt.step()
        ref.step()
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    assert not torch.equal(ours, w0)


def _keras_reference(name: str, c: OptimizerConfig, w: float, grads: list[float]) -> float:
    """Keras 3's update rules on one scalar, in plain float arithmetic."""
    v = m = u = 0.0
    a = c.initial_accumulator or 0.0
    for t, g in enumerate(grads, start=1):
        if name == "sgd":
            w -= c.lr * g
        elif name in ("momentum", "nesterov"):
            v = c.momentum * v - c.lr * g
            w += v if name == "momentum" else c.momentum * v - c.lr * g
        elif name == "adagrad":
            a += g * g
            w -= c.lr * g / math.sqrt(a + c.eps)
        elif name == "adadelta":
            a = c.rho * a + (1 - c.rho) * g * g
            d = math.sqrt(u + c.eps) / math.sqrt(a + c.eps) * g
            u = c.rho * u + (1 - c.rho) * d * d
            w -= c.lr * d
        elif name == "rmsprop":
            a = c.rho * a + (1 - c.rho) * g * g
            w -= c.lr * g / math.sqrt(a + c.eps)
        else:
            if name == "adamw":
                w -= c.lr * c.weight_decay * w
            m = c.beta1 * m + (1 - c.beta1) * g
            v = c.beta2 * v + (1 - c.beta2) * g * g
            alpha = c.lr * math.sqrt(1 - c.beta2**t) / (1 - c.beta1**t)
            w -= alpha * m / (math.sqrt(v) + c.eps)
    return w


@pytest.mark.parametrize("name", list(TORCH))
def test_keras_conventions_match_keras_formulas(name: str) -> None:
    c = optimizer_config("keras", name)
    grads = [0.3, -1.2, 0.05, 2.0, -0.7]
    w = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    opt = Optimizer(c, [w])
    for g in grads:
        w.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
    assert w.item() == pytest.approx(_keras_reference(name, c, 0.5, grads), rel=1e-12, abs=1e-15)


def test_reset_replicas_zeroes_only_the_dead_replica_state() -> None:
    c = optimizer_config("torch", "adagrad", initial_accumulator=0.1)
    w = torch.ones(2, 3, requires_grad=True)
    opt = Optimizer(c, [w])
    w.grad = torch.ones(2, 3)
    opt.step()
    opt.reset_replicas(torch.tensor([True, False]))
    assert torch.allclose(opt.state["a"][0][0], torch.full((3,), 0.1))
    assert torch.allclose(opt.state["a"][0][1], torch.full((3,), 1.1))
