"""Cohort states in a run directory: saved while a cohort trains, resumed by a rerun,
removed once its runs are stored.

Nothing of a cohort is in the store until its last epoch, so the driver writes each
state training hands on (`ablate.engine`'s `on_state`, every epoch by default) to
`resume/cohort-<key>.state`, atomically (a kill leaves the old state or the new one).
`key` names the cohort's runs: every replica's arm, seed and config hash, in order
(the hash covers the config, the data, the device type and the precision), and the
state inside names its configs and seeds again, with a checksum. A rerun whose plan has
that cohort continues from its state; one that does not fit (torn, altered, another
cohort's, another format) is ignored with a warning and removed, and the cohort trains
from its start, so two trainings are never mixed. A state no cohort of the plan has
(its seeds or settings changed) is removed too. The driver holds the lease, so it is
the only writer here, and a killed writer's temporary files are its to remove.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from ablate.engine import (
    SavedState,
    SaveEvery,
    StateMismatch,
    decode_state,
    state_digest,
    state_position,
)
from ablate.files import atomic_write
from ablate.store import STATES_DIR
from ablate.study._plan import CohortTask, Plan, Resume

__all__ = ["SAVE_EVERY", "SUFFIX", "CohortStates", "kept_text", "resuming_text", "state_key"]

SUFFIX = ".state"
# After every epoch, and inside one that runs longer than 10 minutes (a slow machine's
# full-size epoch) every 10 minutes: a save takes well under a second.
SAVE_EVERY = SaveEvery(epochs=1, seconds=600.0)


def state_key(task: CohortTask) -> str:
    """16 hex digits naming a cohort's runs (arm, seed, config hash of each, in order)."""
    text = json.dumps([[r.arm, r.seed, r.config_hash] for r in task.replicas])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class CohortStates:
    """The saved cohort states of one run directory."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = Path(run_dir) / STATES_DIR

    def path(self, task: CohortTask) -> Path:
        return self.dir / f"cohort-{state_key(task)}{SUFFIX}"

    def attach(self, plan: Plan, say: Callable[[str], None], *, tidy: bool) -> Plan:
        """`plan` with each cohort that has a valid saved state set to resume from it;
        `say` prints a warning line for each state ignored. `tidy` (the lease holder, not
        a dry run): remove those states, states of no planned cohort, and a killed
        writer's temporary files."""
        if not self.dir.is_dir():
            return plan
        cohorts, wanted = [], set()
        for index, task in enumerate(plan.cohorts, 1):
            path = self.path(task)
            wanted.add(path.name)
            cohorts.append(task)
            if not path.is_file():
                continue
            data = path.read_bytes()
            digest = state_digest([r.config for r in task.replicas],
                                  [r.seed for r in task.replicas], torch.float32)
            try:
                state = decode_state(data, digest)
            except StateMismatch as exc:
                say(f"warning: the saved state of cohort {index} ({path.name}) is "
                         f"ignored: {exc}; the cohort trains from its first epoch")
                if tidy:
                    path.unlink(missing_ok=True)
                continue
            cohorts[-1] = replace(task, resume=Resume(state.epoch, state.steps, data))
        if tidy:
            for path in sorted(self.dir.iterdir()):
                if path.name.endswith(".tmp"):  # a write a kill cut short
                    path.unlink(missing_ok=True)
                elif path.name not in wanted:
                    say(f"warning: a saved cohort state ({path.name}) fits no cohort "
                        "still to train (its runs finished, or their seeds or settings "
                        "changed); removed")
                    path.unlink(missing_ok=True)
        return replace(plan, cohorts=tuple(cohorts))

    def write(self, task: CohortTask, saved: SavedState) -> None:
        atomic_write(self.path(task), saved.data)

    def remove(self, task: CohortTask) -> None:
        self.path(task).unlink(missing_ok=True)

    def position(self, task: CohortTask) -> tuple[int, int] | None:
        """(epochs, steps) the task's saved state holds, from its header; None: none."""
        try:
            with self.path(task).open("rb") as f:
                return state_position(f)
        except FileNotFoundError:
            return None


def _kept(epoch: int, steps: int, epochs: int) -> str:
    """'3 of 20 epochs' (and '120 steps of epoch 4' when inside it)."""
    text = f"{epoch} of {epochs} epoch{'' if epochs == 1 else 's'}"
    return text + (f" and {steps} steps of epoch {epoch + 1}" if steps else "")


def resuming_text(plan: Plan) -> str:
    """'' or ' (resuming cohort 1 at epoch 4/20)', for the plan's one-line summary."""
    parts = [f"cohort {i} at epoch {t.resume.epoch + 1}/{t.epochs}"
             + (f", step {t.resume.steps + 1}" if t.resume.steps else "")
             for i, t in enumerate(plan.cohorts, 1) if t.resume is not None]
    return f" (resuming {'; '.join(parts)})" if parts else ""


def kept_text(plan: Plan, stored: int, pending: set[int], started: set[int],
              states: CohortStates) -> str:
    """What an interrupted round kept, one line: `stored` runs recorded now, and for each
    cohort not recorded (`pending`, 1-based indices into the plan) what its saved state
    holds, as its file says; `started`: the cohorts that had begun training."""
    parts = [f"{stored} run{'' if stored == 1 else 's'} stored"] if stored else []
    kept = set()
    for i, task in enumerate(plan.cohorts, 1):
        where = states.position(task) if i in pending else None
        if where is not None:
            kept.add(i)
            parts.append(f"{_kept(*where, task.epochs)} of cohort {i} kept")
    lost = sorted((started & pending) - kept)
    if lost:
        which = ", ".join(map(str, lost))
        parts.append(f"cohort{'s' if len(lost) > 1 else ''} {which} had not finished an "
                     "epoch (nothing of it kept)")
    if not parts:
        return "interrupted before anything was trained; rerun the same command to start"
    return f"interrupted: {'; '.join(parts)}; rerun the same command to continue"
