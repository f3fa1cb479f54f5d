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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ablate.engine import OPTIMIZER_SPECS, BnRunningVar, OptimizerConfig


@dataclass(frozen=True)
class Conventions:
    """Every default a convention name stands for. The optimizers' defaults are their
    entries in `ablate.engine.OPTIMIZER_SPECS`, read into `optimizers` here (not stated
    twice); `ablate check` plants wrong values by replacing fields of a copy."""

    name: str  # "keras" | "torch": which form each optimizer's formula takes
    leaky_slope: float
    bn_momentum: float  # torch form: weight of the new batch statistic
    bn_eps: float
    bn_running_var: BnRunningVar
    init: str  # default initializer (one of ablate.engine.INITS)
    truncated_normals: bool  # variance-scaling normals truncated at 2 sd
    # optimizer name -> hyperparameter -> default: the framework's documented defaults,
    # except `momentum` and `nesterov`'s momentum 0.9, ablate's value for those names
    # (both frameworks' SGD defaults to momentum 0, which is `sgd`)
    optimizers: Mapping[str, Mapping[str, float]]


def _optimizer_defaults(conventions: str) -> dict[str, Mapping[str, float]]:
    return {name: spec.defaults[conventions] for name, spec in OPTIMIZER_SPECS.items()}


CONVENTIONS: dict[str, Conventions] = {
    # Keras BatchNormalization(momentum=0.99) weighs the old running value: 0.01 here.
    "keras": Conventions(name="keras", leaky_slope=0.3, bn_momentum=0.01, bn_eps=1e-3,
                         bn_running_var="biased", init="glorot_uniform",
                         truncated_normals=True, optimizers=_optimizer_defaults("keras")),
    "torch": Conventions(name="torch", leaky_slope=0.01, bn_momentum=0.1, bn_eps=1e-5,
                         bn_running_var="unbiased", init="torch_default",
                         truncated_normals=False, optimizers=_optimizer_defaults("torch")),
}


def _resolved(conventions: str | Conventions) -> Conventions:
    return CONVENTIONS[conventions] if isinstance(conventions, str) else conventions


def optimizer_defaults(conventions: str | Conventions, name: str) -> dict[str, float]:
    """Optimizer `name`'s hyperparameters and their defaults under `conventions` (a name
    of `CONVENTIONS`, or a `Conventions` itself: `ablate check` passes planted ones)."""
    return dict(_resolved(conventions).optimizers[name])


def optimizer_forms(conventions: str | Conventions, name: str) -> dict[str, str]:
    """The formula forms optimizer `name` takes under `conventions` (none for most)."""
    form = OPTIMIZER_SPECS[name].form
    return {} if form is None else {form.field: form.of(_resolved(conventions).name)}


def optimizer_config(conventions: str | Conventions, name: str, **values: float
                     ) -> OptimizerConfig:
    """Optimizer `name` under `conventions` (a name or a `Conventions`): its defaults,
    `values` replacing some, and its formula forms. The one builder of optimizer configs
    (studies, checks and tests)."""
    fields: dict[str, Any] = {**optimizer_defaults(conventions, name), **values,
                              **optimizer_forms(conventions, name)}
    return OptimizerConfig(name=name, **fields)


def upgrade_config_dict(d: dict[str, Any]) -> dict[str, Any]:
    """A stored `RunConfig.to_dict()` written before the forms were explicit fields, with
    the forms its conventions label stood for then filled in (a current dict unchanged)."""
    if "bn_running_var" in d:
        return d
    c = CONVENTIONS[d["conventions"]]
    optimizer = {**d["optimizer"], **optimizer_forms(d["conventions"], d["optimizer"]["name"])}
    return {**d, "bn_running_var": c.bn_running_var, "optimizer": optimizer}


__all__ = ["CONVENTIONS", "Conventions", "optimizer_config", "optimizer_defaults",
           "optimizer_forms", "upgrade_config_dict"]
