"""Runs trained alike: the analysis refuses to pair runs whose configurations differ
beyond what the study varies.

The study driver keeps one configuration per run directory (`ablate.study`); this is
the defence for directories it never checked (written by an earlier ablate, or mixed
by hand). A field on which the study record's arms agree (or that none of them holds:
the data settings, the device type) must be the same in every analysed run; a field the
factors vary must be the same within each arm.
"""

from __future__ import annotations

from collections.abc import Sequence

from ablate.conventions import upgrade_config_dict
from ablate.design import Study
from ablate.errors import UserError
from ablate.store import UNKNOWN, Run, Store, finished_configs, flatten, varied_fields

__all__ = ["check_trained_alike"]


def check_trained_alike(store: Store, study: Study, runs: Sequence[Run]) -> None:
    """A `UserError` (one line) naming the first field on which two of `runs` (the
    finished ones) differ although the study pairs them as trained alike."""
    varied = varied_fields([flatten(a.config.to_dict()) for a in study.arms
                            if a.config is not None])
    wanted = {(r.arm, r.seed) for r in runs}
    stored = {k: v for k, v in finished_configs(store, upgrade_config_dict).items()
              if k in wanted}
    keys = sorted({k for config in stored.values() for k in config})
    first: dict[tuple[str, str | None], tuple[tuple[str, int], object]] = {}
    for (arm, seed), config in sorted(stored.items()):
        for key in keys:
            value = config.get(key, UNKNOWN)
            group = (key, arm if key in varied else None)
            seen = first.setdefault(group, ((arm, seed), value))
            if seen[1] != value:
                (arm0, seed0), value0 = seen
                what = (f"{store.dir}: runs trained differently would be paired: {key} is "
                        f"{value0} in {arm0} seed {seed0} but {value} in {arm} seed {seed}")
                raise UserError(f"{what}; train the study again into another --out, or with "
                                "--fresh", api=f"{what}; train the study again into another "
                                "out=..., or with fresh=True")
