"""Runs trained anywhere -> the same `Analysis` a run directory gives (`ablate analyze`).

A `RunTable` (`ablate.sources`) and the options become the analysis's usual input: a
`Study` built from the table (its arms, baseline first; factors from the arm fields;
the seeds seen; a `Metric` of the given name, direction and grid; the ROPE) wrapped in
a `StudyRecord` whose `origin` says where the runs came from, and the runs as
`SourcedRun`s. From there it is `_analysis.analyse`, unchanged: the same estimand code,
pairing, decisions, error guarantees, sequential looks, and (in `ablate.report`) the
same sentences and report.json.

Factors: with one arm field whose values are ablate's own arm names ('dropout=off',
'a=x,b=y'), the levels are read from the names, so the prose names the factor; several
arm fields are factors themselves. Four arms of two two-level factors in every
combination are analysed as a 2x2 factorial, as a study file's would be.

Sequential (`next`): the runs are read as the looks of the group-sequential design of
`--until-decided` (first look `min_seeds`, then every `step`, up to `max_seeds`), on
the seeds in increasing order.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from ablate.analysis._analysis import Analysis, StudyData, analyse, sequential_of
from ablate.analysis._looks import seeds_run
from ablate.analysis._sourced import SourcedRun
from ablate.design import Arm, Factor, Sequential, Study, StudyRecord
from ablate.errors import UserError, suggest
from ablate.metric import METRICS, Metric
from ablate.options import AnalyzeOptions
from ablate.sources import Columns, RunTable, read_source
from ablate.stats import SequentialResult

__all__ = ["analyse_source", "external_data", "read_analysis_file", "sequential_source"]

_ARM_NAME = re.compile(r"^[^=,]+=[^=,]+(,[^=,]+=[^=,]+)*$")  # 'f=v' or 'f1=v1,f2=v2'


def _levels(table: RunTable) -> dict[str, tuple[tuple[str, str], ...]]:
    """arm -> its (factor, level) pairs (module doc)."""
    if len(table.columns.arm) == 1 and all(_ARM_NAME.match(a) for a in table.arms):
        parsed = {a: tuple(tuple(p.split("=", 1)) for p in a.split(",")) for a in table.arms}
        names = {tuple(f for f, _ in lv) for lv in parsed.values()}
        if len(names) == 1:  # every arm names the same factors, in one order
            return {a: tuple((f, v) for f, v in lv) for a, lv in parsed.items()}
    return {a: table.arm_levels(a) for a in table.arms}


def _metric(table: RunTable, options: AnalyzeOptions) -> Metric:
    name = table.columns.metric
    short = name.split(".", 1)[1] if name.startswith(("metrics.", "hparams.")) else name
    known = METRICS.get(short)
    higher = not options.lower_is_better
    if known is not None:  # one of ablate's own: shown as it is (percent for accuracy)
        return replace(known, split="external", higher=higher,
                       resolution=options.resolution)
    return Metric(short, "value", "external", f"{short}, as recorded by the runs' source",
                  short, higher=higher, resolution=options.resolution)


def _study(table: RunTable, options: AnalyzeOptions) -> Study:
    levels = _levels(table)
    if options.baseline not in table.arms:
        raise UserError(f"{table.source}: no arm named {options.baseline!r}"
                        f"{suggest(options.baseline, list(table.arms))}; --baseline must be "
                        f"one of: {', '.join(table.arms)}")
    if not (options.rope >= 0):
        raise UserError(f"--rope must be at least 0 (metric units), got {options.rope}")
    if not 0 < options.alpha < 1:
        raise UserError(f"--alpha must lie between 0 and 1, got {options.alpha}")
    order = [options.baseline, *(a for a in table.arms if a != options.baseline)]
    base = dict(levels[options.baseline])
    names = [f for f, _ in levels[options.baseline]]
    factors = []
    for f in names:
        seen = list(dict.fromkeys(dict(levels[a]).get(f, "") for a in order))
        factors.append(Factor(f, tuple(seen), base[f]))
    full = len(factors) >= 2 and len(order) == len(list(itertools.product(
        *(fa.levels for fa in factors)))) and len({levels[a] for a in order}) == len(order)
    seeds = tuple(sorted({r.seed for r in table.runs}))
    sequential = None
    if options.next:
        if not 1 <= options.min_seeds <= options.max_seeds:
            raise UserError(f"--next: the first look ({options.min_seeds} seeds) must come "
                            f"before the last (--max-seeds {options.max_seeds})")
        sequential = Sequential(options.min_seeds, options.max_seeds, options.step)
    source = Path(table.source).stem if "://" not in table.source else table.source
    name = options.name or re.sub(r"[^A-Za-z0-9_.-]+", "_", source).strip("_") or "analysis"
    what = ", ".join(table.columns.arm)
    return Study(
        name=name, question=options.question or
        f"Does the {what} change {_metric(table, options).name}?",
        seeds=seeds if sequential is None else seeds[:options.min_seeds],
        metric=_metric(table, options), rope=float(options.rope), validation=0,
        design="factorial" if full else "one_at_a_time", factors=tuple(factors),
        arms=tuple(Arm(a, levels[a], None) for a in order), source=table.source,
        sequential=sequential)


def external_data(table: RunTable, options: AnalyzeOptions, source_text: str = ""
                  ) -> StudyData:
    """The analysis input of a run table (module doc). source_text: the analysis file's
    text (or the command line), for the report's appendix."""
    study = _study(table, options)
    runs = tuple(SourcedRun(r.arm, r.seed, r.status, r.error, study.metric.name, r.value,
                            r.where) for r in table.runs)
    c = table.columns
    origin = {"source": table.source, "kind": table.kind,
              "fields": {"arm": list(c.arm), "seed": c.seed, "metric": c.metric,
                         "status": c.status},
              "skipped": list(table.skipped), "snapped": table.snapped}
    record = StudyRecord(study=study, study_file=table.source, source=source_text,
                         origin=origin)
    if study.sequential is None:
        return StudyData(record=record, runs=runs, epochs={})
    # The looks use seeds in increasing order: 0..max-1 as `seed_order` runs them.
    order = {s: i for i, s in enumerate(sorted({r.seed for r in runs}))}
    renumbered = tuple(replace(r, seed=order[r.seed]) for r in runs)
    record = replace(record, study=replace(study, seeds=tuple(range(options.min_seeds))))
    return StudyData(record=record, runs=renumbered, epochs={})


