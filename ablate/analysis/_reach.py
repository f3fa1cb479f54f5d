"""Can a design decide at all? Before anything trains: with n paired seeds no exact
one-sided sign-flip p is below 1/2^n, so a claim whose smallest possible adjusted p is
above its level is impossible whatever the data. The dry run says so, with the fewest
seeds that make each claim possible.

The levels are those `analyse` decides at: 'better' or 'worse' at alpha/2 by the joint
step-down over the shared seeds, whose adjusted p reaches the floor 1/2^n itself when
every contrast's seeds agree in sign (so 6 seeds at alpha 0.05, whatever the number of
contrasts; Holm's bound, 1/2^n <= alpha/(2m), is the seeds that make the claim
possible whatever the other contrasts show); 'equivalent' at alpha by Holm, whose
first step is alpha/m. The fewest seeds come from `ablate.stats` (`floor_seeds`,
`min_seeds_for_sign_flip`), so they follow the procedure if it changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ablate.analysis._analysis import ALPHA
from ablate.analysis._contrasts import Factorial
from ablate.design import Study
from ablate.stats import floor_seeds, min_seeds_for_sign_flip

__all__ = ["Reach", "family_size", "reach"]


@dataclass(frozen=True)
class Reach:
    """What the planned seeds can decide, claim by claim."""

    seeds: int  # paired seeds per arm the design plans (a sequential design: its max)
    contrasts: int  # the family the claims are adjusted over
    alpha: float
    directional: int  # fewest seeds at which 'better' or 'worse' is possible (the
    # contrasts' seeds agreeing in sign)
    equivalent: int  # fewest seeds at which 'equivalent' is possible
    directional_any: int = 0  # fewest at which it is possible whatever the others show

    @property
    def floor(self) -> float:
        """The smallest one-sided exact p with the planned seeds: 1/2^n."""
        return 2.0 ** -self.seeds

    @property
    def can_claim_direction(self) -> bool:
        return self.seeds >= self.directional

    @property
    def can_claim_equivalence(self) -> bool:
        return self.seeds >= self.equivalent

    @property
    def fewest(self) -> int:
        """The fewest seeds at which every claim is possible."""
        return max(self.directional, self.equivalent)


def family_size(study: Study) -> int:
    """The contrasts decided as one family: a 2x2 factorial's two main effects, its
    interaction and its two simple effects, else each arm against the baseline."""
    return 5 if Factorial.of(study) is not None else len(study.arms) - 1


def reach(study: Study, alpha: float = ALPHA) -> Reach:
    """The claims the study's planned seeds can reach (module doc)."""
    m = max(1, family_size(study))
    seeds = study.sequential.max if study.sequential is not None else len(study.seeds)
    # 'equivalent' is tested at alpha (two one-sided tests), so its first Holm step is
    # alpha / m.
    return Reach(seeds=seeds, contrasts=m, alpha=alpha, directional=floor_seeds(alpha / 2),
                 equivalent=floor_seeds(alpha / m),
                 directional_any=min_seeds_for_sign_flip(alpha, m))
