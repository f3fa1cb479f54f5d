"""The cohort engine against S separate runs of a plain `torch.nn.Sequential`.

The reference trains each seed alone with stock torch modules (nn.Linear,
nn.BatchNorm1d, nn.ReLU, ...), F.cross_entropy and, for PyTorch conventions, the
stock torch.optim optimizers, so agreement shows that the replica axis, per-replica
batch norm, per-replica minibatch order and the summed loss keep replicas independent.
"""

import hashlib
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ablate.conventions import CONVENTIONS, optimizer_config
from ablate.data import load_npz
from ablate.design import parse_study
from ablate.engine import (
    OPTIMIZERS,
    CohortMLP,
    CohortResult,
    DeviceData,
    InitConfig,
    LayerConfig,
    Optimizer,
    RunConfig,
    cohort_key,
    initial_dense,
    pinned_threads,
    prepare_data,
    replica_state,
    run_config_from_dict,
    scale,
    train_cohort,
)
from ablate.engine import _rng as rng
from ablate.engine._step import Stepper
from ablate.metric import METRICS
from tests.data_fixtures import SUBSET
from tests.engine.test_optim import TORCH as TORCH_OPTIM
from tests.engine.test_optim import torch_optim_forms

SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def data() -> DeviceData:
    # 600 training images keep each cohort run to a fraction of a second; validation
    # 400 of the committed subset's 2,000 (the rest are not used here).
    d = prepare_data(load_npz(SUBSET), validation=400, subset=600, device="cpu")
    return d


def _config(optimizer: str, *, conventions: str = "torch", batch_norm: str = "after",
            dropout: float = 0.0, activation: str = "relu", epochs: int = 2) -> RunConfig:
    """A 784-32-16-10 MLP with every default of `conventions`, resolved as a study does."""
    c = CONVENTIONS[conventions]
    return RunConfig(
        conventions=conventions,  # type: ignore[arg-type]
        layers=(LayerConfig(32, activation, batch_norm, dropout),
                LayerConfig(16, activation, batch_norm, dropout)),
        leaky_slope=c.leaky_slope, bn_momentum=c.bn_momentum, bn_eps=c.bn_eps,
        bn_running_var=c.bn_running_var, init=InitConfig(c.init, None, c.truncated_normals),
        optimizer=optimizer_config(conventions, optimizer),
        epochs=epochs, batch_size=64,
    )


class _Dropout(nn.Module):
    """Inverted dropout whose mask is the documented rule's for one seed's stream `key`
    at the optimizer step the reference loop sets."""

    def __init__(self, p: float, key: int) -> None:
        super().__init__()
        self.p, self.key, self.step = p, key, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        keep = rng.dropout_keep(self.key, self.step, *x.shape, self.p)
        # x times a mask of 0 or 1/(1-p) in x's dtype, as torch's own dropout computes it
        return x * (keep.to(x.dtype) * (1 / (1 - self.p)))


