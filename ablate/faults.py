"""Faults injected at named points, so that crash tests are deterministic.

A test sets `ABLATE_FAULT` in the environment of the process it starts, as
`POINT[@N]=ACTION`: the N-th time (1-based, default 1) the process reaches `POINT`,
it does `ACTION`:

- `kill`: SIGKILL itself (as `kill -9` or the OOM killer would, at exactly that point);
- `interrupt`: SIGINT itself (as Ctrl-C would);
- `wait:PATH`: create `PATH.reached`, then wait until `PATH` exists (another process
  holds this one at the point for as long as it needs, without timing anything).

The points: `checkpoint` (a checkpoint's weights are in their temporary file, fsynced,
not yet renamed: inside a checkpoint write), `checkpoint-sidecar` (the same for its
JSON sidecar), `write` (any other atomic write), `cohort-recorded` (a cohort's runs are
stored; the next cohort has not started). Unset, `reached` is one dictionary lookup.
"""

import os
import signal
import time
from pathlib import Path

__all__ = ["ENV", "reached"]

ENV = "ABLATE_FAULT"
POLL_S = 0.05  # how often `wait:PATH` looks for PATH

_counts: dict[str, int] = {}


def reached(point: str) -> None:
    """The process is at `point`: do the injected fault if it is this point's turn."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    where, _, action = spec.partition("=")
    name, _, nth = where.partition("@")
    if action not in ("kill", "interrupt") and not action.startswith("wait:"):
        raise ValueError(f"{ENV}={spec!r}: the action must be kill, interrupt or wait:PATH")
    if name != point:
        return
    _counts[point] = _counts.get(point, 0) + 1
    if _counts[point] != int(nth or 1):
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "interrupt":
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)  # the signal is handled at the next bytecode: here
    else:
        path = Path(action.removeprefix("wait:"))
        path.with_name(path.name + ".reached").touch()
        while not path.exists():
            time.sleep(POLL_S)
