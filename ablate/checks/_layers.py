"""Properties of the dense layer, softmax with cross-entropy, and batch normalization.

Each compares the engine (any replica count, float32 or float64) with the float64 oracle in
`ablate.checks._reference`, replica by replica, or with an exact identity. Inputs are drawn from a
Hypothesis-chosen seed so that large tensors stay cheap and every failure is reproducible.
"""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from ablate.checks import _reference as ref
from ablate.checks._base import (
    DTYPES,
    TOL_F64,
    TOL_F64_CHAIN,
    CheckResult,
    Engine,
    Tracker,
    dims,
    dtypes,
    log_uniform,
    numpy,
    replicas,
    rounded,
    seeds,
    tensor,
    tol_for,
)
from ablate.engine import CohortBatchNorm

__all__ = [
    "batchnorm_backward_sums", "batchnorm_eval", "batchnorm_running",
    "batchnorm_training", "bn_eps", "cross_entropy_gradient", "dense_formula",
    "softmax_properties",
]

# ---------------------------------------------------------------- dense


def dense_formula(engine: Engine, device: torch.device, hs: settings | None = None
                  ) -> CheckResult:
    """y[s] = x[s] @ W[s] + b[s] for every replica, in float32 and float64."""
    tr = Tracker("y = x @ W + b (float32, float64)", "dense")

    # fan_in <= 8 and values in [-1, 1] keep float32 dot products within assert_close's atol
    @given(S=replicas, B=dims, fan_in=st.integers(1, 8), fan_out=dims, dtype=dtypes, seed=seeds)
    def prop(S: int, B: int, fan_in: int, fan_out: int, dtype: str, seed: int) -> None:
        tr.example(S=S, B=B, fan_in=fan_in, fan_out=fan_out, dtype=dtype, seed=seed)
        r = np.random.default_rng(seed)
        x = rounded(r.uniform(-1, 1, (S, B, fan_in)), dtype)
        w = rounded(r.uniform(-1, 1, (S, fan_in, fan_out)), dtype)
        b = rounded(r.uniform(-1, 1, (S, fan_out)), dtype)
        layer = engine.linear(tensor(w, dtype, device), tensor(b, dtype, device))
        with torch.no_grad():
            y = layer(tensor(x, dtype, device))
        for s in range(S):
            tr.close(y[s], ref.dense(x[s], w[s], b[s]), tol_for(dtype), f"replica {s}")

    return tr.run(prop, hs)


# ---------------------------------------------------------------- softmax and cross-entropy

# Logits on a 2^-10 grid with |z| < 2^12 and integer shifts: z + c is exact in float32 (24-bit
# significand), so shift invariance is tested without rounding the inputs differently.
_GRID = 1024.0
_BIG = 10_000.0  # exp(10000) overflows float64 (and float32) without the max subtraction


def softmax_properties(engine: Engine, device: torch.device, hs: settings | None = None
                       ) -> CheckResult:
    """Outputs in [0, 1], rows sum to 1, invariant to a per-row constant, finite for huge logits,
    equal to the oracle."""
    tr = Tracker("softmax in [0,1], rows sum to 1, shift-invariant, finite", "softmax")

    @given(S=replicas, B=dims, C=st.integers(2, 10), scale=st.sampled_from([1.0, 30.0, 500.0]),
           dtype=dtypes, seed=seeds)
    def prop(S: int, B: int, C: int, scale: float, dtype: str, seed: int) -> None:
        tr.example(S=S, B=B, C=C, scale=scale, dtype=dtype, seed=seed)
        r = np.random.default_rng(seed)
        z = np.round(np.clip(r.normal(0, scale, (S, B, C)), -2000, 2000) * _GRID) / _GRID
        c = r.integers(-1000, 1000, (S, B, 1)).astype(np.float64)
        tol = tol_for(dtype, chain=True)  # exp, sum and division: a short chain
        p = engine.softmax(tensor(z, dtype, device))
        pn = numpy(p)
        tr.holds(bool(np.all((pn >= 0) & (pn <= 1))), f"outputs outside [0, 1]: {pn}")
        tr.close(p.sum(dim=-1), np.ones((S, B)), tol, "rows sum to 1")
        for s in range(S):
            tr.close(p[s], ref.softmax(z[s]), tol, f"replica {s} vs oracle")
        tr.close(engine.softmax(tensor(z + c, dtype, device)), pn, tol, "softmax(z + c)")
        big = engine.softmax(tensor(z + _BIG, dtype, device))
        tr.holds(bool(torch.isfinite(big).all()), f"softmax(z + {_BIG:g}) not finite: {big}")
        tr.close(big, pn, tol, f"softmax(z + {_BIG:g})")

    return tr.run(prop, hs)


