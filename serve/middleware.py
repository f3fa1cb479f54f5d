"""ASGI middleware of the service: request metrics by route template."""

import time

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from serve.errors import endpoint, method_label
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
