"""Independence: of rows within a batch, and of replicas within a cohort.

Rows: row i of an MLP's output depends only on row i of its input, except through batch
norm in training (checked in eval mode, and in training without batch norm). Replicas:
replica s of a cohort layer or model equals a standalone layer or model with replica s's
parameters and dropout stream.
"""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from ablate.checks._base import (
    TOL_F64,
    TOL_F64_CHAIN,
    CheckResult,
    Engine,
    Tracker,
    build_mlp,
    dims,
    dropout_keys,
    mlp_config,
    numpy,
    randomize_batchnorm,
    seeds,
    set_dropout_step,
    tensor,
)
from ablate.checks._grads import layer_specs
from ablate.engine import INPUTS, CohortBatchNorm

__all__ = ["cohort_layers", "cohort_mlp", "row_independence"]


def row_independence(engine: Engine, device: torch.device,
                     hs: settings | None = None) -> CheckResult:
    """Perturbing input row j leaves every other output row unchanged (eval mode with any
    batch norm; training mode without batch norm, with the same dropout masks)."""
    tr = Tracker("output row i depends only on input row i", "dense")

    @given(S=st.integers(1, 2), B=st.integers(2, 5), spec=layer_specs,
           training=st.booleans(), row=st.integers(0, 4), seed=seeds)
    def prop(S: int, B: int, spec: list[tuple[int, str, str, float]], training: bool, row: int,
             seed: int) -> None:
        tr.example(S=S, B=B, spec=spec, training=training, row=row, seed=seed)
        r = np.random.default_rng(seed)
        row %= B
        widths, acts, bns, drops = zip(*spec, strict=True)
        if training:  # batch norm in training couples the rows by design
            bns = ("off",) * len(bns)
        config = mlp_config(widths, acts, bns, drops)
        seed_list = [int(k) for k in r.integers(0, 2**62, S)]
        model = build_mlp(engine, config, seed_list).to(device=device, dtype=torch.float64)
        set_dropout_step(model, int(r.integers(0, 2**31 - 1)))  # one step: the same masks
        randomize_batchnorm(model, r)
        model.train(training)
        x = r.uniform(0, 1, (S, B, INPUTS))
        moved = x.copy()
        moved[:, row] = r.uniform(0, 1, (S, INPUTS))
        outputs = []
        with torch.no_grad():
            for inputs in (x, moved):
                outputs.append(numpy(model(tensor(inputs, torch.float64, device))))
        others = [i for i in range(B) if i != row]
        tr.close(outputs[1][:, others], outputs[0][:, others], TOL_F64,
                 f"rows {others} after changing input row {row}")

    return tr.run(prop, hs)


def _standalone_bn(bn: CohortBatchNorm, s: int, device: torch.device) -> nn.BatchNorm1d:
    state = bn.state_dict()
    ref = nn.BatchNorm1d(state["weight"].shape[1], eps=bn.eps,
                         momentum=bn.momentum).to(device=device, dtype=torch.float64)
    with torch.no_grad():
        for k in ("weight", "bias", "running_mean", "running_var"):
            getattr(ref, k).copy_(state[k][s])
    return ref


