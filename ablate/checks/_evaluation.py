"""Evaluation: the shared-rows forward, running statistics, and train-then-evaluate.

Validation and test images are the same rows for every replica, so the engine evaluates
them as a (B, 784) input that each replica's first layer broadcasts over, in eval mode
(running batch-norm statistics, no dropout): a different code path from training's
(S, B, 784). These properties hold that path to the float64 oracle: one dense layer, a
whole MLP, and the whole run (`train_cohort`: minibatches, dropout masks, batch-norm
statistics, optimizer steps, per-epoch validation per half, the kept epoch, the final
validation and test scores) replayed replica by replica in NumPy.
"""

import math
from dataclasses import dataclass, replace
from typing import cast

import numpy as np
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ablate.checks import _reference as ref
from ablate.checks._base import (
    TOL_F64,
    TOL_F64_CHAIN,
    CheckResult,
    Engine,
    Tracker,
    build_mlp,
    dims,
    mlp_config,
    numpy,
    oracle_keeps,
    randomize_batchnorm,
    replicas,
    seeds,
    tensor,
)
from ablate.checks._grads import layer_specs, oracle_mlp
from ablate.conventions import optimizer_config
from ablate.engine import (
    INPUTS,
    CohortLinear,
    CohortMLP,
    CohortResult,
    DeviceData,
    RunConfig,
    initial_dense,
    scale,
    seed_generator,
    train_cohort,
)
from ablate.metric import METRICS

__all__ = ["KINK", "OracleEpoch", "dense_shared_rows", "mlp_evaluation", "train_then_evaluate"]


def dense_shared_rows(engine: Engine, device: torch.device,
                      hs: settings | None = None) -> CheckResult:
    """Rows shared by all replicas, x (B, fan_in): y[s] = x @ W[s] + b[s], as the oracle
    computes it and as the per-replica input x expanded to (S, B, fan_in) gives."""
    tr = Tracker("shared rows x: y_s = x W_s + b_s", "evaluation")

    @given(S=replicas, B=dims, fan_in=dims, fan_out=dims, seed=seeds)
    def prop(S: int, B: int, fan_in: int, fan_out: int, seed: int) -> None:
        tr.example(S=S, B=B, fan_in=fan_in, fan_out=fan_out, seed=seed)
        r = np.random.default_rng(seed)
        x, w, b = (r.normal(size=(B, fan_in)), r.normal(size=(S, fan_in, fan_out)),
                   r.normal(size=(S, fan_out)))
        layer = engine.linear(tensor(w, torch.float64, device), tensor(b, torch.float64, device))
        with torch.no_grad():
            shared = layer(tensor(x, torch.float64, device))
            expanded = layer(tensor(np.broadcast_to(x, (S, B, fan_in)), torch.float64, device))
        tr.close(shared, expanded, TOL_F64, "shared rows = the rows given to every replica")
        for s in range(S):
            tr.close(shared[s], ref.dense(x, w[s], b[s]), TOL_F64, f"replica {s} vs oracle")

    return tr.run(prop, hs)


def mlp_evaluation(engine: Engine, device: torch.device,
                   hs: settings | None = None) -> CheckResult:
    """A whole MLP in eval mode on shared rows: replica s's logits are the oracle's eval
    forward (running batch-norm statistics, no dropout) of its own parameters (random
    biases and batch-norm statistics); the same as its rows given per replica; and no
    running statistic moves."""
    tr = Tracker("eval MLP on shared rows = oracle (running stats, no dropout)", "evaluation")

    @given(S=replicas, B=dims, spec=layer_specs, seed=seeds)
    def prop(S: int, B: int, spec: list[tuple[int, str, str, float]], seed: int) -> None:
        tr.example(S=S, B=B, spec=spec, seed=seed)
        r = np.random.default_rng(seed)
        config = mlp_config(*zip(*spec, strict=True))
        model = build_mlp(engine, config, [int(k) for k in r.integers(0, 2**31, S)])
        model.to(device=device, dtype=torch.float64)
        randomize_batchnorm(model, r)
        with torch.no_grad():  # the initializers' zero biases would hide a lost bias
            for block in model.modules():
                if isinstance(block, CohortLinear):
                    block.bias.copy_(tensor(r.normal(0, 0.5, tuple(block.bias.shape)),
                                            torch.float64, device))
        model.eval()
        state = {k: numpy(v) for k, v in model.state_dict().items()}
        x = r.uniform(0, 1, (B, INPUTS))
        with torch.no_grad():
            shared = model(tensor(x, torch.float64, device))
            expanded = model(tensor(np.broadcast_to(x, (S, B, INPUTS)), torch.float64, device))
        tr.close(shared, expanded, TOL_F64_CHAIN, "shared rows = the rows given to every replica")
        for s in range(S):
            layers = [layer for _, layer in oracle_mlp(
                config, {k: v[s] for k, v in state.items()},
                [np.ones((B, la.units), bool) for la in config.layers if la.dropout > 0])]
            tr.close(shared[s], ref.mlp_forward(layers, x, training=False), TOL_F64_CHAIN,
                     f"replica {s}: logits vs oracle")
        for k, v in model.state_dict().items():
            tr.close(v, state[k], TOL_F64, f"{k} unchanged by evaluation")

    return tr.run(prop, hs)


