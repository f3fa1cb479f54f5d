"""An independent float64 NumPy forward pass of an exported model (the tests' oracle).

It reads the safetensors file and the card's config itself and walks the blocks the
way DESIGN.md describes them (Dense -> [BN] -> activation -> [BN] -> [Dropout], eval
mode: BN uses its running statistics, dropout is the identity), sharing no code with
`ablate.engine` or `serve.predictor`.
"""

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file


def forward(model_path: Path, x: np.ndarray) -> np.ndarray:
    """x: (B, 784) in [0, 1] -> probabilities (B, 10), float64."""
    t = {k: v.astype(np.float64) for k, v in load_file(str(model_path)).items()}
    config = json.loads(model_path.with_suffix(".json").read_text())["architecture"]["config"]
    h, i = x.astype(np.float64), 0

    def bn(h: np.ndarray) -> np.ndarray:
        nonlocal i
        p = f"blocks.{i}."
        i += 1
        return ((h - t[p + "running_mean"]) / np.sqrt(t[p + "running_var"] + config["bn_eps"])
                * t[p + "weight"] + t[p + "bias"])

    for layer in config["layers"]:
        h = h @ t[f"blocks.{i}.weight"] + t[f"blocks.{i}.bias"]
        i += 1
        if layer["batch_norm"] == "before":
            h = bn(h)
        assert layer["activation"] == "relu", "the oracle knows ReLU only"
        h = np.maximum(h, 0.0)
        i += 1
        if layer["batch_norm"] == "after":
            h = bn(h)
        if layer["dropout"] > 0:
            i += 1
    logits = h @ t[f"blocks.{i}.weight"] + t[f"blocks.{i}.bias"]
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)