class _KerasBatchNorm(nn.BatchNorm1d):
    """Keras's BatchNormalization: nn.BatchNorm1d's normalization, but the moving variance
    averages the biased batch variance (Keras uses `ops.moments`), not the unbiased one."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        var, mean = torch.var_mean(x, dim=0, correction=0)
        with torch.no_grad():
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var, self.momentum)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


def _reference_model(config: RunConfig, seed: int) -> nn.Sequential:
    acts = {"relu": nn.ReLU(), "tanh": nn.Tanh(), "sigmoid": nn.Sigmoid(),
            "elu": nn.ELU(), "gelu": nn.GELU(), "leaky_relu": nn.LeakyReLU(config.leaky_slope)}
    modules: list[nn.Module] = []
    for i in range(len(config.layers) + 1):
        w, b = initial_dense(config, seed, i)
        linear = nn.Linear(*w.shape)
        with torch.no_grad():
            linear.weight.copy_(w.T)
            linear.bias.copy_(b)
        modules.append(linear)
        if i == len(config.layers):
            break
        layer = config.layers[i]
        norm = _KerasBatchNorm if config.bn_running_var == "biased" else nn.BatchNorm1d
        bn = norm(layer.units, eps=config.bn_eps, momentum=config.bn_momentum)
        if layer.batch_norm == "before":
            modules.append(bn)
        modules.append(acts[layer.activation])
        if layer.batch_norm == "after":
            modules.append(bn)
        if layer.dropout:
            modules.append(_Dropout(layer.dropout, rng.dropout_key(seed, i)))
    return nn.Sequential(*modules)


def _reference_optimizer(config: RunConfig, params: list[torch.Tensor]
                         ) -> Optimizer | torch.optim.Optimizer:
    if not torch_optim_forms(config.optimizer):  # test_optim checks ours against Keras's
        return Optimizer(config.optimizer, params)
    return TORCH_OPTIM[config.optimizer.name](params, config.optimizer)


def _reference_run(config: RunConfig, seed: int, d: DeviceData,
                   dtype: torch.dtype = torch.float64) -> dict:
    """One seed trained alone, the way most people write it."""
    model = _reference_model(config, seed).to(dtype)
    opt = _reference_optimizer(config, list(model.parameters()))
    order = rng.seed_generator(seed, "data")
    n = len(d.y_train)
    losses, val = [], []
    step = 0
    for _ in range(config.epochs):
        model.train()
        perm = torch.randperm(n, generator=order)
        total = 0.0
        for i in range(0, n, config.batch_size):
            for m in model:
                if isinstance(m, _Dropout):
                    m.step = step
            idx = perm[i:i + config.batch_size]
            loss = F.cross_entropy(model(scale(d.x_train[idx], dtype)), d.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            total += loss.item() * len(idx)
        losses.append(total / n)
        model.eval()
        with torch.no_grad():
            logits = model(scale(d.x_val, dtype))
            val.append((F.cross_entropy(logits, d.y_val).item(),
                        (logits.argmax(1) == d.y_val).double().mean().item()))
    weights = [m.weight.detach().T for m in model if isinstance(m, nn.Linear)]
    return {"train_loss": losses, "val": val, "weights": weights}


def _dense_weights(state: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    return [v for k, v in state.items() if k.endswith(".weight") and v.dim() == 2]


CASES = [(opt, "torch", "after", 0.0) for opt in OPTIMIZERS] + [
    ("sgd", "torch", "off", 0.5), ("adam", "torch", "before", 0.3),
    ("momentum", "keras", "after", 0.5), ("adam", "keras", "off", 0.0),
    ("rmsprop", "keras", "after", 0.2), ("adagrad", "keras", "before", 0.0),
]


@pytest.mark.parametrize(("optimizer", "conventions", "batch_norm", "dropout"), CASES)
def test_cohort_equals_separate_runs(data: DeviceData, optimizer: str, conventions: str,
                                     batch_norm: str, dropout: float) -> None:
    """Per-epoch losses and accuracies, and final weights, in float64.

    float64 because adaptive optimizers (RMSprop, Adam) move every weight by about lr on
    their first steps whatever the gradient's size, so in float32 the sign of a
    gradient that is zero up to rounding (bmm and mm round differently) decides a step
    of lr; the comparison would then measure rounding, not the engine. In float64 the
    two computations agree to ~1e-12 in the losses (checked at 1e-9); weights near
    zero see RMSprop's amplification (a 9e-12 difference measured), so they are checked
    at 1e-7 relative / 1e-10 absolute: still 8 orders below the spread between seeds.
    """
    config = _config(optimizer, conventions=conventions, batch_norm=batch_norm, dropout=dropout)
    result = _train_keeping_last(config, data, torch.float64)
    for s, seed in enumerate(SEEDS):
        ref = _reference_run(config, seed, data, torch.float64)
        np.testing.assert_allclose([e.train_loss[s] for e in result.history],
                                   ref["train_loss"], rtol=1e-9)
        np.testing.assert_allclose([e.val_loss[s] for e in result.history],
                                   [v[0] for v in ref["val"]], rtol=1e-9)
        np.testing.assert_array_equal([e.val_accuracy[s] for e in result.history],
                                      [v[1] for v in ref["val"]])
        for ours, theirs in zip(_dense_weights(result.replicas[s].state), ref["weights"],
                                strict=True):
            torch.testing.assert_close(ours, theirs, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_cohort_equals_separate_runs_in_float32(data: DeviceData, optimizer: str) -> None:
    """The production dtype, for optimizers whose steps scale with the gradient.

    Batch norm with Keras's epsilon 1e-3 (the studies' default): BN divides by
    sqrt(var + eps), and ReLU leaves some units dead in a batch (var = 0), so float32
    rounding is amplified by up to 1/sqrt(eps): ~30x here, ~300x with torch's 1e-5, which
    made the bmm-vs-mm rounding alone exceed these bounds on some seeds (up to 900x on
    seed 3, measured). The float64 test covers eps 1e-5 exactly.
    """
    config = replace(_config(optimizer, dropout=0.3), bn_eps=1e-3)
    result = _train_keeping_last(config, data, torch.float32)
    for s, seed in enumerate(SEEDS):
        ref = _reference_run(config, seed, data, torch.float32)
        # bmm and mm sum in different orders (~1e-7 relative per op); 2 epochs x 10
        # steps compound it; 1e-4 is still far below the spread between seeds (> 1e-2).
        np.testing.assert_allclose([e.train_loss[s] for e in result.history],
                                   ref["train_loss"], rtol=1e-4)
        np.testing.assert_allclose([e.val_loss[s] for e in result.history],
                                   [v[0] for v in ref["val"]], rtol=1e-4)
        for ours, theirs in zip(_dense_weights(result.replicas[s].state), ref["weights"],
                                strict=True):
            torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def _train_keeping_last(config: RunConfig, data: DeviceData, dtype: torch.dtype
                        ) -> CohortResult:
    """Train with per-epoch validation, keeping the last epoch's weights.

    Selecting on validation loss would keep some earlier epoch; selecting on a metric
    that is NaN keeps the first. So: history from a run with validation, weights from
    the identical run without it (validation does not touch training randomness).
    """
    with_val = train_cohort(config, SEEDS, data, select_on=METRICS["val_loss"], dtype=dtype)
    no_val = replace(data, x_val=data.x_val[:0], y_val=data.y_val[:0])
    last = train_cohort(config, SEEDS, no_val, select_on=METRICS["val_loss"], dtype=dtype)
    for a, b in zip(with_val.history, last.history, strict=True):
        assert np.array_equal(a.train_loss, b.train_loss)
    with_val.replicas[:] = last.replicas
    return with_val


def test_same_seed_same_device_is_bitwise_identical(data: DeviceData) -> None:
    config = _config("adam", dropout=0.5)
    a = train_cohort(config, SEEDS, data, select_on=METRICS["val_accuracy"])
    b = train_cohort(config, SEEDS, data, select_on=METRICS["val_accuracy"])
    for ea, eb in zip(a.history, b.history, strict=True):
        assert np.array_equal(ea.train_loss, eb.train_loss)
        assert np.array_equal(ea.val_loss, eb.val_loss)
        assert np.array_equal(ea.grad_norms, eb.grad_norms)
    for ra, rb in zip(a.replicas, b.replicas, strict=True):
        assert ra.metrics == rb.metrics
        assert all(torch.equal(ra.state[k], rb.state[k]) for k in ra.state)


def test_toggling_dropout_keeps_initial_weights_and_minibatch_order() -> None:
    on, off = _config("sgd", dropout=0.5), _config("sgd", dropout=0.0)
    for seed in SEEDS:
        for i in range(3):
            w_on, b_on = initial_dense(on, seed, i)
            w_off, b_off = initial_dense(off, seed, i)
            assert torch.equal(w_on, w_off) and torch.equal(b_on, b_off)
    # The order stream is keyed by (seed, "data") alone, so no config can move it; and
    # the dropout stream is a different stream: its first draws differ from the order's.
    order = torch.randperm(100, generator=rng.seed_generator(0, "data"))
    assert torch.equal(order, torch.randperm(100, generator=rng.seed_generator(0, "data")))
    assert rng.derive_seed(0, "data") != rng.derive_seed(0, "dropout")
    # Adding a layer leaves the shared layers' initial weights unchanged.
    deeper = replace(on, layers=(*on.layers, LayerConfig(8, "relu", "after", 0.0)))
    assert torch.equal(initial_dense(on, 0, 0)[0], initial_dense(deeper, 0, 0)[0])
    assert torch.equal(initial_dense(on, 0, 1)[0], initial_dense(deeper, 0, 1)[0])


def test_dropout_arms_see_the_same_minibatches(data: DeviceData,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Record the batches the engine actually draws for both arms of a dropout study."""
    seen: dict[float, list[torch.Tensor]] = {}
    real_randperm = torch.randperm

    def spy(n: int, *, generator: torch.Generator) -> torch.Tensor:
        perm = real_randperm(n, generator=generator)
        seen.setdefault(current, []).append(perm)
        return perm

    monkeypatch.setattr(torch, "randperm", spy)
    for current in (0.5, 0.0):
        train_cohort(_config("sgd", dropout=current, epochs=2), SEEDS, data,
                     select_on=METRICS["val_accuracy"])
    assert len(seen[0.5]) == len(seen[0.0]) == 2 * len(SEEDS)
    assert all(torch.equal(a, b) for a, b in zip(seen[0.5], seen[0.0], strict=True))


