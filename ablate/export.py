"""`ablate export`: the best run of a study -> a servable model file plus its card.

The best run is chosen on the study's validation metric (never on test accuracy).
The export is the run's safetensors checkpoint, byte for byte (so its sha256 is the
one training recorded), and a JSON card (`ablate.card.ModelCard`) holding the
architecture, the input normalization, the class labels, provenance, the sha256 of
the weights and a self-test: a few probe inputs with the probabilities this export
computed, which the service recomputes before it reports ready. A checkpoint written
before tensors were named by role (`blocks.{k}.*`) is exported with its tensors
renamed, so every export has the current format.
"""

import base64
import datetime as dt
import hashlib
import json
import math
import platform
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from ablate.card import (
    FORMAT,
    Architecture,
    InputSpec,
    ModelCard,
    Provenance,
    SelfTest,
    build_network,
    from_legacy_names,
    uses_legacy_names,
)
from ablate.conventions import upgrade_config_dict
from ablate.engine import CLASSES, INPUTS, run_config_from_dict
from ablate.errors import UserError, suggest
from ablate.files import atomic_write
from ablate.metric import METRICS, Metric
from ablate.store import Run, Store

__all__ = ["SELF_TEST_ATOL", "best_run", "export_best", "probe_images", "resolve_model"]

SELF_TEST_ATOL = 1e-4  # float32 forward passes differ by ~1e-6 across BLAS kernels and
#                        batch sizes; any change to the weights or architecture moves
#                        some probe's probabilities by far more.
_KEPT_METRICS = tuple(m.name for m in METRICS.values() if m.kept)


def export_best(run_dir: Path, arm: str | None = None, to: Path | None = None) -> Path:
    """Export the best finished run of `run_dir` (of `arm`, if given); return the model path.

    Writes `to` (default `RUN_DIR/model.safetensors`; a directory gets `model.safetensors`
    inside) and the card beside it with the suffix `.json`, each atomically.
    """
    # ablate.study brings the statistics and SciPy (~65 MiB): imported here rather than at
    # the top, so that `ablate serve MODEL`, which imports this module only to resolve
    # its source, does not carry them into the server.
    from ablate.design import read_record

    run_dir = Path(run_dir)
    store = Store.open_existing(run_dir)
    try:
        record = read_record(store)  # the study as run, not as its file reads today
        metric = record.study.metric
        run = best_run(store.runs(), metric.name, arm, run_dir)
        study = {"name": record.study.name, "question": record.study.question}
    finally:
        store.close()
    assert run.checkpoint is not None  # best_run only picks runs with a checkpoint
    target = _target(run_dir, to)
    checkpoint = run_dir / run.checkpoint
    weights, sidecar = _read_checkpoint(checkpoint)
    sidecar["config"] = upgrade_config_dict(sidecar["config"])  # stored before the forms
    weights = _with_role_names(weights, sidecar["config"])
    card = _card(run, metric.selection.name, study, sidecar, weights,
                 checkpoint.relative_to(run_dir))
    atomic_write(target, weights)
    atomic_write(target.with_suffix(".json"), msgspec.json.format(msgspec.json.encode(card)))
    return target


def resolve_model(source: Path, workdir: Path) -> Path:
    """A model file to serve: `source` itself, or the best run of the run directory
    `source` exported into `workdir`."""
    source = Path(source)
    if source.is_dir():
        return export_best(source, to=workdir / "model.safetensors")
    if not source.exists():
        raise UserError(f"{source}: no such file or directory; give a study's run directory "
                        "(e.g. runs/dropout) or a model from `ablate export`")
    return source


def best_run(runs: list[Run], metric_name: str, arm: str | None, run_dir: Path) -> Run:
    """The finished run best on the validation metric behind `metric_name` (the study's
    metric); ties go to the better other validation metric, then to the first arm and
    seed in order."""
    if metric_name not in METRICS:
        raise UserError(f"{run_dir}: the study's metric {metric_name!r} is not one of "
                        f"{', '.join(METRICS)}; was the store written by another version?")
    if METRICS[metric_name].split == "test":  # a study without a validation split
        raise UserError(f"{run_dir}: this study compares arms on {metric_name} (it has no "
                        "validation split); export picks on validation only, so train with "
                        "a validation split (validation > 0 in the study file).")
    # A cross-fitted metric ranks arms; a run's own record is its whole-validation score.
    first = METRICS[metric_name].selection
    second = METRICS["val_loss" if first.quantity == "accuracy" else "val_accuracy"]
    arms = sorted({r.arm for r in runs})
    if arm is not None and arm not in arms:
        raise UserError(f"{run_dir}: no arm named {arm!r}{suggest(arm, arms)}; "
                        f"its arms: {', '.join(arms) or 'none'}")
    pool = [r for r in runs if r.status == "done" and r.checkpoint
            and (arm is None or r.arm == arm)]
    if not pool:
        which = f"arm {arm!r} has" if arm else "the study has"
        raise UserError(f"{run_dir}: {which} no finished run with a checkpoint; run "
                        "`ablate study STUDY.toml` to the end first (see `ablate runs`).")
    scored = [r for r in pool if _finite(getattr(r, first.name))]
    if not scored:
        raise UserError(f"{run_dir}: no run has a {first.name}; export picks on validation "
                        "only, so train with a validation split (validation > 0 in the "
                        "study file).")

    def key(r: Run) -> tuple[float, float, str, int]:  # smallest wins
        return _rank(first, getattr(r, first.name)), _rank(second, getattr(r, second.name)), \
            r.arm, r.seed

    return min(scored, key=key)


