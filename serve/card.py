"""The model card: the JSON sidecar of an exported model, as typed, frozen structs.

`ablate export` writes it beside the `.safetensors` weights; the service reads it back
with strict types (a missing or mistyped field is a clear startup error). It is all
the service knows about the model besides the weights.
"""

from typing import Any

import msgspec

FORMAT = "ablate-mnist-mlp/1"  # bump when the card's meaning changes


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
