"""The configuration each finished run was trained with, flattened to be compared.

A run's row keeps the dict it was queued with: its run config (`RunConfig.to_dict()`)
and the data settings its hash covers (subset, validation, device type, ...).
`finished_configs` reads them for every finished run as flat field -> value maps
(`optimizer.lr`, `layers[0].units`); `differences` names the fields on which two of them
disagree, with `UNKNOWN` for a field an earlier ablate did not store; `spell` writes
fields as one line (`epochs=20, subset=None`). The study driver refuses to add runs of
another configuration to a run directory with them, and the analysis refuses to pair
runs that differ beyond what the study varies.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ablate.store._store import FINISHED, Store

__all__ = ["UNKNOWN", "differences", "finished_configs", "flatten", "spell", "varied_fields"]

UNKNOWN = "unknown"  # a field that the run's row does not hold (stored by an earlier ablate)
SHOWN = 6  # fields a message spells out at most


def flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, object]:
    """{"optimizer": {"lr": 0.1}, "layers": [{"units": 8}]} ->
    {"optimizer.lr": 0.1, "layers[0].units": 8}; other values as they are."""
    out: dict[str, object] = {}
    for key, v in value.items():
        _flatten_into(out, f"{prefix}{key}", v)
    return out


def _flatten_into(out: dict[str, object], name: str, v: object) -> None:
    if isinstance(v, Mapping):
        for key, inner in v.items():
            _flatten_into(out, f"{name}.{key}", inner)
    elif isinstance(v, list | tuple):
        for i, inner in enumerate(v):
            _flatten_into(out, f"{name}[{i}]", inner)
    else:
        out[name] = v


def finished_configs(store: Store, upgrade: Callable[[dict[str, Any]], dict[str, Any]]
                     = lambda d: d) -> dict[tuple[str, int], dict[str, object]]:
    """(arm, seed) -> the flat stored configuration of every finished (done or diverged)
    run; `upgrade` first brings an old stored dict to the current fields it can infer."""
    return {(r.arm, r.seed): flatten(upgrade(store.run_config(r.arm, r.seed)))
            for r in store.runs() if r.status in FINISHED}


def differences(was: Mapping[str, object], now: Mapping[str, object]
                ) -> dict[str, tuple[object, object]]:
    """field -> (was, now) for every field the two disagree on, in `was`'s order then
    `now`'s; a field only one holds is `UNKNOWN` in the other."""
    out = {}
    for key in [*was, *(k for k in now if k not in was)]:
        a, b = was.get(key, UNKNOWN), now.get(key, UNKNOWN)
        if a != b:
            out[key] = (a, b)
    return out


def varied_fields(configs: Sequence[Mapping[str, object]]) -> set[str]:
    """The fields on which some of `configs` disagree (or that only some hold): what a
    study's factors vary; every other field the configs share."""
    keys = {k for c in configs for k in c}
    return {k for k in keys
            if len({c.get(k, UNKNOWN) for c in configs}) > 1}


def spell(fields: Sequence[tuple[str, object]]) -> str:
    """'epochs=20, subset=None' (at most `SHOWN` fields, then how many more)."""
    text = ", ".join(f"{k}={v}" for k, v in fields[:SHOWN])
    more = len(fields) - SHOWN
    return text + (f" and {more} more field{'s' if more > 1 else ''}" if more > 0 else "")
