"""What a GPU proof ran on: Python, torch, CUDA, the GPU, the TF32 environment, and every
backend's float32 precision, outside and inside ablate's pin (benchmarks/gpu_check.sh's
first stage; its output goes into summary.txt).

    python benchmarks/gpu_environment.py [--device cuda]

Exits 1 when ablate is imported from somewhere other than this tree (an installed copy
would hide the tree's code) or when the pin leaves float32 matmuls in reduced precision.
"""

import argparse
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: ablate from this tree

import torch

import ablate
from ablate.engine import ablate_version, matmul_precision, pinned_precision, resolve_device

ENVIRONMENT = ("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "NVIDIA_TF32_OVERRIDE", "CUDA_VISIBLE_DEVICES",
               "CUBLAS_WORKSPACE_CONFIG", "PYTORCH_CUDA_ALLOC_CONF", "ABLATE_DATA_DIR")
BACKENDS = ("cuda.matmul", "cudnn.conv", "cudnn.rnn", "mkldnn.matmul", "mkldnn.conv",
            "mkldnn.rnn")


def _read(f: Callable[[], object]) -> str:
    """A legacy flag's value, or that reading it raises (PyTorch refuses mixed APIs)."""
    try:
        return repr(f())
    except RuntimeError as e:
        return f"raises RuntimeError ({str(e).splitlines()[0][:60]}...)"


def precision() -> str:
    b: Any = torch.backends
    current = []
    for name in BACKENDS:
        backend = b
        for part in name.split("."):
            backend = getattr(backend, part)
        current.append(f"{name}={backend.fp32_precision}")
    legacy = [f"get_float32_matmul_precision()={_read(torch.get_float32_matmul_precision)}",
              f"cuda.matmul.allow_tf32={_read(lambda: b.cuda.matmul.allow_tf32)}",
              f"cudnn.allow_tf32={_read(lambda: b.cudnn.allow_tf32)}"]
    return "fp32_precision: " + ", ".join(current) + "\n  legacy: " + ", ".join(legacy)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    print(f"python {platform.python_version()} ({sys.executable}), {platform.platform()}")
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
          f"{torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            print(f"cuda:{i} {p.name}, capability {p.major}.{p.minor}, "
                  f"{p.total_memory / 2**30:.1f} GiB, {p.multi_processor_count} SMs")
    else:
        print("CUDA: no device visible")
    for name in ENVIRONMENT:
        print(f"{name}={os.environ.get(name, '(unset)')}")
    device = resolve_device(args.device)
    print(f"precision at start: {precision()}")
    with pinned_precision(device):
        print(f"precision inside ablate's pin: {precision()}")
        pinned = matmul_precision(device)
    print(f"matmul precision on {device} while training: {pinned!r}")
    where = Path(ablate.__file__).resolve()
    print(f"ablate {ablate_version()} from {where.parent}")
    failed = 0
    if ROOT not in where.parents:
        print(f"ERROR: ablate comes from {where.parent}, not this tree ({ROOT}): an installed "
              "copy hides the tree's code; run with PYTHONPATH set to the tree")
        failed = 1
    if pinned != "ieee":
        print(f"ERROR: float32 matmuls run at {pinned!r} inside the pin, not full float32")
        failed = 1
    return failed


if __name__ == "__main__":
    sys.exit(main())
