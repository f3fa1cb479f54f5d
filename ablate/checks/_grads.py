"""Gradients: autograd = the oracle's backprop = finite differences, in float64.

For every layer (torch's gradcheck) and for whole MLPs (central differences along random
directions) with every activation, batch norm before or after the activation and dropout
with a fixed mask (dropout's masks are a function of its step, so repeated evaluations at
one step see one mask). Inputs stay away from ReLU's kink, where finite differences are
meaningless: at least 0.01 for single activations; whole-MLP examples with a pre-activation
within 1e-4 of it are rejected.
"""

from collections.abc import Callable, Sequence

import numpy as np
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import Tensor
from torch.autograd.gradcheck import GradcheckError
from torch.func import functional_call

from ablate.checks import _reference as ref
from ablate.checks._base import (
    TOL_F64,
    TOL_F64_CHAIN,
    CheckResult,
    Engine,
    Tol,
    Tracker,
    build_mlp,
    dims,
    dropout_keys,
    mlp_config,
    numpy,
    oracle_keeps,
    randomize_batchnorm,
    replicas,
    seeds,
    set_dropout_step,
    tensor,
)
from ablate.engine import ACTIVATIONS, BATCH_NORM, INPUTS, RunConfig

__all__ = [
    "FINITE_DIFFERENCES", "directional_difference", "gradcheck", "gradient_activations",
    "gradient_batchnorm", "gradient_dense", "gradient_dropout", "gradient_mlp",
    "layer_specs", "oracle_mlp",
]


def gradcheck(tr: Tracker, fn: Callable[..., Tensor], inputs: Sequence[Tensor],
              what: str) -> None:
    """torch.autograd.gradcheck: every Jacobian entry by central differences (eps 1e-6,
    atol 1e-5, rtol 1e-3); for small layers only, it costs one forward pass per input."""
    try:
        torch.autograd.gradcheck(fn, tuple(inputs))
    except GradcheckError as e:
        tr.holds(False, f"{what}: gradcheck: {str(e)[:600]}")


# Central differences with h = 1e-6 on an O(1) loss: truncation ~h^2 = 1e-12, rounding
# ~1e-16 / h = 1e-10, so 1e-6 relative and 1e-8 absolute leave a wide margin.
FINITE_DIFFERENCES = Tol(rtol=1e-6, atol=1e-8)


def directional_difference(tr: Tracker, f: Callable[[Tensor], Tensor], theta: Tensor,
                           grad: Tensor, r: np.random.Generator, what: str,
                           h: float = 1e-6) -> None:
    """(f(theta + h u) - f(theta - h u)) / 2h = grad . u along a random unit direction u.

    The fast-mode idea of gradcheck, written out: a few forward passes however many
    parameters, and an error that is tracked (and no slow-mode rerun on failure).
    """
    u = tensor(r.normal(size=theta.numel()), theta.dtype, theta.device)
    u /= u.norm()
    with torch.no_grad():
        numeric = (f(theta + h * u) - f(theta - h * u)) / (2 * h)
    tr.close((grad * u).sum(), numpy(numeric), FINITE_DIFFERENCES,
             f"{what}: autograd . u vs central difference")


def _leaf(a: ref.Array, device: torch.device) -> Tensor:
    return tensor(a, torch.float64, device).requires_grad_()


