"""Pairing per contrast, factorial sides, simple effects, and the pairing's measured worth.

Values are hand-picked; comparisons are exact (==) where the same floats are combined
the same way, and 1e-15 where a sum is formed in another order.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ablate.stats import (
    DIVERGED,
    Outcome,
    factorial,
    pair,
    pairing,
    simple_effects,
)


def test_pair_keeps_each_contrasts_own_seeds_and_lists_the_rest() -> None:
    arm: dict[int, Outcome] = {0: 0.91, 1: "failed", 2: DIVERGED, 3: 0.93}
    base: dict[int, Outcome] = {0: 0.90, 1: 0.90, 2: 0.90, 3: "pending"}  # seed 4: missing
    c = pair(arm, base, [0, 1, 2, 3, 4], name="arm", reference="base", resolution=None)
    assert c.seeds == (0, 2)
    assert c.missing == ((1, "arm failed"), (3, "base pending"),
                         (4, "arm missing; base missing"))
    assert c.diverged_a.tolist() == [False, True] and c.both_done.tolist() == [True, False]
    assert c.diffs == pytest.approx([0.01], abs=1e-15)


def test_factorial_sides_by_hand() -> None:
    seeds = [0, 1]
    cells = {("on", "after"): {0: 1.0, 1: 2.0}, ("on", "off"): {0: 2.0, 1: 3.0},
             ("off", "after"): {0: 3.0, 1: 5.0}, ("off", "off"): {0: 6.0, 1: 9.0}}
    main_a, main_b, inter = factorial(cells, seeds, factor_a="drop", factor_b="bn",
                                      levels_a=("on", "off"), levels_b=("after", "off"),
                                      resolution=1.0)
    assert main_a.name == "drop=off (main effect)" and main_a.reference == "drop=on"
    assert main_a.diffs.tolist() == [3.0, 4.5]  # ((3+6)-(1+2))/2, ((5+9)-(2+3))/2
    assert main_b.diffs.tolist() == [2.0, 2.5]  # ((2+6)-(1+3))/2, ((3+9)-(2+5))/2
    assert inter.diffs.tolist() == [2.0, 3.0]  # (6-2)-(3-1), (9-3)-(5-2)
    assert inter.kind == "interaction" and main_a.kind == "main"
    assert main_a.resolution == 0.5 and inter.resolution == 1.0  # averages: half grid
    a_at = simple_effects(cells, seeds, factor_a="drop", factor_b="bn",
                          levels_a=("on", "off"), levels_b=("after", "off"), resolution=1.0)
    assert [c.diffs.tolist() for c in a_at] == [[2.0, 3.0], [4.0, 6.0]]
    assert a_at[0].name == "drop=off at bn=after"
    # The interaction is the difference of the two simple effects, seed by seed.
    assert (a_at[1].diffs - a_at[0].diffs).tolist() == inter.diffs.tolist()


def test_factorial_divergence_is_worst_for_a_main_effect_and_undefined_for_interaction() -> None:
    seeds = [0, 1, 2]
    ok: dict[int, Outcome] = {0: 1.0, 1: 1.0, 2: 1.0}
    cells: dict[tuple[str, str], dict[int, Outcome]] = {
        ("a0", "b0"): ok, ("a0", "b1"): ok, ("a1", "b0"): {0: 1.0, 1: DIVERGED, 2: 1.0},
        ("a1", "b1"): {0: 1.0, 1: 1.0, 2: "failed"}}
    main_a, _, inter = factorial(cells, seeds, factor_a="A", factor_b="B",
                                 levels_a=("a0", "a1"), levels_b=("b0", "b1"),
                                 resolution=None)
    assert main_a.seeds == (0, 1) and main_a.diverged_a.tolist() == [False, True]
    assert inter.seeds == (0,)
    assert dict(inter.missing)[1].startswith("a cell diverged")
    assert "failed" in dict(main_a.missing)[2]


def test_pairing_numbers_against_numpy() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0.97, 0.003, 16)
    b = 0.1 * a + rng.normal(0.9, 0.002, 16)
    p = pairing(a, b)
    assert p.correlation == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-15)
    assert p.var_paired == pytest.approx(np.var(a - b, ddof=1), rel=1e-12)
    assert p.var_unpaired == pytest.approx(np.var(a, ddof=1) + np.var(b, ddof=1), rel=1e-12)
    # var(a-b) = var(a) + var(b) - 2 cov(a, b): the identity the ratio rests on.
    cov = np.cov(a, b)[0, 1]
    assert p.var_paired == pytest.approx(p.var_unpaired - 2 * cov, rel=1e-9)
    z = math.atanh(p.correlation)
    assert p.correlation_ci == pytest.approx(
        (math.tanh(z - 1.959963984540054 / math.sqrt(13)),
         math.tanh(z + 1.959963984540054 / math.sqrt(13))), rel=1e-12)
    assert math.isnan(pairing([1.0], [2.0]).correlation)
