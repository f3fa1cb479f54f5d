"""One configuration per run directory: where a study's runs go, and the refusal to mix.

`run_dir` names the directory: OUT/<study name> with `--out`, else runs/<study name>,
followed by the overrides that change what a run is, so `--epochs 3 --subset 10000`
writes to `runs/dropout-epochs3-subset10000` and never touches `runs/dropout`. Seeds only
add runs of the same configuration, so `--seeds` and `--until-decided` keep the study's
own directory. `check_one_config` stops a study (and its dry run) before anything trains
when the directory holds finished runs of another resolved configuration (epochs,
subset, layers, optimizer, thread count, device type, ...: any field the study's arms
share), naming what differs. A field that the study's factors vary may change for an
arm (an edited level): that arm's runs train again and replace its old ones, as before.
"""

from pathlib import Path

from ablate.conventions import upgrade_config_dict
from ablate.design import Study
from ablate.errors import UserError
from ablate.options import StudyOptions
from ablate.store import (
    UNKNOWN,
    Store,
    differences,
    finished_configs,
    flatten,
    spell,
    varied_fields,
)

__all__ = ["DEFAULT_OUT", "check_one_config", "run_dir"]

DEFAULT_OUT = Path("runs")  # where runs go without --out


def run_dir(study_name: str, options: StudyOptions) -> Path:
    """OUT/<name> with `--out`; else runs/<name>[-epochsN][-subsetN][-threadsN] (module
    doc)."""
    if options.out is not None:
        return options.out / study_name
    parts = [study_name]
    for flag, value in (("epochs", options.epochs), ("subset", options.subset),
                        ("threads", options.threads)):
        if value is not None:
            parts.append(f"{flag}{value}")
    return DEFAULT_OUT / "-".join(parts)


def check_one_config(study: Study, store: Store, settings: dict[str, object]) -> None:
    """A `UserError` (one line) when a finished run stored for one of `study`'s arms was
    trained with another value of a field that every arm shares now (`settings`, the data
    settings of the config hash, included); adding seeds is allowed."""
    asked = {a.name: flatten({**a.run_config.to_dict(), **settings}) for a in study.arms}
    differ: dict[str, tuple[object, object]] = {}
    varied = varied_fields(list(asked.values()))
    for (arm, _), was in finished_configs(store, upgrade_config_dict).items():
        if arm in asked:
            for key, pair in differences(was, asked[arm]).items():
                if key not in varied:
                    differ.setdefault(key, pair)
    if not differ:
        return
    stored = spell([(k, was) for k, (was, _) in differ.items()])
    now = spell([(k, now) for k, (_, now) in differ.items()])
    old = (f" ({UNKNOWN}: not recorded by the ablate that trained them)"
           if any(UNKNOWN in pair for pair in differ.values()) else "")
    where = f"{store.dir} holds runs with {stored}{old}; this run asks {now}"
    raise UserError(f"{where}: use another --out, --fresh to replace them, or the same "
                    "settings", api=f"{where}: use another out=..., fresh=True to replace "
                    "them, or the same settings")
