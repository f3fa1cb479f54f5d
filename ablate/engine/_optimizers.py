"""The optimizers: one entry per optimizer, the one statement of its facts.

Each `OptimizerSpec` says which hyperparameters the optimizer takes and their defaults
under each convention, which formula form it has (where Keras and PyTorch write the same
update differently, and which form each uses), the state it keeps per parameter, and
whether its arithmetic depends on the step number. Everything else derives from here:
the names a study file accepts, the defaults `ablate.conventions` fills in, the forms
the update refuses to guess, the planner's memory model, which optimizers a CUDA graph
can replay, and the hyperparameters `ablate check` draws.

Adding an optimizer: an entry here, its update rule in `_optim.py` (`Optimizer.step`),
its float64 oracle in `ablate/checks/_reference.py`, and a case in
`tests/engine/test_optim.py` against `torch.optim`.
"""

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["HYPERPARAMETERS", "OPTIMIZERS", "OPTIMIZER_SPECS", "Form", "OptimizerSpec"]

# Every hyperparameter an optimizer config can carry (`OptimizerConfig` fields).
HYPERPARAMETERS = ("lr", "momentum", "rho", "beta1", "beta2", "eps", "weight_decay",
                   "initial_accumulator")


@dataclass(frozen=True)
class Form:
    """A formula written two ways: the `OptimizerConfig` field that names the form, and
    the form each convention uses (the formulas are in `_optim.py`)."""

    field: str  # "velocity" | "eps_placement" | "bias_correction"
    keras: str
    torch: str

    def of(self, conventions: str) -> str:
        return self.keras if conventions == "keras" else self.torch

    @property
    def allowed(self) -> tuple[str, str]:
        return self.torch, self.keras


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    # conventions -> hyperparameter -> default; the keys are what the optimizer takes
    defaults: Mapping[str, Mapping[str, float]]
    form: Form | None  # None: one form in both frameworks
    state: tuple[str, ...]  # state tensors kept per parameter, by name
    step_dependent: bool = False  # its update depends on the step number (bias corrections)

    @property
    def hyperparameters(self) -> tuple[str, ...]:
        """What the optimizer takes besides the learning rate."""
        return tuple(k for k in self.defaults["torch"] if k != "lr")


_VELOCITY = Form("velocity", keras="steps", torch="gradients")
_EPS = Form("eps_placement", keras="inside_sqrt", torch="outside_sqrt")
_BIAS = Form("bias_correction", keras="step_size", torch="moments")

# Defaults: Keras 3's documented values and torch.optim's signatures (SGD's lr default is
# 1e-3 since torch 2.2); `momentum` and `nesterov` take momentum 0.9, ablate's value for
# those names (both frameworks' SGD defaults to momentum 0, which is `sgd`).
OPTIMIZER_SPECS: dict[str, OptimizerSpec] = {s.name: s for s in (
    OptimizerSpec("sgd", {"keras": {"lr": 0.01}, "torch": {"lr": 0.001}}, None, ()),
    OptimizerSpec("momentum", {"keras": {"lr": 0.01, "momentum": 0.9},
                               "torch": {"lr": 0.001, "momentum": 0.9}}, _VELOCITY, ("v",)),
    OptimizerSpec("nesterov", {"keras": {"lr": 0.01, "momentum": 0.9},
                               "torch": {"lr": 0.001, "momentum": 0.9}}, _VELOCITY, ("v",)),
    OptimizerSpec("adagrad", {"keras": {"lr": 0.001, "initial_accumulator": 0.1, "eps": 1e-7},
                              "torch": {"lr": 0.01, "initial_accumulator": 0.0, "eps": 1e-10}},
                  _EPS, ("a",)),
    OptimizerSpec("adadelta", {"keras": {"lr": 0.001, "rho": 0.95, "eps": 1e-7},
                               "torch": {"lr": 1.0, "rho": 0.9, "eps": 1e-6}}, None, ("a", "u")),
    OptimizerSpec("rmsprop", {"keras": {"lr": 0.001, "rho": 0.9, "eps": 1e-7},
                              "torch": {"lr": 0.01, "rho": 0.99, "eps": 1e-8}}, _EPS, ("a",)),
    OptimizerSpec("adam", {"keras": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7},
                           "torch": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}},
                  _BIAS, ("m", "v"), step_dependent=True),
    OptimizerSpec("adamw", {"keras": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7,
                                      "weight_decay": 0.004},
                            "torch": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                                      "weight_decay": 0.01}},
                  _BIAS, ("m", "v"), step_dependent=True),
)}
OPTIMIZERS = tuple(OPTIMIZER_SPECS)  # the names, in the order studies and checks list them
