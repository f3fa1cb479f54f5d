"""ablate: controlled multi-seed ablation studies of MLPs on MNIST, with a verdict.

The public Python API (see `ablate.api`; the CLI is a thin layer over it):

    import ablate
    done = ablate.run_study("studies/dropout.toml", seeds=6, epochs=2, subset=5000)
    print(ablate.write_report(done.run_dir).headline)
    print(ablate.analyze("runs.csv", arm="optimizer", metric="acc", baseline="sgd").headline)

Names are imported on first use, so `import ablate` (and the CLI's start) stays fast;
`dir(ablate)` lists them (tab completion), `ablate.__version__` is the installed version.
"""

import importlib
from typing import Any

__all__ = ["AnalyzeOptions", "PredictionSet", "Report", "Runs", "Runtime", "Study",
           "StudyOptions", "StudyRun", "UserError", "analyse", "analyze", "analyze_next",
           "load_study", "read_predictions", "read_runs", "run_study", "write_analysis",
           "write_report"]

_HOME = {"UserError": "ablate.errors", "Study": "ablate.design",
         "PredictionSet": "ablate.predictions",
         "StudyOptions": "ablate.options"}


def _version() -> str:
    """The installed distribution's version (pyproject.toml's), or '0+unknown' for a
    source tree that was never installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ablate")
    except PackageNotFoundError:
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return _version()
    if name not in __all__:
        raise AttributeError(f"module 'ablate' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME.get(name, "ablate.api")), name)


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
