"""The statistics of a study: exact paired inference, family-wise decisions, power,
divergence, pairing, sequential designs, the rank summary, the reach of a difference
to new images (`two_way`) and the anatomy of an arm's spread (`anatomy`). (The
cross-fitted metric a run records is computed in `ablate.engine`.)

Everything is a pure function of arrays; randomness only through generators keyed by
name (`stream`). The analysis (`ablate.analysis`) imports from here.
"""

from ablate.stats._anatomy import Anatomy, Source, anatomy
from ablate.stats._contrast import (
    ESTIMAND_JOINT,
    ESTIMAND_MEAN,
    ESTIMAND_MEDIAN,
    ESTIMANDS,
    MULTIPLICITY,
    Contrast,
    Family,
    compare,
    compare_contrasts,
    decide,
)
from ablate.stats._divergence import Divergence, divergence, rank_p
from ablate.stats._effects import Wins, d_z, t_p, wilcoxon_p, wins
from ablate.stats._family import holm
from ablate.stats._grid import grid_label, to_grid
from ablate.stats._joint import JOINT_EXACT_MAX_SEEDS, Joint, step_down
from ablate.stats._outcomes import (
    DIVERGED,
    ContrastData,
    Outcome,
    factorial,
    pair,
    simple_effects,
)
from ablate.stats._outliers import OUTLIER_ALPHA, Outliers, outliers
from ablate.stats._pairing import Pairing, pairing
from ablate.stats._power import (
    MAX_SEEDS,
    TARGET_POWER,
    Power,
    floor_seeds,
    min_seeds_for_sign_flip,
    power_for,
    sd_upper,
)
from ablate.stats._ranks import Friedman, bonferroni_dunn_q, friedman, nemenyi_q
from ablate.stats._sequential import (
    FIRST_LOOK,
    LAST_LOOK,
    Look,
    SequentialDesign,
    SequentialResult,
    SequentialVerdict,
    sequential_verdicts,
)
from ablate.stats._signflip import SignFlip, sign_flip
from ablate.stats._streams import stream
from ablate.stats._twosample import EXACT_MAX_SPLITS, rank_sum_p, two_sample
from ablate.stats._twoway import TwoWay, two_way
from ablate.stats._verdict import CLAIMS, DECISIONS, INTERACTION_DECISIONS

__all__ = [
    "FIRST_LOOK",
    "LAST_LOOK",
    "MAX_SEEDS",
    "TARGET_POWER",
    "CLAIMS",
    "DECISIONS",
    "DIVERGED",
    "INTERACTION_DECISIONS",
    "ESTIMAND_JOINT",
    "ESTIMAND_MEAN",
    "ESTIMAND_MEDIAN",
    "ESTIMANDS",
    "JOINT_EXACT_MAX_SEEDS",
    "Joint",
    "MULTIPLICITY",
    "OUTLIER_ALPHA",
    "Outliers",
    "outliers",
    "Contrast",
    "ContrastData",
    "Divergence",
    "Family",
    "Friedman",
    "Look",
    "Outcome",
    "Pairing",
    "Power",
    "SequentialDesign",
    "SequentialResult",
    "SequentialVerdict",
    "SignFlip",
    "Wins",
    "bonferroni_dunn_q",
    "compare",
    "compare_contrasts",
    "d_z",
    "decide",
    "divergence",
    "factorial",
    "floor_seeds",
    "friedman",
    "holm",
    "min_seeds_for_sign_flip",
    "nemenyi_q",
    "pair",
    "pairing",
    "power_for",
    "rank_p",
    "sd_upper",
    "sequential_verdicts",
    "sign_flip",
    "simple_effects",
    "step_down",
    "stream",
    "t_p",
    "grid_label",
    "to_grid",
    "wilcoxon_p",
    "wins",
    "EXACT_MAX_SPLITS",
    "rank_sum_p",
    "two_sample",
    "TwoWay",
    "two_way",
    "Anatomy",
    "Source",
    "anatomy",
]
