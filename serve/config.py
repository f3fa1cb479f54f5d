"""The service's settings: typed, frozen, validated, with defaults explained.

`ablate serve` takes them from `ABLATE_SERVE_*` environment variables (the command
line keeps to the design's options). An unknown variable, a malformed value or a
value outside its range (0 bytes would switch a limit off) is one line that names the
variable and says what it must be.
"""

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from ablate.errors import UserError

__all__ = [
    "ANY_HOST", "ENV_PREFIX", "BatchConfig", "HttpLimits", "Limits", "ServeConfig",
    "SettingError", "from_env",
]

KIB, MIB = 1 << 10, 1 << 20


class SettingError(UserError):
    """A setting outside its range: `name=value: rule`. `also` names the other setting
    of a rule between two."""

    def __init__(self, name: str, value: object, rule: str, also: str | None = None) -> None:
        super().__init__(f"{name}={value}: {rule}")
        self.name, self.rule, self.also = name, rule, also


def _within(name: str, value: float, low: float, high: float, why: str) -> None:
    if not low <= value <= high:  # also refuses NaN
        raise SettingError(name, value, f"must be {_show(low)} to {_show(high)} ({why})")


def _show(x: float) -> str:
    return f"{x:,}" if isinstance(x, int) else f"{x:g}"