# ---------------------------------------------------------------- the whole run


def _data(r: np.random.Generator, n_train: int, n_val: int, n_test: int,
          device: torch.device) -> DeviceData:
    """Random uint8 images and labels, the validation rows cut into halves A and B."""
    def images(n: int) -> torch.Tensor:
        return torch.as_tensor(r.integers(0, 256, (n, INPUTS)), dtype=torch.uint8,
                               device=device)

    def labels(n: int) -> torch.Tensor:
        return torch.as_tensor(r.integers(0, 10, n), dtype=torch.long, device=device)

    half = torch.as_tensor(r.permutation(np.arange(n_val) % 2), dtype=torch.long, device=device)
    return DeviceData(images(n_train), labels(n_train), images(n_val), labels(n_val),
                      images(n_test), labels(n_test), half)


# ReLU's derivative jumps at 0: a pre-activation that is 0 up to rounding may pass the
# gradient in one computation and not in the other. Examples with one are rejected.
KINK = 1e-9


def _kink(layers: list[ref.Layer]) -> float:
    """The smallest |pre-activation| of the ReLU-like layers in the last forward pass."""
    return min((float(np.abs(la.x).min()) for la in layers if isinstance(la, ref.Activation)
                and la.name in ("relu", "leaky_relu") and la.x is not None and la.x.size),
               default=math.inf)


def _scores(layers: list[ref.Layer], x: ref.Array, y: np.ndarray, groups: np.ndarray
            ) -> tuple[ref.Array, ref.Array]:
    """Eval-mode loss sums and correct counts per group (0, 1) of the rows x, y."""
    logits = ref.mlp_forward(layers, x, training=False)
    assume(_kink(layers) > KINK)
    logp = ref.log_softmax(logits)
    loss = -logp[np.arange(len(y)), y]
    correct = (logits.argmax(axis=1) == y).astype(np.float64)
    return (np.array([loss[groups == g].sum() for g in (0, 1)]),
            np.array([correct[groups == g].sum() for g in (0, 1)]))


@dataclass
class OracleEpoch:
    train_loss: float
    val_loss: float
    val_accuracy: float
    loss_halves: ref.Array  # (2,) validation loss sums on halves A, B
    correct_halves: ref.Array  # (2,) correct counts on halves A, B
    kept: dict[str, dict[str, ref.Array]]  # layer -> parameters and statistics at epoch end