def test_a_diverged_replica_is_masked_and_the_others_carry_on(data: DeviceData) -> None:
    config = _config("sgd", dropout=0.0)
    clean = train_cohort(config, SEEDS, data, select_on=METRICS["val_accuracy"])

    class Poisoned(CohortMLP):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            with torch.no_grad():
                self.dense[0].weight[1, 0, 0] = math.inf  # replica 1 blows up at once

    poisoned = train_cohort(config, SEEDS, data, select_on=METRICS["val_accuracy"],
                            model=Poisoned)
    assert [r.status for r in poisoned.replicas] == ["done", "diverged", "done"]
    assert all(math.isnan(v) for v in poisoned.replicas[1].metrics.values())
    for s in (0, 2):  # the healthy replicas are untouched by their neighbour's NaNs
        assert poisoned.replicas[s].metrics == pytest.approx(clean.replicas[s].metrics,
                                                             rel=1e-6)
    assert all(np.isfinite(e.train_loss[[0, 2]]).all() for e in poisoned.history)
    assert all(np.isnan(e.train_loss[1]) and np.isnan(e.grad_norms[1]).all()
               for e in poisoned.history)


def test_study_parser_round_trip_runs(data: DeviceData) -> None:
    study = parse_study("""
name = "tiny"
question = "q"
seeds = 2
[base]
layers = [16]
epochs = 1
batch_size = 100
[factors.bn]
levels.on = { batch_norm = "after" }
levels.off = { batch_norm = "off" }
""")
    for arm in study.arms:
        res = train_cohort(arm.config, list(study.seeds), data, select_on=METRICS["val_accuracy"])
        assert all(r.status == "done" for r in res.replicas)
        assert all(0.0 <= r.metrics["val_accuracy"] <= 1.0 for r in res.replicas)
    # A replica's state carries every parameter and BN buffer, per replica.
    state = replica_state(CohortMLP(study.arms[0].config, [0, 1]), 1)
    assert state["dense0.weight"].shape == (784, 16)
    assert state["bn0.running_var"].shape == (16,)


