"""A cohort's saved state: resuming from it is bit-identical to never having stopped.

The oracle is the uninterrupted run itself: every number training returns (each epoch's
metrics, each replica's kept epoch, metrics and kept tensors) must be equal bit for bit
(NaN equal to NaN), not close, since saving and restoring copy exact bytes and leave the
arithmetic alone. Only wall times may differ.
"""

import math

import numpy as np
import pytest
import torch

from ablate.data import load_npz
from ablate.engine import (
    CohortMLP,
    CohortResult,
    DeviceData,
    SavedState,
    SaveEvery,
    StateMismatch,
    decode_state,
    prepare_data,
    state_digest,
    train_cohort,
)
from ablate.engine._results import Epoch
from ablate.metric import METRICS
from tests.data_fixtures import SUBSET
from tests.engine.test_train import _config

SEEDS = [0, 1, 2]
EPOCHS = 4


@pytest.fixture(scope="module")
def data() -> DeviceData:
    # 300 training images (5 steps of 64 an epoch, the last one short) and 400 validation.
    return prepare_data(load_npz(SUBSET), validation=400, subset=300, device="cpu")


class Stop(Exception):
    """The injected interrupt."""


def assert_same_run(a: CohortResult, b: CohortResult) -> None:
    """Every number of two results equal bit for bit (wall times aside)."""
    assert len(a.history) == len(b.history)
    for ea, eb in zip(a.history, b.history, strict=True):
        assert ea.epoch == eb.epoch
        for name in Epoch.__dataclass_fields__:
            if name not in ("epoch", "seconds"):
                assert np.array_equal(getattr(ea, name), getattr(eb, name), equal_nan=True), \
                    (ea.epoch, name)
    assert a.val_half_sizes == b.val_half_sizes
    for ra, rb in zip(a.replicas, b.replicas, strict=True):
        assert (ra.seed, ra.status, ra.best_epoch) == (rb.seed, rb.status, rb.best_epoch)
        assert ra.metrics.keys() == rb.metrics.keys()
        for k, v in ra.metrics.items():
            assert v == rb.metrics[k] or (math.isnan(v) and math.isnan(rb.metrics[k])), k
        assert ra.state.keys() == rb.state.keys()
        for k, t in ra.state.items():
            assert torch.equal(t, rb.state[k]), (ra.seed, k)
        # the kept epoch's per-image predictions travel with the state too
        assert (ra.predictions is None) == (rb.predictions is None), ra.seed
        if ra.predictions is not None and rb.predictions is not None:
            for split, pa in ra.predictions.splits.items():
                pb = rb.predictions.splits[split]
                for field in ("image", "label", "predicted", "p_true"):
                    assert np.array_equal(getattr(pa, field), getattr(pb, field)), (split, field)
            assert np.array_equal(ra.predictions.test_probs, rb.predictions.test_probs)


def _train(config: object, data: DeviceData, **kw: object) -> CohortResult:
    return train_cohort(config, SEEDS, data, select_on=METRICS["val_accuracy"],  # type: ignore[arg-type]
                        **kw)  # type: ignore[arg-type]


CASES = [("sgd", "after"), ("momentum", "before"), ("adam", "after")]


@pytest.mark.parametrize(("optimizer", "batch_norm"), CASES)
def test_a_cohort_resumed_after_any_epoch_equals_the_uninterrupted_one(
        data: DeviceData, optimizer: str, batch_norm: str) -> None:
    """Batch norm and dropout on (their statistics and masks are state), for SGD, momentum
    and Adam (velocity; moments and the step count in its bias corrections)."""
    config = _config(optimizer, batch_norm=batch_norm, dropout=0.3, epochs=EPOCHS)
    plain = _train(config, data)
    saved: list[SavedState] = []
    watched = _train(config, data, on_state=saved.append)
    assert_same_run(plain, watched)  # saving changes nothing
    assert [(s.epoch, s.steps) for s in saved] == [(k, 0) for k in range(1, EPOCHS)]
    for s in saved:  # interrupted after epoch k, then rerun from its state
        resumed_states: list[SavedState] = []
        resumed = _train(config, data, resume=s.data, on_state=resumed_states.append)
        assert_same_run(plain, resumed)
        assert [r.epoch for r in resumed_states] == list(range(s.epoch + 1, EPOCHS))
        # the state saved after a resume is the uninterrupted run's (wall time aside)
        for r in resumed_states:
            _same_state(r, saved[r.epoch - 1], config)


