"""Study files: TOML -> a typed, validated, frozen `Study` (see `_study`) -> arms.

A study names the question it answers, a `base` run configuration, and `factors` whose
levels replace whole keys of `base`. Arms are either one-factor-at-a-time against the
baseline (`design = "one_at_a_time"`) or the full factorial (`design = "factorial"`).
Every mistake is one `SpecError` line naming the file, the key path and what was
expected, with a "did you mean" for misspelt keys.
"""

import itertools
import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from ablate.conventions import CONVENTIONS, optimizer_config, optimizer_defaults
from ablate.data import TRAIN_IMAGES, VALIDATION_IMAGES
from ablate.design._study import (
    AnatomyPlan,
    Arm,
    Factor,
    Sequential,
    Study,
)
from ablate.engine import (
    ACTIVATIONS,
    BATCH_NORM,
    HYPERPARAMETERS,
    INIT_ALIASES,
    INITS,
    OPTIMIZERS,
    InitConfig,
    LayerConfig,
    OptimizerConfig,
    RunConfig,
)
from ablate.errors import UserError, suggest
from ablate.metric import METRICS, STUDY_METRICS
from ablate.stats import ESTIMANDS, FIRST_LOOK, LAST_LOOK

__all__ = [
    "BASE_KEYS", "FACTOR_KEYS", "LAYER_KEYS", "METRIC_ALIASES", "STUDY_KEYS",
    "SpecError", "load_study", "parse_study",
]

STUDY_KEYS = ("name", "question", "seeds", "metric", "rope", "estimand", "validation",
              "design", "base", "factors", "anatomy")
BASE_KEYS = ("conventions", "layers", "activation", "leaky_slope", "batch_norm", "bn_momentum",
             "bn_eps", "dropout", "init", "init_scale", "optimizer", "epochs", "batch_size",
             "threads")
LAYER_KEYS = ("units", "activation", "batch_norm", "dropout")
FACTOR_KEYS = ("baseline", "levels")
# Study files written before the cross-fitted metrics said "val_accuracy": they meant
# "compare on validation", which is now done selection-free (see ablate.metric).
METRIC_ALIASES = {"val_accuracy": "crossfit_val_accuracy", "val_loss": "crossfit_val_loss"}


class SpecError(UserError):
    """A study file that cannot be used; the message is one line."""


class _Table:
    """Reads one TOML table, failing with the file and key path on any mistake."""

    def __init__(self, data: object, path: str, source: str, allowed: tuple[str, ...]) -> None:
        self.path, self.source = path, source
        if not isinstance(data, Mapping):
            self.fail(path, f"expected a table, got {_kind(data)}")
        self.data: Mapping[str, Any] = data
        for key in data:
            if key not in allowed:
                self.fail(self.key_path(key), f"unknown key{suggest(str(key), allowed)} "
                                              f"(allowed: {', '.join(allowed)})")

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, path: str, message: str) -> NoReturn:
        raise SpecError(f"{self.source}: {path or '(top level)'}: {message}")

    def has(self, key: str) -> bool:
        return key in self.data

    def str_(self, key: str, default: str | None = None, choices: tuple[str, ...] = ()) -> str:
        value = self.data.get(key, default)
        if value is None:
            self.fail(self.key_path(key), "missing; expected a string")
        if not isinstance(value, str):
            self.fail(self.key_path(key), f"expected a string, got {_kind(value)}")
        if choices and value not in choices:
            self.fail(self.key_path(key), f"expected one of {', '.join(choices)}, got "
                                          f"{value!r}{suggest(value, choices)}")
        return value

    def int_(self, key: str, default: int | None = None, low: int = 0) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(self.key_path(key), f"expected an integer, got {_kind(value)}")
        if value < low:
            self.fail(self.key_path(key), f"expected an integer >= {low}, got {value}")
        return value

    def float_(self, key: str, default: float | None = None, low: float = 0.0,
               high: float = math.inf, high_open: bool = False) -> float:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(self.key_path(key), f"expected a number, got {_kind(value)}")
        value = float(value)
        too_high = value >= high if high_open else value > high
        if not math.isfinite(value) or value < low or too_high:
            bound = f"[{low}, {high}{')' if high_open else ']'}"
            self.fail(self.key_path(key), f"expected a number in {bound}, got {value}")
        return value


def _kind(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "an array", dict: "a table"}
    return names.get(type(value), type(value).__name__)