def _read(source: Any, options: AnalyzeOptions) -> RunTable:
    if not options.arm:
        raise UserError("name the arm field: --arm COL (or several, for factors)")
    if not options.metric:
        raise UserError("name the metric field: --metric COL")
    if not options.baseline:
        raise UserError("name the baseline arm: --baseline NAME")
    return read_source(source, Columns(tuple(options.arm), options.seed, options.metric,
                                       options.status),
                       experiment=options.experiment, resolution=options.resolution)


def analyse_source(source: Any, options: AnalyzeOptions, source_text: str = "") -> Analysis:
    """The analysis of runs from `source` (a table file, a DataFrame, an MLflow store or
    a TensorBoard folder): what `analyse_run_dir` is for a run directory."""
    data = external_data(_read(source, options), options, source_text)
    _check_pairs(data)
    return analyse(data, alpha=options.alpha, power=options.power and not options.next)


def _check_pairs(data: StudyData) -> None:
    """Every arm shares seeds with the baseline: contrasts pair by seed (a seed on one
    side only is left out of that contrast and listed)."""
    seeds = {a.name: {r.seed for r in data.runs if r.arm == a.name} for a in data.study.arms}
    base = data.study.baseline.name
    for arm, mine in seeds.items():
        if arm != base and not mine & seeds[base]:
            raise UserError(
                f"{data.record.study_file}: arm {arm!r} and the baseline {base!r} share no "
                "seed, so no contrast pairs them; the paired report needs runs of both on "
                "the same seeds (the unpaired test is ablate.stats.two_sample)")


def sequential_source(source: Any, options: AnalyzeOptions
                      ) -> tuple[SequentialResult, int]:
    """The group-sequential reading of the runs (`--next`): settled or not, and the
    seeds per arm the next look needs; with the seeds per arm finished in every arm."""
    data = external_data(_read(source, replace(options, next=True)),
                         replace(options, next=True))
    result = sequential_of(data, alpha=options.alpha)
    assert result is not None  # a sequential study always has one
    return result, len(seeds_run(data.study, data.runs))


def read_analysis_file(path: Path) -> tuple[AnalyzeOptions, str | None, str]:
    """A TOML analysis file -> (options, the source it names or None, its text). Keys
    are `AnalyzeOptions`' names (`arm` a string or a list) and `source` (the runs; a
    path relative to the file, or a URI)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except FileNotFoundError:
        raise UserError(f"{path}: no such analysis file") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None
    known = {f.name for f in fields(AnalyzeOptions)} | {"source"}
    for key in raw:
        if key not in known:
            raise UserError(f"{path}: unknown key {key!r}{suggest(key, sorted(known))}; "
                            f"keys: {', '.join(sorted(known))}")
    values = {k: v for k, v in raw.items() if k != "source"}
    if isinstance(values.get("arm"), list):
        values["arm"] = tuple(values["arm"])
    try:
        options = AnalyzeOptions(**values)
    except TypeError as exc:
        raise UserError(f"{path}: {exc}") from None
    source = raw.get("source")
    if isinstance(source, str) and "://" not in source and not Path(source).is_absolute():
        source = str(path.parent / source)
    return options, source, text