@pytest.mark.parametrize("bessel", [True, False])
def test_batch_norm_on_a_batch_of_one_gives_beta(bessel: bool) -> None:
    """A last minibatch of one row: x - mean = 0, so the output is beta exactly; torch's
    BatchNorm1d refuses it, Keras computes it. Running mean moves towards x, variance
    towards 0 (its biased value; the unbiased one is undefined)."""
    from ablate.engine import CohortBatchNorm

    bn = CohortBatchNorm(2, 3, momentum=0.1, eps=1e-3, bessel=bessel)
    with torch.no_grad():
        bn.bias.copy_(torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]]))
    x = torch.tensor([[[5.0, 6.0, 7.0]], [[1.0, 1.0, 1.0]]], requires_grad=True)  # (2, 1, 3)
    y = bn(x)
    torch.testing.assert_close(y, bn.bias.detach().unsqueeze(1))
    torch.testing.assert_close(bn.running_mean, 0.1 * x.detach()[:, 0])
    torch.testing.assert_close(bn.running_var, torch.full((2, 3), 0.9))
    y.sum().backward()
    assert x.grad is not None and torch.count_nonzero(x.grad) == 0


def test_no_validation_split_keeps_the_last_epoch() -> None:
    """validation = 0 (the notebook trained on all images): no validation metrics, and
    each run keeps its last epoch, whose test metrics are reported."""
    d = prepare_data(load_npz(SUBSET), validation=0, subset=500, device="cpu")
    assert len(d.y_val) == 0 and d.x_val.shape == (0, 784)
    result = train_cohort(_config("sgd", epochs=2), [0, 1], d, select_on=METRICS["val_accuracy"])
    for r in result.replicas:
        assert r.status == "done" and r.best_epoch == 2
        assert math.isnan(r.metrics["val_accuracy"]) and 0 < r.metrics["test_accuracy"] <= 1


