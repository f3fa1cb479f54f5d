"""Properties of the optimizers: the oracle's formulas, the momentum forms, Adam's first step.

Float64 throughout, so that a formula difference shows far above rounding. Every example
exercises every optimizer, so a bug in any one of them fails every example.
"""

from collections.abc import Callable

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ablate.checks import _reference as ref
from ablate.checks._base import (
    TOL_F64,
    TOL_F64_CHAIN,
    CheckResult,
    Engine,
    Tracker,
    dims,
    log_uniform,
    numpy,
    replicas,
    seeds,
    tensor,
)
from ablate.conventions import optimizer_config
from ablate.engine import OPTIMIZER_SPECS, OPTIMIZERS, OptimizerConfig

__all__ = [
    "adam_first_step", "config_for", "hyperparameters", "momentum_forms",
    "optimizer_keras_formulas", "optimizer_torch_formulas",
]

hyperparameters = st.fixed_dictionaries({
    "lr": log_uniform(1e-3, 0.5), "momentum": st.floats(0.0, 0.99),
    "rho": st.floats(0.5, 0.99), "beta1": st.floats(0.0, 0.99),
    "beta2": st.floats(0.9, 0.9999), "eps": log_uniform(1e-8, 1e-2),
    "weight_decay": st.floats(0.0, 0.1), "initial_accumulator": st.floats(0.0, 0.5),
})


def config_for(conventions: str, name: str, hp: dict[str, float]) -> OptimizerConfig:
    """Optimizer `name` in the forms of `conventions`, with the drawn hyperparameters."""
    uses = OPTIMIZER_SPECS[name].hyperparameters  # the others stay None, as resolved
    return optimizer_config(conventions, name, lr=hp["lr"], **{k: hp[k] for k in uses})


def _trajectory(engine: Engine, config: OptimizerConfig, w0: ref.Array,
                grads: list[ref.Array], device: torch.device) -> list[ref.Array]:
    """The engine's weights after each step, from w0 with the given gradients."""
    w = tensor(w0, "float64", device).requires_grad_()
    opt = engine.optimizer(config, [w])
    out = []
    for g in grads:
        w.grad = tensor(g, "float64", device)
        opt.step()
        out.append(numpy(w))
    return out


def _formulas(conventions: str) -> Callable[[Engine, torch.device, settings | None], CheckResult]:
    def check(engine: Engine, device: torch.device, hs: settings | None = None) -> CheckResult:
        tr = Tracker(f"{conventions} conventions: steps = oracle formulas", "optimizers")

        @given(S=replicas, a=dims, b=dims, steps=st.integers(1, 4), hp=hyperparameters,
               seed=seeds)
        def prop(S: int, a: int, b: int, steps: int, hp: dict[str, float], seed: int) -> None:
            tr.example(S=S, a=a, b=b, steps=steps, hp=hp, seed=seed)
            r = np.random.default_rng(seed)
            w0 = r.normal(size=(S, a, b))
            grads = [r.normal(size=w0.shape) for _ in range(steps)]
            for name in OPTIMIZERS:
                config = config_for(conventions, name, hp)
                got = _trajectory(engine, config, w0, grads, device)
                w, state = w0, ref.optimizer_state(config, w0)
                for t, (g, wt) in enumerate(zip(grads, got, strict=True), start=1):
                    w, state = ref.optimizer_step(config, w, g, state, t)
                    tr.close(wt, w, TOL_F64_CHAIN, f"{name} after step {t}")

        return tr.run(prop, hs)

    check.__name__ = check.__qualname__ = f"optimizer_{conventions}_formulas"
    check.__doc__ = f"One and several steps of every optimizer under {conventions} conventions " \
                    "equal the oracle's formula."
    return check


optimizer_torch_formulas = _formulas("torch")
optimizer_keras_formulas = _formulas("keras")


def momentum_forms(engine: Engine, device: torch.device,
                   hs: settings | None = None) -> CheckResult:
    """With a constant learning rate, the textbook form V = a V + lr g, W -= V and both
    engine forms (PyTorch's v = a v + g, W -= lr v; Keras's v = a v - lr g, W += v) give the
    same trajectory."""
    tr = Tracker("momentum: textbook = torch form = keras form", "optimizers")

    @given(S=replicas, a=dims, steps=st.integers(1, 6), lr=log_uniform(1e-3, 0.5),
           momentum=st.floats(0.0, 0.99), seed=seeds)
    def prop(S: int, a: int, steps: int, lr: float, momentum: float, seed: int) -> None:
        tr.example(S=S, a=a, steps=steps, lr=lr, momentum=momentum, seed=seed)
        r = np.random.default_rng(seed)
        w0 = r.normal(size=(S, a))
        grads = [r.normal(size=w0.shape) for _ in range(steps)]
        forms = {c: _trajectory(engine, optimizer_config(c, "momentum", lr=lr, momentum=momentum),
                                w0, grads, device) for c in ("torch", "keras")}
        w, big_v = w0, np.zeros_like(w0)
        for t, g in enumerate(grads):
            w, big_v = ref.momentum_textbook(w, big_v, g, lr, momentum)
            for conventions, got in forms.items():
                tr.close(got[t], w, TOL_F64_CHAIN, f"{conventions} form after step {t + 1}")

    return tr.run(prop, hs)


def adam_first_step(engine: Engine, device: torch.device,
                    hs: settings | None = None) -> CheckResult:
    """With eps = 0, Adam's first step moves every weight by exactly lr (bias correction makes
    m_hat = g and v_hat = g^2), and scaling every gradient by c > 0 leaves the whole
    trajectory unchanged; both conventions."""
    tr = Tracker("adam: |first step| = lr at eps=0; scale-invariant", "optimizers")

    @given(S=replicas, a=dims, steps=st.integers(1, 4), lr=log_uniform(1e-4, 0.5),
           beta1=st.floats(0.0, 0.99), beta2=st.floats(0.5, 0.9999), c=log_uniform(1e-3, 1e3),
           seed=seeds)
    def prop(S: int, a: int, steps: int, lr: float, beta1: float, beta2: float, c: float,
             seed: int) -> None:
        tr.example(S=S, a=a, steps=steps, lr=lr, beta1=beta1, beta2=beta2, c=c, seed=seed)
        r = np.random.default_rng(seed)
        w0 = r.normal(size=(S, a))
        # gradients away from 0, where the step's sign would be decided by rounding
        grads = [np.where(r.random(w0.shape) < 0.5, -1.0, 1.0) * r.uniform(0.1, 2.0, w0.shape)
                 for _ in range(steps)]
        for conventions in ("torch", "keras"):
            config = optimizer_config(conventions, "adam", lr=lr, beta1=beta1, beta2=beta2,
                                      eps=0.0)
            got = _trajectory(engine, config, w0, grads, device)
            tr.close(np.abs(got[0] - w0), np.full(w0.shape, lr), TOL_F64,
                     f"{conventions}: |first step| = lr")
            scaled = _trajectory(engine, config, w0, [c * g for g in grads], device)
            for t, (x, y) in enumerate(zip(scaled, got, strict=True), start=1):
                tr.close(x, y, TOL_F64_CHAIN, f"{conventions}: gradients x {c:g}, step {t}")

    return tr.run(prop, hs)
