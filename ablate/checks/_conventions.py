"""The conventions are the frameworks' documented defaults, read in each framework's form.

`ablate.conventions` turns `conventions = "keras"` into numbers in the engine's forms: a
Keras BatchNormalization momentum of 0.99, which weighs the old running value, is 0.01 in
the engine's form (the weight of the new batch statistic). These properties build the
engine's layers and optimizers from the conventions under test (`Engine.conventions`)
and hold them to `_reference.DOCUMENTED`, run through the oracle in each framework's own
form: a momentum left unconverted, a swapped epsilon or a wrong optimizer default fails.
"""

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
    numpy,
    randomize_batchnorm,
    replicas,
    seeds,
    tensor,
)
from ablate.checks._optimizers import _trajectory
from ablate.conventions import optimizer_config

__all__ = ["conventions_layers", "conventions_optimizers"]


def conventions_layers(engine: Engine, device: torch.device,
                       hs: settings | None = None) -> CheckResult:
    """Under each convention, batch norm (training steps, their running statistics, then
    eval), leaky ReLU and the default initializer equal the oracle with the framework's
    documented values in its own form (Keras: momentum 0.99 on the old value, epsilon
    1e-3, the biased batch variance, slope 0.3; torch: 0.1 on the new batch, 1e-5,
    unbiased, 0.01)."""
    tr = Tracker("BN, leaky ReLU, init: frameworks' documented defaults", "conventions")

    @given(S=replicas, B=st.integers(2, 6), F=dims, steps=st.integers(1, 3), seed=seeds)
    def prop(S: int, B: int, F: int, steps: int, seed: int) -> None:
        tr.example(S=S, B=B, F=F, steps=steps, seed=seed)
        r = np.random.default_rng(seed)
        for name, doc in ref.DOCUMENTED.items():
            c = engine.conventions[name]
            bn = engine.batchnorm(S, F, c.bn_momentum, c.bn_eps,
                                  bessel=c.bn_running_var == "unbiased").to(device, torch.float64)
            randomize_batchnorm(bn, r)
            p = {k: numpy(v) for k, v in bn.state_dict().items()}
            mean, var = p["running_mean"], p["running_var"]
            bn.train()
            for t in range(steps):
                # batch statistics far from the running ones: a wrong weight shows
                x = r.normal(2.0, 1.5, (S, B, F))
                with torch.no_grad():
                    y = bn(tensor(x, torch.float64, device))
                for s in range(S):
                    want, _ = ref.batchnorm_train(x[s], p["weight"][s], p["bias"][s],
                                                  doc.bn_epsilon)
                    tr.close(y[s], want, TOL_F64_CHAIN, f"{name}: replica {s}, step {t + 1} output")
                stats = [ref.batch_stats(x[s]) for s in range(S)]
                batch_var = 2 if doc.bn_running_variance == "unbiased" else 1
                mean = ref.running_update(mean, np.stack([st_[0] for st_ in stats]),
                                          doc.bn_momentum, name)
                var = ref.running_update(var, np.stack([st_[batch_var] for st_ in stats]),
                                         doc.bn_momentum, name)
            tr.close(bn.get_buffer("running_mean"), mean, TOL_F64_CHAIN, f"{name}: running mean")
            tr.close(bn.get_buffer("running_var"), var, TOL_F64_CHAIN, f"{name}: running variance")
            bn.eval()
            x = r.normal(0.0, 1.0, (S, B, F))
            with torch.no_grad():
                y = bn(tensor(x, torch.float64, device))
            for s in range(S):
                tr.close(y[s], ref.batchnorm_eval(x[s], p["weight"][s], p["bias"][s], mean[s],
                                                  var[s], doc.bn_epsilon),
                         TOL_F64_CHAIN, f"{name}: replica {s}, eval output")
            act = engine.activation("leaky_relu", c.leaky_slope)
            with torch.no_grad():
                y = act(tensor(x, torch.float64, device))
            tr.close(y, ref.activation("leaky_relu", x, doc.leaky_relu_slope), TOL_F64,
                     f"{name}: leaky ReLU")
            tr.holds((c.init, c.truncated_normals) == (doc.kernel_initializer,
                                                       doc.truncated_normals),
                     f"{name}: default initializer {c.init!r} (truncated normals "
                     f"{c.truncated_normals}), documented {doc.kernel_initializer!r} "
                     f"({doc.truncated_normals})")

    return tr.run(prop, hs)


def conventions_optimizers(engine: Engine, device: torch.device,
                           hs: settings | None = None) -> CheckResult:
    """Under each convention, every optimizer named without values (what a study gets
    from `optimizer = "adam"`) steps as the oracle with the framework's documented
    defaults and formula forms."""
    tr = Tracker("optimizer defaults: frameworks' documented values", "conventions")

    @given(S=replicas, a=dims, b=dims, steps=st.integers(1, 3), seed=seeds)
    def prop(S: int, a: int, b: int, steps: int, seed: int) -> None:
        tr.example(S=S, a=a, b=b, steps=steps, seed=seed)
        r = np.random.default_rng(seed)
        w0 = r.normal(size=(S, a, b))
        grads = [r.normal(size=w0.shape) for _ in range(steps)]
        for name, doc in ref.DOCUMENTED.items():
            for optimizer, documented in doc.optimizers.items():
                config = optimizer_config(engine.conventions[name], optimizer)
                got = _trajectory(engine, config, w0, grads, device)
                w, state = w0, ref.optimizer_state(documented, w0)
                for t, (g, wt) in enumerate(zip(grads, got, strict=True), start=1):
                    w, state = ref.optimizer_step(documented, w, g, state, t)
                    tr.close(wt, w, TOL_F64_CHAIN, f"{name} {optimizer}: step {t}")

    return tr.run(prop, hs)
