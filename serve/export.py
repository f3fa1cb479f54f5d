"""`ablate export`: the best run of a study -> a servable model file plus its sidecar.

The best run is chosen on the study's validation metric (never on test accuracy).
The export is the run's safetensors checkpoint, byte for byte (so its sha256 is the
one training recorded), and a JSON sidecar (`serve.card.ModelCard`) holding the
architecture, the input normalization, the class labels, provenance, the sha256 of
the weights and a self-test: a few probe inputs with the probabilities this export
computed, which the service recomputes before it reports ready.
"""

import base64
import datetime as dt
import difflib
import hashlib
import json
import math
import platform
from pathlib import Path

import msgspec
import numpy as np
import torch
from safetensors.torch import load as load_safetensors

from ablate.engine import CLASSES, INPUTS
from ablate.errors import UserError
from ablate.files import atomic_write
from ablate.metric import METRICS
from ablate.store import Run, Store
from ablate.study import upgrade_config_dict
from serve.card import FORMAT, Architecture, InputSpec, ModelCard, Provenance, SelfTest
from serve.predictor import build_model, softmax

SELF_TEST_ATOL = 1e-4  # float32 forward passes differ by ~1e-6 across BLAS kernels and
#                        batch sizes; any change to the weights or architecture moves
#                        some probe's probabilities by far more.


def export_best(run_dir: Path, arm: str | None = None, to: Path | None = None) -> Path:
    """Export the best finished run of `run_dir` (of `arm`, if given); return the model path.

    Writes `to` (default `RUN_DIR/model.safetensors`; a directory gets `model.safetensors`
    inside) and the sidecar beside it with the suffix `.json`, each atomically.
    """
    run_dir = Path(run_dir)
    store = Store.open_existing(run_dir)
    try:
        metric = store.meta("metric", "val_accuracy")
        run = best_run(store.runs(), metric, arm, run_dir)
        study = {"name": store.meta("name", run_dir.name), "question": store.meta("question", "")}
    finally:
        store.close()
    assert run.checkpoint is not None  # best_run only picks runs with a checkpoint
    target = _target(run_dir, to)
    checkpoint = run_dir / run.checkpoint
    weights, sidecar = _read_checkpoint(checkpoint)
    card = _card(run, metric, study, sidecar, weights, checkpoint.relative_to(run_dir))
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, weights)
    atomic_write(target.with_suffix(".json"), msgspec.json.format(msgspec.json.encode(card)))
    return target


def best_run(runs: list[Run], metric: str, arm: str | None, run_dir: Path) -> Run:
    """The finished run best on `metric` (a validation metric); ties go to the better
    other validation metric, then to the first arm and seed in order."""
    if metric not in METRICS:
        raise UserError(f"{run_dir}: the study's metric {metric!r} is not one of "
                        f"{', '.join(METRICS)}; was the store written by another version?")
    if not metric.startswith("val_"):  # a study without a validation split (validation = 0)
        raise UserError(f"{run_dir}: this study compares arms on {metric} (it has no "
                        "validation split); export picks on validation only, so train with "
                        "a validation split (validation > 0 in the study file).")
    arms = sorted({r.arm for r in runs})
    if arm is not None and arm not in arms:
        close = difflib.get_close_matches(arm, arms, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"{run_dir}: no arm named {arm!r}{hint}; "
                        f"its arms: {', '.join(arms) or 'none'}")
    pool = [r for r in runs if r.status == "done" and r.checkpoint
            and (arm is None or r.arm == arm)]
    if not pool:
        which = f"arm {arm!r} has" if arm else "the study has"
        raise UserError(f"{run_dir}: {which} no finished run with a checkpoint; run "
                        "`ablate study STUDY.toml` to the end first (see `ablate runs`).")
    scored = [r for r in pool if _finite(getattr(r, metric))]
    if not scored:
        raise UserError(f"{run_dir}: no run has a {metric}; export picks on validation only, "
                        "so train with a validation split (validation > 0 in the study file).")
    other = "val_loss" if metric == "val_accuracy" else "val_accuracy"

    def key(r: Run) -> tuple[float, float, str, int]:
        sign = -1.0 if METRICS[metric].higher_is_better else 1.0  # smallest key wins
        second = getattr(r, other)
        other_sign = -1.0 if METRICS[other].higher_is_better else 1.0
        second = other_sign * second if _finite(second) else math.inf
        return sign * getattr(r, metric), second, r.arm, r.seed

    return min(scored, key=key)


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _target(run_dir: Path, to: Path | None) -> Path:
    if to is None:
        return run_dir / "model.safetensors"
    to = Path(to)
    if to.is_dir():
        return to / "model.safetensors"
    if to.suffix != ".safetensors":
        raise UserError(f"--to {to}: name a .safetensors file (its .json sidecar goes "
                        "beside it) or a directory")
    return to


def _read_checkpoint(path: Path) -> tuple[bytes, dict]:
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


def _card(run: Run, metric: str, study: dict[str, str], sidecar: dict, weights: bytes,
          checkpoint: Path) -> ModelCard:
    config = upgrade_config_dict(sidecar["config"])  # runs stored before the forms were fields
    model = build_model(config, load_safetensors(weights), str(checkpoint))
    probes = probe_images()  # (P, 784) uint8
    with torch.inference_mode():
        logits = model(torch.from_numpy(probes.astype(np.float32) / 255.0).unsqueeze(0))[0]
    expected = softmax(logits.numpy())  # (P, 10)
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
            arm=run.arm, seed=run.seed, selected_on=metric,
            best_epoch=sidecar.get("best_epoch", run.best_epoch or 0),
            metrics={k: (v if _finite(v) else None) for k, v in run.to_dict().items()
                     if k in ("train_loss", "val_loss", "val_accuracy", "test_loss",
                              "test_accuracy")},
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
    in the sidecar, so the self-test never depends on this function."""
    yy, xx = np.mgrid[0:28, 0:28]
    blank = np.zeros((28, 28))
    bar = ((np.abs(xx - 14) <= 1) & (yy >= 4) & (yy <= 23)) * 255.0
    r = np.hypot(yy - 14, xx - 14)
    ring = np.clip(255 - 120 * np.abs(r - 7), 0, 255)
    cross = ((np.abs(xx - yy) <= 1) | (np.abs(xx + yy - 27) <= 1)) * 200.0
    noise = np.random.default_rng(20_240_603).integers(0, 256, (28, 28))
    return np.stack([blank, bar, ring, cross, noise]).reshape(5, INPUTS).astype(np.uint8)
