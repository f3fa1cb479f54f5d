"""`ablate check`: the layer-math properties, run on this machine's device.

Every property (one module per concept in this package) compares the engine with the
float64 oracle in `_reference` or with an exact identity, over Hypothesis-drawn shapes and
values, and reports the examples it tried and its worst error relative to its tolerance.
They include packed cohorts (replicas that differ in every per-replica setting, each
against its own oracle run) and the conventions (the frameworks' documented defaults),
so a user who runs `ablate check` on a new machine or GPU checks those too.
`run_checks` runs them all and prints one table. They run as training does, with float32
matmuls pinned to full float32 (TF32 would break the float32 tolerances), and the table
says which precision was in effect, read through PyTorch's current precision API only.
"""

import time
from collections.abc import Sequence

import torch
from hypothesis import settings
from rich.console import Console
from rich.table import Table

from ablate.checks import _conventions as checks_conventions
from ablate.checks import _dropout as checks_dropout
from ablate.checks import _evaluation as checks_eval
from ablate.checks import _grads as checks_grads
from ablate.checks import _independence as checks_independence
from ablate.checks import _initializers as checks_init
from ablate.checks import _layers as checks_layers
from ablate.checks import _optimizers as optim
from ablate.checks import _packed as checks_packed
from ablate.checks._base import ENGINE, CheckResult, Engine, Property
from ablate.engine import matmul_precision, pinned_precision, resolve_device
from ablate.errors import UserError

__all__ = [
    "PROPERTIES", "hypothesis_settings", "print_table", "run_checks", "run_properties",
    "tf32_note",
]

# In the table's order: one group per concept, each property a plain function
# (engine, device, hypothesis settings) -> CheckResult.
PROPERTIES: tuple[Property, ...] = (
    checks_grads.gradient_dense,
    checks_grads.gradient_activations,
    checks_grads.gradient_batchnorm,
    checks_grads.gradient_dropout,
    checks_grads.gradient_mlp,
    checks_layers.dense_formula,
    checks_independence.row_independence,
    checks_layers.softmax_properties,
    checks_layers.cross_entropy_gradient,
    checks_layers.batchnorm_training,
    checks_layers.batchnorm_running,
    checks_layers.batchnorm_eval,
    checks_layers.batchnorm_backward_sums,
    checks_dropout.dropout_values,
    checks_dropout.dropout_mean,
    checks_dropout.dropout_bounds,
    checks_dropout.dropout_classic,
    checks_init.init_distributions,
    checks_init.init_determinism,
    optim.optimizer_torch_formulas,
    optim.optimizer_keras_formulas,
    optim.momentum_forms,
    optim.adam_first_step,
    checks_conventions.conventions_layers,
    checks_conventions.conventions_optimizers,
    checks_independence.cohort_layers,
    checks_independence.cohort_mlp,
    checks_packed.packed_cohort,
    checks_eval.dense_shared_rows,
    checks_eval.mlp_evaluation,
    checks_eval.train_then_evaluate,
)


def hypothesis_settings(examples: int) -> settings:
    """Derandomized (the same examples every run), no deadline, no example database."""
    return settings(max_examples=examples, derandomize=True, deadline=None, database=None)


def run_properties(device: torch.device, hsettings: settings | None, engine: Engine = ENGINE,
                   properties: Sequence[Property] = PROPERTIES) -> list[CheckResult]:
    with pinned_precision(device):
        return [prop(engine, device, hsettings) for prop in properties]


def tf32_note(device: torch.device) -> str:
    """The float32 matmul precision the properties ran with (pinned, as in training)."""
    with pinned_precision(device):
        precision = matmul_precision(device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    effect = ("full float32, no TF32" if precision == "ieee" else
              "REDUCED: float32 properties can fail by ~1e-3 relative")
    return f"float32 matmul precision on {where}: {precision!r} (pinned): {effect}"


def _fmt(x: float) -> str:
    return "0" if x == 0 else f"{x:.2g}"


def print_table(outcomes: Sequence[CheckResult], console: Console) -> None:
    table = Table(title="layer-math properties")
    for col in ("group", "property", "examples", "result", "worst error", "tolerance", "ratio"):
        table.add_column(col, justify="right" if col in ("examples", "ratio") else "left")
    for o in outcomes:
        result = "[green]pass[/green]" if o.passed else "[bold red]FAIL[/bold red]"
        exact = o.tolerance is None
        table.add_row(o.group, o.name, str(o.examples), result, _fmt(o.worst_error),
                      "exact" if exact else _fmt(o.tolerance or 0.0),
                      "-" if exact and o.passed else _fmt(o.ratio))
    console.print(table)
    for o in outcomes:
        if o.failure is not None:
            console.print(f"[bold red]FAILED[/bold red] {o.group}: {o.name}", highlight=False)
            console.print(o.failure, markup=False, highlight=False)


def run_checks(device: str = "auto", examples: int = 50, *, engine: Engine = ENGINE,
               properties: Sequence[Property] = PROPERTIES,
               console: Console | None = None) -> int:
    """Run `properties` against `engine`, print the table; 0 when all hold, else 1."""
    if examples < 1:
        raise UserError(f"--examples must be at least 1, got {examples}")
    dev = resolve_device(device)
    console = console or Console(width=140)
    start = time.perf_counter()
    outcomes = run_properties(dev, hypothesis_settings(examples), engine, properties)
    print_table(outcomes, console)
    failed = sum(not o.passed for o in outcomes)
    console.print(tf32_note(dev), markup=False, highlight=False)
    console.print(f"{len(outcomes) - failed}/{len(outcomes)} properties hold on {dev} "
                  f"(torch {torch.__version__}, up to {examples} examples each, "
                  f"{time.perf_counter() - start:.1f} s)", markup=False, highlight=False)
    if failed:
        console.print("A failing property's examples include those Hypothesis tried while "
                      "shrinking the failure to the one shown.", markup=False, highlight=False)
    return 0 if failed == 0 else 1
