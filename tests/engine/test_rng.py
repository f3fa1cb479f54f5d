"""The random streams: device-independent by construction, checked against oracles.

The dropout rule is checked bit for bit against an independent NumPy implementation of
its documentation (`ablate.checks._reference.dropout_keep`), and statistically: each unit
kept with probability 1 - p (p rounded to 2^-16), and no dependence between neighbouring
units, rows, steps, layers or seeds that a chi-square test of 2x2 tables would see.
"""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from ablate.checks import _reference as ref
from ablate.engine import CohortDropout
from ablate.engine import _rng as rng


def test_the_dropout_rule_matches_its_independent_oracle_bit_for_bit() -> None:
    r = np.random.default_rng(0)
    for _ in range(200):
        seed, layer = int(r.integers(0, 2**31)), int(r.integers(0, 6))
        step = int(r.integers(0, 2**31 - 1))
        rows, features, p = int(r.integers(1, 12)), int(r.integers(1, 12)), float(r.random())
        key = rng.dropout_key(seed, layer)
        assert key == ref.dropout_key(seed, layer)
        assert np.array_equal(rng.dropout_keep(key, step, rows, features, p).numpy(),
                              ref.dropout_keep(key, step, rows, features, p))


def test_a_cohort_layer_draws_each_replica_its_own_stream() -> None:
    """Replica s's mask depends on its key and the step only, not on its cohort mates."""
    keys = [rng.dropout_key(s, 1) for s in (3, 4, 5)]
    x = torch.ones(3, 32, 40, dtype=torch.float64)
    cohort = CohortDropout([0.5, 0.2, 0.7], keys)
    cohort.step = 9
    y = cohort(x)
    for s, (key, p) in enumerate(zip(keys, [0.5, 0.2, 0.7], strict=True)):
        alone = CohortDropout(p, [key])
        alone.step = 9
        assert torch.equal(alone(x[s:s + 1])[0], y[s])
        keep = torch.from_numpy(ref.dropout_keep(key, 9, 32, 40, p))
        assert torch.equal(y[s], keep.double() * (1 / (1 - p)))


def test_kept_fraction_is_one_minus_p() -> None:
    """Over 10^6 units the kept fraction is within 5 standard errors of 1 - p16, and p16
    (p rounded to a multiple of 2^-16) is within 2^-17 of p; p = 0.5 is exact."""
    assert rng.threshold16(0.5) == 0 and rng.threshold16(0.0) == -32768
    for p in (0.1, 0.3, 0.5, 0.9):
        keep = rng.dropout_keep(rng.dropout_key(7, 0), 11, 1000, 1000, p)
        p16 = (rng.threshold16(p) + 32768) / 65536
        assert abs(p16 - p) <= 2**-17
        se = math.sqrt(p16 * (1 - p16) / keep.numel())
        assert abs(keep.double().mean().item() - (1 - p16)) < 5 * se


def _independent(a: np.ndarray, b: np.ndarray) -> float:
    """p-value of a chi-square test that boolean arrays a and b are independent."""
    table = np.array([[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]])
    return float(stats.chi2_contingency(table)[1])


@pytest.mark.parametrize("pair", ["units", "rows", "steps", "layers", "seeds"])
def test_masks_show_no_dependence(pair: str) -> None:
    """Neighbouring units (the two halves of one hash word), rows, consecutive steps,
    layers and seeds: a chi-square test of independence passes at p > 1e-4 (a false
    alarm once in 10^4; the draws are fixed, so the verdict is too)."""
    def mask(seed: int = 1, layer: int = 0, step: int = 5) -> np.ndarray:
        return rng.dropout_keep(rng.dropout_key(seed, layer), step, 256, 512, 0.5).numpy()

    m = mask()
    a, b = {
        "units": (m[:, 0::2], m[:, 1::2]),
        "rows": (m[:-1], m[1:]),
        "steps": (m, mask(step=6)),
        "layers": (m, mask(layer=1)),
        "seeds": (m, mask(seed=2)),
    }[pair]
    assert _independent(a.ravel(), b.ravel()) > 1e-4


def test_permutations_are_drawn_on_the_cpu() -> None:
    """The minibatch order is torch.randperm from a CPU generator, whatever the device."""
    gens = [rng.seed_generator(s, "data") for s in (0, 1)]
    perms = rng.permutations(gens, 50, "cpu")
    again = [rng.seed_generator(s, "data") for s in (0, 1)]
    assert torch.equal(perms, torch.stack([torch.randperm(50, generator=g) for g in again]))
    assert all(g.device.type == "cpu" for g in gens)
