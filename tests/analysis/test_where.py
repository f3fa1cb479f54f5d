"""Where a difference lives and what more seeds buy (`analysis._where`), against
independent float64 NumPy computations and a brute-force sign-flip inversion."""

import itertools

import numpy as np
import pytest

from ablate.analysis._where import CONFIDENCE, GALLERY, where
from ablate.predictions import Predictions, SplitPredictions

N_TEST = 120


def _run(r: np.random.Generator, label: np.ndarray, skill: float) -> Predictions:
    """A run whose test probabilities favour the label with weight `skill`."""
    n = len(label)
    logits = r.normal(0, 1, (n, 10))
    logits[np.arange(n), label] += skill
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    test = SplitPredictions(np.arange(n, dtype=np.int32), label.astype(np.uint8),
                            probs.argmax(1).astype(np.uint8),
                            probs[np.arange(n), label].astype(np.float32))
    empty = SplitPredictions(*(np.zeros(0, t) for t in (np.int32, np.uint8, np.uint8,
                                                           np.float32)))
    return Predictions({"val_a": empty, "val_b": empty, "test": test}, probs.astype(np.float32))


@pytest.fixture(scope="module")
def runs() -> dict[tuple[str, int], Predictions]:
    r = np.random.default_rng(7)
    label = np.repeat(np.arange(10), N_TEST // 10)
    return {(arm, s): _run(r, label, skill) for arm, skill in (("base", 1.5), ("arm", 2.0))
            for s in range(8)}


def _brute_interval(d: np.ndarray, confidence: float) -> tuple[float, float]:
    """Invert the sign-flip test by listing every nonempty subset mean (Hartigan)."""
    n = len(d)
    means = sorted(float(np.mean(d[list(c)])) for k in range(1, n + 1)
                   for c in itertools.combinations(range(n), k))
    k = int(np.floor((1 - confidence) / 2 * 2 ** n))
    return (means[k - 1], means[-k]) if k > 0 else (-np.inf, np.inf)


def test_per_digit_differences_and_intervals_match_brute_force(runs: dict) -> None:
    seeds = list(range(8))
    w = where(["base", "arm"], "base", seeds, runs, [])
    (c,) = w.contrasts
    assert c.seeds == tuple(seeds) and len(c.digits) == 10
    for d in c.digits:
        acc = {arm: np.array([(runs[(arm, s)].splits["test"].predicted[
            runs[(arm, s)].splits["test"].label == d.digit] == d.digit).mean()
            for s in seeds]) for arm in ("arm", "base")}
        diffs = acc["arm"] - acc["base"]
        assert d.images == N_TEST // 10
        assert d.arm == pytest.approx(acc["arm"].mean(), abs=1e-12)
        assert d.difference == pytest.approx(diffs.mean(), abs=1e-12)
        low, high = _brute_interval(diffs, CONFIDENCE)
        assert (d.low, d.high) == pytest.approx((low, high), abs=1e-9)


def test_confusion_difference_and_flips_are_the_counts(runs: dict) -> None:
    seeds = [0, 1, 2, 3]
    (c,) = where(["base", "arm"], "base", seeds, runs, []).contrasts

    def conf(arm: str) -> np.ndarray:
        m = np.zeros((10, 10))
        for s in seeds:
            t = runs[(arm, s)].splits["test"]
            for y, p in zip(t.label, t.predicted, strict=True):
                m[y, p] += 1
        return m / len(seeds) / (N_TEST // 10)

    assert np.allclose(c.confusion, conf("arm") - conf("base"), atol=1e-12)
    # the diagonal is the per-digit accuracy difference
    assert np.allclose(np.diag(c.confusion), [d.difference for d in c.digits], atol=1e-12)
    right = {arm: np.array([runs[(arm, s)].splits["test"].correct for s in seeds])
             for arm in ("arm", "base")}
    flips = (right["arm"] != right["base"]).sum(0)
    assert [f.flips for f in c.flips] == sorted(flips, reverse=True)[:GALLERY]
    for f in c.flips:
        assert f.flips == flips[f.image]
        assert f.arm_right == right["arm"][:, f.image].sum()
        assert f.baseline_right == right["base"][:, f.image].sum()
    assert c.flipped_images == int((flips > 0).sum())
    assert c.pixels is None  # no images given


def test_seed_ensemble_averages_the_probabilities(runs: dict) -> None:
    seeds = list(range(8))
    w = where(["base", "arm"], "base", seeds, runs, [])
    for e in w.ensembles:
        probs = np.array([runs[(e.arm, s)].test_probs for s in seeds], dtype=np.float64)
        label = runs[(e.arm, 0)].splits["test"].label
        single = [(p.argmax(1) == label).mean() for p in probs]
        assert e.single == pytest.approx(np.mean(single), abs=1e-12)
        assert e.single_sd == pytest.approx(np.std(single, ddof=1), abs=1e-12)
        assert e.by_size == pytest.approx([(probs[:k].mean(0).argmax(1) == label).mean()
                                           for k in range(1, 9)], abs=1e-12)
        assert e.ensemble == e.by_size[-1] and e.gain == e.ensemble - e.single
    # many noisy seeds: the ensemble beats the average single run
    assert all(e.gain > 0 for e in w.ensembles)


def test_runs_without_predictions_leave_their_seeds_out(runs: dict) -> None:
    some = {k: v for k, v in runs.items() if k != ("arm", 3)}
    w = where(["base", "arm"], "base", list(range(8)), some, [("arm", 3)])
    assert w.contrasts[0].seeds == (0, 1, 2, 4, 5, 6, 7)
    assert {e.arm: e.seeds for e in w.ensembles} == {"base": 8, "arm": 7}
    assert w.missing == (("arm", 3),) and w.available
    none = where(["base", "arm"], "base", list(range(8)), {}, [("arm", 0)])
    assert not none.available and none.contrasts == () and none.ensembles == ()


def test_reach_is_the_two_way_interval_of_the_paired_correctness(runs: dict) -> None:
    seeds = list(range(8))
    (c,) = where(["base", "arm"], "base", seeds, runs, [], rope=0.01).contrasts
    r = c.reach
    assert r is not None and (r.seeds, r.images, r.rope) == (8, N_TEST, 0.01)
    acc = {arm: np.array([runs[(arm, s)].splits["test"].accuracy() for s in seeds])
           for arm in ("arm", "base")}
    diffs = acc["arm"] - acc["base"]
    assert r.mean_diff == pytest.approx(diffs.mean(), abs=1e-12)
    # the one-way interval is the sign-flip inversion over the seeds' test differences
    assert (r.one_way_low, r.one_way_high) == pytest.approx(_brute_interval(diffs, 0.95),
                                                            abs=1e-9)
    # new images add variance: the two-way interval is the wider here
    assert r.high - r.low > r.one_way_high - r.one_way_low
    assert 0 < r.image_share < 1
    one = where(["base", "arm"], "base", [0], runs, []).contrasts[0]
    assert one.reach is None  # one seed: no seed variance to estimate