def test_the_conventions_label_is_never_read(data: DeviceData) -> None:
    """Training depends on the resolved fields only: relabelling a Keras config as "torch"
    (every field unchanged) trains bitwise the same runs."""
    keras = _config("momentum", conventions="keras", dropout=0.3)
    relabelled = replace(keras, conventions="torch")
    a = train_cohort(keras, SEEDS, data, select_on=METRICS["val_accuracy"])
    b = train_cohort(relabelled, SEEDS, data, select_on=METRICS["val_accuracy"])
    for ea, eb in zip(a.history, b.history, strict=True):
        assert np.array_equal(ea.train_loss, eb.train_loss)
    for ra, rb in zip(a.replicas, b.replicas, strict=True):
        assert all(torch.equal(ra.state[k], rb.state[k]) for k in ra.state)


@pytest.mark.parametrize("metric", ["val_loss", "val_accuracy"])
def test_each_replica_keeps_its_first_best_epoch(data: DeviceData, metric: str) -> None:
    """The kept weights (chosen on the device) are those of the epoch with the best
    validation metric, the first of equals; re-measured, they give that epoch's numbers."""
    config = _config("adam", dropout=0.5, epochs=4)
    result = train_cohort(config, SEEDS, data, select_on=METRICS[metric], dtype=torch.float64)
    for s, r in enumerate(result.replicas):
        values = np.array([getattr(e, metric)[s] for e in result.history])
        best = np.argmin(values) if metric == "val_loss" else np.argmax(values)
        assert r.best_epoch == best + 1
        kept = result.history[r.best_epoch - 1]
        assert r.metrics["val_loss"] == kept.val_loss[s]
        assert r.metrics["val_accuracy"] == kept.val_accuracy[s]
        assert r.metrics["train_loss"] == kept.train_loss[s]


