"""The exported model format: a `.safetensors` file of named tensors plus its model card.

The card is the JSON sidecar (`model.json` beside `model.safetensors`) as typed, frozen
structs: the architecture (the run's resolved config), the input normalization, the
class labels, provenance, the sha256 of the weights and a self-test (probe inputs with
the probabilities computed at export). `ExportedModel.load` reads both files (nothing
is unpickled), checks the sha256, builds the network from tensors named by role
(`dense0.weight`, `bn0.running_var`, ...) and recomputes the probes with the very
function that answers requests (`Network.probabilities`). Any failure is a `ModelError`
(a `UserError`: one line, exit 2) that says how to fix it.

Format history: `ablate-mnist-mlp/1` named tensors by their index in an
`nn.Sequential` (`blocks.{k}.*`, counting activations and dropouts); it still loads, its
names mapped by walking the architecture. `ablate-mnist-mlp/2` names them by role.

This module depends on the engine only (no store), so the service can import it.
"""

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from torch import Tensor

from ablate.conventions import upgrade_config_dict
from ablate.engine import (
    CLASSES,
    INPUTS,
    Network,
    RunConfig,
    TensorMismatch,
    run_config_from_dict,
)
from ablate.errors import UserError

__all__ = [
    "FORMAT",
    "LEGACY_FORMAT",
    "REEXPORT",
    "Architecture",
    "ExportedModel",
    "InputSpec",
    "ModelCard",
    "ModelError",
    "Provenance",
    "SelfTest",
    "build_network",
    "from_legacy_names",
    "read_card",
    "uses_legacy_names",
]

FORMAT = "ablate-mnist-mlp/2"  # bump when the meaning of the card or the tensor names changes
LEGACY_FORMAT = "ablate-mnist-mlp/1"  # tensors named blocks.{k}.* (read, never written)
REEXPORT = "export it again with `ablate export RUN_DIR --to FILE`"


class ModelError(UserError):
    """A model file that must not be served: missing, corrupt, tampered or failing."""


