"""Packed cohorts: one cohort whose replicas differ in everything a cohort lets differ.

A study packs arms that share a `cohort_key` into one cohort (the dropout study is one
cohort of 20), so replica s must train with its own config: its learning rate and its
optimizer's own hyperparameters, its dropout rates, activations, leaky slope and
initializer. The property trains such a cohort with `train_cohort` (the engine's model and
optimizer) in float64 and replays every replica with its own config in the float64
oracle. A cohort of one config for all (every other property) cannot tell "replica s's
value" from "replica 0's value"; this one can.
"""

from dataclasses import replace

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ablate.checks._base import CheckResult, Engine, Tracker, mlp_config, seeds
from ablate.checks._evaluation import _data, build, compare_with_oracle
from ablate.conventions import Conventions, optimizer_config
from ablate.engine import (
    ACTIVATIONS,
    BATCH_NORM,
    OPTIMIZER_SPECS,
    InitConfig,
    LayerConfig,
    RunConfig,
    train_cohort,
)
from ablate.metric import METRICS

__all__ = ["INITIALIZERS", "OWN", "RATES", "packed_cohort"]

RATES = (0.0, 0.3, 0.5)
INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
                "lecun_normal", "torch_default", "uniform", "normal")
# The optimizers and the hyperparameters each replica draws for itself (besides lr).
OWN = {name: OPTIMIZER_SPECS[name].hyperparameters
       for name in ("momentum", "nesterov", "rmsprop", "adam")}


def _hyperparameters(r: np.random.Generator, optimizer: str) -> dict[str, float]:
    """One replica's learning rate and its optimizer's own hyperparameters."""
    draws = {"lr": float(10 ** r.uniform(-3, -1)), "momentum": float(r.uniform(0, 0.95)),
             "rho": float(r.uniform(0.5, 0.99)), "beta1": float(r.uniform(0, 0.95)),
             "beta2": float(r.uniform(0.9, 0.999)), "eps": float(10 ** r.uniform(-7, -3))}
    return {k: draws[k] for k in ("lr", *OWN[optimizer])}


def _replica_config(base: RunConfig, s: int, r: np.random.Generator, optimizer: str,
                    conventions: Conventions) -> RunConfig:
    """Replica s's config: base's shapes, batch norm and budget; its own everything else.
    Replicas s and s + 1 never share the first layer's activation or dropout rate."""
    shift = int(r.integers(0, len(ACTIVATIONS)))
    layers = tuple(LayerConfig(layer.units, ACTIVATIONS[(shift + s + i) % len(ACTIVATIONS)],
                               layer.batch_norm, RATES[(s + i) % len(RATES)])
                   for i, layer in enumerate(base.layers))
    name = INITIALIZERS[int(r.integers(0, len(INITIALIZERS)))]
    init = InitConfig(name, 0.05 if name in ("uniform", "normal") else None,
                      conventions.truncated_normals)
    return RunConfig(conventions=base.conventions, layers=layers,
                     leaky_slope=float(r.uniform(0.01, 0.3)), bn_momentum=base.bn_momentum,
                     bn_eps=base.bn_eps, bn_running_var=base.bn_running_var, init=init,
                     optimizer=optimizer_config(conventions, optimizer,
                                                **_hyperparameters(r, optimizer)),
                     epochs=base.epochs, batch_size=base.batch_size)


def packed_cohort(engine: Engine, device: torch.device,
                  hs: settings | None = None) -> CheckResult:
    """A cohort whose replicas differ in learning rate, momentum, Adam's betas and eps,
    RMSprop's rho, dropout rates, activations, leaky slope and initializer, trained by
    train_cohort in float64: every replica's epochs, kept epoch and final scores equal
    the oracle run of its own config and seed."""
    tr = Tracker("packed cohort: replica s = its own config's oracle run", "cohorts")

    # Adaptive optimizers train without batch norm: it makes some gradients 0 in exact
    # arithmetic, and g / sqrt(g^2) turns their rounding residue into steps of size lr
    # (train_then_evaluate's note); their formulas are checked on their own.
    @given(S=st.integers(2, 3),
           shape=st.lists(st.tuples(st.integers(2, 5), st.sampled_from(BATCH_NORM)),
                          min_size=1, max_size=2),
           optimizer=st.sampled_from(sorted(OWN)),
           conventions=st.sampled_from(["torch", "keras"]), epochs=st.integers(1, 2),
           batch=st.integers(3, 5), n_train=st.integers(4, 11), seed=seeds)
    def prop(S: int, shape: list[tuple[int, str]], optimizer: str, conventions: str,
             epochs: int, batch: int, n_train: int, seed: int) -> None:
        tr.example(S=S, shape=shape, optimizer=optimizer, conventions=conventions,
                   epochs=epochs, batch=batch, n_train=n_train, seed=seed)
        r = np.random.default_rng(seed)
        adaptive = optimizer in ("adam", "rmsprop")
        widths = [w for w, _ in shape]
        bns = ["off" if adaptive else bn for _, bn in shape]
        base = mlp_config(widths, ["relu"] * len(shape), bns, [0.0] * len(shape))
        base = replace(base, epochs=epochs, batch_size=batch)
        configs = [_replica_config(base, s, r, optimizer, engine.conventions[conventions])
                   for s in range(S)]
        data = _data(r, n_train, n_val=6, n_test=5, device=device)
        run_seeds = [int(k) for k in r.integers(0, 2**31, S)]
        result = train_cohort(configs, run_seeds, data, select_on=METRICS["val_loss"],
                              dtype=torch.float64, model=lambda c, s_: build(engine, c, s_),
                              optimizer=engine.optimizer)
        compare_with_oracle(tr, result, configs, run_seeds, data)

    return tr.run(prop, hs)
