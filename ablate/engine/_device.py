"""The training device and the machine: which device, how fast, what software, how exact.

`resolve_device` turns `--device` into a `torch.device` or a one-line `UserError`;
`pinned_precision` makes float32 matmuls full float32 (never TF32) while training and
checking; `pinned_threads` fixes torch's intra-op thread count while training (CPU
kernels round differently at another count); `provenance` records what trained a run
(versions, device, threads, precision).
A CUDA device that this process cannot see (a Ray driver without a GPU planning for its
workers) is described without touching CUDA: `visible` says whether it can be used here.
"""

import platform
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ablate.errors import UserError

__all__ = [
    "MATMUL_PRECISION", "TF32_OVERRIDE", "check_full_precision", "free_memory",
    "matmul_flops", "matmul_precision", "pinned_precision", "pinned_threads", "provenance",
    "resolve_device",
]

# Float32 matmuls in full IEEE float32: TF32 (10-bit mantissa, ~1e-3 relative error) would
# make a GPU's runs differ from the CPU's by far more than rounding. Part of the config hash.
MATMUL_PRECISION = "ieee"
# Set in many GPU containers. PyTorch reads it once, at `import torch`, as the initial
# value of both precision APIs (legacy `float32_matmul_precision` "high", current
# `cuda.matmul.fp32_precision` "tf32"); `pinned_precision` overrides both.
TF32_OVERRIDE = "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE"
# Read by cuBLAS itself (NVIDIA's library, not PyTorch): "0" disables TF32 everywhere.
NVIDIA_TF32_OVERRIDE = "NVIDIA_TF32_OVERRIDE"


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present, else the CPU; anything else must exist here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N",
                        api=f"device={name!r} is not a device; use 'auto', 'cpu', 'cuda' or "
                        "'cuda:N'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA GPU is visible here; use --device cpu",
                        api=f"device={name!r}: no CUDA GPU is visible here; use device='cpu'")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) here",
                        api=f"device={name!r}: only {torch.cuda.device_count()} GPU(s) here")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"--device {name}: only cpu and cuda are supported",
                        api=f"device={name!r}: only 'cpu' and 'cuda' are supported")
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

    Sets both of PyTorch's precision APIs, which its CUDA matmuls require to agree (they
    raise on a mix): the current one (`fp32_precision = "ieee"` on every backend) and the
    legacy one (`set_float32_matmul_precision("highest")`). So an environment override
    read at `import torch` (`TORCH_ALLOW_TF32_CUBLAS_OVERRIDE`, which starts both at TF32)
    is overridden too. On CUDA a probe then verifies that matmuls are full float32,
    raising a `UserError` if something below PyTorch still forces TF32.
    """
    if not hasattr(torch.backends, "fp32_precision"):  # torch < 2.9: the legacy API only
        saved_legacy = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("highest")
        try:
            yield
        finally:
            torch.set_float32_matmul_precision(saved_legacy)
        return
    backends = _precision_backends()
    saved = [b.fp32_precision for b in backends]  # type: ignore[attr-defined]
    try:
        legacy: str | None = torch.get_float32_matmul_precision()
    except RuntimeError:  # the process mixed the APIs: the new one's values are restored
        legacy = None
    cudnn: Any = torch.backends.cudnn
    try:
        saved_cudnn: bool | None = bool(cudnn.allow_tf32)
    except RuntimeError:  # the process mixed the APIs for cuDNN: leave its legacy flag alone
        saved_cudnn = None
    try:
        # The legacy API: matmuls (cuda and mkldnn) "highest"; cuDNN's flag off, which
        # also sets its conv and rnn precision to the default, full float32.
        torch.set_float32_matmul_precision("highest")
        if saved_cudnn is not None:
            cudnn.allow_tf32 = False
        for b in backends:
            if saved_cudnn is None or b not in (cudnn.conv, cudnn.rnn):
                b.fp32_precision = MATMUL_PRECISION  # type: ignore[attr-defined]
        if device.type == "cuda":
            check_full_precision(device)
        yield
    finally:
        # legacy first: each legacy setter rewrites some backends, restored after it
        if saved_cudnn is not None:
            cudnn.allow_tf32 = saved_cudnn
        if legacy is not None:
            torch.set_float32_matmul_precision(legacy)
        for b, value in zip(backends, saved, strict=True):
            b.fp32_precision = value  # type: ignore[attr-defined]


@contextmanager
def pinned_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count is `threads` inside the block (restored after); None
    leaves the process's own. A CPU kernel splits its work, and so the order of its float
    sums, by thread count (MKL cuts a small batch's inner dimension between threads): the
    same seed trains to other float32 numbers at another count, and at more than one
    thread a replica's numbers can depend on the cohort it is packed in."""
    if threads is None:
        yield
        return
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


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
                        f"{NVIDIA_TF32_OVERRIDE} (or set it to 0) before starting Python, "
                        "and rerun")


def visible(device: torch.device) -> bool:
    """Whether this process can use `device` (a CUDA device needs a GPU here)."""
    if device.type != "cuda":
        return True
    return torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()


def free_memory(device: torch.device) -> int | None:
    """Bytes free on a CUDA device now; None on the CPU (whose budget is the caller's) and
    for a CUDA device this process cannot see (a Ray driver planning for its workers)."""
    if device.type != "cuda" or not visible(device):
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return int(free)


PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


@cache
def ablate_version() -> str:
    """This package's version: the source tree's pyproject.toml when ablate runs from a
    checkout (installed or not: a copy of the tree on a GPU machine, on PYTHONPATH, has
    no installed metadata), else the installed distribution's, else "unknown"."""
    try:
        project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        project = {}
    if project.get("name") == "ablate" and isinstance(project.get("version"), str):
        return str(project["version"])
    try:
        return version("ablate")
    except PackageNotFoundError:
        return "unknown"


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's; a CUDA device not visible here says so."""
    if device.type == "cuda":
        if visible(device):
            return torch.cuda.get_device_name(device)
        return "a GPU of the workers (none visible to this process)"
    return platform.processor() or platform.machine()


def provenance(device: torch.device) -> dict[str, object]:
    return {
        "python": platform.python_version(), "torch": torch.__version__,
        "numpy": np.__version__, "ablate": ablate_version(),
        "device": str(device),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "matmul_precision": MATMUL_PRECISION,  # pinned while training (`pinned_precision`)
    }
