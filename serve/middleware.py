"""ASGI middleware of the service, outermost first: request metrics by route template,
who may ask (host names, other sites, well-formed headers), and reading the request
body in bounded time and bounded memory; and the security headers every answer
carries."""

import asyncio
import re
import time
from typing import cast
from urllib.parse import urlsplit

import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPScope, Message, Receive, ReceiveMessage, Scope, Send

from serve.bodies import BodyBudget
from serve.config import ANY_HOST
from serve.errors import ApiError, ClientGone, Error, busy, endpoint, method_label
from serve.metrics import Metrics

__all__ = ["ANSWERED_BELOW", "CONTENT_SECURITY_POLICY", "SECURITY_HEADERS",
           "MetricsMiddleware", "RequestBody", "RequestOrigin", "security_headers"]

# Set in the scope by the connection layer (serve.http) when it answered the request
# itself (a timeout, a shutdown): the app's own answer is dropped, and not counted.
ANSWERED_BELOW = "ablate.answered_below"

# The drawing page loads only this server's script and style and talks only to it;
# nothing may frame it. JSON answers carry the same policy (it costs nothing there).
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; "
                           "img-src 'self'; connect-src 'self'; base-uri 'none'; "
                           "form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"),
                     (b"content-security-policy", CONTENT_SECURITY_POLICY.encode("ascii"))]


async def security_headers(message: Message, scope: Scope) -> None:
    """A `before_send` hook, so that every answer has them, the 404 of an unknown path
    and the refusals of `RequestOrigin` included."""
    if message["type"] == "http.response.start":
        message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]


class MetricsMiddleware(ASGIMiddleware):
    """Counts every answered request by route template, method and status, with its
    latency. A request that raises is counted as the 500 the handlers turn it into."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp
                     ) -> None:
        start, status = time.perf_counter(), 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await next_app(scope, receive, send_status)
        finally:
            if ANSWERED_BELOW not in scope:
                self.metrics.observe_request(endpoint(scope), method_label(scope), status,
                                             time.perf_counter() - start)


class RequestOrigin(ASGIMiddleware):
    """Answers only requests whose Host header names an allowed host (DNS rebinding
    makes an attacker's name point here, but the browser still sends that name), and
    refuses requests other than GET and HEAD that a page of another site sent (its
    Origin, scheme and host and port, differs from this server's): the page's own
    requests are same-origin, and clients that are not browsers send no Origin.

    Also refuses what would make those checks (or the handlers' reading of the body)
    ambiguous: a repeated Host, Origin, Content-Type or Content-Length header (400),
    and a Content-Type that is not `type/subtype[; parameters]` (415).

    A refusal is sent from here, inside the metrics middleware, so it is counted."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, allowed_hosts: tuple[str, ...] | None) -> None:
        self.allowed = None if allowed_hosts is None or ANY_HOST in allowed_hosts else (
            frozenset(allowed_hosts))
        names = ", ".join(allowed_hosts or ())
        self.unknown_host = msgspec.json.encode(Error(
            f"unknown host: this server answers to {names}; set ABLATE_SERVE_ALLOWED_HOSTS "
            "to the names clients use"))
        self.cross_site = msgspec.json.encode(Error(
            "cross-origin request refused: send it from this server's own page, or "
            "without an Origin header"))

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp
                     ) -> None:
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in _SINGLE:
                if name in headers:
                    await _answer(send, 400, _REPEATED[name])
                    return
                headers[name] = value
        host = headers.get(b"host", b"").decode("latin-1")
        if self.allowed is not None and _host_name(host) not in self.allowed:
            await _answer(send, 400, self.unknown_host)
            return
        origin = headers.get(b"origin")
        method = cast("HTTPScope", scope)["method"]
        if origin is not None and method not in ("GET", "HEAD") and not _same_origin(
                origin.decode("latin-1"), str(scope.get("scheme", "http")), host):
            await _answer(send, 403, self.cross_site)
            return
        kind = headers.get(b"content-type")
        if kind is not None and not _MEDIA_TYPE.fullmatch(kind):
            await _answer(send, 415, _MALFORMED_TYPE)
            return
        await next_app(scope, receive, send)


_SINGLE = (b"host", b"origin", b"content-type", b"content-length")
_REPEATED = {name: msgspec.json.encode(Error(
    f"the {name.decode().title()} header is repeated: send it once")) for name in _SINGLE}
_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(rb"[ \t]*" + _TOKEN + rb"/" + _TOKEN + rb"[ \t]*(;.*)?", re.DOTALL)
_MALFORMED_TYPE = msgspec.json.encode(Error(
    "malformed Content-Type: send a media type such as application/json"))


def _same_origin(origin: str, scheme: str, host: str) -> bool:
    """Whether a browser's Origin ('http://127.0.0.1:8000') is this server as the
    client reached it (scheme, and Host with its port); 'null' never is."""
    parts = urlsplit(origin.strip())
    return parts.scheme.lower() == scheme.lower() and bool(parts.netloc) and (
        parts.netloc.lower() == host.strip().lower())


def _host_name(host: str) -> str:
    """'LocalHost:8000' -> 'localhost', '[::1]:8000' -> '::1', 'example.org.' -> 'example.org'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0].rstrip(".") if ":" in host else host.rstrip(".")


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode("ascii"))]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class RequestBody(ASGIMiddleware):
    """The request body arrives within `seconds` of the request's start, or the answer
    is 408 and the connection closes (a slowloris holds nothing for long); a client
    that hangs up before its body is complete raises `ClientGone`, which is not a
    server error. Handlers simply `await request.body()`.

    Bodies held at once are bounded across all requests by `budget`: a request's
    announced Content-Length is taken from it before the first byte is read (then
    each byte beyond, for a chunked body) and given back when the request is
    answered; a request that does not fit gets 503 + Retry-After unread."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, seconds: float, budget: BodyBudget, max_body_bytes: int) -> None:
        self.seconds, self.budget, self.max_body_bytes = seconds, budget, max_body_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp
                     ) -> None:
        deadline = asyncio.get_running_loop().time() + self.seconds
        complete, started = False, False
        taken = got = 0  # bytes taken from the budget; bytes received

        def take(n: int) -> None:
            nonlocal taken
            if not self.budget.take(n):
                raise busy("the server is holding too many request bodies; retry shortly")
            taken += n

        async def bounded_receive() -> ReceiveMessage:
            nonlocal complete, started, got
            if complete:  # after the body: e.g. a response listening for a disconnect
                return await receive()
            if not started:
                started = True
                announced = _content_length(scope)
                if announced is not None and announced <= self.max_body_bytes:
                    take(announced)  # beyond the limit, Litestar answers 413 unread
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise ApiError(408, f"the request body did not arrive within "
                               f"{self.seconds:g} s", {"Connection": "close"}) from None
            if message["type"] == "http.disconnect":
                raise ClientGone
            got += len(cast(bytes, message.get("body", b"")))
            if got > taken:
                take(got - taken)
            complete = not message.get("more_body", False)
            return message

        try:
            await next_app(scope, bounded_receive, send)
        finally:
            self.budget.give(taken)


def _content_length(scope: Scope) -> int | None:
    """The Content-Length header's value (the HTTP parser has checked its syntax)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() and len(value) <= 18 else None
    return None
