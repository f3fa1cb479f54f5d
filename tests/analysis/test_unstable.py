"""Where a flagged seed's curve departs from its arm's bulk (`ablate.analysis._unstable`),
against epochs worked out by hand."""

from __future__ import annotations

import math

import numpy as np

from ablate.analysis._unstable import departure, seed_curves

NAN = math.nan
# Two bulk seeds: their range per epoch is [1, 2], [2, 3], [3, 4], [4, 5], [5, 6].
BULK = np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 3.0, 4.0, 5.0, 6.0]])


def test_departure_is_where_the_curve_leaves_the_range_for_good() -> None:
    # out at epoch 2, back in at 3, out from 4 on: departs from 4, not 2
    assert departure(np.array([1.5, 0.0, 3.5, 0.0, 0.0]), BULK) == 4
    # out from the first epoch
    assert departure(np.array([9.0, 9.0, 9.0, 9.0, 9.0]), BULK) == 1
    # above the range counts as outside too
    assert departure(np.array([1.5, 2.5, 3.5, 4.5, 7.0]), BULK) == 5
    # ends inside: no lasting departure, whatever happened before
    assert departure(np.array([0.0, 0.0, 0.0, 0.0, 5.5]), BULK) is None
    # a range's edge is inside it
    assert departure(np.array([1.0, 3.0, 3.0, 5.0, 6.0]), BULK) is None
    # no bulk to compare with
    assert departure(np.array([0.0] * 5), BULK[:0]) is None


def test_departure_reads_a_shorter_curve_to_its_last_value_and_skips_unlogged_epochs() -> None:
    # the curve stops after epoch 3 (NaN later): out at epochs 2 and 3, so from 2
    assert departure(np.array([1.5, 0.0, 0.0, NAN, NAN]), BULK) == 2
    # the bulk logged nothing at epoch 3: that epoch is not outside, so the run restarts
    bulk = BULK.copy()
    bulk[:, 2] = NAN
    assert departure(np.array([0.0, 0.0, 0.0, 0.0, 0.0]), bulk) == 4


def rows(values: dict[int, list[float]]) -> list[dict[str, object]]:
    return [{"seed": s, "epoch": e + 1, "val_accuracy": None if math.isnan(v) else v}
            for s, curve in values.items() for e, v in enumerate(curve)]


def test_seed_curves_measure_the_flagged_seed_against_the_finished_unflagged_ones() -> None:
    curves = {0: [0.50, 0.60, 0.70, 0.80], 1: [0.52, 0.62, 0.72, 0.82],
              2: [0.51, 0.40, 0.45, 0.50],  # flagged: below from epoch 2 on
              3: [0.10, NAN, NAN, NAN]}  # diverged in epoch 2: not part of the bulk
    outcomes = {0: 0.8, 1: 0.82, 2: 0.5, 3: "diverged", 4: "failed"}
    c = seed_curves("arm", rows(curves), outcomes, (2,), "accuracy")
    assert c is not None
    assert c.seeds == (0, 1, 2, 3) and c.bulk == (0, 1) and c.diverged == (3,)
    assert c.key == "val_accuracy" and c.departs == (2,) and c.early(2)
    assert not c.early(3)  # 3 of 4 epochs: the second half
    assert c.last_epoch(3) == 1
    # nothing flagged, a quantity without epochs, or no epoch rows: no curves
    assert seed_curves("arm", rows(curves), outcomes, (), "accuracy") is None
    assert seed_curves("arm", rows(curves), outcomes, (2,), "value") is None
    assert seed_curves("arm", [], outcomes, (2,), "accuracy") is None
