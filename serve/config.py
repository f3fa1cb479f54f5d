"""The service's settings: typed, frozen, with defaults explained.

`ablate serve` takes them from `ABLATE_SERVE_*` environment variables (the command
line keeps to the design's options); an unknown or malformed variable is an error
that names it.
"""

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from ablate.errors import UserError


@dataclass(frozen=True)
class BatchConfig:
    """Micro-batching of concurrent inference requests."""

    enabled: bool = True  # off: each request runs alone (the baseline the benchmark compares)
    max_batch: int = 64  # images per forward pass; a larger single request runs alone
    max_wait_ms: float = 2.0  # longest the oldest waiting request holds a batch open, and
    #                           only while requests are arriving concurrently (so a lone
    #                           request never waits)
    max_queue: int = 2048  # images waiting; beyond this a request gets 503 + Retry-After

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_queue < 1 or not 0 <= self.max_wait_ms <= 1000:
            raise UserError("batching: need max_batch >= 1, max_queue >= 1 and "
                            "0 <= max_wait_ms <= 1000")


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; beyond these the answer is 413 (or 400)."""

    max_body_bytes: int = 8 * 1024 * 1024  # a JSON batch of 256 FP32 images is ~4 MiB
    max_items: int = 256  # images per inference request
    max_image_side: int = 8192  # width or height of an uploaded image, read before decoding
    max_image_pixels: int = 4096 * 3072  # width x height, read before decoding: a 12 MP
    #                                      phone photo (4032 x 3024) fits; decoding one
    #                                      holds 1 to 8 bytes a pixel (see serve.preprocess)
    max_decodes: int = 2  # images decoded at once (one worker thread each); beyond this a
    #                       request gets 503 + Retry-After. At the pixel ceiling a decode
    #                       holds up to ~100 MiB, so this bounds what images can take.


@dataclass(frozen=True)
class ServeConfig:
    batching: BatchConfig = BatchConfig()
    limits: Limits = Limits()
    threads: int = 1  # torch intra-op threads: a batch of <= 64 MNIST images gains
    #                   nothing from more, and the event loop needs the other core

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise UserError("threads: need at least 1")


ENV_PREFIX = "ABLATE_SERVE_"
_ENV = {  # variable suffix -> (section, field)
    "BATCHING": ("batching", "enabled"),
    "MAX_BATCH": ("batching", "max_batch"),
    "MAX_WAIT_MS": ("batching", "max_wait_ms"),
    "MAX_QUEUE": ("batching", "max_queue"),
    "MAX_BODY_BYTES": ("limits", "max_body_bytes"),
    "MAX_ITEMS": ("limits", "max_items"),
    "MAX_IMAGE_SIDE": ("limits", "max_image_side"),
    "MAX_IMAGE_PIXELS": ("limits", "max_image_pixels"),
    "MAX_DECODES": ("limits", "max_decodes"),
    "THREADS": ("", "threads"),
}


def from_env(env: Mapping[str, str]) -> ServeConfig:
    """`ServeConfig` with `ABLATE_SERVE_*` variables applied, e.g. ABLATE_SERVE_BATCHING=off,
    ABLATE_SERVE_MAX_BATCH=32, ABLATE_SERVE_MAX_WAIT_MS=1.5."""
    config = ServeConfig()
    sections: dict[str, dict[str, Any]] = {"batching": {}, "limits": {}, "": {}}
    for key, text in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        suffix = key[len(ENV_PREFIX):]
        if suffix not in _ENV:
            close = difflib.get_close_matches(suffix, list(_ENV), n=1)
            hint = f" (did you mean {ENV_PREFIX}{close[0]}?)" if close else ""
            raise UserError(f"unknown setting {key}{hint}; known: "
                            + ", ".join(ENV_PREFIX + k for k in _ENV))
        section, name = _ENV[suffix]
        sections[section][name] = _parse(key, text, _field_type(section, name))
    return replace(config, batching=replace(config.batching, **sections["batching"]),
                   limits=replace(config.limits, **sections["limits"]), **sections[""])


def _field_type(section: str, name: str) -> type:
    cls = {"batching": BatchConfig, "limits": Limits, "": ServeConfig}[section]
    return {f.name: f.type for f in fields(cls)}[name]  # type: ignore[return-value]


def _parse(key: str, text: str, kind: type) -> object:
    value = text.strip().lower()
    if kind is bool:
        if value in ("1", "on", "true", "yes"):
            return True
        if value in ("0", "off", "false", "no"):
            return False
        raise UserError(f"{key}={text!r}: use on or off")
    try:
        number = float(value) if kind is float else int(value)
    except ValueError:
        raise UserError(f"{key}={text!r}: expected {'a number' if kind is float else 'an integer'}"
                        ) from None
    if number < 0:
        raise UserError(f"{key}={text!r}: must not be negative")
    return number