def cohort_layers(engine: Engine, device: torch.device,
                  hs: settings | None = None) -> CheckResult:
    """Replica s of CohortLinear, CohortBatchNorm (training, running statistics, eval) and
    CohortDropout equals torch.nn.Linear, torch.nn.BatchNorm1d, and a one-replica dropout
    with replica s's stream key."""
    tr = Tracker("replica s = standalone Linear, BatchNorm1d, dropout", "cohorts")

    @given(S=st.integers(2, 3), B=st.integers(2, 6), fan_in=dims, fan_out=dims,
           p=st.floats(0.1, 0.9), momentum=st.floats(0.01, 0.5),
           eps=st.sampled_from([1e-5, 1e-3]), seed=seeds)
    def prop(S: int, B: int, fan_in: int, fan_out: int, p: float, momentum: float, eps: float,
             seed: int) -> None:
        tr.example(S=S, B=B, fan_in=fan_in, fan_out=fan_out, p=p, momentum=momentum, eps=eps,
                   seed=seed)
        r = np.random.default_rng(seed)
        x = tensor(r.normal(size=(S, B, fan_in)), torch.float64, device)
        w, b = r.normal(size=(S, fan_in, fan_out)), r.normal(size=(S, fan_out))
        linear = engine.linear(tensor(w, torch.float64, device), tensor(b, torch.float64, device))
        bn = engine.batchnorm(S, fan_in, momentum, eps).to(device=device, dtype=torch.float64)
        randomize_batchnorm(bn, r)
        standalone_bns = [_standalone_bn(bn, s, device) for s in range(S)]
        keys = dropout_keys(r, S)
        step = int(r.integers(0, 2**31 - 1))
        drop = engine.dropout(p, keys).to(device)
        drop.step = step
        with torch.no_grad():
            y_linear, y_drop = linear(x), drop(x)
            y_train = bn(x)
            bn.eval()
            y_eval = bn(x)
            for s in range(S):
                single = nn.Linear(fan_in, fan_out).to(device=device, dtype=torch.float64)
                single.weight.copy_(tensor(w[s].T, torch.float64, device))
                single.bias.copy_(tensor(b[s], torch.float64, device))
                tr.close(y_linear[s], single(x[s]), TOL_F64, f"replica {s}: linear")
                ref_bn = standalone_bns[s]
                tr.close(y_train[s], ref_bn(x[s]), TOL_F64_CHAIN, f"replica {s}: batch norm train")
                for k in ("running_mean", "running_var"):
                    tr.close(bn.get_buffer(k)[s], ref_bn.get_buffer(k), TOL_F64_CHAIN,
                             f"replica {s}: {k}")
                ref_bn.eval()
                tr.close(y_eval[s], ref_bn(x[s]), TOL_F64_CHAIN, f"replica {s}: batch norm eval")
                alone = engine.dropout(p, [keys[s]]).to(device)
                alone.step = step
                tr.close(y_drop[s], alone(x[s:s + 1])[0], TOL_F64, f"replica {s}: dropout")

    return tr.run(prop, hs)


def cohort_mlp(engine: Engine, device: torch.device,
               hs: settings | None = None) -> CheckResult:
    """Replica s of a cohort MLP built from seeds equals the MLP built from seeds[s] alone:
    the same initial parameters, logits and gradients, in training and eval mode."""
    tr = Tracker("replica s of an MLP = its seed alone", "cohorts")

    @given(S=st.integers(2, 3), B=st.integers(2, 5), spec=layer_specs, training=st.booleans(),
           seed=seeds)
    def prop(S: int, B: int, spec: list[tuple[int, str, str, float]], training: bool,
             seed: int) -> None:
        tr.example(S=S, B=B, spec=spec, training=training, seed=seed)
        r = np.random.default_rng(seed)
        config = mlp_config(*zip(*spec, strict=True))
        seed_list = [int(k) for k in r.integers(0, 2**31, S)]
        step = int(r.integers(0, 2**31 - 1))
        x = tensor(r.uniform(0, 1, (S, B, INPUTS)), torch.float64, device)
        labels = torch.as_tensor(r.integers(0, 10, (S, B)), device=device)

        def run(seeds_: list[int], xs: Tensor, ys: Tensor) -> tuple[nn.Module, Tensor]:
            model = build_mlp(engine, config, seeds_)
            model.to(device=device, dtype=torch.float64).train(training)
            set_dropout_step(model, step)
            logits = model(xs)
            engine.cross_entropy(logits, ys).backward()
            return model, logits.detach()

        cohort, logits = run(seed_list, x, labels)
        for s in range(S):
            single, single_logits = run([seed_list[s]], x[s:s + 1], labels[s:s + 1])
            tr.close(logits[s], single_logits[0], TOL_F64_CHAIN, f"replica {s}: logits")
            params = dict(single.named_parameters())
            for name, p in cohort.named_parameters():
                q = params[name]
                assert p.grad is not None and q.grad is not None
                tr.close(p.detach()[s], q.detach()[0], TOL_F64, f"replica {s}: {name}")
                tr.close(p.grad[s], q.grad[0], TOL_F64_CHAIN, f"replica {s}: d{name}")

    return tr.run(prop, hs)
