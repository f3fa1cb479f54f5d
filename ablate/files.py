"""Writing files that readers can trust: atomic, durable writes and strict JSON values.

`atomic_write` writes to a temporary file in the target's directory, fsyncs it, renames
it over the target and fsyncs the directory, so a reader (or a rerun after a crash or
`kill -9`) sees the old file or the new one, never a part of one; a writer killed
between the two leaves its temporary file (`.NAME.RANDOM.tmp`), which
`remove_temporaries` clears once no writer can be running (the run directory's lease
held). `jsonable` turns
NumPy scalars and arrays, tuples and mappings into plain JSON values, with NaN and
+-inf as null so the result is strict JSON.
"""

import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ablate.faults import reached

__all__ = ["TEMPORARY_GLOB", "atomic_write", "jsonable", "remove_temporaries"]

TEMPORARY_GLOB = ".*.tmp"  # what `atomic_write` names its temporary files


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644, point: str = "write") -> None:
    """Replace `path` with `data` atomically and durably (file and directory fsynced).
    `point` names the moment between the two for injected faults (`ablate.faults`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, mode)  # mkstemp makes it 0600
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        reached(point)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if os.name == "posix":  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def remove_temporaries(root: Path) -> list[Path]:
    """Delete the temporary files that writers killed mid-write left anywhere under
    `root`; only for a caller that knows no writer is running there. Returns them."""
    found = sorted(p for p in Path(root).rglob(TEMPORARY_GLOB) if p.is_file())
    for p in found:
        p.unlink(missing_ok=True)
    return found


def jsonable(value: Any) -> Any:
    """Plain JSON types; NaN and +-inf become None so the result is strict JSON."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
