"""The training device and the machine: which device, how fast, what software.

`resolve_device` turns `--device` into a `torch.device` or a one-line `UserError`;
`provenance` records what trained a run (versions, device, threads).
"""

import platform
import time
from importlib.metadata import version

import numpy as np
import torch

from ablate.errors import UserError


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present, else the CPU; anything else must exist here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N"
                        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA GPU is visible here; use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) here")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"--device {name}: only cpu and cuda are supported")
    return device


def matmul_flops(device: torch.device, n: int = 1024, repeats: int = 5) -> float:
    """Median fp32 matmul FLOP/s of an n x n product on `device`."""
    a = torch.randn(n, n, device=device)
    times = []
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        a @ a
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / sorted(times[1:])[repeats // 2]


def provenance(device: torch.device) -> dict[str, object]:
    return {
        "python": platform.python_version(), "torch": torch.__version__,
        "numpy": np.__version__, "ablate": version("ablate"),
        "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else platform.processor() or platform.machine()),
        "threads": torch.get_num_threads(),
    }