def _oracle_run(config: RunConfig, seed: int, d: dict[str, np.ndarray]
                ) -> tuple[list[OracleEpoch], list[tuple[str, ref.Layer]]]:
    """One replica's run in NumPy, train_cohort's documented procedure from scratch: its
    epochs, and its layers as the last epoch left them."""
    state: dict[str, ref.Array] = {}
    for i, hidden in enumerate((*config.layers, None)):
        w, b = initial_dense(config, seed, i)  # the initializers are checked on their own
        state[f"dense{i}.weight"], state[f"dense{i}.bias"] = w.double().numpy(), b.double().numpy()
        if hidden is not None and hidden.batch_norm != "off":
            state.update({f"bn{i}.weight": np.ones(hidden.units),
                          f"bn{i}.bias": np.zeros(hidden.units),
                          f"bn{i}.running_mean": np.zeros(hidden.units),
                          f"bn{i}.running_var": np.ones(hidden.units)})
    named = oracle_mlp(config, state, [np.ones(1, bool) for h in config.layers if h.dropout > 0])
    layers = [layer for _, layer in named]
    trained = [(name, layer) for name, layer in named
               if isinstance(layer, ref.Dense | ref.BatchNorm)]
    slots = {(name, k): ref.optimizer_state(config.optimizer, getattr(layer, k))
             for name, layer in trained for k in ("weight", "bias")}
    drops = [la for la in layers if isinstance(la, ref.Dropout)]
    order = seed_generator(seed, "data")  # the documented minibatch stream (CPU)
    n, B = len(d["y_train"]), config.batch_size
    step, epochs = 0, []
    for _ in range(config.epochs):
        perm = torch.randperm(n, generator=order).numpy()
        total = 0.0
        for start in range(0, n, B):
            idx = perm[start:start + B]
            # the documented masks of this seed, layer and step
            for drop, keep in zip(drops, oracle_keeps([seed], config, step, len(idx)),
                                  strict=True):
                drop.keep = keep[0]
            loss, _ = ref.mlp_loss_and_grads(layers, d["x_train"][idx],
                                             ref.one_hot(d["y_train"][idx], 10), True)
            assume(_kink(layers) > KINK)
            total += loss * len(idx)
            step += 1
            for name, layer in trained:
                for k in ("weight", "bias"):
                    new, slots[name, k] = ref.optimizer_step(
                        config.optimizer, getattr(layer, k), layer.grads[k], slots[name, k], step)
                    setattr(layer, k, new)
        loss_sums, correct = _scores(layers, d["x_val"], d["y_val"], d["half"])
        kept = {name: {k: np.copy(getattr(layer, k)) for k in
                       ("weight", "bias", "running_mean", "running_var") if hasattr(layer, k)}
                for name, layer in trained}
        epochs.append(OracleEpoch(total / n, float(loss_sums.sum()) / len(d["y_val"]),
                                  float(correct.sum()) / len(d["y_val"]), loss_sums, correct,
                                  kept))
    return epochs, named


def build(engine: Engine, configs: tuple[RunConfig, ...], seeds: list[int]) -> CohortMLP:
    """`train_cohort`'s model factory for a check: the engine's model and layers."""
    return cast(CohortMLP, build_mlp(engine, configs, seeds))


def host_data(data: DeviceData) -> dict[str, np.ndarray]:
    """The splits as float64 NumPy (images scaled as training scales them)."""
    return {k: (scale(v.cpu(), torch.float64).numpy() if v.dtype == torch.uint8
                else v.cpu().numpy())
            for k, v in (("x_train", data.x_train), ("y_train", data.y_train),
                         ("x_val", data.x_val), ("y_val", data.y_val),
                         ("x_test", data.x_test), ("y_test", data.y_test),
                         ("half", data.val_half))}


