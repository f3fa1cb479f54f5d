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
from ablate.engine._optimizers import OPTIMIZER_SPECS

__all__ = ["Hyper", "Optimizer"]

# A hyperparameter: one float for every replica, or a (S,) float64 tensor of per-replica
# values. Step-dependent values (Adam's bias corrections) are derived from these in float64
# (exactly as from Python floats) and meet the parameters only in the update itself.
Hyper = float | Tensor
_HYPERS = ("lr", "momentum", "rho", "beta1", "beta2", "eps", "weight_decay")


class Optimizer:
    """One optimizer over a list of cohort parameters; `step()` after `backward()`.

    `configs` is one config for every replica or one per replica (same name and forms;
    hyperparameters may differ). Each update runs over all parameters at once
    (`torch._foreach_*`), with the same arithmetic, op for op, as a per-parameter loop.
    """

    def __init__(self, configs: OptimizerConfig | Sequence[OptimizerConfig],
                 params: Sequence[Tensor]) -> None:
        self.params = list(params)
        S = self.params[0].shape[0] if self.params else 1
        configs = [configs] * S if isinstance(configs, OptimizerConfig) else list(configs)
        c = self.config = configs[0]  # the kind and forms every replica shares
        for other in configs:
            if (other.name, other.velocity, other.eps_placement, other.bias_correction) != \
                    (c.name, c.velocity, c.eps_placement, c.bias_correction):
                raise ValueError("one cohort trains with one optimizer kind and form")
            _check_forms(other)
        device = self.params[0].device if self.params else None
        # per hyperparameter: one float for every replica, or their (S,) values
        self.hyper = {key: _hyper([getattr(o, key) or 0.0 for o in configs], device)
                      for key in _HYPERS}
        self.initial = [o.initial_accumulator or 0.0 for o in configs]  # (S,) adagrad
        self.t = 0
        self.state = {key: self._zeros() for key in OPTIMIZER_SPECS[c.name].state}
        if c.name == "adagrad":
            _add_scalar_(self.state["a"], _hyper(self.initial, device))

    def _zeros(self) -> list[Tensor]:
        return [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        # A parameter without a gradient is left alone, state included (as torch.optim).
        live = [i for i, w in enumerate(self.params) if w.grad is not None]
        params = [self.params[i] for i in live]
        grads = [g for g in (w.grad for w in params) if g is not None]
        st = {key: [tensors[i] for i in live] for key, tensors in self.state.items()}
        c, h = self.config, self.hyper
        match c.name:
            case "sgd":
                _axpy_(params, grads, -h["lr"])
            case "momentum" | "nesterov":
                self._momentum(params, grads, st["v"])
            case "adagrad":
                torch._foreach_addcmul_(st["a"], grads, grads)
                _addcdiv_(params, grads, self._denominator(st["a"]), -h["lr"])
            case "adadelta":
                rho, eps = h["rho"], h["eps"]
                a, u = st["a"], st["u"]
                _scale_(a, rho)
                _addcmul_(a, grads, grads, 1 - rho)
                d = _plus(u, eps)
                torch._foreach_sqrt_(d)
                torch._foreach_div_(d, torch._foreach_sqrt(_plus(a, eps)))
                torch._foreach_mul_(d, grads)
                _scale_(u, rho)
                _addcmul_(u, d, d, 1 - rho)
                _axpy_(params, d, -h["lr"])
            case "rmsprop":
                _scale_(st["a"], h["rho"])
                _addcmul_(st["a"], grads, grads, 1 - h["rho"])
                _addcdiv_(params, grads, self._denominator(st["a"]), -h["lr"])
            case "adam" | "adamw":
                self._adam(params, grads, st["m"], st["v"])
            case _:
                raise ValueError(f"unknown optimizer {c.name!r}")

    def _momentum(self, params: list[Tensor], grads: list[Tensor], v: list[Tensor]) -> None:
        m, lr = self.hyper["momentum"], self.hyper["lr"]
        _scale_(v, m)
        if self.config.velocity == "steps":  # v = m v - lr g; w += v, or w += m v - lr g
            _axpy_(v, grads, -lr)
            if self.config.name == "momentum":
                torch._foreach_add_(params, v)
            else:
                _axpy_(params, v, m)
                _axpy_(params, grads, -lr)
        else:  # v = m v + g; w -= lr v, or w -= lr (g + m v)
            torch._foreach_add_(v, grads)
            if self.config.name == "momentum":
                _axpy_(params, v, -lr)
            else:
                look = _times(v, m)
                torch._foreach_add_(look, grads)  # g + m v, as (m v) + g
                _axpy_(params, look, -lr)

    def _denominator(self, a: list[Tensor]) -> list[Tensor]:
        eps = self.hyper["eps"]
        if self.config.eps_placement == "inside_sqrt":  # sqrt(a + eps)
            out = _plus(a, eps)
            torch._foreach_sqrt_(out)
            return out
        out = list(torch._foreach_sqrt(a))  # sqrt(a) + eps
        _add_scalar_(out, eps)
        return out

    def _adam(self, params: list[Tensor], grads: list[Tensor], m: list[Tensor],
              v: list[Tensor]) -> None:
        h, t = self.hyper, self.t
        b1, b2, eps, lr = h["beta1"], h["beta2"], h["eps"], h["lr"]
        if self.config.name == "adamw":
            _scale_(params, 1 - lr * h["weight_decay"])
        _lerp_(m, grads, 1 - b1)
        _scale_(v, b2)
        _addcmul_(v, grads, grads, 1 - b2)
        bc1, bc2 = 1 - b1**t, 1 - b2**t
        denom = list(torch._foreach_sqrt(v))
        if self.config.bias_correction == "step_size":  # w -= lr sqrt(bc2)/bc1 m / (sqrt(v) + eps)
            _add_scalar_(denom, eps)
            _addcdiv_(params, m, denom, -(lr * _sqrt(bc2) / bc1))
        else:  # w -= lr/bc1 m / (sqrt(v) / sqrt(bc2) + eps)
            _div_(denom, _sqrt(bc2))
            _add_scalar_(denom, eps)
            _addcdiv_(params, m, denom, -(lr / bc1))

    @torch.no_grad()
    def reset_replicas(self, dead: Tensor) -> None:
        """Zero the state of replicas where `dead` (S,) is True (after a divergence);
        AdaGrad's accumulator goes back to its initial value."""
        for key, tensors in self.state.items():
            for t in tensors:
                if key == "a" and self.config.name == "adagrad":
                    init = torch.tensor(self.initial, dtype=t.dtype, device=t.device)
                    fill = init.view(-1, *[1] * (t.dim() - 1)).expand_as(t)
                else:
                    fill = torch.zeros_like(t)
                keep = dead.view(-1, *[1] * (t.dim() - 1))
                t.copy_(torch.where(keep, fill, t))


# ---------------------------------------------------------------- hyperparameter arithmetic
# A float goes to one foreach call as a Python scalar (exactly the per-parameter op with
# that scalar); a per-replica tensor as one (S, 1, ...) view per parameter, in the
# parameter's dtype, so that each replica uses its own value.


def _hyper(values: list[float], device: torch.device | None) -> Hyper:
    """A float when every replica has the same value, else a (S,) float64 tensor."""
    if len(set(values)) == 1:
        return float(values[0])
    return torch.tensor(values, dtype=torch.float64, device=device)


def _sqrt(x: Hyper) -> Hyper:
    return math.sqrt(x) if isinstance(x, float) else x.sqrt()


def _per_param(x: Tensor, like: list[Tensor]) -> list[Tensor]:
    """(S,) values as a broadcastable (S, 1, ...) view per tensor of `like` (one dtype)."""
    if not like:
        return []
    x = x.to(like[0].dtype)
    return [x.view(-1, *[1] * (t.dim() - 1)) for t in like]


def _axpy_(ys: list[Tensor], xs: list[Tensor], alpha: Hyper) -> None:
    """y += alpha x."""
    if isinstance(alpha, float):
        torch._foreach_add_(ys, xs, alpha=alpha)
    else:
        torch._foreach_addcmul_(ys, xs, _per_param(alpha, ys))


def _scale_(xs: list[Tensor], factor: Hyper) -> None:
    """x *= factor."""
    torch._foreach_mul_(xs, factor if isinstance(factor, float) else _per_param(factor, xs))


def _div_(xs: list[Tensor], divisor: Hyper) -> None:
    """x /= divisor."""
    torch._foreach_div_(xs, divisor if isinstance(divisor, float) else _per_param(divisor, xs))


def _add_scalar_(xs: list[Tensor], value: Hyper) -> None:
    """x += value."""
    torch._foreach_add_(xs, value if isinstance(value, float) else _per_param(value, xs))


def _plus(xs: list[Tensor], value: Hyper) -> list[Tensor]:
    """x + value, new tensors."""
    return list(torch._foreach_add(xs, value if isinstance(value, float)
                                   else _per_param(value, xs)))


def _times(xs: list[Tensor], factor: Hyper) -> list[Tensor]:
    """x * factor, new tensors."""
    return list(torch._foreach_mul(xs, factor if isinstance(factor, float)
                                   else _per_param(factor, xs)))


def _addcmul_(ys: list[Tensor], a: list[Tensor], b: list[Tensor], value: Hyper) -> None:
    """y += value a b."""
    if isinstance(value, float):
        torch._foreach_addcmul_(ys, a, b, value=value)
    else:
        torch._foreach_addcmul_(ys, a, torch._foreach_mul(b, _per_param(value, b)))


def _addcdiv_(ys: list[Tensor], a: list[Tensor], b: list[Tensor], value: Hyper) -> None:
    """y += value a / b."""
    if isinstance(value, float):
        torch._foreach_addcdiv_(ys, a, b, value=value)
    else:
        torch._foreach_addcdiv_(ys, torch._foreach_mul(a, _per_param(value, a)), b)


def _lerp_(ys: list[Tensor], xs: list[Tensor], weight: Hyper) -> None:
    """y += weight (x - y)."""
    if isinstance(weight, float):
        torch._foreach_lerp_(ys, xs, weight)
    else:
        torch._foreach_lerp_(ys, xs, _per_param(weight, ys))


def _check_forms(config: OptimizerConfig) -> None:
    """A config whose formula form is missing or unknown is refused, never guessed."""
    form = OPTIMIZER_SPECS[config.name].form
    if form is None:
        return
    value = getattr(config, form.field)
    if value not in form.allowed:
        raise ValueError(f"optimizer {config.name!r} needs {form.field} in {form.allowed}, "
                         f"got {value!r}")
