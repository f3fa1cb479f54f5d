from ablate.stats._contrast import Contrast, Family, compare, compare_contrasts, factorial_2x2
from ablate.stats._crossfit import CrossFit, crossfit
from ablate.stats._paired import complete_pairs
from ablate.stats._power import min_seeds_for_sign_flip
from ablate.stats._ranks import Friedman, friedman

__all__ = [
    "Contrast",
    "CrossFit",
    "Family",
    "Friedman",
    "compare",
    "compare_contrasts",
    "complete_pairs",
    "crossfit",
    "factorial_2x2",
    "friedman",
    "min_seeds_for_sign_flip",
]