def compare_with_oracle(tr: Tracker, result: CohortResult, configs: list[RunConfig],
                        run_seeds: list[int], data: DeviceData) -> None:
    """Replica s of `result` (trained from configs[s], run_seeds[s]) against its own oracle
    run: per epoch its training loss and validation loss and accuracy (whole split and
    halves A, B); its kept epoch (the first best validation loss); the kept weights'
    final validation and test scores."""
    host = host_data(data)
    sizes = np.array([np.sum(host["half"] == g) for g in (0, 1)])
    for s, (config, seed_s) in enumerate(zip(configs, run_seeds, strict=True)):
        epochs_s, named = _oracle_run(config, seed_s, host)
        for e, (got, want) in enumerate(zip(result.history, epochs_s, strict=True)):
            where = f"replica {s}, epoch {e + 1}"
            tr.close(got.train_loss[s], np.asarray(want.train_loss), TOL_F64_CHAIN,
                     f"{where}: training loss")
            tr.close(got.val_loss[s], np.asarray(want.val_loss), TOL_F64_CHAIN,
                     f"{where}: validation loss")
            tr.holds(got.val_accuracy[s] == want.val_accuracy,
                     f"{where}: validation accuracy {got.val_accuracy[s]} != "
                     f"{want.val_accuracy}")
            tr.close(got.val_loss_halves[s], want.loss_halves / sizes, TOL_F64_CHAIN,
                     f"{where}: validation loss per half")
            tr.close(got.val_accuracy_halves[s], want.correct_halves / sizes, TOL_F64,
                     f"{where}: validation accuracy per half")
        val = np.array([ep.val_loss for ep in epochs_s])
        best = int(np.argmin(val))  # first of equals
        # epochs whose losses tie up to rounding could be chosen either way: not a bug
        assume(np.sum(np.abs(val - val[best]) <= 1e-9 * abs(val[best])) == 1)
        tr.holds(result.replicas[s].best_epoch == best + 1,
                 f"replica {s}: kept epoch {result.replicas[s].best_epoch}, oracle {best + 1}")
        for name, layer in named:  # the oracle's kept weights, then its final scores
            for k, v in epochs_s[best].kept.get(name, {}).items():
                setattr(layer, k, v)
        layers = [layer for _, layer in named]
        for split in ("val", "test"):
            y = host[f"y_{split}"]
            loss_sums, correct = _scores(layers, host[f"x_{split}"], y,
                                         np.zeros(len(y), np.int64))
            metrics = result.replicas[s].metrics
            tr.close(np.asarray(metrics[f"{split}_loss"]), np.asarray(loss_sums[0] / len(y)),
                     TOL_F64_CHAIN, f"replica {s}: final {split} loss of the kept weights")
            tr.holds(math.isclose(metrics[f"{split}_accuracy"], correct[0] / len(y),
                                  rel_tol=0, abs_tol=1e-15),
                     f"replica {s}: final {split} accuracy {metrics[f'{split}_accuracy']} "
                     f"!= {correct[0] / len(y)}")


def train_then_evaluate(engine: Engine, device: torch.device,
                        hs: settings | None = None) -> CheckResult:
    """The whole run, train_cohort on random data, in float64: per epoch, each replica's
    training loss and its validation loss and accuracy (whole split and halves A, B)
    equal the oracle's replay; the kept epoch is the first best validation loss; the
    kept weights' final validation and test scores equal the oracle's."""
    tr = Tracker("train, then evaluate: train_cohort = oracle replay", "evaluation")

    # Optimizers whose steps scale with the gradient, and batches of 3 or more: batch norm
    # makes some gradients 0 in exact arithmetic (a bias before it; every upstream one at
    # batch 2), leaving rounding residue that adaptive optimizers (g / sqrt(g^2)) turn into
    # steps of size lr in one computation and another. Their formulas are checked above.
    @given(S=st.integers(1, 2), spec=layer_specs,
           optimizer=st.sampled_from(["sgd", "momentum", "nesterov"]),
           conventions=st.sampled_from(["torch", "keras"]), epochs=st.integers(1, 2),
           batch=st.integers(3, 5), n_train=st.integers(4, 11), seed=seeds)
    def prop(S: int, spec: list[tuple[int, str, str, float]], optimizer: str, conventions: str,
             epochs: int, batch: int, n_train: int, seed: int) -> None:
        tr.example(S=S, spec=spec, optimizer=optimizer, conventions=conventions,
                   epochs=epochs, batch=batch, n_train=n_train, seed=seed)
        r = np.random.default_rng(seed)
        config = mlp_config(*zip(*spec, strict=True))
        config = replace(config, epochs=epochs, batch_size=batch,
                         optimizer=optimizer_config(conventions, optimizer, lr=0.01))
        data = _data(r, n_train, n_val=6, n_test=5, device=device)
        run_seeds = [int(k) for k in r.integers(0, 2**31, S)]
        result = train_cohort(config, run_seeds, data, select_on=METRICS["val_loss"],
                              dtype=torch.float64, model=lambda c, s_: build(engine, c, s_),
                              optimizer=engine.optimizer)
        compare_with_oracle(tr, result, [config] * S, run_seeds, data)

    return tr.run(prop, hs)
