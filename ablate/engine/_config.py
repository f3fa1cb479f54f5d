"""The resolved configuration of one training run: typed, frozen, hashable.

A study file (see `ablate.study`) is turned into one `RunConfig` per arm, with every
convention-dependent choice already resolved into an explicit field (a default value, or
the form of a formula such as where an optimizer adds its epsilon), so that the config
hash names exactly what was trained and the engine never interprets a convention name.
`conventions` is kept only as a label saying where the defaults came from.
"""

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ACTIVATIONS", "BATCH_NORM", "INITS", "INIT_ALIASES", "BiasCorrection",
    "BnRunningVar", "Conventions", "EpsPlacement", "InitConfig", "LayerConfig",
    "OptimizerConfig", "RunConfig", "STREAMS", "Stream", "StreamSeeds", "Velocity",
    "cohort_key", "run_config_from_dict",
]

Conventions = Literal["keras", "torch"]
BnRunningVar = Literal["unbiased", "biased"]
Velocity = Literal["gradients", "steps"]
EpsPlacement = Literal["outside_sqrt", "inside_sqrt"]
BiasCorrection = Literal["moments", "step_size"]
ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "elu", "gelu")
BATCH_NORM = ("off", "before", "after")  # relative to the activation
INITS = (
    "uniform", "normal", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
    "lecun_uniform", "lecun_normal", "zeros", "torch_default",
)
INIT_ALIASES = {
    "xavier_uniform": "glorot_uniform",
    "xavier_normal": "glorot_normal",
    "kaiming_uniform": "he_uniform",
    "kaiming_normal": "he_normal",
}


@dataclass(frozen=True)
class LayerConfig:
    """One hidden Dense block: Dense -> [BN] -> activation -> [BN] -> [Dropout]."""

    units: int
    activation: str  # one of ACTIVATIONS
    batch_norm: str  # one of BATCH_NORM
    dropout: float  # drop probability in [0, 1)


@dataclass(frozen=True)
class InitConfig:
    name: str  # one of INITS
    scale: float | None  # uniform: bound a; normal: std; None for the others
    truncated: bool  # keras variance-scaling normals are truncated at 2 sd


@dataclass(frozen=True)
class OptimizerConfig:
    """Every hyperparameter and the form of every formula resolved; unused ones are None.

    The forms are where Keras and PyTorch write the same optimizer differently (the
    formulas are in `ablate.engine._optim`); `ablate.study` fills them from a study's
    conventions.
    """

    name: str  # one of OPTIMIZERS (`_optimizers`)
    lr: float
    momentum: float | None = None  # momentum, nesterov
    rho: float | None = None  # adadelta, rmsprop: decay of the squared-gradient average
    beta1: float | None = None  # adam(w)
    beta2: float | None = None  # adam(w)
    eps: float | None = None  # adagrad, adadelta, rmsprop, adam(w)
    weight_decay: float | None = None  # adamw (decoupled)
    initial_accumulator: float | None = None  # adagrad
    # momentum, nesterov: what the velocity sums. "gradients": v = m v + g, w -= lr v
    # (torch); "steps": v = m v - lr g, w += v (keras).
    velocity: Velocity | None = None
    # adagrad, rmsprop: "outside_sqrt": g / (sqrt(a) + eps) (torch); "inside_sqrt":
    # g / sqrt(a + eps) (keras).
    eps_placement: EpsPlacement | None = None
    # adam(w): "moments": lr m_hat / (sqrt(v_hat) + eps), eps added after the correction
    # (torch); "step_size": lr sqrt(1-b2^t)/(1-b1^t) m / (sqrt(v) + eps) (keras).
    bias_correction: BiasCorrection | None = None


Stream = Literal["init", "order", "mask"]
STREAMS: tuple[Stream, ...] = ("init", "order", "mask")