class Architecture(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    inputs: int  # 784
    classes: int  # 10
    config: dict[str, Any]  # ablate.engine.RunConfig.to_dict(): the one source of truth


class InputSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How pixels become model inputs (MNIST's own convention)."""

    image_shape: tuple[int, int] = (28, 28)
    normalization: str = "x = pixel / 255, float32, flattened row-major to 784 values"
    ink: str = "bright ink on a dark background (MNIST: 255 = ink, 0 = background)"


class Provenance(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    study: str
    question: str
    arm: str
    seed: int
    selected_on: str  # the validation metric the run was chosen on
    best_epoch: int
    metrics: dict[str, float | None]  # train/val/test loss and accuracy of the kept weights
    data_sha256: dict[str, str]  # MNIST arrays the run trained and was measured on
    training_versions: dict[str, Any]  # python, torch, numpy, device... at training time
    export_versions: dict[str, str]
    checkpoint: str  # the run's checkpoint, relative to its run directory
    exported_at: str  # ISO 8601, UTC


class SelfTest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    atol: float  # max |p - expected| per probability
    inputs: list[str]  # base64 of 784 uint8 pixels each
    probabilities: list[list[float]]  # (P, 10) computed at export


class ModelCard(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format: str
    version: str  # first 12 hex digits of weights_sha256: names the weights
    weights_sha256: str
    architecture: Architecture
    input: InputSpec
    labels: list[str]
    provenance: Provenance
    self_test: SelfTest


def read_card(path: Path) -> ModelCard:
    """The card at `path`, strictly typed and consistent with itself."""
    try:
        card = msgspec.json.decode(path.read_bytes(), type=ModelCard)
    except msgspec.DecodeError as e:
        raise ModelError(f"{path}: not a valid model card ({e}); {REEXPORT}") from None
    if card.format not in (FORMAT, LEGACY_FORMAT):
        raise ModelError(f"{path}: card format {card.format!r} is not {FORMAT!r} (or the "
                         f"older {LEGACY_FORMAT!r}); {REEXPORT}")
    if (card.architecture.inputs, card.architecture.classes) != (INPUTS, CLASSES):
        raise ModelError(f"{path}: this service serves {INPUTS} -> {CLASSES} MNIST models")
    if card.version != card.weights_sha256[:12]:
        raise ModelError(f"{path}: the card's version does not name its weights; {REEXPORT}")
    if len(card.labels) != CLASSES:
        raise ModelError(f"{path}: the card must name {CLASSES} labels; {REEXPORT}")
    return card


def uses_legacy_names(tensors: dict[str, Tensor]) -> bool:
    """True for tensors named the format-1 way (`blocks.{k}.*`)."""
    return any(name.startswith("blocks.") for name in tensors)


def from_legacy_names(config: RunConfig, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """Format-1 tensors (`blocks.{k}.*`, k counting every module of the old
    `nn.Sequential`: Dense, [BN], activation, [BN], [Dropout] per hidden layer, then the
    output Dense) renamed by role. Names that do not map are kept, so the network's
    own check reports them."""
    renames: dict[str, str] = {}
    k = 0
    for i, layer in enumerate(config.layers):
        renames[f"blocks.{k}"] = f"dense{i}"
        k += 1
        if layer.batch_norm == "before":
            renames[f"blocks.{k}"] = f"bn{i}"
            k += 1
        k += 1  # the activation holds no tensors
        if layer.batch_norm == "after":
            renames[f"blocks.{k}"] = f"bn{i}"
            k += 1
        if layer.dropout > 0:
            k += 1
    renames[f"blocks.{k}"] = f"dense{len(config.layers)}"
    out: dict[str, Tensor] = {}
    for name, t in tensors.items():
        module, _, part = name.rpartition(".")
        out[f"{renames[module]}.{part}" if module in renames else name] = t
    return out


def build_network(config: dict[str, Any], tensors: dict[str, Tensor], where: str
                  ) -> Network:
    """The network a card's `config` describes, holding `tensors` (format-1 names are
    mapped); a `ModelError` when the config is invalid or the tensors do not fit it."""
    try:
        run_config = run_config_from_dict(upgrade_config_dict(config))  # forms: see conventions
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"{where}: the card's architecture is not valid ({e}); {REEXPORT}"
                         ) from None
    if uses_legacy_names(tensors):
        tensors = from_legacy_names(run_config, tensors)
    try:
        return Network.from_tensors(run_config, tensors)
    except TensorMismatch as e:
        raise ModelError(f"{where}: the weights do not fit the architecture ({e}); {REEXPORT}"
                         ) from None
    except ValueError as e:  # an activation or layer the engine does not know
        raise ModelError(f"{where}: the card's architecture is not valid ({e}); {REEXPORT}"
                         ) from None


@dataclass(frozen=True)
class ExportedModel:
    """A verified exported model: `predict` maps (B, 784) float32 pixels in [0, 1] to
    (B, 10) float32 probabilities."""

    network: Network
    card: ModelCard
    path: Path

    @property
    def version(self) -> str:
        return self.card.version

    @classmethod
    def load(cls, path: Path) -> "ExportedModel":
        """Load `path` (.safetensors) and its `.json` card; verify; self-test."""
        path = Path(path)
        card_path = path.with_suffix(".json")
        if path.suffix != ".safetensors":
            raise ModelError(f"{path}: expected an exported .safetensors model "
                             "(or a study's run directory)")
        for p in (path, card_path):
            if not p.is_file():
                raise ModelError(f"{p}: no such file; {REEXPORT}")
        card = read_card(card_path)
        weights = path.read_bytes()
        if hashlib.sha256(weights).hexdigest() != card.weights_sha256:
            raise ModelError(f"{path}: sha256 does not match its card; the file was changed "
                             f"or corrupted after export; {REEXPORT}")
        try:
            tensors = load_safetensors(weights)
        except (SafetensorError, ValueError, RuntimeError) as e:
            raise ModelError(f"{path}: not a readable safetensors file ({e}); {REEXPORT}"
                             ) from None
        if uses_legacy_names(tensors) != (card.format == LEGACY_FORMAT):
            raise ModelError(f"{path}: the tensor names do not match card format "
                             f"{card.format!r}; {REEXPORT}")
        model = cls(build_network(card.architecture.config, tensors, str(path)), card, path)
        model.self_test()
        return model

    def predict(self, x: np.ndarray) -> np.ndarray:
        """x: (B, 784) float32 in [0, 1] -> probabilities (B, 10) float32."""
        return self.network.probabilities(x)

    def self_test(self) -> None:
        """Recompute the card's probes; each probability within the card's tolerance."""
        test = self.card.self_test
        try:
            raw = [base64.b64decode(s, validate=True) for s in test.inputs]
        except (binascii.Error, ValueError):
            raw = []
        expected = np.asarray(test.probabilities, dtype=np.float64)
        if not raw or any(len(r) != INPUTS for r in raw) or expected.shape != (len(raw), CLASSES):
            raise ModelError(f"{self.path}: the card's self-test is malformed; {REEXPORT}")
        x = np.frombuffer(b"".join(raw), dtype=np.uint8).reshape(len(raw), INPUTS)
        got = self.predict(x.astype(np.float32) / np.float32(255.0))
        worst = float(np.abs(got - expected).max())
        if not worst <= test.atol:
            raise ModelError(f"{self.path}: self-test failed (a probe's probability is off by "
                             f"{worst:.2g} > {test.atol:g}); the model or its card was changed; "
                             f"{REEXPORT}")
