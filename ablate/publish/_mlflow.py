"""A study in MLflow, through MLflow's own client (the `mlflow` extra).

The study is an experiment named after it; one parent run (tag `ablate.kind` = study)
carries the study's settings as params and the report (report.md, .html, .json and
its figures) and the study record as artifacts; every finished run is a child run
(tag `mlflow.parentRunId`) with

- params: the factor levels by factor name (`dropout` = off), `seed`, and the resolved
  config as `config.<field>`;
- tags: `ablate.arm`, `ablate.seed`, `ablate.status` (done | diverged | failed),
  `ablate.config_hash`, `ablate.key`;
- metrics: the final ones under their `ablate runs` names (a diverged run's missing
  values as NaN), `seconds`, `epochs`, `best_epoch`, and the history per epoch as
  `epoch/<name>` with the epoch as the step;
- artifacts: the checkpoint and its JSON sidecar (the run's card) under `checkpoint/`;
- status FINISHED (done, diverged) or FAILED.

Publishing again adds only what is new: a run already there with the same arm, seed and
config hash is kept; one with another config hash (the run was redone) is replaced.
So `ablate analyze STORE --arm ablate.arm --seed seed --metric crossfit_val_accuracy`
reads back exactly the runs `ablate runs` lists.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from ablate.errors import UserError
from ablate.extras import need
from ablate.publish._study import EPOCH_METRICS, PublishedRun, StudyFiles
from ablate.sources import quiet_mlflow, tracking_uri

__all__ = ["publish_mlflow"]

_BATCH = 900  # MLflow's log_batch takes at most 1000 metrics per call


def _probe(uri: str) -> None:
    """A tracking server that does not answer fails in seconds here, not after MLflow's
    own retries (minutes)."""
    if not uri.startswith(("http:", "https:")):
        return
    import httpx

    try:
        httpx.get(uri.rstrip("/") + "/health", timeout=5.0)
    except httpx.HTTPError as exc:
        raise UserError(f"the MLflow server at {uri} does not answer ({type(exc).__name__})"
                        ) from None


def _experiment(client: Any, name: str, uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return str(exp.experiment_id)
    location = None
    if uri.startswith("sqlite:"):  # else MLflow puts artifacts in ./mlruns of the cwd
        db = Path(uri.removeprefix("sqlite:///"))
        location = (db.parent / "mlartifacts" / name).resolve().as_uri()
    return str(client.create_experiment(name, artifact_location=location))


def _log(client: Any, run_id: str, *, params: dict[str, str] | None = None,
         tags: dict[str, str] | None = None, metrics: list[tuple[str, float, int]] | None = None
         ) -> None:
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    ms = [Metric(k, v, now, step) for k, v, step in metrics or []]
    ps = [Param(k, v[:6000]) for k, v in (params or {}).items()]
    ts = [RunTag(k, v) for k, v in (tags or {}).items()]
    for i in range(0, max(len(ms), 1), _BATCH):
        client.log_batch(run_id, metrics=ms[i:i + _BATCH], params=ps if i == 0 else [],
                         tags=ts if i == 0 else [])


def _child(client: Any, exp_id: str, parent: str, study: StudyFiles, r: PublishedRun) -> None:
    run = r.run
    tags = {"mlflow.parentRunId": parent, "ablate.kind": "run", "ablate.study": study.study.name,
            "ablate.arm": run.arm, "ablate.seed": str(run.seed), "ablate.status": run.status,
            "ablate.config_hash": run.config_hash, "ablate.key": r.key}
    if run.error:
        tags["ablate.error"] = run.error[:5000]
    created = client.create_run(exp_id, run_name=f"{run.arm} seed {run.seed}", tags=tags)
    run_id = created.info.run_id
    params = {**dict(r.levels), "seed": str(run.seed), **r.config}
    history = [(f"epoch/{k}", float(e[k]), int(e["epoch"])) for e in r.history
               for k in EPOCH_METRICS if e.get(k) is not None]
    final = [(k, v, 0) for k, v in r.metrics.items()]
    _log(client, run_id, params=params, metrics=history + final)
    for f in r.files:
        client.log_artifact(run_id, str(f), artifact_path="checkpoint")
    client.set_terminated(run_id, "FAILED" if run.status == "failed" else "FINISHED")


def publish_mlflow(study: StudyFiles, target: str | None) -> str:
    """Log the study to the MLflow store at `target` (a folder, an SQLite file or a
    tracking URI; None: MLflow's own default, MLFLOW_TRACKING_URI or ./mlflow.db).
    Returns a line saying what was logged. Raises `UserError` when the store cannot be
    reached or written."""
    need("mlflow", "mlflow", "logging to MLflow")
    with quiet_mlflow(target or ""):
        import mlflow
        from mlflow.tracking import MlflowClient

        uri = tracking_uri(target) if target else mlflow.get_tracking_uri()
    _probe(uri)
    with quiet_mlflow(uri):
        try:
            return _publish(MlflowClient(tracking_uri=uri), study, uri)
        except UserError:
            raise
        except Exception as exc:  # MlflowException, OSError...: the store, not the study
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise UserError(f"cannot log to MLflow at {uri} ({type(exc).__name__}: {first})"
                            ) from None


def _publish(client: Any, study: StudyFiles, uri: str) -> str:
    s = study.study
    exp_id = _experiment(client, s.name, uri)
    found = client.search_runs([exp_id], filter_string="tags.`ablate.kind` = 'study'")
    if found:
        parent = found[0].info.run_id
    else:
        parent = client.create_run(exp_id, run_name=s.name, tags={
            "ablate.kind": "study", "ablate.study": s.name,
            "mlflow.note.content": s.question}).info.run_id
        _log(client, parent, params={
            "metric": s.metric.name, "rope": repr(s.rope), "validation": str(s.validation),
            "design": s.design, "baseline": s.baseline.name, "seeds": str(len(s.seeds)),
            "arms": ", ".join(a.name for a in s.arms),
            **{f"factor.{f.name}": ", ".join(f.levels) for f in s.factors}})
    existing: dict[str, tuple[str, str]] = {}  # arm/seed -> (run id, key)
    token = None
    while True:
        page = client.search_runs([exp_id], filter_string="tags.`ablate.kind` = 'run'",
                                  max_results=1000, page_token=token)
        for r in page:
            key = r.data.tags.get("ablate.key", "")
            existing[key.rsplit("/", 1)[0]] = (r.info.run_id, key)
        token = page.token
        if not token:
            break
    added = replaced = kept = 0
    for r in study.runs:
        slot = f"{r.run.arm}/{r.run.seed}"
        if slot in existing:
            run_id, key = existing[slot]
            if key == r.key:
                kept += 1
                continue
            client.delete_run(run_id)
            replaced += 1
        else:
            added += 1
        _child(client, exp_id, parent, study, r)
    for f in study.report:
        client.log_artifact(parent, str(f), artifact_path="report" if f.suffix != ".png"
                            else "report/report_files")
    with tempfile.TemporaryDirectory(prefix="ablate-publish-") as tmp:
        path = Path(tmp) / "study.json"  # the record, as MLflow logs files
        path.write_text(study.record.to_json(), encoding="utf-8")
        client.log_artifact(parent, str(path))
    client.set_terminated(parent, "FINISHED")
    report = "with its report" if study.report else "without a report (none written yet)"
    return (f"MLflow {uri}: experiment {s.name!r}: {added} runs added, {replaced} replaced, "
            f"{kept} already there, {report}")
