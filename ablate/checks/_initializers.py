"""Properties of the initializers: the documented distributions, and determinism per seed.

The distribution check is a Kolmogorov-Smirnov test of a fixed number of draws from fixed
generator seeds (not under Hypothesis): each test passes when its p-value exceeds 1e-4,
i.e. when the KS statistic D is below the critical value at alpha = 1e-4, so a correct
initializer with a fresh seed fails about once in 10^4 tests.
"""

import numpy as np
import torch
from hypothesis import given, settings
from scipy import stats

from ablate.checks import _reference as ref
from ablate.checks._base import CheckResult, Engine, Tracker, seeds
from ablate.engine import INITS

__all__ = ["ALPHA", "BIAS_FAN_OUT", "SCALE", "init_determinism", "init_distributions"]

ALPHA = 1e-4
# fan_in != fan_out, far apart, so that a bound computed from the wrong fan shows
FAN_IN, FAN_OUT = 300, 100  # 30,000 kernel draws
BIAS_FAN_OUT = 20_000  # bias draws for torch_default's U(+-1/sqrt(fan_in))
SCALE = 0.05  # for "uniform" (bound) and "normal" (sd)


def _variants() -> list[tuple[str, bool]]:
    """(initializer, truncated): the normals both truncated (Keras) and not."""
    return [(name, truncated) for name in INITS
            for truncated in ((False, True) if name.endswith("normal") else (False,))]


def _ks(tr: Tracker, draws: torch.Tensor, dist: ref.Distribution, what: str) -> None:
    x = draws.detach().to("cpu", torch.float64).numpy().ravel()
    if dist.kind == "zeros":
        tr.holds(bool(np.all(x == 0.0)), f"{what}: not all zeros (max |x| {np.abs(x).max()})")
        return
    result = stats.kstest(x, dist.cdf)
    critical = float(stats.kstwo.ppf(1.0 - ALPHA, x.size))
    tr.within(float(result.statistic), critical,
              f"{what}: KS D (p = {result.pvalue:.2g}) vs the critical D at alpha {ALPHA:g}")


def init_distributions(engine: Engine, device: torch.device,
                       hs: settings | None = None) -> CheckResult:
    """Every initializer's kernel (and bias) follows its documented distribution (KS test)."""
    tr = Tracker(f"KS vs documented law, p > {ALPHA:g}", "initializers")

    def run() -> None:
        for k, (name, truncated) in enumerate(_variants()):
            tr.example(name=name, truncated=truncated, fan_in=FAN_IN, fan_out=FAN_OUT, seed=k)
            g = torch.Generator().manual_seed(k)
            w = engine.init_weight(name, SCALE, truncated, FAN_IN, FAN_OUT, g)
            tr.holds(tuple(w.shape) == (FAN_IN, FAN_OUT) and w.dtype == torch.float32,
                     f"{name}: kernel shape {tuple(w.shape)} dtype {w.dtype}")
            dist = ref.weight_distribution(name, SCALE, truncated, FAN_IN, FAN_OUT)
            _ks(tr, w, dist, f"{name} kernel (truncated={truncated})")
            tr.example(name=name, bias=True, fan_in=FAN_IN, fan_out=BIAS_FAN_OUT, seed=k)
            b = engine.init_bias(name, FAN_IN, BIAS_FAN_OUT, g)
            _ks(tr, b, ref.bias_distribution(name, FAN_IN), f"{name} bias")

    return tr.run(run, hs)


def init_determinism(engine: Engine, device: torch.device,
                     hs: settings | None = None) -> CheckResult:
    """The same generator seed gives the same kernel and bias, bit for bit; another seed
    gives another kernel (except zeros)."""
    tr = Tracker("same seed, same tensor", "initializers")

    @given(seed=seeds, other=seeds)
    def prop(seed: int, other: int) -> None:
        tr.example(seed=seed, other=other)
        for name, truncated in _variants():
            draws = []
            for s in (seed, seed, other):
                g = torch.Generator().manual_seed(s)
                w = engine.init_weight(name, SCALE, truncated, 7, 5, g)
                draws.append((w, engine.init_bias(name, 7, 5, g)))
            (w1, b1), (w2, b2), (w3, _) = draws
            tr.holds(torch.equal(w1, w2) and torch.equal(b1, b2),
                     f"{name}: seed {seed} gave two different tensors")
            if other != seed and name != "zeros":
                tr.holds(not torch.equal(w1, w3), f"{name}: seeds {seed} and {other} agree")

    return tr.run(prop, hs)

