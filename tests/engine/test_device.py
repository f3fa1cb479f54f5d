"""The device module on a machine like the GPU proof's: the TF32 override PyTorch reads at
import, a tree that is not installed, and a CUDA device this process cannot see."""

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import torch

from ablate.engine import ablate_version, free_memory, provenance, visible

ROOT = Path(__file__).resolve().parents[2]
REHEARSAL = ROOT / "benchmarks" / "gpu_rehearsal"  # the rehearsal's sitecustomize

# The precision state as both of PyTorch's APIs report it, legacy reads included (each
# raises where the two APIs disagree, as cuBLAS's own check does at a matmul).
_STATE = textwrap.dedent("""
    import json, sys, torch
    from ablate.engine import pinned_precision
    b = torch.backends

    def read(f):
        try:
            return f()
        except RuntimeError:
            return "raises"

    def state():
        return {"legacy": read(torch.get_float32_matmul_precision),
                "cuda.allow_tf32": read(lambda: b.cuda.matmul.allow_tf32),
                "cudnn.allow_tf32": read(lambda: b.cudnn.allow_tf32),
                **{n: getattr(getattr(b, n.split(".")[0]), n.split(".")[1]).fp32_precision
                   for n in ("cuda.matmul", "cudnn.conv", "mkldnn.matmul")}}

    before = state()
    with pinned_precision(torch.device("cpu")):
        inside = state()
    print(json.dumps({"before": before, "inside": inside, "after": state()}))
""")


def _precision_states(env: dict[str, str]) -> dict[str, dict[str, object]]:
    import json

    out = subprocess.run([sys.executable, "-c", _STATE], env=env, capture_output=True,
                         text=True, timeout=120, check=True, cwd=ROOT).stdout
    states: dict[str, dict[str, object]] = json.loads(out)
    return states


@pytest.mark.parametrize("override", ["1", None])
def test_the_pin_overrides_the_tf32_environment_read_at_import(override: str | None) -> None:
    """TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1 is read at `import torch`: both APIs start at
    TF32. Inside the pin both say full float32 and no legacy read raises (on a GPU,
    cuBLAS raises at its first matmul when they disagree); after it, the process's own
    state is back. Without the override the same holds."""
    env = {k: v for k, v in os.environ.items() if k != "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE"}
    if override is not None:
        env["TORCH_ALLOW_TF32_CUBLAS_OVERRIDE"] = override
    s = _precision_states(env)
    if override is not None:  # what the override does at import, on the CPU build too
        assert s["before"]["legacy"] == "high" and s["before"]["cuda.matmul"] == "tf32"
        assert s["before"]["cuda.allow_tf32"] is True
    assert s["inside"] == {"legacy": "highest", "cuda.allow_tf32": False,
                           "cudnn.allow_tf32": False, "cuda.matmul": "ieee",
                           "cudnn.conv": "none", "mkldnn.matmul": "ieee"}
    assert s["after"] == s["before"]


def test_the_version_comes_from_the_tree_when_ablate_is_not_installed() -> None:
    """A copy of the tree on PYTHONPATH (the GPU proof's set-up) has no installed metadata:
    provenance reads pyproject.toml's version instead of failing every cohort's end."""
    code = ("import importlib.metadata as m, torch\n"
            "from ablate.engine import provenance\n"
            "try:\n    m.version('ablate'); print('installed')\n"
            "except m.PackageNotFoundError:\n    print('not installed')\n"
            "print(provenance(torch.device('cpu'))['ablate'])\n")
    env = {**os.environ, "PYTHONPATH": f"{REHEARSAL}{os.pathsep}{ROOT}"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=True, cwd="/").stdout.split()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert out == ["not", "installed", project["version"]]
    assert ablate_version() == project["version"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_a_cuda_device_this_process_cannot_see_is_described_without_cuda() -> None:
    """A Ray driver on a CPU machine plans and records a GPU study: no CUDA call."""
    cuda = torch.device("cuda")
    assert not visible(cuda) and visible(torch.device("cpu"))
    assert free_memory(cuda) is None
    record = provenance(cuda)
    assert record["device"] == "cuda" and "none visible" in str(record["device_name"])