def _mixed(optimizer: str) -> list[RunConfig]:
    """Four configs that share a cohort key but differ in everything a packed cohort lets
    differ: dropout rate, activation (and leaky slope), initializer, optimizer values."""
    base = _config(optimizer, dropout=0.5)
    o = base.optimizer
    faster = replace(o, lr=o.lr * 3, **({"momentum": 0.5} if o.momentum is not None else {}),
                     **({"beta1": 0.8} if o.beta1 is not None else {}))
    leaky = tuple(replace(layer, activation="leaky_relu", dropout=0.2) for layer in base.layers)
    tanh = tuple(replace(layer, activation="tanh", dropout=0.0) for layer in base.layers)
    return [base, replace(base, layers=leaky, leaky_slope=0.2, optimizer=faster),
            replace(base, layers=tanh, init=InitConfig("he_normal", None, False)),
            replace(base, optimizer=faster)]


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam", "rmsprop"])
def test_a_mixed_cohort_equals_separate_runs(data: DeviceData, optimizer: str) -> None:
    """Packed arms (per-replica dropout, activation, initializer, optimizer values) against
    separate plain torch.nn + torch.optim runs, in float64 (the tolerances of
    test_cohort_equals_separate_runs, for the same reasons)."""
    configs = _mixed(optimizer)
    seeds = [0, 1, 2, 0]  # seed 0 twice: in two arms
    result = train_cohort(configs, seeds, replace(data, x_val=data.x_val[:0],
                                                  y_val=data.y_val[:0]),
                          select_on=METRICS["val_loss"], dtype=torch.float64)
    for s, (config, seed) in enumerate(zip(configs, seeds, strict=True)):
        ref = _reference_run(config, seed, data, torch.float64)
        np.testing.assert_allclose([e.train_loss[s] for e in result.history],
                                   ref["train_loss"], rtol=1e-9)
        for ours, theirs in zip(_dense_weights(result.replicas[s].state), ref["weights"],
                                strict=True):
            torch.testing.assert_close(ours, theirs, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_a_seed_trains_the_same_in_any_cohort(data: DeviceData, optimizer: str) -> None:
    """Common random numbers across cohorts: a replica's initial weights, minibatch order
    and dropout masks depend on its seed and config only, so on the CPU it trains bit for
    bit the same alone, in its arm's cohort, or packed with other arms."""
    configs = _mixed(optimizer)
    alone = train_cohort(configs[0], [2], data, select_on=METRICS["val_accuracy"])
    packed = train_cohort(configs[1:] + configs[:1], [0, 1, 0, 2], data,
                          select_on=METRICS["val_accuracy"])
    for a, b in zip(alone.history, packed.history, strict=True):
        assert a.train_loss[0] == b.train_loss[3] and a.val_loss[0] == b.val_loss[3]
    state_a, state_b = alone.replicas[0].state, packed.replicas[3].state
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_packed_streams_are_each_seeds_own() -> None:
    """The streams themselves: initial weights, and the dropout masks of a forward pass,
    of replica s in a packed cohort equal those of its seed and config alone."""
    configs = _mixed("sgd")
    seeds = [5, 6, 7, 5]
    packed = CohortMLP(configs, seeds).double()
    initial = {k: t.clone() for k, t in packed.state_dict().items()}
    x = torch.rand(len(seeds), 8, 784, dtype=torch.float64)
    packed.set_step(3)
    with pinned_threads(configs[0].threads):  # as train_cohort runs the model
        y = packed(x)  # training mode: dropout on, batch statistics
        for s, (config, seed) in enumerate(zip(configs, seeds, strict=True)):
            alone = CohortMLP(config, [seed]).double()
            for name, t in alone.state_dict().items():
                assert torch.equal(t[0], initial[name][s])
            alone.set_step(3)
            assert torch.equal(alone(x[s:s + 1])[0], y[s])


def _result_bytes(result: CohortResult) -> tuple[object, ...]:
    return (tuple((e.train_loss.tobytes(), e.val_loss.tobytes(), e.val_accuracy.tobytes())
                  for e in result.history),
            tuple(tuple((k, t.numpy().tobytes()) for k, t in sorted(r.state.items()))
                  for r in result.replicas))


@pytest.mark.parametrize("default", [1, 2])
def test_a_seed_trains_the_same_whatever_the_process_thread_count(
        data: DeviceData, default: int) -> None:
    """train_cohort pins torch's thread count to the config's (1 by default), so a cohort
    packed across arms trains bit for bit alike whether the process had 1 or 2 threads,
    and the process's count is back afterwards."""
    configs = _mixed("momentum")
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        reference = train_cohort(configs, [0, 1, 0, 2], data, select_on=METRICS["val_accuracy"])
        torch.set_num_threads(default)
        got = train_cohort(configs, [0, 1, 0, 2], data, select_on=METRICS["val_accuracy"])
        assert torch.get_num_threads() == default
    finally:
        torch.set_num_threads(saved)
    assert _result_bytes(got) == _result_bytes(reference)
    assert got.provenance["threads"] == reference.provenance["threads"] == 1


def test_the_thread_count_is_part_of_the_config() -> None:
    """threads is in the hash and the cohort key; a config stored before it existed reads
    back as unknown (None) with its old dict and hash, and is trained at the process's
    count."""
    config = _config("sgd")
    assert config.threads == 1
    two = replace(config, threads=2)
    assert config.digest() != two.digest() and cohort_key(config) != cohort_key(two)
    old = {k: v for k, v in config.to_dict().items() if k != "threads"}
    legacy = run_config_from_dict(old)
    assert legacy.threads is None and legacy.to_dict() == old
    assert legacy.digest() == hashlib.sha256(
        json.dumps({"config": old}, sort_keys=True).encode()).hexdigest()
    with pytest.raises(ValueError, match="cannot share a cohort"):
        CohortMLP([config, two], [0, 1])


def test_pinned_threads_sets_and_restores() -> None:
    saved = torch.get_num_threads()
    other = 2 if saved == 1 else 1
    with pinned_threads(other):
        assert torch.get_num_threads() == other
    assert torch.get_num_threads() == saved
    with pinned_threads(None):
        assert torch.get_num_threads() == saved


def test_configs_that_cannot_share_a_cohort_are_refused() -> None:
    base = _config("sgd")
    with pytest.raises(ValueError, match="cannot share a cohort"):
        CohortMLP([base, replace(base, batch_size=32)], [0, 1])
    with pytest.raises(ValueError, match="cannot share a cohort"):
        CohortMLP([base, _config("momentum")], [0, 1])


def test_the_static_step_of_a_captured_graph_equals_the_eager_step(data: DeviceData) -> None:
    """What a CUDA graph replays: the step routed through fixed buffers (indices and
    dropout words copied in). On the CPU it trains bit for bit as the eager step does."""
    config = _config("momentum", dropout=0.5)
    results = []
    for mode in ("eager", "static"):
        model = CohortMLP(config, SEEDS)
        opt = Optimizer(config.optimizer, list(model.parameters()))
        step = Stepper(model, opt, data.train_images(torch.float32), data.y_train, 64, mode)
        perms = torch.stack([torch.randperm(len(data.y_train), generator=rng.seed_generator(s, "x"))
                             for s in SEEDS])
        words = model.dropout_words(0, 10)
        step.start_epoch(torch.ones(3, dtype=torch.bool))
        for k, i in enumerate(range(0, len(data.y_train), 64)):  # 9 full batches, then 24
            step(perms[:, i:i + 64], words[k])
        results.append((model.state_dict(), step.loss_sum, step.grad_sq))
    (a, la, ga), (b, lb, gb) = results
    assert torch.equal(la, lb) and torch.equal(ga, gb)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_capture_is_refused_where_it_cannot_be_replayed(data: DeviceData) -> None:
    with pytest.raises(ValueError, match="CUDA"):
        train_cohort(_config("sgd"), SEEDS, data, select_on=METRICS["val_loss"], capture=True)
    model = CohortMLP(_config("adam"), SEEDS)
    opt = Optimizer(_config("adam").optimizer, list(model.parameters()))
    with pytest.raises(ValueError, match="bias corrections"):
        Stepper(model, opt, data.train_images(torch.float32), data.y_train, 64, "static")


def test_a_packed_replicas_predictions_are_its_own(data: DeviceData) -> None:
    """Per-image predictions in a packed cohort (replicas differing in dropout) equal the
    same run's trained alone, and reproduce each replica's accuracies: the kept epoch's
    validation predictions, the kept weights' test ones."""
    on, off = _config("adam", dropout=0.3, epochs=3), _config("adam", epochs=3)
    packed = train_cohort([on, off, on], [0, 0, 1], data, select_on=METRICS["val_accuracy"],
                          dtype=torch.float64)
    alone = train_cohort(off, [0], data, select_on=METRICS["val_accuracy"],
                         dtype=torch.float64)
    p, q = packed.replicas[1].predictions, alone.replicas[0].predictions
    assert p is not None and q is not None
    for name in ("val_a", "val_b", "test"):
        assert np.array_equal(p.splits[name].predicted, q.splits[name].predicted)
        assert np.allclose(p.splits[name].p_true, q.splits[name].p_true, rtol=1e-6)
    assert np.allclose(p.test_probs, q.test_probs, atol=1e-6)
    for s, rep in enumerate(packed.replicas):
        assert rep.predictions is not None
        assert rep.predictions.val_accuracy() == rep.metrics["val_accuracy"]
        assert rep.predictions.splits["test"].accuracy() == rep.metrics["test_accuracy"]
        record = packed.history[rep.best_epoch - 1]
        assert rep.predictions.splits["val_a"].accuracy() == record.val_accuracy_halves[s, 0]
