"""ASGI middleware of the service, outermost first: request metrics by route template,
and reading the request body in bounded time."""

import asyncio
import time

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from serve.errors import ApiError, ClientGone, endpoint, method_label
from serve.metrics import Metrics


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
