"""ASGI middleware of the service, outermost first: request metrics by route template,
who may ask (host names, other sites), and reading the request body in bounded time;
and the security headers every answer carries."""

import asyncio
import time
from typing import cast
from urllib.parse import urlsplit

import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPScope, Message, Receive, ReceiveMessage, Scope, Send

from serve.config import ANY_HOST
from serve.errors import ApiError, ClientGone, Error, endpoint, method_label
from serve.metrics import Metrics

# The drawing page loads only this server's script and style and talks only to it;
# nothing may frame it. JSON answers carry the same policy (it costs nothing there).
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; "
                           "img-src 'self'; connect-src 'self'; base-uri 'none'; "
                           "form-action 'none'; frame-ancestors 'none'")
_SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"),
                     (b"content-security-policy", CONTENT_SECURITY_POLICY.encode("ascii"))]


async def security_headers(message: Message, scope: Scope) -> None:
    """A `before_send` hook, so that every answer has them, the 404 of an unknown path
    and the refusals of `RequestOrigin` included."""
    if message["type"] == "http.response.start":
        message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]


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
            self.metrics.observe_request(endpoint(scope), method_label(scope), status,
                                         time.perf_counter() - start)


class RequestOrigin(ASGIMiddleware):
    """Answers only requests whose Host header names an allowed host (DNS rebinding
    makes an attacker's name point here, but the browser still sends that name), and
    refuses requests other than GET and HEAD that a page of another site sent (its
    Origin differs from this server's): the page's own requests are same-origin, and
    clients that are not browsers send no Origin.

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
        headers = {k: v for k, v in scope["headers"] if k in (b"host", b"origin")}
        host = headers.get(b"host", b"").decode("latin-1")
        if self.allowed is not None and _host_name(host) not in self.allowed:
            await _answer(send, 400, self.unknown_host)
            return
        origin = headers.get(b"origin")
        method = cast("HTTPScope", scope)["method"]
        if origin is not None and method not in ("GET", "HEAD") and (
                urlsplit(origin.decode("latin-1")).netloc.lower() != host.lower()):
            await _answer(send, 403, self.cross_site)
            return
        await next_app(scope, receive, send)


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
    server error. Handlers simply `await request.body()`."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp
                     ) -> None:
        deadline = asyncio.get_running_loop().time() + self.seconds
        complete = False

        async def bounded_receive() -> ReceiveMessage:
            nonlocal complete
            if complete:  # after the body: e.g. a response listening for a disconnect
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise ApiError(408, f"the request body did not arrive within "
                               f"{self.seconds:g} s", {"Connection": "close"}) from None
            if message["type"] == "http.disconnect":
                raise ClientGone
            complete = not message.get("more_body", False)
            return message

        await next_app(scope, bounded_receive, send)
