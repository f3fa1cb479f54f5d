"""An MLflow tracking store -> records, through MLflow's own client (the `mlflow` extra).

The store: a local `mlruns/` folder (MLflow's file store), an SQLite file (`*.db`) or
any tracking URI MLflow understands (`sqlite:///...`, `http://host:5000`). One
experiment is read (`experiment`, or the only one with runs); deleted runs are not.

Each run's fields: `params.NAME`, `tags.NAME`, `metrics.NAME` (the latest value, as
MLflow shows it), `run_id`, `run_name`, and `status`: MLflow's run status in the words
`ablate runs` uses (FINISHED -> done, FAILED and KILLED -> failed, RUNNING -> running,
SCHEDULED -> pending). A field can be named without its group where that is
unambiguous (`seed` for `params.seed`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ablate.errors import UserError
from ablate.extras import need
from ablate.sources._table import Record

__all__ = ["RUN_STATUS", "is_store", "quiet_mlflow", "read_mlflow", "tracking_uri"]

RUN_STATUS = {"FINISHED": "done", "FAILED": "failed", "KILLED": "failed",
              "RUNNING": "running", "SCHEDULED": "pending"}
_URI_SCHEMES = ("sqlite:", "file:", "http:", "https:", "postgresql:", "mysql:",
                "databricks")


def is_store(source: str) -> bool:
    """Whether `source` names an MLflow store: a tracking URI, an SQLite file, or a
    folder laid out as MLflow's file store (experiments with a meta.yaml)."""
    if source.startswith(_URI_SCHEMES):
        return True
    path = Path(source)
    if path.is_file():
        return path.suffix in (".db", ".sqlite")
    return path.is_dir() and any(path.glob("*/meta.yaml"))


def tracking_uri(source: str) -> str:
    """A path as the tracking URI MLflow wants (an SQLite file for *.db and *.sqlite, a
    file store for a folder); URIs as they are."""
    if source.startswith(_URI_SCHEMES):
        return source
    path = Path(source).resolve()
    return f"sqlite:///{path}" if path.suffix in (".db", ".sqlite") else path.as_uri()


@contextlib.contextmanager
def quiet_mlflow(uri: str) -> Iterator[None]:
    """Calls into MLflow without its own deprecation warnings (they are about MLflow's
    internals, not the user's runs) or its INFO logging, and with the file store
    allowed where the user chose one (MLflow 3 refuses it unless told)."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    before = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    if uri.startswith("file:"):
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            with contextlib.suppress(ImportError):
                from sqlalchemy.exc import SADeprecationWarning  # MLflow's SQL store
                warnings.simplefilter("ignore", SADeprecationWarning)
            yield
    finally:
        logger.setLevel(level)
        if before is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = before


def _experiment(client: Any, name: str | None, uri: str) -> Any:
    experiments = client.search_experiments()
    if name is not None:
        for e in experiments:
            if e.name == name:
                return e
        names = ", ".join(e.name for e in experiments) or "none"
        raise UserError(f"{uri}: no experiment named {name!r}; experiments: {names}")
    with_runs = [e for e in experiments
                 if client.search_runs([e.experiment_id], max_results=1)]
    if len(with_runs) == 1:
        return with_runs[0]
    if not with_runs:
        raise UserError(f"{uri}: no experiment has any run")
    raise UserError(f"{uri}: {len(with_runs)} experiments have runs "
                    f"({', '.join(e.name for e in with_runs)}); choose one with "
                    "--experiment NAME")


def read_mlflow(source: str, experiment: str | None = None) -> list[Record]:
    """Every active run of one experiment of the store, as records (module doc)."""
    need("mlflow", "mlflow", "reading an MLflow store")
    uri = tracking_uri(source)
    with quiet_mlflow(uri):
        from mlflow.tracking import MlflowClient

        try:
            client = MlflowClient(tracking_uri=uri)
            exp = _experiment(client, experiment, uri)
            runs, token = [], None
            while True:
                page = client.search_runs([exp.experiment_id], max_results=1000,
                                          page_token=token)
                runs += list(page)
                token = page.token
                if not token:
                    break
        except UserError:
            raise
        except Exception as exc:  # MlflowException, a connection error: not our bug
            raise UserError(f"{uri}: cannot read the MLflow store ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    runs.sort(key=lambda r: (r.info.start_time or 0, r.info.run_name or "", r.info.run_id))
    out = []
    for r in runs:
        fields: dict[str, object] = {
            "run_id": r.info.run_id, "run_name": r.info.run_name,
            "status": RUN_STATUS.get(r.info.status, r.info.status.lower())}
        fields.update({f"params.{k}": v for k, v in r.data.params.items()})
        fields.update({f"tags.{k}": v for k, v in r.data.tags.items()})
        fields.update({f"metrics.{k}": v for k, v in r.data.metrics.items()})
        out.append(Record(fields, f"{exp.name}: run {r.info.run_id} ({r.info.run_name})"))
    return out
