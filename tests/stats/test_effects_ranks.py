"""Effect sizes, reference tests, multiplicity and rank summaries against SciPy and tables.

Tolerances: 1e-12 where SciPy computes the same float64 quantity by another route;
published tables are compared to half their last printed digit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given
from hypothesis import strategies as hs

from ablate.stats import (
    bonferroni_dunn_q,
    d_z,
    friedman,
    holm,
    nemenyi_q,
    t_p,
    wilcoxon_p,
    wins,
)

ALPHA = 0.05


def test_wilcoxon_and_t_match_scipy() -> None:
    rng = np.random.default_rng(4)
    d = rng.normal(0.003, 0.004, 12)
    assert wilcoxon_p(d) == pytest.approx(st.wilcoxon(d).pvalue, abs=1e-12)
    assert t_p(d) == pytest.approx(st.ttest_1samp(d, 0.0).pvalue, abs=1e-12)
    tied = np.array([1.0, 2, 2, 3, 0, -1])  # ties and a zero: SciPy enumerates 2^5
    assert wilcoxon_p(tied) == pytest.approx(st.wilcoxon(tied).pvalue, abs=1e-12)
    assert wilcoxon_p(np.zeros(6)) == 1.0  # SciPy: nan and a warning
    assert t_p(np.zeros(6)) == 1.0 and t_p(np.full(6, 0.01)) == 0.0
    assert math.isnan(t_p(np.array([0.3])))


def test_d_z_and_wins_by_hand() -> None:
    assert d_z(np.array([1.0, 2.0, 3.0])) == 2.0
    assert d_z(np.array([-2.0, -2.0])) == -math.inf and math.isnan(d_z(np.zeros(4)))
    w = wins(np.array([1.0, 2.0, 0.0, -1.0, 3.0]))
    assert (w.wins, w.ties, w.n) == (3, 1, 5)
    ref = st.binomtest(3, 5).proportion_ci(method="exact")
    assert w.ci == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert wins(np.ones(10)).ci == pytest.approx((0.025 ** 0.1, 1.0), rel=1e-9)
    assert wins(np.array([-1.0, -2.0, 1.0]), higher_is_better=False).wins == 2


def test_holm_by_hand() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)


@given(hs.lists(hs.floats(0.0, 1.0), min_size=1, max_size=12))
def test_holm_is_the_sequential_procedure(p: list[float]) -> None:
    adj, raw = holm(p), np.array(p)
    order = np.argsort(raw, kind="stable")
    m, reject = len(p), np.zeros(len(p), bool)
    for i, j in enumerate(order):
        if raw[j] * (m - i) > ALPHA:
            break
        reject[j] = True
    assert np.array_equal(adj <= ALPHA, reject)


def test_friedman_matches_scipy() -> None:
    scores = np.random.default_rng(8).normal(size=(9, 4))  # (n_seeds, n_arms)
    res = friedman(scores, ["a", "b", "c", "d"])
    ref = st.friedmanchisquare(*scores.T)
    assert (res.statistic, res.p_value) == pytest.approx((ref.statistic, ref.pvalue), abs=1e-12)
    assert res.method == "Nemenyi"


@pytest.mark.parametrize(("k", "nemenyi", "dunn"), [(3, 2.343, 2.241), (4, 2.569, 2.394),
                                                     (5, 2.728, 2.498)])
def test_critical_values_match_demsar_2006(k: int, nemenyi: float, dunn: float) -> None:
    # Demsar's tables print three decimals (truncated or rounded): 1e-3.
    assert nemenyi_q(k) == pytest.approx(nemenyi, abs=1e-3)
    assert bonferroni_dunn_q(k) == pytest.approx(dunn, abs=1e-3)


def test_a_versus_baseline_design_gets_the_bonferroni_dunn_difference() -> None:
    scores = np.random.default_rng(1).normal(size=(10, 4))
    vs = friedman(scores, ["base", "b", "c", "d"], baseline="base")
    pairs = friedman(scores, ["base", "b", "c", "d"])
    assert vs.method == "Bonferroni-Dunn" and vs.baseline == "base"
    # Three comparisons instead of six: a smaller critical difference.
    assert vs.cd == pytest.approx(2.394 * math.sqrt(4 * 5 / 60), abs=1e-3) and vs.cd < pairs.cd