def gradient_dense(engine: Engine, device: torch.device,
                   hs: settings | None = None) -> CheckResult:
    """dL/dx, dL/dW, dL/db of the dense layer equal the oracle's; gradcheck holds."""
    tr = Tracker("dense: autograd = oracle = gradcheck", "gradients")

    @given(S=replicas, B=dims, fan_in=dims, fan_out=dims, seed=seeds)
    def prop(S: int, B: int, fan_in: int, fan_out: int, seed: int) -> None:
        tr.example(S=S, B=B, fan_in=fan_in, fan_out=fan_out, seed=seed)
        r = np.random.default_rng(seed)
        x, w, b = r.normal(size=(S, B, fan_in)), r.normal(size=(S, fan_in, fan_out)), \
            r.normal(size=(S, fan_out))
        layer = engine.linear(tensor(w, torch.float64, device), tensor(b, torch.float64, device))
        inputs = [_leaf(a, device) for a in (x, w, b)]

        def f(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
            out: Tensor = functional_call(layer, {"weight": w, "bias": b}, (x,))
            return out

        gradcheck(tr, f, inputs, "dense")
        dy = r.normal(size=(S, B, fan_out))
        grads = torch.autograd.grad((f(*inputs) * tensor(dy, torch.float64, device)).sum(), inputs)
        for s in range(S):
            for name, got, want in zip(("dx", "dW", "db"), grads,
                                       ref.dense_backward(x[s], w[s], dy[s]), strict=True):
                tr.close(got[s], want, TOL_F64, f"replica {s}: {name}")

    return tr.run(prop, hs)


def gradient_activations(engine: Engine, device: torch.device,
                         hs: settings | None = None) -> CheckResult:
    """Every activation: value and derivative equal the oracle; gradcheck holds."""
    tr = Tracker("activations: value; autograd = oracle = gradcheck", "gradients")

    @given(S=replicas, B=dims, F=dims, slope=st.floats(0.01, 0.5), seed=seeds)
    def prop(S: int, B: int, F: int, slope: float, seed: int) -> None:
        tr.example(S=S, B=B, F=F, slope=slope, seed=seed)
        r = np.random.default_rng(seed)
        x = np.where(r.random((S, B, F)) < 0.5, -1.0, 1.0) * r.uniform(0.01, 4.0, (S, B, F))
        dy = r.normal(size=x.shape)
        for name in ACTIVATIONS:
            act = engine.activation(name, slope)
            xt = _leaf(x, device)
            y = act(xt)
            expected = ref.activation(name, x, slope)
            tr.close(y, expected, TOL_F64, f"{name}(x)")
            (dx,) = torch.autograd.grad((y * tensor(dy, torch.float64, device)).sum(), [xt])
            tr.close(dx, dy * ref.activation_derivative(name, x, expected, slope), TOL_F64,
                     f"{name}'(x)")
            gradcheck(tr, act, [xt], name)

    return tr.run(prop, hs)


def gradient_batchnorm(engine: Engine, device: torch.device,
                       hs: settings | None = None) -> CheckResult:
    """Batch norm in training (through the batch mean and variance) and eval mode."""
    tr = Tracker("batch norm: autograd = oracle = gradcheck", "gradients")

    @given(S=replicas, B=st.integers(2, 6), F=dims, training=st.booleans(),
           eps=st.sampled_from([1e-5, 1e-3, 0.1]), seed=seeds)
    def prop(S: int, B: int, F: int, training: bool, eps: float, seed: int) -> None:
        tr.example(S=S, B=B, F=F, training=training, eps=eps, seed=seed)
        r = np.random.default_rng(seed)
        bn = engine.batchnorm(S, F, 0.1, eps).to(device=device, dtype=torch.float64)
        randomize_batchnorm(bn, r)
        bn.train(training)
        state = {k: numpy(v) for k, v in bn.state_dict().items()}
        x = r.normal(size=(S, B, F)) * 10.0 ** r.uniform(-1, 1, F) + r.uniform(-1, 1, F)
        inputs = [_leaf(a, device) for a in (x, state["weight"], state["bias"])]

        def f(x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
            out: Tensor = functional_call(bn, {"weight": gamma, "bias": beta}, (x,))
            return out

        dy = r.normal(size=x.shape)
        grads = torch.autograd.grad((f(*inputs) * tensor(dy, torch.float64, device)).sum(), inputs)
        for s in range(S):
            oracle = ref.BatchNorm(state["weight"][s], state["bias"][s],
                                   state["running_mean"][s], state["running_var"][s], eps, 0.1)
            oracle.forward(x[s], training)
            want = (oracle.backward(dy[s]), oracle.grads["weight"], oracle.grads["bias"])
            for name, got, w in zip(("dx", "dgamma", "dbeta"), grads, want, strict=True):
                tr.close(got[s], w, TOL_F64_CHAIN, f"replica {s}: {name}")
        gradcheck(tr, f, inputs, "batch norm")

    return tr.run(prop, hs)


def gradient_dropout(engine: Engine, device: torch.device,
                     hs: settings | None = None) -> CheckResult:
    """Dropout with a fixed mask: dx = dy / (1-p) where kept, 0 where dropped."""
    tr = Tracker("dropout, fixed mask: autograd = oracle = gradcheck", "gradients")

    @given(S=replicas, B=dims, F=dims, p=st.floats(0.05, 0.9), seed=seeds)
    def prop(S: int, B: int, F: int, p: float, seed: int) -> None:
        tr.example(S=S, B=B, F=F, p=p, seed=seed)
        r = np.random.default_rng(seed)
        keys = dropout_keys(r, S)
        drop = engine.dropout(p, keys).to(device)
        drop.train()
        drop.step = step = int(r.integers(0, 2**31 - 1))

        def f(x: Tensor) -> Tensor:
            out: Tensor = drop(x)
            return out

        x, dy = r.normal(size=(S, B, F)), r.normal(size=(S, B, F))
        xt = _leaf(x, device)
        (dx,) = torch.autograd.grad((f(xt) * tensor(dy, torch.float64, device)).sum(), [xt])
        for s in range(S):
            keep = ref.dropout_keep(keys[s], step, B, F, p)
            tr.close(dx[s], ref.dropout_inverted_backward(dy[s], keep, p), TOL_F64,
                     f"replica {s}: dx")
        gradcheck(tr, f, [xt], "dropout")

    return tr.run(prop, hs)


# ---------------------------------------------------------------- whole MLPs

layer_specs = st.lists(
    st.tuples(st.integers(2, 6), st.sampled_from(ACTIVATIONS), st.sampled_from(BATCH_NORM),
              st.sampled_from([0.0, 0.3, 0.5])),
    min_size=1, max_size=3)


def oracle_mlp(config: RunConfig, state: dict[str, ref.Array],
               keeps: list[ref.Array]) -> list[tuple[str, ref.Layer]]:
    """One replica's oracle layers, in CohortMLP's documented block order:
    Dense -> [BN] -> activation -> [BN] -> [Dropout] per hidden layer, then Dense; each
    layer with the name of the engine module it stands for."""
    out: list[tuple[str, ref.Layer]] = []

    def bn(i: int) -> None:
        at = f"bn{i}."
        out.append((f"bn{i}", ref.BatchNorm(state[at + "weight"], state[at + "bias"],
                                            state[at + "running_mean"], state[at + "running_var"],
                                            config.bn_eps, config.bn_momentum,
                                            bessel=config.bn_running_var == "unbiased")))

    for i, layer in enumerate((*config.layers, None)):
        dense = ref.Dense(state[f"dense{i}.weight"], state[f"dense{i}.bias"])
        out.append((f"dense{i}", dense))
        if layer is None:
            break
        if layer.batch_norm == "before":
            bn(i)
        out.append((f"act{i}", ref.Activation(layer.activation, config.leaky_slope)))
        if layer.batch_norm == "after":
            bn(i)
        if layer.dropout > 0:
            out.append((f"drop{i}", ref.Dropout(keeps.pop(0).astype(bool), layer.dropout)))
    return out


def gradient_mlp(engine: Engine, device: torch.device,
                 hs: settings | None = None) -> CheckResult:
    """Whole MLPs: logits, loss and every parameter gradient equal the oracle's backprop, the
    running statistics its update; central differences along random directions agree."""
    tr = Tracker("whole MLP: logits, loss, grads = oracle = finite diff.", "gradients")

    @given(S=st.integers(1, 2), B=st.integers(2, 5), spec=layer_specs, training=st.booleans(),
           slope=st.floats(0.01, 0.3), seed=seeds)
    def prop(S: int, B: int, spec: list[tuple[int, str, str, float]], training: bool,
             slope: float, seed: int) -> None:
        r = np.random.default_rng(seed)
        config = mlp_config(*zip(*spec, strict=True), leaky_slope=slope)
        seed_list = [int(k) for k in r.integers(0, 2**62, S)]
        model = build_mlp(engine, config, seed_list).to(device=device, dtype=torch.float64)
        step = int(r.integers(0, 2**31 - 1))
        set_dropout_step(model, step)
        randomize_batchnorm(model, r)
        model.train(training)
        before = {k: numpy(v) for k, v in model.state_dict().items()}
        x, labels = r.uniform(0, 1, (S, B, INPUTS)), r.integers(0, 10, (S, B))
        xt, yt = tensor(x, torch.float64, device), torch.as_tensor(labels, device=device)
        names = [n for n, _ in model.named_parameters()]
        params = [_leaf(before[n], device) for n in names]

        def loss_of(flat: Tensor) -> Tensor:
            ps = torch.split(flat, [p.numel() for p in params])
            named = {n: q.view_as(p) for n, q, p in zip(names, ps, params, strict=True)}
            return engine.cross_entropy(functional_call(model, named, (xt,)), yt)

        logits = functional_call(model, dict(zip(names, params, strict=True)), (xt,))
        loss = engine.cross_entropy(logits, yt)
        grads = dict(zip(names, torch.autograd.grad(loss, params), strict=True))
        after = model.state_dict()
        keeps = (oracle_keeps(seed_list, config, step, B) if training else
                 [np.ones((S, B, la.units), bool) for la in config.layers if la.dropout > 0])
        oracles, oracle_loss = [], 0.0
        for s in range(S):
            named = oracle_mlp(config, {k: v[s] for k, v in before.items()},
                               [k[s] for k in keeps])
            layers = [layer for _, layer in named]
            want_loss, want_logits = ref.mlp_loss_and_grads(
                layers, x[s], ref.one_hot(labels[s], 10), training)
            kinks = [np.abs(la.x).min() for la in layers if isinstance(la, ref.Activation)
                     and la.name in ("relu", "leaky_relu") and la.x is not None]
            assume(min(kinks, default=1.0) > 1e-4)  # finite differences across a kink fail
            oracles.append((named, want_logits))
            oracle_loss += want_loss
        tr.example(S=S, B=B, spec=spec, training=training, slope=slope, seed=seed)
        for s, (named, want_logits) in enumerate(oracles):
            tr.close(logits[s], want_logits, TOL_F64_CHAIN, f"replica {s}: logits")
            for name, layer in named:
                for k, g in layer.grads.items():
                    tr.close(grads[f"{name}.{k}"][s], g, TOL_F64_CHAIN,
                             f"replica {s}: d {name}.{k}")
                if isinstance(layer, ref.BatchNorm):
                    for k in ("running_mean", "running_var"):
                        tr.close(after[f"{name}.{k}"][s], getattr(layer, k), TOL_F64_CHAIN,
                                 f"replica {s}: {name}.{k}")
        tr.close(loss, np.asarray(oracle_loss), TOL_F64_CHAIN, "loss")
        flat = torch.cat([p.detach().flatten() for p in params])
        gradient = torch.cat([grads[n].flatten() for n in names])
        for d in range(2):
            directional_difference(tr, loss_of, flat, gradient, r, f"MLP, direction {d}")

    return tr.run(prop, hs)

