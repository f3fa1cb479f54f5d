"""A run directory -> its analysis (nothing written), or, for the study driver, the
sequential state after the rounds run so far. Both read the store the same way and go
through the same code (`_analysis`), so the driver's stopping decision and the report
cannot disagree."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ablate.analysis._analysis import Analysis, StudyData, analyse, load, sequential_of
from ablate.stats import SequentialResult
from ablate.store import Store, read_anatomy

__all__ = ["analyse_run_dir", "sequential_state"]


def _read(run_dir: Path, *, predictions: bool = True) -> StudyData:
    store = Store.open_existing(Path(run_dir))
    try:
        return load(store, predictions=predictions)
    finally:
        store.close()


def analyse_run_dir(run_dir: Path, *, power: bool = True) -> Analysis:
    """The decision object of a run directory (nothing written). Raises `UserError` when
    there is no store or nothing to compare. power=False skips the power simulation."""
    analysis = analyse(_read(run_dir), power=power)
    anatomy = read_anatomy(run_dir)  # the --anatomy runs, kept out of every verdict
    return analysis if anatomy is None else replace(analysis, anatomy=anatomy)


def sequential_state(run_dir: Path) -> SequentialResult | None:
    """A sequential study's verdicts after the seeds run so far; None for a fixed design.

    For the study driver, after every round: `stop` says whether every contrast is
    settled (or max_seeds reached) and `why`; otherwise `next_seeds` is how many seeds
    per arm the study should have after the next round. The verdicts, their looks and
    repeated intervals are exactly those `ablate report` shows for the same store.
    Seeds are used in run order, up to the last seed finished (done, diverged or
    failed) in every arm; an interrupted round's seeds wait until they finish.
    Raises `UserError` when there is no store.
    """
    return sequential_of(_read(run_dir, predictions=False))
