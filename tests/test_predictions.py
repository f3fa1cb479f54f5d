"""Per-image predictions: every new run stores its kept weights' predictions on the
validation halves and the test set; they reproduce the run's stored accuracies exactly;
`ablate.read_predictions` gives the documented long table; old run directories have none
and say so."""

import shutil
from pathlib import Path

import numpy as np
import pytest

import ablate
from ablate.data import split, validation_halves
from ablate.predictions import COLUMNS, GRID, Predictions, SplitPredictions, decode, encode
from ablate.store import Store
from tests.data_fixtures import SUBSET
from tests.study_harness import SUBSET_RUNTIME, dropout_study

STUDY = dropout_study("preds", "Does dropout change validation accuracy on a tiny MLP?",
                      seeds=2, width=32, dropout=0.3)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("preds")
    (root / "preds.toml").write_text(STUDY)
    ablate.run_study(root / "preds.toml", runtime=SUBSET_RUNTIME, out=str(root / "runs"),
                     report=False)
    return root / "runs" / "preds"


def test_stored_predictions_reproduce_each_runs_accuracies_exactly(run_dir: Path) -> None:
    """predicted == label counts give the stored val, half and test accuracies to the
    last bit (both arms trained as one packed cohort); the images are the fixed
    validation split's, with MNIST's own labels."""
    mnist = np.load(SUBSET)
    _, val_idx = split(mnist["y_train"], 400)
    half = validation_halves(mnist["y_train"][val_idx])
    store = Store.open_existing(run_dir)
    try:
        runs = store.runs()
        epochs = {(e["arm"], e["seed"], e["epoch"]): e for e in store.epochs()}
        assert len(runs) == 4 and all(r.status == "done" for r in runs)
        for r in runs:
            p = store.predictions(r.arm, r.seed)
            assert p is not None
            a, b, t = (p.splits[k] for k in ("val_a", "val_b", "test"))
            assert np.array_equal(a.image, val_idx[half == 0])
            assert np.array_equal(b.image, val_idx[half == 1])
            assert np.array_equal(t.image, np.arange(len(mnist["y_test"])))
            for s, labels in ((a, mnist["y_train"]), (b, mnist["y_train"]),
                              (t, mnist["y_test"])):
                assert np.array_equal(s.label, labels[s.image])
            e = epochs[(r.arm, r.seed, r.best_epoch)]
            assert int(a.correct.sum()) / len(a.image) == e["val_accuracy_a"]
            assert int(b.correct.sum()) / len(b.image) == e["val_accuracy_b"]
            assert p.val_accuracy() == r.val_accuracy
            assert t.accuracy() == r.test_accuracy
            # p_true is the label's probability; the probabilities are a distribution
            # whose argmax is the prediction wherever it is not a near-tie
            assert np.allclose(p.test_probs.sum(1), 1.0, atol=10 / GRID)
            assert np.allclose(p.test_probs[np.arange(len(t.label)), t.label], t.p_true,
                               atol=1e-3)
            top = np.sort(p.test_probs, 1)
            clear = top[:, -1] - top[:, -2] > 2 / GRID
            assert np.array_equal(p.test_probs.argmax(1)[clear], t.predicted[clear])
            assert ((a.p_true > 0) & (a.p_true <= 1)).all()
            # a few tens of KiB for the subset's 400 + 500 images
            assert store.predictions_path(r.arm, r.seed).stat().st_size < 40_000
    finally:
        store.close()


def test_read_predictions_is_one_row_per_run_split_and_image(run_dir: Path) -> None:
    pytest.importorskip("pandas")
    preds = ablate.read_predictions(run_dir)
    df = preds.to_pandas()
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 4 * (400 + 500) and not preds.missing
    assert set(df["split"]) == {"val_a", "val_b", "test"}
    assert not df.duplicated(["arm", "seed", "split", "image"]).any()
    runs = {(r.arm, r.seed): r for r in ablate.read_runs(run_dir)}
    df["correct"] = df["predicted"] == df["label"]
    for (arm, seed), g in df.groupby(["arm", "seed"]):
        r = runs[(arm, seed)]
        assert g[g.split == "test"]["correct"].mean() == r.test_accuracy
        assert g[g.split != "test"]["correct"].mean() == r.val_accuracy
    cols = preds.columns()  # the same without pandas
    assert set(cols) == set(COLUMNS) and len(cols["image"]) == len(df)
    assert np.array_equal(cols["p_true"], df["p_true"].to_numpy())


def _predictions(n: int, seed: int) -> Predictions:
    r = np.random.default_rng(seed)
    probs = r.dirichlet(np.ones(10) * 0.2, n).astype(np.float32)
    label = r.integers(0, 10, n).astype(np.uint8)

    def split_of(image: np.ndarray) -> SplitPredictions:
        m = len(image)
        return SplitPredictions(image.astype(np.int32), label[:m], probs[:m].argmax(1)
                                .astype(np.uint8), probs[np.arange(m), label[:m]])

    return Predictions({"val_a": split_of(np.sort(r.choice(60000, n // 2, replace=False))),
                        "val_b": split_of(np.sort(r.choice(60000, n // 3, replace=False))),
                        "test": split_of(np.arange(n))}, probs)


def test_the_file_round_trips_within_its_stated_precision() -> None:
    p = _predictions(300, 1)
    q, config_hash = decode(encode(p, "abc"))
    assert config_hash == "abc"
    for name, s in p.splits.items():
        t = q.splits[name]
        assert np.array_equal(s.image, t.image) and np.array_equal(s.label, t.label)
        assert np.array_equal(s.predicted, t.predicted)
        # float16: relative precision 2^-11, also for tiny probabilities
        assert np.allclose(t.p_true, s.p_true, rtol=2 ** -11, atol=6e-8)
    assert np.abs(q.test_probs - p.test_probs).max() <= 0.5 / GRID + 1e-7
    with pytest.raises(ValueError):
        decode(b"not a zip file")


def test_a_file_from_another_config_or_a_damaged_one_is_not_read(run_dir: Path,
                                                                   tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    store = Store(copy)
    try:
        r = store.runs()[0]
        store.write_predictions(r.arm, r.seed, _predictions(50, 2), "another config")
        assert store.predictions(r.arm, r.seed) is None
        store.predictions_path(r.arm, r.seed).write_bytes(b"garbage")
        assert store.predictions(r.arm, r.seed) is None
        assert (r.arm, r.seed) in store.prediction_set().missing
    finally:
        store.close()


def test_an_old_run_directory_has_none_and_lists_its_runs_as_missing(tmp_path: Path) -> None:
    legacy = Path(__file__).parent / "data" / "legacy_run"
    shutil.copy(legacy / "runs.sqlite", tmp_path / "runs.sqlite")
    preds = ablate.read_predictions(tmp_path)
    assert preds.runs == () and len(preds.missing) > 0
    assert "without predictions" in repr(preds)
