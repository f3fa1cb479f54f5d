"""Keras and PyTorch conventions: the one place a convention name becomes numbers and forms.

A study says `conventions = "keras"` (the notebook's framework) or `"torch"`; everything
that differs between the two is resolved here into explicit fields of the run config
(defaults such as BN epsilon, and the form of each formula such as where an optimizer adds
its epsilon), so the engine trains from fields alone and the config hash names them.

What differs: Dense kernels (Keras glorot_uniform with zero biases and truncated normals;
torch nn.Linear's U(+-1/sqrt(fan_in)) for both); BatchNormalization momentum (Keras 0.99
weighs the old value, i.e. torch's 0.01) and epsilon (1e-3 vs 1e-5), and which batch
variance the running variance averages (Keras the biased one, torch the unbiased one);
LeakyReLU slope (0.3 vs 0.01); the momentum velocity (Keras sums steps, torch gradients);
epsilon inside or outside AdaGrad's and RMSprop's square root; Adam's bias correction
in the step size (Keras) or on the moments (torch); and the optimizers' default values.
"""

from dataclasses import dataclass
from typing import Any

from ablate.engine import OptimizerConfig
from ablate.engine._config import BiasCorrection, BnRunningVar, EpsPlacement, Velocity


@dataclass(frozen=True)
class Conventions:
    """Every default and formula form a convention name stands for."""

    leaky_slope: float
    bn_momentum: float  # torch form: weight of the new batch statistic
    bn_eps: float
    bn_running_var: BnRunningVar
    init: str  # default initializer (one of ablate.engine.INITS)
    truncated_normals: bool  # variance-scaling normals truncated at 2 sd
    velocity: Velocity  # momentum, nesterov
    eps_placement: EpsPlacement  # adagrad, rmsprop
    bias_correction: BiasCorrection  # adam, adamw
    # optimizer name -> default hyperparameters: the framework's documented defaults, except
    # `momentum` and `nesterov`'s momentum 0.9, ablate's value for those names (both
    # frameworks' SGD defaults to momentum 0, which is `sgd`)
    optimizers: dict[str, dict[str, float]]


CONVENTIONS: dict[str, Conventions] = {
    "keras": Conventions(
        leaky_slope=0.3, bn_momentum=0.01, bn_eps=1e-3, bn_running_var="biased",
        init="glorot_uniform", truncated_normals=True, velocity="steps",
        eps_placement="inside_sqrt", bias_correction="step_size",
        optimizers={  # Keras 3's documented defaults
            "sgd": {"lr": 0.01},
            "momentum": {"lr": 0.01, "momentum": 0.9},
            "nesterov": {"lr": 0.01, "momentum": 0.9},
            "adagrad": {"lr": 0.001, "initial_accumulator": 0.1, "eps": 1e-7},
            "adadelta": {"lr": 0.001, "rho": 0.95, "eps": 1e-7},
            "rmsprop": {"lr": 0.001, "rho": 0.9, "eps": 1e-7},
            "adam": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7},
            "adamw": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7,
                      "weight_decay": 0.004},
        }),
    "torch": Conventions(
        leaky_slope=0.01, bn_momentum=0.1, bn_eps=1e-5, bn_running_var="unbiased",
        init="torch_default", truncated_normals=False, velocity="gradients",
        eps_placement="outside_sqrt", bias_correction="moments",
        optimizers={  # torch.optim's signatures (SGD's lr default is 1e-3 since torch 2.2)
            "sgd": {"lr": 0.001},
            "momentum": {"lr": 0.001, "momentum": 0.9},
            "nesterov": {"lr": 0.001, "momentum": 0.9},
            "adagrad": {"lr": 0.01, "initial_accumulator": 0.0, "eps": 1e-10},
            "adadelta": {"lr": 1.0, "rho": 0.9, "eps": 1e-6},
            "rmsprop": {"lr": 0.01, "rho": 0.99, "eps": 1e-8},
            "adam": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
            "adamw": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                      "weight_decay": 0.01},
        }),
}


def optimizer_forms(conventions: str | Conventions, name: str) -> dict[str, str]:
    """The formula forms optimizer `name` takes under `conventions` (a name of
    `CONVENTIONS`, or a `Conventions` itself: `ablate check` passes planted ones)."""
    c = CONVENTIONS[conventions] if isinstance(conventions, str) else conventions
    match name:
        case "momentum" | "nesterov":
            return {"velocity": c.velocity}
        case "adagrad" | "rmsprop":
            return {"eps_placement": c.eps_placement}
        case "adam" | "adamw":
            return {"bias_correction": c.bias_correction}
    return {}


def optimizer_config(conventions: str | Conventions, name: str, **values: float
                     ) -> OptimizerConfig:
    """Optimizer `name` under `conventions` (a name or a `Conventions`): its defaults,
    `values` replacing some, and its formula forms. The one builder of optimizer configs
    (studies, checks and tests)."""
    c = CONVENTIONS[conventions] if isinstance(conventions, str) else conventions
    fields: dict[str, Any] = {**c.optimizers[name], **values, **optimizer_forms(c, name)}
    return OptimizerConfig(name=name, **fields)


def upgrade_config_dict(d: dict[str, Any]) -> dict[str, Any]:
    """A stored `RunConfig.to_dict()` written before the forms were explicit fields, with
    the forms its conventions label stood for then filled in (a current dict unchanged)."""
    if "bn_running_var" in d:
        return d
    c = CONVENTIONS[d["conventions"]]
    optimizer = {**d["optimizer"], **optimizer_forms(d["conventions"], d["optimizer"]["name"])}
    return {**d, "bn_running_var": c.bn_running_var, "optimizer": optimizer}


__all__ = ["CONVENTIONS", "Conventions", "optimizer_config", "optimizer_forms",
           "upgrade_config_dict"]