def load_study(path: Path | str) -> Study:
    """Parse and validate a study file. Raises `SpecError` (a `UserError`) on any mistake."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such study file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read the study file ({exc})") from None
    return parse_study(text, str(path))


def parse_study(text: str, source: str = "<study>") -> Study:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: not valid TOML: {exc}") from None
    top = _Table(data, "", source, STUDY_KEYS)
    name = top.str_("name")
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        top.fail("name", f"expected letters, digits, '-', '_' or '.', got {name!r} "
                         "(it names the run directory)")
    question = top.str_("question")
    seeds, sequential = _seeds(top)
    asked = top.str_("metric", "crossfit_val_accuracy", STUDY_METRICS + tuple(METRIC_ALIASES))
    metric = METRICS[METRIC_ALIASES.get(asked, asked)]
    rope = top.float_("rope", 0.002)
    estimand = top.str_("estimand", "median", ESTIMANDS)
    validation = top.int_("validation", VALIDATION_IMAGES)
    if validation >= TRAIN_IMAGES:
        top.fail("validation", f"expected fewer than {TRAIN_IMAGES} images, got {validation}")
    if validation == 0 and metric.split != "test":
        top.fail("metric", f"{metric.name!r} needs a validation split, but validation = 0; use "
                           "metric = \"test_accuracy\" (what the notebook watched) or set "
                           "validation = 10000")
    if validation > 0 and metric.split == "test":
        top.fail("metric", f"{metric.name!r} would compare arms on the test set; compare on "
                           "\"crossfit_val_accuracy\" or \"crossfit_val_loss\" (the test set "
                           "is reported, never tuned on)")
    design = top.str_("design", "one_at_a_time", ("one_at_a_time", "factorial"))
    base = top.data.get("base", {})
    _Table(base, "base", source, BASE_KEYS)
    factors = _factors(top.data.get("factors", {}), source)
    arms = _arms(base, factors, design, source)
    return Study(name=name, question=question, seeds=seeds, metric=metric, rope=rope,
                 validation=validation, design=design, factors=tuple(f for f, _ in factors),
                 arms=arms, source=source, sequential=sequential,
                 anatomy=_anatomy(top, tuple(a.name for a in arms)), estimand=estimand)


def _anatomy(top: _Table, arms: tuple[str, ...]) -> AnatomyPlan | None:
    """`anatomy = true | false` or `anatomy = { arm = "dropout=on", seeds = 16 }`."""
    value = top.data.get("anatomy", False)
    if isinstance(value, bool):
        return AnatomyPlan() if value else None
    t = _Table(value, "anatomy", top.source, ("arm", "seeds"))
    arm = t.str_("arm", None, arms) if t.has("arm") else None
    seeds = t.int_("seeds", None, low=2) if t.has("seeds") else None
    return AnatomyPlan(arm=arm, seeds=seeds)


def _seeds(top: _Table) -> tuple[tuple[int, ...], Sequential | None]:
    """`seeds = N`, a list of seeds, or `{ min = 6, max = 30, step = 2 }` (sequential:
    seeds 0..max-1 are used in order, min of them first)."""
    value = top.data.get("seeds", 10)
    if isinstance(value, Mapping):
        t = _Table(value, "seeds", top.source, ("min", "max", "step"))
        low = t.int_("min", FIRST_LOOK, low=1)
        high = t.int_("max", LAST_LOOK, low=1)
        step = t.int_("step", Sequential.step, low=1)
        if high < low:
            t.fail("seeds.max", f"expected max >= min ({low}), got {high}")
        return tuple(range(low)), Sequential(low, high, step)
    return _fixed_seeds(top, value), None


def _fixed_seeds(top: _Table, value: object) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            top.fail("seeds", f"expected a count >= 1 or a list of seeds, got {value}")
        return tuple(range(value))
    if isinstance(value, list) and value and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value):
        if len(set(value)) != len(value):
            top.fail("seeds", "expected distinct seeds, got duplicates")
        return tuple(value)
    top.fail("seeds", "expected a count >= 1, a non-empty list of non-negative integers, "
                      f"or a table {{ min, max }}, got {_kind(value)}")


def _factors(data: object, source: str) -> list[tuple[Factor, dict[str, Mapping[str, Any]]]]:
    if not isinstance(data, Mapping):
        raise SpecError(f"{source}: factors: expected a table of factors, got {_kind(data)}")
    out = []
    for fname, fdata in data.items():
        path = f"factors.{fname}"
        table = _Table(fdata, path, source, FACTOR_KEYS)
        levels = table.data.get("levels")
        if not isinstance(levels, Mapping) or len(levels) < 2:
            table.fail(f"{path}.levels", "expected a table of at least two levels")
        assert isinstance(levels, Mapping)
        overrides = {}
        for lname, ldata in levels.items():
            _Table(ldata, f"{path}.levels.{lname}", source, BASE_KEYS)
            overrides[str(lname)] = ldata
        names = tuple(overrides)
        baseline = table.str_("baseline", names[0], names)
        out.append((Factor(str(fname), names, baseline), overrides))
    return out


def _arms(base: Mapping[str, Any], factors: list[tuple[Factor, dict[str, Mapping[str, Any]]]],
          design: str, source: str) -> tuple[Arm, ...]:
    baseline = tuple((f.name, f.baseline) for f, _ in factors)
    combos: list[tuple[tuple[str, str], ...]] = [baseline]
    if design == "factorial":
        grid = itertools.product(*[[(f.name, lv) for lv in f.levels] for f, _ in factors])
        combos += [c for c in grid if c != baseline]
    else:
        for i, (f, _) in enumerate(factors):
            combos += [baseline[:i] + ((f.name, lv),) + baseline[i + 1:]
                       for lv in f.levels if lv != f.baseline]
    overrides = {f.name: ov for f, ov in factors}
    arms: list[Arm] = []
    seen: dict[RunConfig, str] = {}
    for combo in combos:
        merged = dict(base)
        where = "base"
        for fname, level in combo:
            level_overrides = overrides[fname][level]
            if level_overrides:
                where = f"factors.{fname}.levels.{level}"
            merged.update(level_overrides)
        config = _run_config(merged, where, source)
        name = _arm_name(combo, baseline, design)
        if config in seen:
            raise SpecError(f"{source}: arm {name!r} trains exactly the same configuration "
                            f"as arm {seen[config]!r}; make the levels differ")
        seen[config] = name
        arms.append(Arm(name=name, levels=combo, config=config))
    return tuple(arms)


def _arm_name(combo: tuple[tuple[str, str], ...], baseline: tuple[tuple[str, str], ...],
              design: str) -> str:
    """`factor=level` pairs; one-at-a-time designs of several factors name only the change."""
    if not combo:
        return "base"
    if design == "one_at_a_time" and len(combo) > 1:
        changed = [pair for pair, base_pair in zip(combo, baseline, strict=True)
                   if pair != base_pair]
        return ",".join(f"{f}={lv}" for f, lv in changed) or "baseline"
    return ",".join(f"{f}={lv}" for f, lv in combo)


def _run_config(merged: Mapping[str, Any], where: str, source: str) -> RunConfig:
    t = _Table(merged, where, source, BASE_KEYS)
    conventions = t.str_("conventions", "keras", tuple(CONVENTIONS))
    defaults = CONVENTIONS[conventions]
    activation = t.str_("activation", "relu", ACTIVATIONS)
    batch_norm = t.str_("batch_norm", "off", BATCH_NORM)
    dropout = t.float_("dropout", 0.0, high=1.0, high_open=True)
    layers = _layers(t, activation, batch_norm, dropout)
    init_name = t.str_("init", defaults.init, INITS + tuple(INIT_ALIASES))
    init_name = INIT_ALIASES.get(init_name, init_name)
    scale = None
    if init_name in ("uniform", "normal"):
        scale = t.float_("init_scale", 0.05)
        if scale <= 0:
            t.fail(t.key_path("init_scale"), "expected a positive number")
    elif t.has("init_scale"):
        t.fail(t.key_path("init_scale"), f"only used by init 'uniform' or 'normal', not "
                                         f"{init_name!r}; remove it")
    init = InitConfig(init_name, scale, truncated=defaults.truncated_normals)
    return RunConfig(
        conventions=conventions,  # type: ignore[arg-type]
        layers=layers,
        leaky_slope=t.float_("leaky_slope", defaults.leaky_slope),
        bn_momentum=t.float_("bn_momentum", defaults.bn_momentum, high=1.0),
        bn_eps=t.float_("bn_eps", defaults.bn_eps),
        bn_running_var=defaults.bn_running_var,
        init=init,
        optimizer=_optimizer(t, conventions),
        epochs=t.int_("epochs", 20, low=1),
        batch_size=t.int_("batch_size", 128, low=1),
        threads=t.int_("threads", 1, low=1),
    )


def _layers(t: _Table, activation: str, batch_norm: str, dropout: float
            ) -> tuple[LayerConfig, ...]:
    raw = t.data.get("layers")
    if not isinstance(raw, list) or not raw:
        t.fail(t.key_path("layers"), "expected a non-empty array of widths or layer tables, "
                                     "e.g. layers = [512, 128, 64]")
    assert isinstance(raw, list)
    layers = []
    for i, item in enumerate(raw):
        path = f"{t.key_path('layers')}[{i}]"
        if isinstance(item, int) and not isinstance(item, bool):
            item = {"units": item}
        lt = _Table(item, path, t.source, LAYER_KEYS)
        layers.append(LayerConfig(
            units=lt.int_("units", low=1),
            activation=lt.str_("activation", activation, ACTIVATIONS),
            batch_norm=lt.str_("batch_norm", batch_norm, BATCH_NORM),
            dropout=lt.float_("dropout", dropout, high=1.0, high_open=True),
        ))
    return tuple(layers)


def _optimizer(t: _Table, conventions: str) -> OptimizerConfig:
    raw = t.data.get("optimizer", "sgd")
    if isinstance(raw, str):
        raw = {"name": raw}
    ot = _Table(raw, t.key_path("optimizer"), t.source, ("name", *HYPERPARAMETERS))
    name = ot.str_("name", None, OPTIMIZERS)
    defaults = optimizer_defaults(conventions, name)
    for key in ot.data:
        if key != "name" and key not in defaults:
            ot.fail(ot.key_path(key), f"not a hyperparameter of {name!r} "
                                      f"(it takes: {', '.join(defaults)})")
    values = {key: ot.float_(key, default) for key, default in defaults.items()}
    if values["lr"] <= 0:
        ot.fail(ot.key_path("lr"), "expected a positive learning rate")
    for key in ("momentum", "rho", "beta1", "beta2"):
        if key in values and values[key] >= 1:
            ot.fail(ot.key_path(key), f"expected a number in [0, 1), got {values[key]}")
    return optimizer_config(conventions, name, **values)
