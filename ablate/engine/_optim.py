"""Elementwise optimizers in both frameworks' forms, written out from their formulas.

Every update is elementwise, so on cohort parameters (leading replica axis) replica s
moves exactly as a standalone run would. State tensors share that leading axis, so a
diverged replica's state can be reset on its own.

Formulas (g: gradient, w: weight, t: step from 1), by the config's form fields:
  sgd       w -= lr g
  momentum  velocity "gradients" (torch): v = m v + g; w -= lr v
            velocity "steps" (keras):     v = m v - lr g; w += v
  nesterov  "gradients": v = m v + g; w -= lr (g + m v)
            "steps":     v = m v - lr g; w += m v - lr g
  adagrad   a += g^2;  eps_placement "outside_sqrt" (torch): w -= lr g / (sqrt(a) + eps)
                       "inside_sqrt" (keras):                w -= lr g / sqrt(a + eps)
  adadelta  a = rho a + (1-rho) g^2; d = sqrt(u + eps) / sqrt(a + eps) g;
            u = rho u + (1-rho) d^2; w -= lr d                      (one form)
  rmsprop   a = rho a + (1-rho) g^2; w -= lr g / (sqrt(a) + eps), or / sqrt(a + eps)
  adam      m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2
            bias_correction "moments" (torch): w -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
            "step_size" (keras):               w -= lr sqrt(1-b2^t) / (1-b1^t) m / (sqrt(v) + eps)
  adamw     w -= lr wd w, then adam (decoupled weight decay, one form)
Keras forms follow Keras 3; PyTorch forms follow torch.optim (a test compares them).
"""

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ablate.engine._config import OptimizerConfig


class Optimizer:
    """One optimizer over a list of cohort parameters; `step()` after `backward()`."""

    def __init__(self, config: OptimizerConfig, params: Sequence[Tensor]) -> None:
        self.c = config
        _check_forms(config)
        self.params = list(params)
        self.t = 0
        init = config.initial_accumulator or 0.0
        zeros = lambda: [torch.zeros_like(p) for p in params]  # noqa: E731
        self.state: dict[str, list[Tensor]] = {}
        match config.name:
            case "momentum" | "nesterov":
                self.state["v"] = zeros()
            case "adagrad":
                self.state["a"] = [torch.full_like(p, init) for p in params]
            case "adadelta":
                self.state["a"], self.state["u"] = zeros(), zeros()
            case "rmsprop":
                self.state["a"] = zeros()
            case "adam" | "adamw":
                self.state["m"], self.state["v"] = zeros(), zeros()

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        for i, w in enumerate(self.params):
            if w.grad is not None:
                self._update(i, w, w.grad)

    def _update(self, i: int, w: Tensor, g: Tensor) -> None:
        c, lr, st = self.c, self.c.lr, self.state
        match c.name:
            case "sgd":
                w.add_(g, alpha=-lr)
            case "momentum" | "nesterov":
                m, v = c.momentum or 0.0, st["v"][i]
                if c.velocity == "steps":
                    v.mul_(m).add_(g, alpha=-lr)
                    if c.name == "momentum":
                        w.add_(v)
                    else:
                        w.add_(v, alpha=m).add_(g, alpha=-lr)
                else:
                    v.mul_(m).add_(g)
                    if c.name == "momentum":
                        w.add_(v, alpha=-lr)
                    else:
                        w.add_(g + m * v, alpha=-lr)
            case "adagrad":
                a = st["a"][i].addcmul_(g, g)
                w.addcdiv_(g, self._denominator(a), value=-lr)
            case "adadelta":
                rho, eps = c.rho or 0.0, c.eps or 0.0
                a, u = st["a"][i], st["u"][i]
                a.mul_(rho).addcmul_(g, g, value=1 - rho)
                d = (u + eps).sqrt_().div_((a + eps).sqrt_()).mul_(g)
                u.mul_(rho).addcmul_(d, d, value=1 - rho)
                w.add_(d, alpha=-lr)
            case "rmsprop":
                rho = c.rho or 0.0
                a = st["a"][i].mul_(rho).addcmul_(g, g, value=1 - rho)
                w.addcdiv_(g, self._denominator(a), value=-lr)
            case "adam" | "adamw":
                self._adam(i, w, g)
            case _:
                raise ValueError(f"unknown optimizer {c.name!r}")

    def _denominator(self, a: Tensor) -> Tensor:
        eps = self.c.eps or 0.0
        return (a + eps).sqrt_() if self.c.eps_placement == "inside_sqrt" else a.sqrt().add_(eps)

    def _adam(self, i: int, w: Tensor, g: Tensor) -> None:
        c, t = self.c, self.t
        b1, b2, eps, lr = c.beta1 or 0.0, c.beta2 or 0.0, c.eps or 0.0, c.lr
        if c.name == "adamw":
            w.mul_(1 - lr * (c.weight_decay or 0.0))
        m = self.state["m"][i].lerp_(g, 1 - b1)
        v = self.state["v"][i].mul_(b2).addcmul_(g, g, value=1 - b2)
        bc1, bc2 = 1 - b1**t, 1 - b2**t
        if c.bias_correction == "step_size":
            w.addcdiv_(m, v.sqrt().add_(eps), value=-lr * math.sqrt(bc2) / bc1)
        else:
            w.addcdiv_(m, (v.sqrt() / math.sqrt(bc2)).add_(eps), value=-lr / bc1)

    @torch.no_grad()
    def reset_replicas(self, dead: Tensor) -> None:
        """Zero the state of replicas where `dead` (S,) is True (after a divergence)."""
        init = self.c.initial_accumulator or 0.0
        for key, tensors in self.state.items():
            for t in tensors:
                t[dead] = init if key == "a" and self.c.name == "adagrad" else 0.0


# The form field each optimizer needs, and its allowed values.
_FORMS = {
    "momentum": ("velocity", ("gradients", "steps")),
    "nesterov": ("velocity", ("gradients", "steps")),
    "adagrad": ("eps_placement", ("outside_sqrt", "inside_sqrt")),
    "rmsprop": ("eps_placement", ("outside_sqrt", "inside_sqrt")),
    "adam": ("bias_correction", ("moments", "step_size")),
    "adamw": ("bias_correction", ("moments", "step_size")),
}


def _check_forms(config: OptimizerConfig) -> None:
    """A config whose formula form is missing or unknown is refused, never guessed."""
    if config.name not in _FORMS:
        return
    field, allowed = _FORMS[config.name]
    value = getattr(config, field)
    if value not in allowed:
        raise ValueError(f"optimizer {config.name!r} needs {field} in {allowed}, got {value!r}")
