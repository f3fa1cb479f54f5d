"""Load an exported model safely, prove it works, and predict batches.

Loading reads only safetensors and JSON (nothing is unpickled), checks the weights'
sha256 against the card, checks every tensor's name, shape, dtype and finiteness
against the architecture the card names, and recomputes the card's self-test probes.
Any failure is a `ModelError` (a `UserError`: one line, exit 2) saying what to do.
"""

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from torch import Tensor

from ablate.engine import CLASSES, INPUTS, CohortMLP, load_replica_state, run_config_from_dict
from ablate.errors import UserError
from serve.card import FORMAT, ModelCard

REEXPORT = "export it again with `ablate export RUN_DIR --to FILE`"


class ModelError(UserError):
    """A model file that must not be served: missing, corrupt, tampered or failing."""


def softmax(logits: np.ndarray) -> np.ndarray:
    """(B, 10) logits -> (B, 10) float32 probabilities, computed in float64."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def build_model(config: dict, tensors: dict[str, Tensor], where: str) -> CohortMLP:
    """A one-replica `CohortMLP` in eval mode holding `tensors`, after checking that they
    are exactly the tensors the architecture has (names, shapes, float32, finite)."""
    try:
        model = CohortMLP(run_config_from_dict(config), [0])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"{where}: the card's architecture is not valid ({e}); {REEXPORT}"
                         ) from None
    want = {name: tuple(t.shape[1:]) for name, t in model.state_dict().items()}
    got = {name: tuple(t.shape) for name, t in tensors.items()}
    if want != got:
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        detail = (f"missing {missing}" if missing else f"unexpected {extra}" if extra else
                  "shapes differ from the architecture")
        raise ModelError(f"{where}: the weights do not fit the architecture ({detail}); "
                         f"{REEXPORT}")
    for name, t in tensors.items():
        if t.dtype != torch.float32 or not bool(torch.isfinite(t).all()):
            raise ModelError(f"{where}: tensor {name} is not finite float32; {REEXPORT}")
    load_replica_state(model, 0, tensors)
    return model.eval()


@dataclass(frozen=True)
class Predictor:
    """A verified model: `predict` maps (B, 784) float32 pixels in [0, 1] to (B, 10)."""

    model: CohortMLP
    card: ModelCard
    path: Path

    @property
    def version(self) -> str:
        return self.card.version

    @classmethod
    def load(cls, path: Path) -> "Predictor":
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
        model = build_model(card.architecture.config, tensors, str(path))
        predictor = cls(model, card, path)
        predictor.self_test()
        return predictor

    def predict(self, x: np.ndarray) -> np.ndarray:
        """x: (B, 784) float32 in [0, 1] -> probabilities (B, 10) float32."""
        with torch.inference_mode():
            logits = self.model(torch.from_numpy(x).unsqueeze(0))[0]  # (B, 10)
        return softmax(logits.numpy())

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


def read_card(path: Path) -> ModelCard:
    try:
        card = msgspec.json.decode(path.read_bytes(), type=ModelCard)
    except msgspec.DecodeError as e:
        raise ModelError(f"{path}: not a valid model card ({e}); {REEXPORT}") from None
    if card.format != FORMAT:
        raise ModelError(f"{path}: card format {card.format!r} is not {FORMAT!r}; {REEXPORT}")
    if (card.architecture.inputs, card.architecture.classes) != (INPUTS, CLASSES):
        raise ModelError(f"{path}: this service serves {INPUTS} -> {CLASSES} MNIST models")
    if card.version != card.weights_sha256[:12]:
        raise ModelError(f"{path}: the card's version does not name its weights; {REEXPORT}")
    if len(card.labels) != CLASSES:
        raise ModelError(f"{path}: the card must name {CLASSES} labels; {REEXPORT}")
    return card
