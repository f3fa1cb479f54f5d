"""Properties of inverted dropout with per-replica counter-based streams.

Inputs are kept away from zero so that a dropped unit (exactly 0) is told apart from a kept
one; the kept-unit mask is then read off the output.
"""

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ablate.checks import _reference as ref
from ablate.checks._base import (
    TOL_F64,
    CheckResult,
    Engine,
    Tracker,
    dims,
    dropout_keys,
    dtypes,
    numpy,
    replicas,
    rounded,
    seeds,
    tensor,
    tol_for,
)

__all__ = [
    "bad_probabilities", "dropout_bounds", "dropout_classic", "dropout_mean",
    "dropout_values", "probabilities",
]

probabilities = st.floats(0.05, 0.9)


def _away_from_zero(r: np.random.Generator, shape: tuple[int, ...]) -> ref.Array:
    return np.where(r.random(shape) < 0.5, -1.0, 1.0) * r.uniform(0.1, 2.0, shape)


def _dropout(engine: Engine, p: float, r: np.random.Generator, S: int, device: torch.device
             ) -> torch.nn.Module:
    """A dropout layer of S replicas with random stream keys, at a random step."""
    drop = engine.dropout(p, dropout_keys(r, S)).to(device)
    drop.step = int(r.integers(0, 2**31 - 1))
    return drop


def dropout_values(engine: Engine, device: torch.device,
                   hs: settings | None = None) -> CheckResult:
    """Training: every output is 0 or x/(1-p). Eval and p = 0: the identity, exactly."""
    tr = Tracker("train: 0 or x/(1-p); eval, p=0: identity", "dropout")

    @given(S=replicas, B=dims, F=dims, p=probabilities, dtype=dtypes, seed=seeds)
    def prop(S: int, B: int, F: int, p: float, dtype: str, seed: int) -> None:
        tr.example(S=S, B=B, F=F, p=p, dtype=dtype, seed=seed)
        r = np.random.default_rng(seed)
        x = rounded(_away_from_zero(r, (S, B, F)), dtype)
        xt = tensor(x, dtype, device)
        drop = _dropout(engine, p, r, S, device)
        drop.train()
        y = numpy(drop(xt))
        scaled = rounded(x / (1.0 - p), dtype)
        nearest = np.where(np.abs(y) <= np.abs(y - scaled), 0.0, scaled)
        tr.close(y, nearest, tol_for(dtype), "training outputs are 0 or x/(1-p)")
        drop.eval()
        tr.holds(torch.equal(drop(xt), xt), "eval is not the identity")
        identity = _dropout(engine, 0.0, r, S, device)
        identity.train()
        tr.holds(torch.equal(identity(xt), xt), "p = 0 in training is not the identity")

    return tr.run(prop, hs)


# |z| <= 5 for a standardized sum: a false alarm has probability ~6e-7 per replica
_Z = 5.0


def dropout_mean(engine: Engine, device: torch.device,
                 hs: settings | None = None) -> CheckResult:
    """E[dropout(x)] = x: over 4096 units, (sum y - sum x) / sd is within 5 standard deviations,
    where Var(y_i) = x_i^2 p / (1 - p) exactly."""
    tr = Tracker("mean preserved (|z| <= 5, 4096 units)", "dropout")

    @given(S=replicas, p=probabilities, seed=seeds)
    def prop(S: int, p: float, seed: int) -> None:
        tr.example(S=S, p=p, seed=seed)
        r = np.random.default_rng(seed)
        x = r.uniform(0.5, 1.5, (S, 64, 64))
        drop = _dropout(engine, p, r, S, device)
        drop.train()
        y = numpy(drop(tensor(x, "float64", device)))
        for s in range(S):
            sd = math.sqrt(float(np.square(x[s]).sum()) * p / (1.0 - p))
            z = (float(y[s].sum()) - float(x[s].sum())) / sd
            tr.within(abs(z), _Z, f"replica {s}: |z| of the output sum")

    return tr.run(prop, hs)


bad_probabilities = st.one_of(
    st.floats(max_value=-1e-9, allow_nan=False), st.floats(min_value=1.0 + 1e-9),
    st.just(math.nan))


def dropout_bounds(engine: Engine, device: torch.device,
                   hs: settings | None = None) -> CheckResult:
    """p outside [0, 1] (and NaN) is rejected; p = 1 is either rejected or gives zeros without
    NaN (the engine rejects it); the oracle's p = 1 gives zeros."""
    tr = Tracker("p outside [0,1] rejected; p=1 zeros, no NaN", "dropout")

    @given(bad=bad_probabilities, seed=seeds)
    def prop(bad: float, seed: int) -> None:
        tr.example(bad=bad, seed=seed)
        r = np.random.default_rng(seed)
        keys = dropout_keys(r, 2)
        x = _away_from_zero(r, (2, 3, 4))
        try:
            engine.dropout(bad, keys)
        except ValueError:
            pass
        else:
            tr.holds(False, f"dropout accepted p = {bad}")
        try:
            ref.check_dropout_p(bad)
        except ValueError:
            pass
        else:
            tr.holds(False, f"the oracle accepted p = {bad}")
        zeros = ref.dropout_inverted(x[0], np.zeros((3, 4), bool), 1.0, True)
        tr.holds(bool(np.all(zeros == 0.0)), f"oracle dropout with p = 1 gave {zeros}")
        try:
            drop = engine.dropout(1.0, keys).to(device)
        except ValueError:
            return  # rejecting p = 1 is allowed
        drop.train()
        y = drop(tensor(x, "float64", device))
        tr.holds(bool(torch.all(y == 0.0)), f"dropout with p = 1 gave {y}, not zeros")

    return tr.run(prop, hs)


def dropout_classic(engine: Engine, device: torch.device,
                    hs: settings | None = None) -> CheckResult:
    """Inverted dropout then Dense(W) equals classic dropout then Dense(W / (1-p)) in training
    (same mask), and at test time, where classic scales its weights by the keep probability."""
    tr = Tracker("inverted = classic, train and eval", "dropout")

    @given(S=replicas, B=dims, fan_in=dims, fan_out=dims, p=probabilities, seed=seeds)
    def prop(S: int, B: int, fan_in: int, fan_out: int, p: float, seed: int) -> None:
        tr.example(S=S, B=B, fan_in=fan_in, fan_out=fan_out, p=p, seed=seed)
        r = np.random.default_rng(seed)
        x = _away_from_zero(r, (S, B, fan_in))
        w, b = r.normal(size=(S, fan_in, fan_out)), r.normal(size=(S, fan_out))
        drop = _dropout(engine, p, r, S, device)
        dense = engine.linear(tensor(w, "float64", device), tensor(b, "float64", device))
        xt = tensor(x, "float64", device)
        with torch.no_grad():
            drop.train()
            dropped = drop(xt)
            train = numpy(dense(dropped))
            drop.eval()
            test = numpy(dense(drop(xt)))
        keep = numpy(dropped) != 0.0  # x is never 0, so a zero output was dropped
        for s in range(S):
            w_classic = w[s] / (1.0 - p)  # the classic network that trains to the same function
            expected = ref.dense(ref.dropout_classic(x[s], keep[s], p, True), w_classic, b[s])
            tr.close(train[s], expected, TOL_F64, f"replica {s}: training outputs")
            expected = ref.dense(x[s], ref.classic_test_weights(w_classic, p), b[s])
            tr.close(test[s], expected, TOL_F64, f"replica {s}: test outputs")

    return tr.run(prop, hs)
