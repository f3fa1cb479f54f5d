"""An independent float64 NumPy forward pass of an exported model (the tests' oracle).

It reads the safetensors file and the card's config itself and walks the layers in the
documented order (Dense -> [BN] -> activation -> [BN] -> [Dropout], eval mode: BN uses
its running statistics, dropout is the identity), finding each tensor by its documented
name (`dense{i}.weight`, `bn{i}.running_var`, ...), sharing no code with `ablate.engine`
or `serve`.
"""

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file


def forward(model_path: Path, x: np.ndarray) -> np.ndarray:
    """x: (B, 784) in [0, 1] -> probabilities (B, 10), float64."""
    t = {k: v.astype(np.float64) for k, v in load_file(str(model_path)).items()}
    config = json.loads(model_path.with_suffix(".json").read_text())["architecture"]["config"]
    h = x.astype(np.float64)

    def bn(h: np.ndarray, i: int) -> np.ndarray:
        p = f"bn{i}."
        return ((h - t[p + "running_mean"]) / np.sqrt(t[p + "running_var"] + config["bn_eps"])
                * t[p + "weight"] + t[p + "bias"])

    for i, layer in enumerate(config["layers"]):
        h = h @ t[f"dense{i}.weight"] + t[f"dense{i}.bias"]
        if layer["batch_norm"] == "before":
            h = bn(h, i)
        assert layer["activation"] == "relu", "the oracle knows ReLU only"
        h = np.maximum(h, 0.0)
        if layer["batch_norm"] == "after":
            h = bn(h, i)
    out = len(config["layers"])
    logits = h @ t[f"dense{out}.weight"] + t[f"dense{out}.bias"]
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)
