"""A real, tiny study run directory trained on the committed MNIST subset.

The tests and the load benchmark need a finished study (store + checkpoints) without
the full MNIST cache, which CI may lack. This trains the dropout study's two arms
through the real runner (`plan_study`, `queue_plan`, `execute`), on the subset's first
`subset` training images, in a few seconds on a CPU.
"""

from dataclasses import replace
from pathlib import Path

import torch

from ablate.conventions import optimizer_config
from ablate.data import load_npz
from ablate.design import StudyRecord, load_study
from ablate.engine import Epoch
from ablate.store import Store
from ablate.study import (
    CohortTask,
    InProcessExecutor,
    execute,
    load_data,
    plan_study,
    queue_plan,
)
from tests.data_fixtures import SUBSET, subset_expected

STUDY_FILE = Path(__file__).resolve().parents[2] / "studies" / "dropout.toml"


class _Quiet:
    """Progress nobody watches."""

    def started(self, task: CohortTask) -> None:
        pass

    def advanced(self, task: CohortTask, steps: int) -> None:
        pass

    def epoch(self, task: CohortTask, record: Epoch) -> None:
        pass


def make_run_dir(out: Path, *, seeds: int = 2, epochs: int = 3, subset: int = 1500,
                 validation: int = 500, batch_size: int = 32) -> Path:
    """Train the dropout study (seeds 0..seeds-1) into `out/<study name>/`; return it.

    The subset has 2,000 training images: `validation` of them are held out (fixed,
    stratified) and the first `subset` of the rest are trained on.
    """
    study = load_study(STUDY_FILE).with_overrides(seeds=seeds, epochs=epochs)
    # Adam (Keras defaults) instead of the notebook's SGD, and batches of 32: a usable
    # model in a few epochs, with enough steps for the batch-norm running statistics
    # (Keras momentum 0.99) to settle.
    adam = optimizer_config("keras", "adam")
    study = replace(study, validation=validation, arms=tuple(
        replace(a, config=replace(a.config, optimizer=adam, batch_size=batch_size))
        for a in study.arms))
    device = torch.device("cpu")
    store = Store(out / study.name)
    store.acquire()
    try:
        plan = plan_study(study, store, subset, device)
        queue_plan(store, plan)
        mnist = load_npz(SUBSET, subset_expected())
        data, checksums = load_data(study, subset, device, mnist), mnist.checksums()
        store.write_record(StudyRecord(study, str(STUDY_FILE), STUDY_FILE.read_text(), subset,
                                       str(device), {}, checksums).to_json())
        done = execute(study, store, plan, InProcessExecutor(data), checksums, _Quiet())
        assert done.failed == 0, "training the fixture study failed"
    finally:
        store.close()
    return out / study.name