def cross_entropy_gradient(engine: Engine, device: torch.device,
                           hs: settings | None = None) -> CheckResult:
    """The cohort loss equals the sum of per-replica mean cross-entropies, and its gradient
    with respect to the logits of replica s is (p - y) / B."""
    tr = Tracker("cross-entropy: loss; dL/dz = (p - y)/B", "softmax")

    @given(S=replicas, B=dims, C=st.integers(2, 10), scale=st.sampled_from([1.0, 10.0, 100.0]),
           dtype=dtypes, seed=seeds)
    def prop(S: int, B: int, C: int, scale: float, dtype: str, seed: int) -> None:
        tr.example(S=S, B=B, C=C, scale=scale, dtype=dtype, seed=seed)
        r = np.random.default_rng(seed)
        z = rounded(r.normal(0, scale, (S, B, C)), dtype)
        labels = r.integers(0, C, (S, B))
        zt = tensor(z, dtype, device).requires_grad_()
        loss = engine.cross_entropy(zt, torch.as_tensor(labels, device=device))
        loss.backward()
        assert zt.grad is not None
        tol = tol_for(dtype, chain=True)
        y = [ref.one_hot(labels[s], C) for s in range(S)]
        expected = sum(ref.cross_entropy(z[s], y[s]) for s in range(S))
        tr.close(loss, np.asarray(expected), tol, "loss")
        for s in range(S):
            tr.close(zt.grad[s], ref.cross_entropy_grad(z[s], y[s]), tol, f"replica {s} grad")

    return tr.run(prop, hs)


# ---------------------------------------------------------------- batch normalization


def _bn(engine: Engine, S: int, F: int, momentum: float, eps: float, r: np.random.Generator,
        dtype: str, device: torch.device, bessel: bool = True
        ) -> tuple[CohortBatchNorm, dict[str, ref.Array]]:
    """A BN layer with random gamma (|gamma| in [0.5, 2]), beta and running statistics."""
    bn = engine.batchnorm(S, F, momentum, eps, bessel=bessel)
    sign = np.where(r.random((S, F)) < 0.5, -1.0, 1.0)
    state = {"weight": sign * r.uniform(0.5, 2.0, (S, F)), "bias": r.normal(0, 1, (S, F)),
             "running_mean": r.normal(0, 1, (S, F)), "running_var": r.uniform(0.2, 3, (S, F))}
    state = {k: rounded(v, dtype) for k, v in state.items()}
    bn.to(device=device, dtype=DTYPES[dtype])
    with torch.no_grad():
        for k, v in state.items():
            getattr(bn, k).copy_(torch.as_tensor(v))
    return bn, state


def _bn_input(r: np.random.Generator, shape: tuple[int, ...], dtype: str) -> ref.Array:
    # per-feature offsets and spreads over several decades, so eps matters in some examples
    mu = r.uniform(-1, 1, shape[-1])
    sigma = 10.0 ** r.uniform(-1.5, 1, shape[-1])
    return rounded(mu + sigma * r.normal(size=shape), dtype)


bn_eps = log_uniform(1e-5, 1e-1)


def batchnorm_training(engine: Engine, device: torch.device, hs: settings | None = None
                       ) -> CheckResult:
    """Training output: per-feature mean beta and biased variance gamma^2 var / (var + eps);
    equal to the oracle (biased variance, eps inside the square root)."""
    tr = Tracker("train: mean beta, var gamma^2 v/(v+eps)", "batch norm")

    @given(S=replicas, B=st.integers(2, 8), F=dims, eps=bn_eps, dtype=dtypes, seed=seeds)
    def prop(S: int, B: int, F: int, eps: float, dtype: str, seed: int) -> None:
        tr.example(S=S, B=B, F=F, eps=eps, dtype=dtype, seed=seed)
        r = np.random.default_rng(seed)
        bn, p = _bn(engine, S, F, 0.1, eps, r, dtype, device)
        x = _bn_input(r, (S, B, F), dtype)
        bn.train()
        with torch.no_grad():
            y = numpy(bn(tensor(x, dtype, device)))
        tol = tol_for(dtype, chain=True)
        for s in range(S):
            _, var, _ = ref.batch_stats(x[s])
            out_mean, out_var, _ = ref.batch_stats(y[s])
            gamma, beta = p["weight"][s], p["bias"][s]
            tr.close(out_mean, beta, tol, f"replica {s}: output mean = beta")
            tr.close(out_var, gamma**2 * var / (var + eps), tol,
                     f"replica {s}: output variance = gamma^2 var/(var+eps)")
            tr.close(y[s], ref.batchnorm_train(x[s], gamma, beta, eps)[0], tol,
                     f"replica {s} vs oracle")

    return tr.run(prop, hs)


