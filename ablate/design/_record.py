"""The study record: what a run directory's runs are runs *of*, stored beside them.

`ablate study` writes one `StudyRecord` into the store before training: the study as
resolved after command-line overrides (arms with their full run configs, seeds,
metric, ROPE, validation size), the study file's text, the training subset, the device
and software that trained it, and the MNIST checksums. Reports and exports are built
from this record, never by re-parsing the study file, so a run directory written today
can be reported after the study-file format changes.

Run directories written before the record existed keep a key-value `meta` table with
the study file's text; `legacy_record` rebuilds a record from it once (parsing that
text with the current parser and the run configs exactly as trained).
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ablate.design._parse import parse_study
from ablate.design._study import Arm, Factor, Sequential, Study
from ablate.engine import run_config_from_dict
from ablate.errors import UserError
from ablate.metric import metric
from ablate.store import Store

__all__ = ["RECORD_FORMAT", "StudyRecord", "legacy_record", "read_record"]

RECORD_FORMAT = 1  # bump when a field changes meaning; `from_json` refuses newer formats


@dataclass(frozen=True)
class StudyRecord:
    study: Study  # as trained: overrides (--seeds, --epochs) applied
    study_file: str  # the path it was read from
    source: str  # the study file's text, for the report's appendix
    subset: int | None = None  # --subset N: the first N training images, else all
    device: str = ""  # e.g. "cpu", "cuda:0"
    provenance: Mapping[str, Any] = field(default_factory=dict)  # versions, device name
    data_sha256: Mapping[str, str] | None = None  # MNIST arrays trained on (None: not yet)
    origin: Mapping[str, Any] | None = None  # runs trained elsewhere (`ablate analyze`):
    # where they were read from and how (source, kind, fields, skipped); never stored

    def to_json(self) -> str:
        s = self.study
        return json.dumps({
            "format": RECORD_FORMAT,
            "study": {
                "name": s.name, "question": s.question, "seeds": list(s.seeds),
                "metric": s.metric.name, "rope": s.rope, "estimand": s.estimand,
                "validation": s.validation,
                "design": s.design, "source": s.source,
                "sequential": None if s.sequential is None else {
                    "min": s.sequential.min, "max": s.sequential.max,
                    "step": s.sequential.step},
                "factors": [{"name": f.name, "levels": list(f.levels), "baseline": f.baseline}
                            for f in s.factors],
                "arms": [{"name": a.name, "levels": [list(lv) for lv in a.levels],
                          "config": None if a.config is None else a.config.to_dict()}
                         for a in s.arms],
            },
            "study_file": self.study_file, "source": self.source, "subset": self.subset,
            "device": self.device, "provenance": dict(self.provenance),
            "data_sha256": None if self.data_sha256 is None else dict(self.data_sha256),
        }, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str = "the store") -> "StudyRecord":
        try:
            d = json.loads(text)
            if d["format"] > RECORD_FORMAT:
                raise UserError(f"{where}: the study record has format {d['format']}, newer "
                                f"than this ablate understands ({RECORD_FORMAT}); upgrade ablate")
            s = d["study"]
            study = Study(
                name=s["name"], question=s["question"], seeds=tuple(s["seeds"]),
                metric=metric(s["metric"]), rope=float(s["rope"]),
                validation=int(s["validation"]), design=s["design"],
                factors=tuple(Factor(f["name"], tuple(f["levels"]), f["baseline"])
                              for f in s["factors"]),
                arms=tuple(Arm(a["name"], tuple((f, lv) for f, lv in a["levels"]),
                               None if a["config"] is None else run_config_from_dict(a["config"]))
                           for a in s["arms"]),
                source=s["source"],
                sequential=Sequential(**s["sequential"]) if s.get("sequential") else None,
                # records written before the study key existed were decided on the mean
                estimand=str(s.get("estimand", "mean")))
            return cls(study=study, study_file=d["study_file"], source=d["source"],
                       subset=d["subset"], device=d["device"], provenance=d["provenance"],
                       data_sha256=d["data_sha256"])
        except (KeyError, TypeError, ValueError) as exc:
            damaged = f"{where}: the study record is damaged ({type(exc).__name__}: {exc}); "
            raise UserError(damaged + "rerun `ablate study STUDY.toml --fresh` to rebuild it",
                            api=damaged + "rerun ablate.run_study(STUDY, fresh=True) to "
                            "rebuild it") from None


def legacy_record(meta: Mapping[str, Any], configs: Mapping[str, Mapping[str, Any]],
                  where: str) -> StudyRecord:
    """A record for a store written before records existed, from its `meta` table.

    meta: the old key-value table (`study_source`, `study_file`, `seeds`, `metric`, `rope`,
    `validation`, `subset`, `device`, `provenance`, `data_sha256`). configs: arm -> the
    run config as stored with its runs (what was trained, e.g. after `--epochs`).
    """
    source = meta.get("study_source")
    if not source:
        raise UserError(f"{where}: the store has no study record; rerun "
                        "`ablate study STUDY.toml` to record it")
    study = parse_study(source, str(meta.get("study_file") or "<stored study>"))
    if meta.get("seeds"):  # `--seeds N` overrides the file; the store kept what was planned
        study = replace(study, seeds=tuple(int(s) for s in meta["seeds"]))
    if meta.get("metric"):
        study = replace(study, metric=metric(str(meta["metric"])))
    if meta.get("rope") is not None:
        study = replace(study, rope=float(meta["rope"]))
    study = replace(study, estimand="mean")  # what these old stores were decided on
    study = replace(study, arms=tuple(
        replace(a, config=run_config_from_dict(dict(configs[a.name])))
        if a.name in configs else a for a in study.arms))
    return StudyRecord(study=study, study_file=str(meta.get("study_file") or ""),
                       source=source, subset=meta.get("subset"),
                       device=str(meta.get("device") or ""),
                       provenance=meta.get("provenance") or {},
                       data_sha256=meta.get("data_sha256"))


def read_record(store: Store) -> StudyRecord:
    """The study record of a run directory (rebuilt from the legacy `meta` table for
    stores written before records existed)."""
    text = store.record_text()
    if text is not None:
        return StudyRecord.from_json(text, str(store.dir))
    configs: dict[str, Mapping[str, Any]] = {}
    for run in store.runs():
        configs.setdefault(run.arm, store.run_config(run.arm, run.seed))
    return legacy_record(store.legacy_meta(), configs, str(store.dir))
