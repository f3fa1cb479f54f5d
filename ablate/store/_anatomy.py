"""`anatomy.json`: the anatomy runs of a run directory, beside the store, never in it.

`ablate study --anatomy` trains extra runs of one arm, one random stream varied at a
time (`ablate.study`); they are kept out of the runs table so that no verdict ever
counts them, and written here as JSON values instead (each run's stream seeds and
metrics, and the anatomy the statistics made of them), atomically.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ablate.files import atomic_write

__all__ = ["ANATOMY_FILE", "read_anatomy", "write_anatomy"]

ANATOMY_FILE = "anatomy.json"


def write_anatomy(run_dir: Path | str, values: Mapping[str, Any]) -> Path:
    """Write `values` (strict JSON) to RUN_DIR/anatomy.json atomically; returns its path."""
    path = Path(run_dir) / ANATOMY_FILE
    atomic_write(path, (json.dumps(values, indent=2, allow_nan=False) + "\n").encode())
    return path


def read_anatomy(run_dir: Path | str) -> dict[str, Any] | None:
    """The stored anatomy of a run directory as JSON values, or None when there is none."""
    path = Path(run_dir) / ANATOMY_FILE
    if not path.exists():
        return None
    value: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return value
