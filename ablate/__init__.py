"""ablate: controlled multi-seed ablation studies of MLPs on MNIST, with a verdict.

The public Python API (see `ablate.api`; the CLI is a thin layer over it):

    import ablate
    done = ablate.run_study("studies/dropout.toml", seeds=3, epochs=2, subset=5000)
    print(ablate.write_report(done.run_dir).headline)
    print(ablate.analyze("runs.csv", arm="optimizer", metric="acc", baseline="sgd").headline)

Names are imported on first use, so `import ablate` (and the CLI's start) stays fast.
"""

import importlib
from typing import Any

__all__ = ["AnalyzeOptions", "Report", "Runs", "Runtime", "Study", "StudyOptions", "StudyRun",
           "UserError", "analyse", "analyze", "analyze_next", "load_study", "read_runs",
           "run_study", "write_analysis", "write_report"]

_HOME = {"UserError": "ablate.errors", "Study": "ablate.design", "load_study": "ablate.design"}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'ablate' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME.get(name, "ablate.api")), name)