def batchnorm_running(engine: Engine, device: torch.device, hs: settings | None = None
                      ) -> CheckResult:
    """Running statistics after 1-3 training steps: the mean, and the variance from the
    unbiased batch estimate (torch, bessel) or the biased one (keras); the Keras momentum
    form agrees with the torch form after conversion (0.99 -> 0.01)."""
    tr = Tracker("running stats (torch unbiased, keras biased)", "batch norm")

    @given(S=replicas, B=st.integers(2, 8), F=dims, steps=st.integers(1, 3),
           keras_momentum=st.floats(0.6, 0.999), dtype=dtypes, seed=seeds,
           bessel=st.booleans())
    def prop(S: int, B: int, F: int, steps: int, keras_momentum: float, dtype: str,
             seed: int, bessel: bool) -> None:
        tr.example(S=S, B=B, F=F, steps=steps, keras_momentum=keras_momentum, dtype=dtype,
                   seed=seed, bessel=bessel)
        r = np.random.default_rng(seed)
        m = ref.keras_to_torch_momentum(keras_momentum)
        bn, p = _bn(engine, S, F, m, 1e-3, r, dtype, device, bessel)
        bn.train()
        keras = {"mean": p["running_mean"].copy(), "var": p["running_var"].copy()}
        torch_form = dict(keras)
        for _ in range(steps):
            x = _bn_input(r, (S, B, F), dtype)
            with torch.no_grad():
                bn(tensor(x, dtype, device))
            stats = [ref.batch_stats(x[s]) for s in range(S)]
            batch = {"mean": np.stack([st[0] for st in stats]),
                     "var": np.stack([st[2 if bessel else 1] for st in stats])}
            for k in keras:
                keras[k] = ref.running_update(keras[k], batch[k], keras_momentum, "keras")
                torch_form[k] = ref.running_update(torch_form[k], batch[k], m, "torch")
        tol = tol_for(dtype, chain=True)
        for k in keras:
            tr.close(torch_form[k], keras[k], TOL_F64_CHAIN,
                     f"oracle: torch form = keras form ({k})")
        tr.close(bn.get_buffer("running_mean"), keras["mean"], tol, "running mean")
        tr.close(bn.get_buffer("running_var"), keras["var"], tol, "running variance")

    return tr.run(prop, hs)


def batchnorm_eval(engine: Engine, device: torch.device, hs: settings | None = None
                   ) -> CheckResult:
    """Eval mode uses the running statistics: equal to the oracle, each row the same alone as
    in its batch, running statistics untouched."""
    tr = Tracker("eval: running stats, batch-independent", "batch norm")

    @given(S=replicas, B=dims, F=dims, eps=bn_eps, dtype=dtypes, seed=seeds)
    def prop(S: int, B: int, F: int, eps: float, dtype: str, seed: int) -> None:
        tr.example(S=S, B=B, F=F, eps=eps, dtype=dtype, seed=seed)
        r = np.random.default_rng(seed)
        bn, p = _bn(engine, S, F, 0.1, eps, r, dtype, device)
        x = _bn_input(r, (S, B, F), dtype)
        bn.eval()
        xt = tensor(x, dtype, device)
        with torch.no_grad():
            y = bn(xt)
            alone = [bn(xt[:, i:i + 1]) for i in range(B)]
        tol = tol_for(dtype, chain=True)
        for s in range(S):
            expected = ref.batchnorm_eval(x[s], p["weight"][s], p["bias"][s],
                                          p["running_mean"][s], p["running_var"][s], eps)
            tr.close(y[s], expected, tol, f"replica {s} vs oracle")
        for i, yi in enumerate(alone):
            tr.close(yi[:, 0], numpy(y[:, i]), tol, f"row {i} alone vs in its batch")
        tr.close(bn.get_buffer("running_mean"), p["running_mean"], TOL_F64,
                 "running mean untouched")
        tr.close(bn.get_buffer("running_var"), p["running_var"], TOL_F64,
                 "running variance untouched")

    return tr.run(prop, hs)


def batchnorm_backward_sums(engine: Engine, device: torch.device,
                            hs: settings | None = None) -> CheckResult:
    """In training, dL/dx sums to zero over the batch per feature, because the batch mean is
    subtracted (shifting every row of a feature changes nothing); float64."""
    tr = Tracker("backward: sum over batch of dx = 0", "batch norm")

    @given(S=replicas, B=st.integers(2, 8), F=dims, eps=bn_eps, seed=seeds)
    def prop(S: int, B: int, F: int, eps: float, seed: int) -> None:
        tr.example(S=S, B=B, F=F, eps=eps, seed=seed)
        r = np.random.default_rng(seed)
        bn, p = _bn(engine, S, F, 0.1, eps, r, "float64", device)
        x = _bn_input(r, (S, B, F), "float64")
        xt: Tensor = tensor(x, "float64", device).requires_grad_()
        bn.train()
        dy = r.normal(size=(S, B, F))
        (bn(xt) * tensor(dy, "float64", device)).sum().backward()
        assert xt.grad is not None
        dx = numpy(xt.grad)
        for s in range(S):
            inv_std = 1.0 / np.sqrt(ref.batch_stats(x[s])[1] + eps)
            # relative to the terms that cancel (|dy gamma inv_std|): float64 rounding of B terms
            unit = (np.abs(dy[s]) * np.abs(p["weight"][s]) * inv_std).sum(axis=0)  # (F,)
            tr.within(float(np.max(np.abs(dx[s].sum(axis=0)) / unit)), 1e-12,
                      f"replica {s}: |sum_b dx| / sum_b |dy gamma / std|")

    return tr.run(prop, hs)