def _same_state(a: SavedState, b: SavedState, config: object) -> None:
    digest = state_digest([config] * len(SEEDS), SEEDS, torch.float32)  # type: ignore[list-item]
    sa, sb = decode_state(a.data, digest), decode_state(b.data, digest)
    for name in ("model", "kept", "accumulators"):
        ta, tb = getattr(sa, name), getattr(sb, name)
        assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    assert all(torch.equal(x, y) for x, y in zip(sa.order, sb.order, strict=True))
    assert sa.optimizer_t == sb.optimizer_t


def test_an_interrupt_raised_after_epoch_k_loses_only_the_epochs_after_it(
        data: DeviceData) -> None:
    """The hook raises as epoch 2's state is handed on: that state is complete, and the
    rerun trains epochs 3 and 4 only (it reports nothing for epochs 1-2)."""
    config = _config("adam", dropout=0.5, epochs=EPOCHS)
    plain = _train(config, data)
    kept: list[SavedState] = []

    def hook(s: SavedState) -> None:
        kept.append(s)
        if s.epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        _train(config, data, on_state=hook)
    seen: list[int] = []
    resumed = _train(config, data, resume=kept[-1].data, on_epoch=lambda e: seen.append(e.epoch))
    assert seen == [3, 4]
    assert_same_run(plain, resumed)


def test_a_state_saved_inside_an_epoch_resumes_from_that_step(data: DeviceData) -> None:
    """`SaveEvery(seconds=...)` as small as a nanosecond saves after every step (each
    step takes far longer), so every step boundary of every epoch is tried."""
    config = _config("momentum", dropout=0.3, epochs=2)
    plain = _train(config, data)
    saved: list[SavedState] = []
    _train(config, data, on_state=saved.append, save_every=SaveEvery(seconds=1e-9))
    inside = [s for s in saved if s.steps]
    assert {(s.epoch, s.steps) for s in inside} == {(e, k) for e in (0, 1) for k in (1, 2, 3, 4)}
    for s in inside:
        assert_same_run(plain, _train(config, data, resume=s.data))


def test_a_diverged_replica_stays_diverged_after_a_resume(data: DeviceData) -> None:
    class Poisoned(CohortMLP):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            with torch.no_grad():
                self.dense[0].weight[1, 0, 0] = math.inf

    config = _config("sgd", epochs=3)
    plain = _train(config, data, model=Poisoned)
    saved: list[SavedState] = []
    _train(config, data, model=Poisoned, on_state=saved.append)
    # resumed with the healthy model class: the state, not the factory, decides
    resumed = _train(config, data, resume=saved[0].data)
    assert [r.status for r in resumed.replicas] == ["done", "diverged", "done"]
    assert_same_run(plain, resumed)


def test_a_torn_altered_or_foreign_state_is_refused(data: DeviceData) -> None:
    config = _config("adam", epochs=2)
    saved: list[SavedState] = []
    _train(config, data, on_state=saved.append)
    blob = saved[0].data
    digest = state_digest([config] * len(SEEDS), SEEDS, torch.float32)
    assert decode_state(blob, digest).epoch == 1
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 1
    for bad, why in [(blob[:len(blob) // 2], "checksum"), (bytes(flipped), "checksum"),
                     (b"", "not a cohort state"), (b"garbage\n" + blob, "not a cohort state"),
                     (blob.replace(b"state 1 ", b"state 9 ", 1), "format 9")]:
        with pytest.raises(StateMismatch, match=why):
            decode_state(bad, digest)
    other = _config("adam", epochs=2, dropout=0.1)  # another cohort's configs
    with pytest.raises(StateMismatch, match="another cohort"):
        _train(other, data, resume=blob)
    with pytest.raises(StateMismatch, match="another cohort"):  # other seeds
        train_cohort(config, [0, 1, 3], data, select_on=METRICS["val_accuracy"], resume=blob)
    with pytest.raises(StateMismatch, match="another cohort"):  # another dtype
        _train(config, data, resume=blob, dtype=torch.float64)


def test_save_every_is_checked() -> None:
    for bad in [dict(epochs=0), dict(seconds=0.0), dict(seconds=-1.0)]:
        with pytest.raises(ValueError, match="SaveEvery"):
            SaveEvery(**bad)  # type: ignore[arg-type]
