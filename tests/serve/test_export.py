"""`ablate export`: the best run on the validation metric, a complete card, clear errors."""

import hashlib
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ablate.errors import UserError
from ablate.export import best_run, export_best
from ablate.store import Run, Store
from tests.serve import oracle


def run(arm: str, seed: int, val_acc: float | None, val_loss: float | None, test_acc: float,
        status: str = "done") -> Run:
    return Run(arm=arm, seed=seed, config_hash="h", status=status, device="cpu", seconds=1.0,
               epochs=1, best_epoch=1, train_loss=0.1, val_loss=val_loss,
               val_accuracy=val_acc, crossfit_val_loss=None, crossfit_val_accuracy=None,
               test_loss=0.2, test_accuracy=test_acc,
               checkpoint=f"checkpoints/{arm}/seed-{seed}.safetensors", error=None)


RUNS = [
    run("a", 0, 0.90, 0.30, 0.99),  # best on test: must not win
    run("a", 1, 0.95, 0.20, 0.80),  # best on val_accuracy
    run("b", 0, 0.93, 0.10, 0.85),  # best on val_loss
    run("b", 1, 0.99, 0.05, 0.99, status="diverged"),  # not finished well: never picked
]


def test_best_is_chosen_on_validation_never_on_test() -> None:
    assert (best_run(RUNS, "val_accuracy", None, Path("r")).arm,
            best_run(RUNS, "val_accuracy", None, Path("r")).seed) == ("a", 1)
    assert best_run(RUNS, "val_loss", None, Path("r")).arm == "b"  # lower is better


@pytest.mark.parametrize("metric", ["test_accuracy", "test_loss"])
def test_a_study_without_validation_cannot_be_exported_on_test(metric: str) -> None:
    # validation = 0 studies compare arms on test; picking a model on it would tune on test.
    with pytest.raises(UserError, match="export picks on validation only"):
        best_run(RUNS, metric, None, Path("r"))


def test_arm_restricts_the_choice() -> None:
    assert (best_run(RUNS, "val_accuracy", "b", Path("r")).arm,
            best_run(RUNS, "val_accuracy", "b", Path("r")).seed) == ("b", 0)


def test_ties_break_on_the_other_validation_metric_then_order() -> None:
    tied = [run("a", 0, 0.9, 0.3, 0.5), run("a", 1, 0.9, 0.2, 0.5), run("b", 0, 0.9, 0.2, 0.5)]
    chosen = best_run(tied, "val_accuracy", None, Path("r"))
    assert (chosen.arm, chosen.seed) == ("a", 1)


@pytest.mark.parametrize("runs, arm, words", [
    (RUNS, "c", "no arm named 'c'"),
    (RUNS, "aa", "did you mean 'a'"),
    ([replace(r, status="failed") for r in RUNS], None, "no finished run"),
    ([], None, "no finished run"),
    ([run("a", 0, None, None, 0.9)], None, "validation"),
])
def test_user_mistakes_are_one_clear_line(runs: list[Run], arm: str | None, words: str) -> None:
    with pytest.raises(UserError, match=words):
        best_run(runs, "val_accuracy", arm, Path("r"))


def test_export_writes_weights_and_a_complete_card(run_dir: Path, tmp_path: Path) -> None:
    path = export_best(run_dir, to=tmp_path / "m.safetensors")
    card = json.loads(path.with_suffix(".json").read_text())
    store = Store.open_existing(run_dir)
    runs = store.runs()
    store.close()
    best = max(runs, key=lambda r: r.val_accuracy or 0)
    prov = card["provenance"]
    assert (prov["arm"], prov["seed"]) == (best.arm, best.seed)
    assert prov["selected_on"] == "val_accuracy"
    assert prov["metrics"]["val_accuracy"] == best.val_accuracy
    assert prov["metrics"]["test_accuracy"] == best.test_accuracy
    assert prov["study"] == "dropout" and set(prov["data_sha256"]) == {
        "x_train", "y_train", "x_test", "y_test"}
    assert {"torch", "python"} <= set(prov["training_versions"]) | set(prov["export_versions"])
    # The export is the run's checkpoint byte for byte, and the card names its sha256.
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert card["weights_sha256"] == digest and card["version"] == digest[:12]
    assert path.read_bytes() == (run_dir / best.checkpoint).read_bytes()  # type: ignore[operator]
    assert card["labels"] == [str(d) for d in range(10)]
    assert card["architecture"]["config"]["layers"][0]["units"] == 512
    assert "255" in card["input"]["normalization"]
    assert len(card["self_test"]["inputs"]) == len(card["self_test"]["probabilities"]) == 5
    assert not list(tmp_path.glob("*.tmp"))


def test_export_default_target_and_arm(run_dir: Path, tmp_path: Path) -> None:
    path = export_best(run_dir, arm="dropout=on", to=tmp_path)
    assert path == tmp_path / "model.safetensors"
    assert json.loads(path.with_suffix(".json").read_text())["provenance"]["arm"] == "dropout=on"


def test_a_tampered_checkpoint_is_refused(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "study"
    import shutil
    shutil.copytree(run_dir, copy)
    for ckpt in copy.glob("checkpoints/*/*.safetensors"):
        data = bytearray(ckpt.read_bytes())
        data[-1] ^= 1
        ckpt.write_bytes(bytes(data))
    with pytest.raises(UserError, match="sha256"):
        export_best(copy)


@pytest.mark.parametrize("args, words", [
    (["--arm", "nope"], "no arm named 'nope'"),
    (["--to", "model.bin"], ".safetensors"),
])
def test_cli_export_errors_exit_2_with_one_line(run_dir: Path, args: list[str], words: str
                                               ) -> None:
    out = subprocess.run([sys.executable, "-m", "ablate.cli", "export", str(run_dir), *args],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert words in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr


def test_cli_export_of_a_directory_without_a_study(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "ablate.cli", "export", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "runs.sqlite" in out.stderr


def test_a_checkpoint_from_before_role_names_exports_in_the_current_format(
        run_dir: Path, tmp_path: Path) -> None:
    """Run directories trained by the previous version hold `blocks.{k}` checkpoints:
    the export renames the tensors and writes the current format."""
    import shutil

    from safetensors.numpy import load_file, save_file

    from ablate.card import ExportedModel
    from tests.serve.test_predictor import sequential_names

    copy = tmp_path / "study"
    shutil.copytree(run_dir, copy)
    for ckpt in copy.glob("checkpoints/*/*.safetensors"):
        side = json.loads(ckpt.with_suffix(".json").read_text())
        names = sequential_names(side["config"])
        tensors = load_file(str(ckpt))
        save_file({f"{names[k.rsplit('.', 1)[0]]}.{k.rsplit('.', 1)[1]}": v
                   for k, v in tensors.items()}, str(ckpt))
        side["weights_sha256"] = hashlib.sha256(ckpt.read_bytes()).hexdigest()
        ckpt.with_suffix(".json").write_text(json.dumps(side))
    path = export_best(copy, to=tmp_path / "m.safetensors")
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["format"] == "ablate-mnist-mlp/2"
    assert set(load_file(str(path))) == set(load_file(str(export_best(run_dir, to=tmp_path))))
    model = ExportedModel.load(path)
    x = np.random.default_rng(5).random((4, 784), dtype=np.float32)
    np.testing.assert_allclose(model.predict(x), oracle.forward(path, x), atol=2e-5)