def _rank(metric: Metric, value: float | None) -> float:
    """A key that sorts better values of `metric` first; missing values last."""
    if not _finite(value):
        return math.inf
    assert value is not None
    return -value if metric.higher_is_better else value


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _target(run_dir: Path, to: Path | None) -> Path:
    if to is None:
        return run_dir / "model.safetensors"
    to = Path(to)
    if to.is_dir():
        return to / "model.safetensors"
    if to.suffix != ".safetensors":
        raise UserError(f"--to {to}: name a .safetensors file (its .json card goes "
                        "beside it) or a directory")
    return to


def _read_checkpoint(path: Path) -> tuple[bytes, dict[str, Any]]:
    """The checkpoint's bytes and sidecar, after checking its recorded sha256."""
    side = path.with_suffix(".json")
    if not path.is_file() or not side.is_file():
        raise UserError(f"{path}: checkpoint or its .json sidecar is missing; rerun the "
                        "study with --fresh to retrain it")
    weights = path.read_bytes()
    try:
        sidecar = json.loads(side.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{side}: not valid JSON; rerun the study with --fresh") from None
    if not isinstance(sidecar, dict) or "config" not in sidecar:
        raise UserError(f"{side}: not a checkpoint sidecar; rerun the study with --fresh")
    if hashlib.sha256(weights).hexdigest() != sidecar.get("weights_sha256"):
        raise UserError(f"{path}: sha256 differs from the one recorded at training time; "
                        "the checkpoint was changed or corrupted; rerun the study with --fresh")
    return weights, sidecar


def _with_role_names(weights: bytes, config: dict[str, Any]) -> bytes:
    """The checkpoint's bytes unchanged, or re-encoded with role names if it predates them."""
    tensors = load_safetensors(weights)
    if not uses_legacy_names(tensors):
        return weights
    renamed = from_legacy_names(run_config_from_dict(config), tensors)
    return save_safetensors({k: v.contiguous() for k, v in renamed.items()})


def _card(run: Run, selected_on: str, study: dict[str, str], sidecar: dict[str, Any],
          weights: bytes, checkpoint: Path) -> ModelCard:
    config = sidecar["config"]
    network = build_network(config, load_safetensors(weights), str(checkpoint))
    probes = probe_images()  # (P, 784) uint8
    expected = network.probabilities(probes.astype(np.float32) / np.float32(255.0))  # (P, 10)
    digest = hashlib.sha256(weights).hexdigest()
    return ModelCard(
        format=FORMAT,
        version=digest[:12],
        weights_sha256=digest,
        architecture=Architecture(inputs=INPUTS, classes=CLASSES, config=config),
        input=InputSpec(),
        labels=[str(c) for c in range(CLASSES)],
        provenance=Provenance(
            study=sidecar.get("study", study["name"]),
            question=sidecar.get("question", study["question"]),
            arm=run.arm, seed=run.seed, selected_on=selected_on,
            best_epoch=sidecar.get("best_epoch", run.best_epoch or 0),
            metrics={k: (v if _finite(v) else None) for k, v in run.to_dict().items()
                     if k in _KEPT_METRICS},
            data_sha256=sidecar.get("data_sha256", {}),
            training_versions=sidecar.get("versions", {}),
            export_versions={"python": platform.python_version(), "torch": str(torch.__version__),
                             "numpy": np.__version__},
            checkpoint=str(checkpoint),
            exported_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        ),
        self_test=SelfTest(
            atol=SELF_TEST_ATOL,
            inputs=[base64.b64encode(p.tobytes()).decode("ascii") for p in probes],
            probabilities=expected.astype(float).tolist(),
        ),
    )


def probe_images() -> np.ndarray:
    """Five fixed 28x28 probes, flattened to (5, 784) uint8: blank, a bar, a ring, a
    cross and a fixed noise field. Their exact values do not matter; they are stored
    in the card, so the self-test never depends on this function."""
    yy, xx = np.mgrid[0:28, 0:28]
    blank = np.zeros((28, 28))
    bar = ((np.abs(xx - 14) <= 1) & (yy >= 4) & (yy <= 23)) * 255.0
    r = np.hypot(yy - 14, xx - 14)
    ring = np.clip(255 - 120 * np.abs(r - 7), 0, 255)
    cross = ((np.abs(xx - yy) <= 1) | (np.abs(xx + yy - 27) <= 1)) * 200.0
    noise = np.random.default_rng(20_240_603).integers(0, 256, (28, 28))
    return np.stack([blank, bar, ring, cross, noise]).reshape(5, INPUTS).astype(np.uint8)
