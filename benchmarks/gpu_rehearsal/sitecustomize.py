"""The GPU machine's Python, rehearsed on this one: `bash benchmarks/gpu_check.sh --rehearse`
puts this folder first on PYTHONPATH, so Python imports it at start-up (as `sitecustomize`).

The device image has PyTorch and the scientific stack but not ablate's serving packages,
Ray or the test-only tools, and ablate is not installed there (a bare copy of the tree on
PYTHONPATH). So here:

- importing a package the image lacks (`HIDDEN`) raises ModuleNotFoundError, as it would
  there: a stage that needs one fails in the rehearsal too;
- ablate's installed copy is hidden: no editable-install finder (imports must resolve
  from the tree on PYTHONPATH) and no distribution metadata
  (`importlib.metadata.version("ablate")` raises PackageNotFoundError, as there).
"""

import importlib.abc
import importlib.machinery
import importlib.metadata
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

# Top-level packages ablate's environment has and the device image (its package list in
# the device notes) lacks.
HIDDEN = frozenset({"litestar", "uvicorn", "msgspec", "httptools", "ray", "schemathesis",
                    "playwright"})


class _Hidden(importlib.abc.MetaPathFinder):
    """Refuses the hidden packages before any other finder can find them."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {fullname!r} (hidden by the GPU-check "
                                      "rehearsal: the device image lacks it)", name=fullname)
        return None


sys.meta_path.insert(0, _Hidden())
# An editable install of ablate adds a finder after the path finder; drop it, so that
# ablate resolves from PYTHONPATH or not at all.
sys.meta_path[:] = [f for f in sys.meta_path
                    if not str(getattr(f, "__module__", "")).startswith("__editable__")]

_distribution = importlib.metadata.distribution


def _without_ablate(name: str) -> Any:
    if name.lower() == "ablate":
        raise importlib.metadata.PackageNotFoundError(name)
    return _distribution(name)


importlib.metadata.distribution = _without_ablate  # version() looks it up here