@dataclass(frozen=True)
class StreamSeeds:
    """The seed each random stream of a run is drawn from, instead of the run's own.

    Set only by anatomy runs (one stream varied, the others held at a reference seed):
    `init` keys the initial weights, `order` the minibatch order, `mask` the dropout
    masks (`engine/_rng.py`).
    """

    init: int
    order: int
    mask: int


@dataclass(frozen=True)
class RunConfig:
    """What one run trains: architecture, initialization, optimizer and budget."""

    conventions: Conventions  # a label: where the defaults came from (never read to train)
    layers: tuple[LayerConfig, ...]  # hidden layers; the 10-way softmax output is implied
    leaky_slope: float  # keras 0.3, torch 0.01
    bn_momentum: float  # torch form: weight of the new batch statistic (keras 0.99 -> 0.01)
    bn_eps: float  # keras 1e-3, torch 1e-5
    # which batch variance the running variance averages: "unbiased" (torch, B/(B-1)
    # corrected) or "biased" (keras); training always normalizes with the biased one
    bn_running_var: BnRunningVar
    init: InitConfig
    optimizer: OptimizerConfig
    epochs: int
    batch_size: int
    # torch intra-op threads while training: CPU kernels split their sums by thread count
    # (MKL cuts a small batch's inner dimension), so the same seed gives other float32
    # numbers at another count; pinned by `train_cohort`. None: not recorded (a config
    # stored before ablate pinned it; it trained at its process's default).
    threads: int | None = 1
    # None (every study run): each stream from the run's seed. Left out of to_dict (and
    # so of the config hash) when None, so runs stored before it existed keep theirs.
    streams: StreamSeeds | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data; `threads` and `streams` are left out when None, so a
        config stored before they existed reads back to the same dict and the same hash."""
        d = dataclasses.asdict(self)
        for optional in ("threads", "streams"):
            if d[optional] is None:
                del d[optional]
        return d

    def stream_seed(self, stream: Stream, seed: int) -> int:
        """The seed `stream` is drawn from for a run of `seed`."""
        return seed if self.streams is None else int(getattr(self.streams, stream))

    def digest(self, **extra: Any) -> str:
        """sha256 of the canonical JSON of this config plus `extra` (data settings)."""
        text = json.dumps({"config": self.to_dict(), **extra}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def run_config_from_dict(d: dict[str, Any]) -> RunConfig:
    """Inverse of `RunConfig.to_dict` (for configs read back from the store).

    Dicts written before the forms were explicit fields lack them (a KeyError here);
    `ablate.conventions.upgrade_config_dict` fills them from the dict's conventions label.
    """
    return RunConfig(
        conventions=d["conventions"],
        layers=tuple(LayerConfig(**layer) for layer in d["layers"]),
        leaky_slope=d["leaky_slope"],
        bn_momentum=d["bn_momentum"],
        bn_eps=d["bn_eps"],
        bn_running_var=d["bn_running_var"],
        init=InitConfig(**d["init"]),
        optimizer=OptimizerConfig(**d["optimizer"]),
        epochs=d["epochs"],
        batch_size=d["batch_size"],
        threads=d.get("threads"),  # absent: stored before threads were pinned (unknown)
        streams=None if d.get("streams") is None else StreamSeeds(**d["streams"]),
    )


def cohort_key(config: RunConfig) -> tuple[object, ...]:
    """What replicas must share to train in one cohort; configs with equal keys can.

    The parameter shapes (widths, batch-norm placement), batch norm's settings (one fused
    kernel normalizes every replica), the optimizer's kind and formula forms (one update
    rule), the budget and the batch size (one step count), the thread count (one pin).
    Dropout rates, activations, initializers and optimizer hyperparameters may differ per
    replica.
    """
    o = config.optimizer
    return (tuple((layer.units, layer.batch_norm) for layer in config.layers),
            config.bn_momentum, config.bn_eps, config.bn_running_var,
            o.name, o.velocity, o.eps_placement, o.bias_correction,
            config.epochs, config.batch_size, config.threads)
