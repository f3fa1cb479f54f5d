"""The optional extras: a clear one-line answer when one is needed and not installed.

`ablate analyze` reads MLflow stores, TensorBoard folders and Parquet tables, and
`ablate study --log` / `ablate publish` write to MLflow and TensorBoard, each through
the tool's own package. They are extras (`pip install 'ablate[mlflow]'`), pinned in
constraints.txt; without one, the option that needs it is a `UserError` naming the
install command, and nothing else in ablate imports them.
"""

import importlib
from types import ModuleType

__all__ = ["EXTRAS", "need"]

# extra -> (the package it installs, what pip installs it as)
EXTRAS = {"mlflow": "mlflow", "tensorboard": "tensorboard", "parquet": "pyarrow"}


def need(module: str, extra: str, purpose: str) -> ModuleType:
    """Import `module` (from the extra `extra`), or raise a `UserError` saying how to
    install it. purpose: what it is needed for, e.g. 'reading an MLflow store'."""
    from ablate.errors import UserError

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{purpose} needs {EXTRAS[extra]}, which is not installed: "
                        f"pip install 'ablate[{extra}]'") from None
