"""The real `ablate study` (tests/study_harness.py), killed with SIGKILL at a chosen point
of its cohort-state writes, so a kill test is deterministic:

    python -m tests.study.resume_harness after K study STUDY.toml --out DIR ...
    python -m tests.study.resume_harness torn K study STUDY.toml --out DIR ...

`after K`: once the K-th state is written (renamed into place). `torn K`: inside the
K-th write, with half its bytes in the temporary file (as a kill mid-write leaves it),
before the rename. Only the state writer is wrapped; everything else is the real code.
"""

import os
import signal
import sys
import tempfile
from pathlib import Path

from ablate.study import _resume
from tests.study_harness import main


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install(mode: str, k: int) -> None:
    real = _resume.atomic_write
    calls = [0]

    def write(path: Path, data: bytes, **kw: int) -> None:
        calls[0] += 1
        if mode == "torn" and calls[0] == k:  # the temporary file as atomic_write makes it
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, _ = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            os.write(fd, data[:len(data) // 2])
            os.fsync(fd)
            _kill()
        real(path, data, **kw)
        if mode == "after" and calls[0] == k:
            _kill()

    _resume.atomic_write = write  # type: ignore[assignment]


if __name__ == "__main__":
    install(sys.argv[1], int(sys.argv[2]))
    main(sys.argv[3:])