@dataclass(frozen=True)
class BatchConfig:
    """Micro-batching of concurrent inference requests."""

    enabled: bool = True  # off: each request runs alone (the baseline the benchmark compares)
    max_batch: int = 64  # images per forward pass; a larger single request runs alone
    max_wait_ms: float = 2.0  # longest the oldest waiting request holds a batch open, and
    #                           only while requests are arriving concurrently (so a lone
    #                           request never waits)
    max_queue: int = 2048  # images waiting; beyond this a request gets 503 + Retry-After
    timeout_s: float = 10.0  # longest a request waits for its forward pass (then 503): a
    #                          full queue drains in ~0.3 s here, so only a stuck worker
    #                          reaches it

    def __post_init__(self) -> None:
        _within("max_batch", self.max_batch, 1, 4096, "images per forward pass")
        _within("max_wait_ms", self.max_wait_ms, 0.0, 1000.0, "milliseconds")
        _within("max_queue", self.max_queue, 1, 1_000_000, "images waiting")
        _within("timeout_s", self.timeout_s, 0.01, 3600.0, "seconds")
        if self.timeout_s * 1000 <= self.max_wait_ms:
            raise SettingError("timeout_s", self.timeout_s, f"timeout_s ({self.timeout_s:g} "
                               f"s) must exceed max_wait_ms ({self.max_wait_ms:g} ms), or "
                               "requests time out while their batch fills", also="max_wait_ms")


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; beyond these the answer is 413 (or 400), or 503
    while the decode workers are busy."""

    max_body_bytes: int = 8 * MIB  # a JSON batch of 256 FP32 images is ~4 MiB
    max_items: int = 256  # images per inference request
    max_image_side: int = 8192  # width or height of an uploaded image, read before decoding
    max_image_pixels: int = 4096 * 3072  # width x height, read before decoding: a 12 MP
    #                                      phone photo (4032 x 3024) fits; decoding one
    #                                      holds 1 to 8 bytes a pixel (see serve.preprocess)
    max_decodes: int = 1  # images decoded at once (one worker process each); beyond this
    #                       a request gets 503 + Retry-After. At the pixel ceiling a decode
    #                       holds up to ~100 MiB, so this bounds what images can take. One
    #                       leaves the event loop a core: measured under the abuse benchmark
    #                       on 2 cores, 2 workers decoded no more images per second but
    #                       doubled the p99 of other requests (231 vs 117 ms)
    decode_timeout_s: float = 3.0  # a decode still running after this is stopped (its
    #                                worker process killed) and answered 413: the costliest
    #                                admissible image takes ~0.3 s here (serve_abuse.py)
    max_held_body_bytes: int = 32 * MIB  # request bodies held in memory at once, across
    #                                      all connections; a request that would go beyond
    #                                      gets 503 + Retry-After before its body is read.
    #                                      Parsing holds up to ~3 copies of a body

    def __post_init__(self) -> None:
        _within("max_body_bytes", self.max_body_bytes, 4 * KIB, 1024 * MIB,
                "one image's request is ~2 KiB; 0 would mean no limit")
        _within("max_items", self.max_items, 1, 65_536, "images per request")
        _within("max_image_side", self.max_image_side, 28, 65_535, "pixels")
        _within("max_image_pixels", self.max_image_pixels, 28 * 28, 50_000_000,
                "pixels; decoding holds up to 8 bytes each")
        _within("max_decodes", self.max_decodes, 1, 64, "images decoded at once")
        _within("decode_timeout_s", self.decode_timeout_s, 0.01, 600.0, "seconds")
        _within("max_held_body_bytes", self.max_held_body_bytes, 4 * KIB, 64 * 1024 * MIB,
                "bytes of request bodies held at once")
        if self.max_held_body_bytes < self.max_body_bytes:
            raise SettingError("max_held_body_bytes", self.max_held_body_bytes,
                               f"max_held_body_bytes ({self.max_held_body_bytes:,}) must be at "
                               f"least max_body_bytes ({self.max_body_bytes:,}), or the largest "
                               "request could never be read", also="max_body_bytes")


@dataclass(frozen=True)
class HttpLimits:
    """Limits on connections, enforced below the app (see `serve.http`): what a slow or
    hostile client can hold."""

    max_header_bytes: int = 16 * KIB  # request line + headers; beyond: 431 and close
    #                                   (h11's default; browsers send under 8 KiB)
    header_timeout_s: float = 10.0  # from a connection's first byte (or its opening) to
    #                                 the end of the request's headers; then 408 and close
    body_timeout_s: float = 30.0  # from the end of the headers to the end of the body:
    #                               8 MiB at 2 Mbit/s; then 408 and close
    keep_alive_s: int = 5  # an idle connection between requests is closed after this
    max_connections: int = 256  # open connections; a new one beyond this closes the
    #                             longest-idle one (no request, or its body stalled);
    #                             when every one is busy, the new one's request gets 503
    stalled_body_s: float = 1.0  # a request body with nothing new for this long may be
    #                              closed (408) to make room for a new connection when
    #                              every connection is taken
    shutdown_timeout_s: int = 10  # on SIGTERM or Ctrl-C, requests not answered after this
    #                               get 503 + Retry-After, and the server exits

    def __post_init__(self) -> None:
        _within("max_header_bytes", self.max_header_bytes, 1 * KIB, 1 * MIB, "bytes")
        _within("header_timeout_s", self.header_timeout_s, 0.1, 300.0, "seconds")
        _within("body_timeout_s", self.body_timeout_s, 0.1, 3600.0, "seconds")
        _within("keep_alive_s", self.keep_alive_s, 1, 300, "seconds")
        _within("max_connections", self.max_connections, 1, 100_000, "connections")
        _within("stalled_body_s", self.stalled_body_s, 0.1, 3600.0, "seconds")
        _within("shutdown_timeout_s", self.shutdown_timeout_s, 1, 3600, "seconds")


ANY_HOST = "*"
_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?|[0-9a-f:.]*:[0-9a-f:.]*")  # or IPv6


@dataclass(frozen=True)
class ServeConfig:
    batching: BatchConfig = BatchConfig()
    limits: Limits = Limits()
    http: HttpLimits = HttpLimits()
    threads: int = 1  # torch intra-op threads: a batch of <= 64 MNIST images gains
    #                   nothing from more, and the event loop needs the other core
    allowed_hosts: tuple[str, ...] | None = None  # host names the Host header may carry
    #   (lower case, no port; "*" for any). None: `ablate serve` allows the loopback
    #   names when bound to loopback and any name otherwise (serve.server.allowed_hosts);
    #   an app made without it answers any name.

    def __post_init__(self) -> None:
        _within("threads", self.threads, 1, 256, "torch threads")
        for host in self.allowed_hosts or ():
            if host != ANY_HOST and not _HOST_NAME.fullmatch(host):
                raise SettingError("allowed_hosts", ",".join(self.allowed_hosts or ()),
                                   "must be host names or addresses, comma-separated, "
                                   "without scheme, port or path (or * for any)")
        if self.limits.max_items > self.batching.max_queue:
            raise SettingError("max_items", self.limits.max_items,
                               f"max_items ({self.limits.max_items}) must not exceed "
                               f"max_queue ({self.batching.max_queue}), or a request that "
                               "large could never be queued", also="max_queue")


ENV_PREFIX = "ABLATE_SERVE_"
_ENV = {  # variable suffix -> (section, field)
    "BATCHING": ("batching", "enabled"),
    "MAX_BATCH": ("batching", "max_batch"),
    "MAX_WAIT_MS": ("batching", "max_wait_ms"),
    "MAX_QUEUE": ("batching", "max_queue"),
    "TIMEOUT_S": ("batching", "timeout_s"),
    "MAX_BODY_BYTES": ("limits", "max_body_bytes"),
    "MAX_ITEMS": ("limits", "max_items"),
    "MAX_IMAGE_SIDE": ("limits", "max_image_side"),
    "MAX_IMAGE_PIXELS": ("limits", "max_image_pixels"),
    "MAX_DECODES": ("limits", "max_decodes"),
    "DECODE_TIMEOUT_S": ("limits", "decode_timeout_s"),
    "MAX_HELD_BODY_BYTES": ("limits", "max_held_body_bytes"),
    "MAX_HEADER_BYTES": ("http", "max_header_bytes"),
    "HEADER_TIMEOUT_S": ("http", "header_timeout_s"),
    "BODY_TIMEOUT_S": ("http", "body_timeout_s"),
    "KEEP_ALIVE_S": ("http", "keep_alive_s"),
    "MAX_CONNECTIONS": ("http", "max_connections"),
    "STALLED_BODY_S": ("http", "stalled_body_s"),
    "SHUTDOWN_TIMEOUT_S": ("http", "shutdown_timeout_s"),
    "THREADS": ("", "threads"),
    "ALLOWED_HOSTS": ("", "allowed_hosts"),
}
_SECTIONS: dict[str, type] = {"batching": BatchConfig, "limits": Limits, "http": HttpLimits,
                              "": ServeConfig}


def from_env(env: Mapping[str, str]) -> ServeConfig:
    """`ServeConfig` with `ABLATE_SERVE_*` variables applied, e.g. ABLATE_SERVE_BATCHING=off,
    ABLATE_SERVE_MAX_BATCH=32, ABLATE_SERVE_MAX_WAIT_MS=1.5."""
    given: dict[str, tuple[str, str]] = {}  # field -> (variable, text), to name it in errors
    sections: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
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
        given[name] = (key, text)
    config = ServeConfig()
    try:
        return replace(config, batching=replace(config.batching, **sections["batching"]),
                       limits=replace(config.limits, **sections["limits"]),
                       http=replace(config.http, **sections["http"]), **sections[""])
    except SettingError as e:
        # Name the variable that was set (of a rule between two, whichever was).
        key, text = given.get(e.name) or given[e.also or e.name]
        both = f" (set by {_variable(e.name)} and {_variable(e.also)})" if e.also else ""
        raise SettingError(key, text, e.rule + both) from None


def _variable(name: str) -> str:
    return next(ENV_PREFIX + k for k, (_, field) in _ENV.items() if field == name)


def _field_type(section: str, name: str) -> type:
    return {f.name: f.type for f in fields(_SECTIONS[section])}[name]  # type: ignore[return-value]


def _parse(key: str, text: str, kind: type) -> object:
    value = text.strip().lower()
    if key == ENV_PREFIX + "ALLOWED_HOSTS":
        return tuple(name.strip().removeprefix("[").removesuffix("]")
                     for name in value.split(","))
    if kind is bool:
        if value in ("1", "on", "true", "yes"):
            return True
        if value in ("0", "off", "false", "no"):
            return False
        raise UserError(f"{key}={text}: use on or off")
    try:
        number = float(value) if kind is float else int(value)
    except ValueError:
        raise UserError(f"{key}={text}: expected {'a number' if kind is float else 'an integer'}"
                        ) from None
    if isinstance(number, float) and not math.isfinite(number):
        raise SettingError(key, text, "must be a finite number")
    return number
