"""The training device and the machine: which device, how fast, what software, how exact.

`resolve_device` turns `--device` into a `torch.device` or a one-line `UserError`;
`pinned_precision` makes float32 matmuls full float32 (never TF32) while training and
checking; `provenance` records what trained a run (versions, device, threads, precision).
"""

import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from typing import Any

import numpy as np
import torch

from ablate.errors import UserError

__all__ = [
    "MATMUL_PRECISION", "TF32_OVERRIDE", "check_full_precision", "free_memory",
    "matmul_flops", "matmul_precision", "pinned_precision", "provenance",
    "resolve_device",
]

# Float32 matmuls in full IEEE float32: TF32 (10-bit mantissa, ~1e-3 relative error) would
# make a GPU's runs differ from the CPU's by far more than rounding. Part of the config hash.
MATMUL_PRECISION = "ieee"
# Set in many GPU containers; it forces TF32 on cuBLAS whatever the flags say, once read.
TF32_OVERRIDE = "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE"


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
    """Median fp32 matmul FLOP/s of an n x n product on `device` (full float32)."""
    a = torch.randn(n, n, device=device)
    times = []
    with pinned_precision(device):
        for _ in range(repeats + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            a @ a
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
    return 2 * n**3 / sorted(times[1:])[repeats // 2]


def _precision_backends() -> list[object]:
    """The backends whose float32 precision PyTorch's `fp32_precision` API sets."""
    b: Any = torch.backends  # typed stubs lack the per-backend precision attributes
    return [b.cuda.matmul, b.cudnn.conv, b.cudnn.rnn, b.mkldnn.matmul, b.mkldnn.conv,
            b.mkldnn.rnn]


def matmul_precision(device: torch.device) -> str:
    """The float32 matmul precision in effect for `device` as PyTorch's current API says
    ("ieee", "tf32", "bf16", or "none": the default, full float32 unless an environment
    override says otherwise). Never reads the legacy TF32 flags, which raise once the new
    API has been used."""
    if not hasattr(torch.backends, "fp32_precision"):  # torch < 2.9: the legacy API only
        return "ieee" if torch.get_float32_matmul_precision() == "highest" else "tf32"
    b: Any = torch.backends
    return str((b.cuda.matmul if device.type == "cuda" else b.mkldnn.matmul).fp32_precision)


@contextmanager
def pinned_precision(device: torch.device) -> Iterator[None]:
    """Full float32 matmuls inside the block, whatever the process had set (restored after).

    Sets the precision through the current API (`fp32_precision = "ieee"` on every
    backend), drops `TORCH_ALLOW_TF32_CUBLAS_OVERRIDE` from this process's environment
    (cuBLAS reads it once, at its first matmul) and, on CUDA, verifies with a probe that
    matmuls are full float32, raising a `UserError` if something still forces TF32.
    """
    if not hasattr(torch.backends, "fp32_precision"):  # torch < 2.9
        saved_legacy = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("highest")
        try:
            yield
        finally:
            torch.set_float32_matmul_precision(saved_legacy)
        return
    backends = _precision_backends()
    saved = [b.fp32_precision for b in backends]  # type: ignore[attr-defined]
    os.environ.pop(TF32_OVERRIDE, None)
    try:
        for b in backends:
            b.fp32_precision = MATMUL_PRECISION  # type: ignore[attr-defined]
        if device.type == "cuda":
            check_full_precision(device)
        yield
    finally:
        for b, value in zip(backends, saved, strict=True):
            b.fp32_precision = value  # type: ignore[attr-defined]


def check_full_precision(device: torch.device) -> None:
    """Raise a `UserError` if float32 (batched) matmuls on `device` lose precision.

    1 + 2^-15 is a float32 but not a TF32 value (10 mantissa bits): multiplied by the
    identity it survives in float32 and becomes 1 in TF32.
    """
    x = torch.full((2, 64, 64), 1 + 2.0**-15, device=device)
    eye = torch.eye(64, device=device).expand(2, 64, 64)
    if not (torch.equal(torch.bmm(x, eye), x) and torch.equal(x[0] @ eye[0], x[0])):
        raise UserError(f"float32 matmuls on {device} run in reduced precision (TF32) although "
                        f"ablate asks for full float32: unset {TF32_OVERRIDE} and "
                        "NVIDIA_TF32_OVERRIDE before starting Python, and rerun")


def free_memory(device: torch.device) -> int | None:
    """Bytes free on a CUDA device now (None on the CPU, whose budget is the caller's)."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return int(free)


def provenance(device: torch.device) -> dict[str, object]:
    return {
        "python": platform.python_version(), "torch": torch.__version__,
        "numpy": np.__version__, "ablate": version("ablate"),
        "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else platform.processor() or platform.machine()),
        "threads": torch.get_num_threads(),
        "matmul_precision": MATMUL_PRECISION,  # pinned while training (`pinned_precision`)
    }
