"""The resolved configuration of one training run: typed, frozen, hashable.

A study file (see `ablate.study`) is turned into one `RunConfig` per arm, with every
convention-dependent default already filled in, so that the config hash names exactly
what was trained and nothing depends on defaults that might change later.
"""

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

Conventions = Literal["keras", "torch"]
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
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "adam", "adamw")


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
    """Every hyperparameter resolved; unused ones are None."""

    name: str  # one of OPTIMIZERS
    lr: float
    momentum: float | None = None  # momentum, nesterov
    rho: float | None = None  # adadelta, rmsprop: decay of the squared-gradient average
    beta1: float | None = None  # adam(w)
    beta2: float | None = None  # adam(w)
    eps: float | None = None  # adagrad, adadelta, rmsprop, adam(w)
    weight_decay: float | None = None  # adamw (decoupled)
    initial_accumulator: float | None = None  # adagrad


@dataclass(frozen=True)
class RunConfig:
    """What one run trains: architecture, initialization, optimizer and budget."""

    conventions: Conventions
    layers: tuple[LayerConfig, ...]  # hidden layers; the 10-way softmax output is implied
    leaky_slope: float  # keras 0.3, torch 0.01
    bn_momentum: float  # torch form: weight of the new batch statistic (keras 0.99 -> 0.01)
    bn_eps: float  # keras 1e-3, torch 1e-5
    init: InitConfig
    optimizer: OptimizerConfig
    epochs: int
    batch_size: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self, **extra: Any) -> str:
        """sha256 of the canonical JSON of this config plus `extra` (data settings)."""
        text = json.dumps({"config": self.to_dict(), **extra}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def run_config_from_dict(d: dict[str, Any]) -> RunConfig:
    """Inverse of `RunConfig.to_dict` (for configs read back from the store)."""
    return RunConfig(
        conventions=d["conventions"],
        layers=tuple(LayerConfig(**layer) for layer in d["layers"]),
        leaky_slope=d["leaky_slope"],
        bn_momentum=d["bn_momentum"],
        bn_eps=d["bn_eps"],
        init=InitConfig(**d["init"]),
        optimizer=OptimizerConfig(**d["optimizer"]),
        epochs=d["epochs"],
        batch_size=d["batch_size"],
    )


# Convention-dependent defaults (DESIGN.md lists what differs).
CONVENTION_DEFAULTS: dict[str, dict[str, Any]] = {
    "keras": {"leaky_slope": 0.3, "bn_momentum": 0.01, "bn_eps": 1e-3, "init": "glorot_uniform"},
    "torch": {"leaky_slope": 0.01, "bn_momentum": 0.1, "bn_eps": 1e-5, "init": "torch_default"},
}

# Optimizer defaults per convention: Keras's documented defaults, PyTorch's signatures.
OPTIMIZER_DEFAULTS: dict[str, dict[str, dict[str, float]]] = {
    "keras": {
        "sgd": {"lr": 0.01},
        "momentum": {"lr": 0.01, "momentum": 0.9},
        "nesterov": {"lr": 0.01, "momentum": 0.9},
        "adagrad": {"lr": 0.001, "initial_accumulator": 0.1, "eps": 1e-7},
        "adadelta": {"lr": 0.001, "rho": 0.95, "eps": 1e-7},
        "rmsprop": {"lr": 0.001, "rho": 0.9, "eps": 1e-7},
        "adam": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7},
        "adamw": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "weight_decay": 0.004},
    },
    "torch": {
        "sgd": {"lr": 0.01},  # torch has no default lr for SGD; Keras's 0.01
        "momentum": {"lr": 0.01, "momentum": 0.9},
        "nesterov": {"lr": 0.01, "momentum": 0.9},
        "adagrad": {"lr": 0.01, "initial_accumulator": 0.0, "eps": 1e-10},
        "adadelta": {"lr": 1.0, "rho": 0.9, "eps": 1e-6},
        "rmsprop": {"lr": 0.01, "rho": 0.99, "eps": 1e-8},
        "adam": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
        "adamw": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01},
    },
}
OPTIMIZER_KEYS = ("lr", "momentum", "rho", "beta1", "beta2", "eps", "weight_decay",
                  "initial_accumulator")
